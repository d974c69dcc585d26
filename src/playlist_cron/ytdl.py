"""The one place that subclasses and configures yt-dlp's YoutubeDL: its params, its requests, its playlist walk."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yt_dlp
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import DateRange, DownloadCancelled

from playlist_cron import bounded_http, yt_dlp_private
from playlist_cron.archive_ids import ArchiveIds, with_plain_id
from playlist_cron.archive_view import LookedUpLines
from playlist_cron.config import Config, Playlist
from playlist_cron.entry_tally import Entry, EntryTally
from playlist_cron.errors import DiskFull, stopping_when_database_lost
from playlist_cron.failure_kinds import (
    RATE_LIMITED,
    REFUSED_ADDRESS,
    Failure,
    RateLimited,
    classify,
    host_of,
    one_line,
)
from playlist_cron.file_names import NAME_RESERVE_BYTES, SIDECAR_RESERVE_BYTES, fit_fields, name_max_bytes
from playlist_cron.file_sizes import AnnouncedSizes
from playlist_cron.link_policy import LinkPolicy
from playlist_cron.playlist_result import STOPPED_AT_MAX_DOWNLOADS, PlaylistResult, Reporter
from playlist_cron.yt_dlp_options import parse_yt_dlp_args

if TYPE_CHECKING:
    from playlist_cron.storage import Archive, VideoLocks

BOT_CHECK_PATTERN = re.compile(rb"confirm you(?:'|&#39;|&#x27;|\xe2\x80\x99|\\u0027)re not a bot", re.IGNORECASE)
PAGE_PEEK_MAX_BYTES = 4 * 1024 * 1024  # an HTML page is read whole (and handed on) to look for a bot check
DISK_CHECK_EVERY_S = 1.0
ONE_DOWNLOAD_WAIT_TICK_S = 0.25  # how often a read waiting for another's download asks whether it may go on
UNSHOWN_PROGRESS_EVERY_S = 24 * 3600  # yt-dlp's progress line, which a check never shows: formatted once a download
# Messages yt-dlp gives on every generic feed item: noise in a log that people read.
QUIET_WARNINGS = ("Falling back on generic information extractor",)
RETRY_WORDS = re.compile(r"retry|retrying|got error|timed out", re.IGNORECASE)


class NotAPlaylist(Exception):
    """The playlist URL led to one video: nothing is downloaded, and the check says why."""


class StopPlaylist(DownloadCancelled):  # type: ignore[misc]
    """Stop reading this playlist: the first archived video was met, or the per-check limit was reached."""

    msg = "playlist-cron stopped reading the playlist"


class SharedArchive(Protocol):
    """What a Downloader uses of the check's session (`download.Session`): the archive's lines it looked up; the
    storage's archive (which yt-dlp appends to, or which the check adds to); in a fleet, the video locks."""

    config: Config
    store: Archive
    video_locks: VideoLocks | None
    writer: threading.RLock  # the check's one writer: a database's archive is asked and added to under it
    one_download: threading.Lock  # held by each video's run: downloads stay one at a time

    def archive(self) -> LookedUpLines: ...


class Fetcher(yt_dlp.YoutubeDL):  # type: ignore[misc]
    """yt-dlp's YoutubeDL as a client of the site: every request it makes is watched for rate limits and failures.

    Made with `auto_init=False`, it is yt-dlp's networking alone (the user's proxy, cookies and headers apply),
    without the 40 ms of setting up its 1,800 extractors: what a feed read needs.
    """

    def __init__(self, params: dict[str, Any], *, auto_init: bool = True) -> None:
        self.rate_limited: str | None = None  # set by urlopen when the site says to slow down
        self.failed_host: str | None = None  # the host of the last request that got no answer
        self.first_content_type: str | None = None  # of the playlist URL's answer: says what a non-playlist was
        super().__init__(params, auto_init=auto_init)

    def add_default_info_extractors(self) -> None:
        """yt-dlp's extractors, in its order: which ones, worked out once a process (`yt_dlp_private`)."""
        yt_dlp_private.add_default_extractors(self, super().add_default_info_extractors)

    def failure_of(self, error: BaseException, fallback_host: str | None = None) -> Failure:
        """What kind of failure `error` is, given also what this client saw of the site's answers."""
        if self.rate_limited:  # a bot-check page, or a 429 that yt-dlp went on from
            return Failure(RATE_LIMITED, self.rate_limited)
        return classify(error, self.failed_host or fallback_host)

    def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
        """yt-dlp's request director, with its urllib handler bounded and preferred (`bounded_http`), asking
        `link_refusal` about each request it sends, redirects included."""
        handlers = bounded_http.with_bounded_urllib(handlers)
        director = super().build_request_director(handlers, {*(preferences or ()), bounded_http.prefer_bounded})
        bounded_http.set_link_check(director, self.link_refusal)
        return director

    def link_refusal(self, url: str) -> str | None:
        """Why a request for `url` is not sent, or None: a Fetcher asks only what the config names."""
        return None

    def urlopen(self, req: Any) -> Any:
        """Every request yt-dlp makes passes here: notice HTTP 429, "confirm you're not a bot" pages, failed hosts;
        refuse the links `link_refusal` refuses, before any request."""
        url = req if isinstance(req, str) else getattr(req, "url", None) or getattr(req, "full_url", None)
        refusal = self.link_refusal(str(url)) if url else None
        if refusal is not None:
            raise bounded_http.RefusedLink(refusal)
        try:
            response = super().urlopen(req)
        except HTTPError as error:
            if error.status == 429:
                self.rate_limited = f"HTTP 429 Too Many Requests from {host_of(error.response.url)}"
            raise
        except Exception:
            self.failed_host = host_of(str(url)) if url else None  # a refused connection does not name its host
            raise
        content_type = response.headers.get("Content-Type", "")
        if self.first_content_type is None:
            self.first_content_type = content_type
        length = int(response.headers.get("Content-Length") or 0)
        if "html" in content_type and length <= PAGE_PEEK_MAX_BYTES:
            body = response.read()
            if BOT_CHECK_PATTERN.search(body):
                self.rate_limited = f"{host_of(response.url)} asked to confirm we are not a bot"
            return _unread(response, body)  # hand the page on unread, as if we had never looked
        return response


class _RunHooks(Fetcher):
    """yt-dlp's YoutubeDL with the hooks where it tells what happens to the entry being run: the file's name, the
    video's start, its progress (the disk's free space watched meanwhile) and its file, each noted on the Entry."""

    link_policy: LinkPolicy  # where the playlist's entries may lead: set as each playlist's read begins

    def __init__(self, params: dict[str, Any], reporter: Reporter) -> None:
        self._reporter = reporter
        self._entries: list[Entry] = []  # the entries being run, innermost last
        self._disk = _DiskWatch()
        self._sizes = AnnouncedSizes()
        self._name_max_bytes: int | None = None
        params = dict(params)
        params["progress_hooks"] = [*params.get("progress_hooks", []), self._on_progress]
        params["post_hooks"] = [*params.get("post_hooks", []), self._on_finished_file]
        params["logger"] = Logger(reporter, self._current)
        super().__init__(params)

    def _current(self) -> Entry | None:
        return self._entries[-1] if self._entries else None

    def link_refusal(self, url: str) -> str | None:
        """While an entry runs, every request it leads to is one of the playlist's links (`LinkPolicy`)."""
        return self.link_policy.refusal(url) if self._entries else None

    def entry_refusal(self, ie_result: dict[str, Any]) -> str | None:
        """Why an entry's own link is refused (`LinkPolicy`), or None."""
        url = ie_result.get("url") if ie_result.get("_type") in ("url", "url_transparent") else None
        return self.link_policy.refusal(yt_dlp_private.smuggled_video_id(url)[0]) if isinstance(url, str) else None

    @property
    def reporter(self) -> Reporter:
        return self._reporter

    def watch_disk(self, download_dir: str, min_free_bytes: int) -> None:
        self._disk = _DiskWatch(download_dir, min_free_bytes)

    def prepare_filename(
        self, info_dict: dict[str, Any], dir_type: str = "", *, outtmpl: Any = None, warn: bool = False
    ) -> Any:
        """yt-dlp's file name, with the longest fields shortened until every part of the path fits the filesystem.

        The video's own name decides first, so that the files written beside it (".info.json", subtitles) share it.
        """
        name_max = self._filesystem_name_max_bytes()
        video_fields = fit_fields(
            lambda fields: str(super(_RunHooks, self).prepare_filename(fields) or ""),
            info_dict,
            name_max - NAME_RESERVE_BYTES,
        )
        if dir_type or outtmpl is not None:
            reserve_bytes = NAME_RESERVE_BYTES if dir_type == "temp" else SIDECAR_RESERVE_BYTES
            video_fields = fit_fields(
                lambda fields: str(super(_RunHooks, self).prepare_filename(fields, dir_type, outtmpl=outtmpl) or ""),
                video_fields,
                name_max - reserve_bytes,
            )
        return super().prepare_filename(video_fields, dir_type, outtmpl=outtmpl, warn=warn)

    def _filesystem_name_max_bytes(self) -> int:
        """The longest file name, in bytes, that the download folder's filesystem takes (asked once)."""
        if self._name_max_bytes is None:
            self._name_max_bytes = name_max_bytes((self.params.get("paths") or {}).get("home") or ".")
        return self._name_max_bytes

    def process_info(self, info_dict: dict[str, Any]) -> Any:
        entry = self._current()
        if entry is not None:
            entry.info = info_dict
            entry.started_at = time.monotonic()
            self._reporter.video_started(str(info_dict.get("id")), info_dict.get("title"))
        return super().process_info(info_dict)

    def in_download_archive(self, info_dict: dict[str, Any]) -> bool:
        found = bool(super().in_download_archive(info_dict))
        entry = self._current()
        if found and entry is not None:
            entry.archived = True
        return found

    def _on_progress(self, progress: dict[str, Any]) -> None:
        info = progress.get("info_dict") or {}
        video_id = str(info.get("id") or "?")
        if progress.get("status") == "downloading":
            self._disk.check()
            entry = self._current()
            if entry is not None and entry.info is None:
                entry.info = info
            self._reporter.video_progress(
                video_id,
                int(progress.get("downloaded_bytes") or 0),
                progress.get("total_bytes") or progress.get("total_bytes_estimate"),
                progress.get("speed"),
                progress.get("eta"),
            )
            self._sizes.downloading(progress)
        elif progress.get("status") == "finished":
            self._sizes.finished(progress)  # raises SizeMismatch before yt-dlp's archive line

    def _on_finished_file(self, filename: str) -> None:
        entry = self._current()
        if entry is not None:
            entry.filename = filename


class Downloader(_RunHooks):
    """yt-dlp's YoutubeDL, told to report each playlist entry's outcome to playlist-cron.

    It follows yt-dlp through a playlist, settles each entry from the playlist alone where it can, and runs the
    rest (in a fleet, under the video's lock); its EntryTally counts what each came to, its ArchiveIds tell them."""

    def __init__(
        self,
        params: dict[str, Any],
        playlist: Playlist,
        result: PlaylistResult,
        reporter: Reporter,
        *,
        mark_archived: bool = False,
        session: SharedArchive | None = None,
    ) -> None:
        self._session = session
        self._mark_archived = mark_archived
        self._begin(playlist, result, reporter)
        if session is None:
            super().__init__(params, reporter)
            return
        # The check's playlists share what it learns of the archive: each line looked up once, not once per playlist.
        params = dict(params)
        archive_file = params.pop("download_archive")
        super().__init__(params, reporter)
        kept_by_yt_dlp = session.store.yt_dlp_file is not None
        yt_dlp_private.share_archive(self, archive_file if kept_by_yt_dlp else None, session.archive())

    def _begin(self, playlist: Playlist, result: PlaylistResult, reporter: Reporter) -> None:
        """Set what belongs to one playlist's read: the playlist, its result and tally, where the walk is."""
        self._playlist = playlist
        self._date_range = DateRange(playlist.date_after) if playlist.date_after else None
        self._result = result
        self._tally = EntryTally(playlist, result, reporter, mark_archived=self._mark_archived)
        self._archive_ids = ArchiveIds(self)
        self._playlist_depth = 0
        self._holds_download = False
        self.capture_playlist_fields = False  # note the playlist fields of the first entry (a full read's)
        self.link_policy = LinkPolicy.of_playlist(playlist, self._session.config if self._session else None)

    def reuse_for(self, playlist: Playlist, result: PlaylistResult) -> Downloader:
        """Make this Downloader, made for a playlist with the same yt-dlp options, read `playlist` into `result`:
        nothing of the last playlist's read is left (its counts, stops, fields, what yt-dlp counted of it)."""
        self._begin(playlist, result, self._reporter)
        self._entries = []
        self._disk = _DiskWatch()
        self.rate_limited = None
        self.failed_host = None
        self.first_content_type = None
        yt_dlp_private.reset_run(self)
        return self

    @property
    def marking_archived(self) -> bool:
        return self._mark_archived

    def record_download_archive(self, info_dict: dict[str, Any]) -> None:
        super().record_download_archive(info_dict)
        archive_id = yt_dlp_private.archive_id(self, info_dict)
        if archive_id and self._session is not None and self._session.store.yt_dlp_file is None:
            entry = self._current()
            if entry is not None and not self._mark_archived:
                # Written with the video's counters, in one transaction (`Reporter.video_downloaded`).
                entry.archive_line = archive_id
            else:
                with self._session.writer, stopping_when_database_lost():
                    self._session.store.add(archive_id, self._session.config.host_name)
        if archive_id:
            self._archive_ids.recorded(archive_id)

    # Following yt-dlp through a playlist: which call is the playlist, which is one of its entries.

    def process_ie_result(self, ie_result: Any, download: bool = True, extra_info: Any = None) -> Any:
        is_dict = isinstance(ie_result, dict)
        if is_dict and ie_result.get("_type", "video") == "video" and self._playlist_depth == 0 and not self._entries:
            # The playlist URL led, through a redirect or a url result, to one video: not what was configured.
            raise NotAPlaylist(f"yt-dlp resolved it to one video (id {ie_result.get('id')!r}); nothing was downloaded")
        if is_dict and ie_result.get("_type") in ("playlist", "multi_video"):
            return self._process_playlist(ie_result, download, extra_info)
        is_new_entry = yt_dlp_private.is_playlist_entry(extra_info) and (
            not self._entries or self._entries[-1].depth < self._playlist_depth
        )
        if not is_new_entry:
            return super().process_ie_result(ie_result, download, extra_info)
        return self._process_entry(ie_result, download, extra_info)

    def _match_entry(self, info_dict: Any, incomplete: Any = False, silent: bool = False) -> Any:
        """yt-dlp's own filter, which it applies to a playlist's entry before running it: an entry whose archive id
        the playlist gives (YouTube's do) and that the archive holds is skipped here, without reaching
        `_process_entry`. Count it (archived, or left out by a filter) as `_process_entry` would.

        Private: YoutubeDL._match_entry, overridden; the compat tests notice when yt-dlp changes it.
        """
        reason = super()._match_entry(info_dict, incomplete=incomplete, silent=silent)
        is_entry_of_this_playlist = (
            reason is not None
            and incomplete is True
            and yt_dlp_private.is_playlist_entry(info_dict)
            and (not self._entries or self._entries[-1].depth < self._playlist_depth)
        )
        if is_entry_of_this_playlist:
            self._note_playlist_fields(info_dict)
            archive_id = self._archive_ids.of(dict(info_dict))
            if archive_id and yt_dlp_private.archive_holds(self, archive_id):
                if self._tally.archived():  # the first archived one, when told to stop there
                    raise StopPlaylist()
            else:
                self._tally.filtered()
        return reason

    def _note_playlist_fields(self, entry_fields: Any) -> None:
        if self.capture_playlist_fields:
            self._tally.playlist_fields_met(entry_fields)

    def _process_playlist(self, ie_result: dict[str, Any], download: bool, extra_info: Any) -> Any:
        """Let yt-dlp go through a playlist (or one nested in an entry), one level deeper."""
        if self._entries:
            self._entries[-1].is_container = True
        if self._playlist_depth == 0:
            self._tally.playlist_met(ie_result)
        self._archive_ids.look_up(ie_result.get("entries"))
        self._playlist_depth += 1
        try:
            return super().process_ie_result(ie_result, download, extra_info)
        finally:
            self._playlist_depth -= 1

    def _process_entry(self, ie_result: dict[str, Any], download: bool, extra_info: Any) -> Any:
        """One playlist entry: decide from the playlist alone, else let yt-dlp run it; then count what it came to."""
        ie_result = with_plain_id(ie_result)
        self._note_playlist_fields(extra_info)
        archive_id = self._archive_ids.of(ie_result)
        entry = Entry(self._playlist_depth, archive_id, ie_result.get("url"), ie_result.get("title"))
        self._reporter.activity()
        if self._settled_without_request(entry, ie_result):
            return None
        with self._one_download():
            answer = self._run_entry(entry, self._with_known_extractor(ie_result), download, extra_info)
            stop = self._tally.outcome(entry)
        if stop:
            raise StopPlaylist()
        return answer

    @contextlib.contextmanager
    def _one_download(self) -> Iterator[None]:
        """Hold the check's download lock while an entry runs, from its first request to its archive line; a read
        that waits for it still stops when the check or its site says so (`Reporter.go_on`)."""
        if self._session is None or self._holds_download:  # a nested playlist's entry: its container holds it
            yield
            return
        one_download = self._session.one_download
        while not one_download.acquire(timeout=ONE_DOWNLOAD_WAIT_TICK_S):
            self._reporter.go_on()
        self._holds_download = True
        try:
            yield
        finally:
            self._holds_download = False
            one_download.release()

    def _settled_without_request(self, entry: Entry, ie_result: dict[str, Any]) -> bool:
        """Decide: count an entry that the playlist alone settles (archived, too old, to mark, retry not due, its
        link refused) and return True; return False when yt-dlp must run it."""
        if entry.archive_id and yt_dlp_private.archive_holds(self, entry.archive_id):
            if self._tally.archived():
                raise StopPlaylist()
            return True
        if self._before_date_after(ie_result):
            self._tally.filtered()  # known from the playlist itself: no request for it
            return True
        if self._mark_archived and entry.archive_id:
            extractor, _, video_id = entry.archive_id.partition(" ")
            self.record_download_archive({"extractor_key": extractor, "id": video_id})
            self._tally.marked()
            return True
        if not self._reporter.retry_is_due(entry.key):
            self._tally.waiting_retry()
            return True
        if (refusal := self.entry_refusal(ie_result)) is not None:  # as each of its requests would be, unsent
            self._tally.failed(entry, Failure(REFUSED_ADDRESS, refusal))
            return True
        return False

    def _before_date_after(self, entry: dict[str, Any]) -> bool:
        """Whether the playlist already tells this entry is older than `date_after` (yt-dlp checks the rest)."""
        if self._date_range is None:
            return False
        upload_date = entry.get("upload_date")
        if not upload_date and isinstance(entry.get("timestamp"), (int, float)):
            upload_date = time.strftime("%Y%m%d", time.gmtime(entry["timestamp"]))
        return bool(upload_date) and upload_date not in self._date_range

    def _with_known_extractor(self, ie_result: dict[str, Any]) -> dict[str, Any]:
        """A url result with the extractor already looked up for its folder, so that yt-dlp need not search."""
        if ie_result.get("_type") in ("url", "url_transparent") and not ie_result.get("ie_key"):
            plain_url, _ = yt_dlp_private.smuggled_video_id(str(ie_result.get("url")))
            ie_key = self._archive_ids.known_ie_key(plain_url)
            if ie_key:
                return {**ie_result, "ie_key": ie_key}
        return ie_result

    def _run_entry(self, entry: Entry, ie_result: dict[str, Any], download: bool, extra_info: Any) -> Any:
        """Run: let yt-dlp process the entry, the run hooks noting what happens to it; None when it failed.

        In a fleet, the video is locked while it runs: one held by another host, or archived by one since this
        check read the archive, is counted as archived and not run.
        """
        fleet = self._session.video_locks if self._session is not None else None
        if fleet is None or not entry.archive_id:
            return self._run_locked_entry(entry, ie_result, download, extra_info)
        if not fleet.lock_video(entry.archive_id):
            entry.archived = True  # another host downloads it right now
            return None
        try:
            assert self._session is not None
            with self._session.writer, stopping_when_database_lost():
                archived_since = self._session.store.holds(entry.archive_id)
            if archived_since:
                self._session.archive().add(entry.archive_id)
                entry.archived = True
                return None
            return self._run_locked_entry(entry, ie_result, download, extra_info)
        finally:
            fleet.unlock_video(entry.archive_id)

    def _run_locked_entry(self, entry: Entry, ie_result: dict[str, Any], download: bool, extra_info: Any) -> Any:
        self._entries.append(entry)
        try:
            return super().process_ie_result(ie_result, download, extra_info)
        except (DownloadCancelled, RateLimited):
            raise
        except Exception as error:  # one bad video must not end the playlist: it is recorded and retried later
            self._tally.failed(entry, self.failure_of(error))
            return None
        finally:
            self._entries.pop()

    def run_due_retries(self) -> None:
        """Try the playlist's failed videos that are due, which the read did not meet: it stopped at the first
        archived video, or was a feed read (a feed lists only the newest entries)."""
        result = self._result
        playlist_fields = {"playlist": result.title, "playlist_title": result.title, "playlist_id": result.url}
        for url, title in self._reporter.due_retries(self._playlist.url):
            entry = {"_type": "url", "url": url, "title": title}
            try:
                self.process_ie_result(entry, download=True, extra_info={**playlist_fields, "playlist_autonumber": 0})
            except StopPlaylist:
                if result.stopped == STOPPED_AT_MAX_DOWNLOADS:
                    return


class _DiskWatch:
    """Free space in the download folder, looked at during a download at most once a second."""

    def __init__(self, download_dir: str = "", min_free_bytes: int = 0) -> None:
        self._download_dir = download_dir
        self._min_free_bytes = min_free_bytes
        self._next_check = 0.0

    def check(self) -> None:
        """Raise DiskFull when free space fell below `min_free_bytes`."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + DISK_CHECK_EVERY_S
        free_bytes = shutil.disk_usage(self._download_dir).free
        if free_bytes < self._min_free_bytes:
            raise DiskFull(
                f"free space in {self._download_dir} fell to {free_bytes} bytes during a download, "
                f"below min_free_bytes ({self._min_free_bytes}); the partial file resumes next time",
            )


class Logger:
    """yt-dlp's logger: its warnings go to our log, its chatter only proves it is alive."""

    def __init__(self, reporter: Reporter, current: Callable[[], Entry | None]) -> None:
        self._reporter = reporter
        self._current = current

    def debug(self, message: str) -> None:
        if not RETRY_WORDS.search(message):
            self._reporter.activity()

    info = debug

    def warning(self, message: str) -> None:
        if not any(quiet in message for quiet in QUIET_WARNINGS):
            self._reporter.warning(one_line(message))

    def error(self, message: str) -> None:
        pass  # raised as DownloadError right after, and reported there with the video it belongs to


def _unread(response: Any, body: bytes) -> Response:
    """The response again, its `body` still to read: yt-dlp's own responses close once they are read whole."""
    return Response(
        io.BytesIO(body),
        response.url,
        response.headers,
        status=response.status,
        reason=response.reason,
        extensions=response.extensions,
    )


def yt_dlp_params(
    config: Config, playlist: Playlist, *, mark_archived: bool, partial_dir: Path | None = None
) -> dict[str, Any]:
    """yt-dlp's params for one playlist: the user's `yt_dlp_args`, then what playlist-cron manages. `partial_dir`:
    where partial downloads go (the storage's choice: a fleet keeps them on each host), else beside the files."""
    params = parse_yt_dlp_args(config, playlist.yt_dlp_args_key, playlist.yt_dlp_args)
    params.update(
        {
            "download_archive": str(config.archive_file),
            "outtmpl": {**(params.get("outtmpl") or {}), "default": playlist.output_template},
            "paths": {"home": str(config.download_dir), **({"temp": str(partial_dir)} if partial_dir else {})},
            "quiet": True,
            "no_warnings": False,
            "noprogress": True,
            "ignoreerrors": False,
            "color": {"stdout": "never", "stderr": "never"},
        }
    )
    if not params.get("consoletitle") and not params.get("progress_delta"):
        # yt-dlp formats its progress line (sizes, speed, ETA: two output templates) at every block it reads, to
        # show nowhere here (`noprogress`): once a download is enough. The check's own hooks still get every block.
        params["progress_delta"] = UNSHOWN_PROGRESS_EVERY_S
    if config.cookies_file is not None:
        params["cookiefile"] = str(config.cookies_file)
    if playlist.date_after is not None:
        params["daterange"] = DateRange(playlist.date_after)
    if playlist.stop_at_first_archived and not mark_archived:
        params["lazy_playlist"] = True  # read page by page, so that stopping early saves the pages after
    if mark_archived:  # record what the playlist holds, download nothing
        params.update(
            {
                "skip_download": True,
                "force_write_download_archive": True,
                "writethumbnail": False,
                "writesubtitles": False,
                "writeinfojson": False,
                "postprocessors": [],
            }
        )
    return params
