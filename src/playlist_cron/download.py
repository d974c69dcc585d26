"""The yt-dlp side of a check: one playlist's entries in, outcomes out; the only module that imports yt_dlp."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yt_dlp
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import DateRange, DownloadCancelled, DownloadError, UnsupportedError

from playlist_cron import feeds, yt_dlp_private
from playlist_cron.config import Config, Playlist
from playlist_cron.errors import DiskFull
from playlist_cron.failure_kinds import NETWORK as NETWORK
from playlist_cron.failure_kinds import RATE_LIMITED, Failure, classify, host_of, one_line, raise_when_check_must_stop
from playlist_cron.failure_kinds import RateLimited as RateLimited
from playlist_cron.file_names import NAME_RESERVE_BYTES, SIDECAR_RESERVE_BYTES, fit_fields, name_max_bytes
from playlist_cron.playlist_result import (
    COMPLETE_READ_STOPS,
    STOPPED_AT_ARCHIVED,
    STOPPED_AT_MAX_DOWNLOADS,
    PlaylistResult,
    Reporter,
    VideoFailure,
)
from playlist_cron.reads import ReadPlan
from playlist_cron.yt_dlp_options import parse_yt_dlp_args

BOT_CHECK_PATTERN = re.compile(rb"confirm you(?:'|&#39;|&#x27;|\xe2\x80\x99|\\u0027)re not a bot", re.IGNORECASE)
PAGE_PEEK_MAX_BYTES = 4 * 1024 * 1024  # an HTML page is read whole (and handed on) to look for a bot check
DISK_CHECK_EVERY_S = 1.0
# Messages yt-dlp gives on every generic feed item: noise in a log that people read.
QUIET_WARNINGS = ("Falling back on generic information extractor",)
RETRY_WORDS = re.compile(r"retry|retrying|got error|timed out", re.IGNORECASE)
FEED_CONTENT_TYPES = ("application/atom+xml", "application/rss+xml", "application/xml", "text/xml")
# yt-dlp's playlist fields, as a full read gives them to each entry: a feed read gives its entries the same, so
# that a video lands in the same folder however it was found.
PLAYLIST_FIELDS = (
    "playlist",
    "playlist_id",
    "playlist_title",
    "playlist_uploader",
    "playlist_uploader_id",
    "playlist_channel",
    "playlist_channel_id",
    "playlist_webpage_url",
)
FEED_ACCEPT = "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
FEED_SNIFF_BYTES = 512  # enough of an answer to tell XML from an HTML page or a media file, before reading it all


class _NotAPlaylist(Exception):
    """The playlist URL led to one video: nothing is downloaded, and the check says why."""


class _StopPlaylist(DownloadCancelled):  # type: ignore[misc]
    """Stop reading this playlist: the first archived video was met, or the per-check limit was reached."""

    msg = "playlist-cron stopped reading the playlist"


@dataclass
class _Entry:
    """One playlist entry while yt-dlp works on it."""

    depth: int
    archive_id: str | None
    url: str | None
    title: str | None
    started_at: float = field(default_factory=time.monotonic)
    info: dict[str, Any] | None = None
    filename: str | None = None
    archived: bool = False
    is_container: bool = False
    failed: bool = False  # recorded as a failure: it counts as nothing else
    archive_line: str | None = None  # the line yt-dlp recorded for it, when the archive is the check's to write

    @property
    def key(self) -> str:
        """What its failures are remembered under: the archive id, or the URL when that is not known yet."""
        return self.archive_id or self.url or "?"

    @property
    def video_id(self) -> str:
        if self.info and self.info.get("id"):
            return str(self.info["id"])
        if self.archive_id:
            return self.archive_id.split(" ", 1)[-1]
        return self.url or "?"


def _not_a_playlist(content_type: str | None, what: str) -> str:
    """The playlist error for a URL that gave `what` (one video, or nothing yt-dlp can read) instead of a playlist."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type in FEED_CONTENT_TYPES:
        return (
            f"this URL is not a playlist yt-dlp can read: it answered with an XML document ({media_type}) that is not "
            f"an RSS feed ({what}); give the site's RSS feed or its playlist page instead"
        )
    return f"this URL is not a playlist: {what}; give a playlist, channel or feed URL instead"


def _with_plain_id(entry: dict[str, Any]) -> dict[str, Any]:
    """Given a playlist entry, return it with its id on one line.

    A feed's guid often keeps the XML's line breaks and indentation ("\\n    1234\\n"): as yt-dlp's id it would break
    the archive's line in three, so the video would never be found there and come again at every check.
    """
    entry_id = entry.get("id")
    if isinstance(entry_id, str) and entry_id != " ".join(entry_id.split()):
        entry = {**entry, "id": " ".join(entry_id.split())}
    url = entry.get("url")
    if not isinstance(url, str):
        return entry
    _, video_id = yt_dlp_private.smuggled_video_id(url)
    if video_id is None or video_id == " ".join(video_id.split()):
        return entry
    return {**entry, "url": yt_dlp_private.with_smuggled_video_id(url, " ".join(video_id.split()))}


def _archive_id(ydl: _Downloader, entry: dict[str, Any]) -> str | None:
    """Return an entry's archive id without a request: from yt-dlp, or from the id a feed smuggles into the URL."""
    archive_id = yt_dlp_private.archive_id(ydl, entry)
    if archive_id:
        return archive_id
    url = entry.get("url")
    if not isinstance(url, str):
        return None
    plain_url, video_id = yt_dlp_private.smuggled_video_id(url)
    if not video_id:
        return None
    # yt-dlp would find the extractor by trying every one of its ~1,800 on the URL: milliseconds an entry. When the
    # archive holds this id under one extractor, that is the answer; only new ids pay for the full search.
    extractors = ydl.archived_extractors(video_id)
    if len(extractors) == 1:
        return f"{next(iter(extractors))} {video_id}"
    extractor = ydl.extractor_key_for(plain_url)
    return f"{extractor} {video_id}" if extractor else None


class _Fetcher(yt_dlp.YoutubeDL):  # type: ignore[misc]
    """yt-dlp's YoutubeDL as a client of the site: every request it makes is watched for rate limits and failures.

    Made with `auto_init=False`, it is yt-dlp's networking alone (the user's proxy, cookies and headers apply),
    without the 40 ms of setting up its 1,800 extractors: what a feed read needs.
    """

    def __init__(self, params: dict[str, Any], *, auto_init: bool = True) -> None:
        self.rate_limited: str | None = None  # set by urlopen when the site says to slow down
        self.failed_host: str | None = None  # the host of the last request that got no answer
        self.first_content_type: str | None = None  # of the playlist URL's answer: says what a non-playlist was
        super().__init__(params, auto_init=auto_init)

    def failure_of(self, error: BaseException, fallback_host: str | None = None) -> Failure:
        """What kind of failure `error` is, given also what this client saw of the site's answers."""
        if self.rate_limited:  # a bot-check page, or a 429 that yt-dlp went on from
            return Failure(RATE_LIMITED, self.rate_limited)
        return classify(error, self.failed_host or fallback_host)

    def urlopen(self, req: Any) -> Any:
        """Every request yt-dlp makes passes here: notice HTTP 429, "confirm you're not a bot" pages, failed hosts."""
        try:
            response = super().urlopen(req)
        except HTTPError as error:
            if error.status == 429:
                self.rate_limited = f"HTTP 429 Too Many Requests from {host_of(error.response.url)}"
            raise
        except Exception:
            url = req if isinstance(req, str) else getattr(req, "url", None) or getattr(req, "full_url", None)
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


class _Downloader(_Fetcher):
    """yt-dlp's YoutubeDL, told to report each playlist entry's outcome to playlist-cron."""

    def __init__(
        self,
        params: dict[str, Any],
        playlist: Playlist,
        result: PlaylistResult,
        reporter: Reporter,
        *,
        mark_archived: bool = False,
        session: Session | None = None,
    ) -> None:
        self._playlist = playlist
        self._session = session
        self._mark_archived = mark_archived
        self._date_range = DateRange(playlist.date_after) if playlist.date_after else None
        self._result = result
        self._reporter = reporter
        self._entries: list[_Entry] = []
        self._playlist_depth = 0
        self._min_free_bytes = 0
        self._download_dir = ""
        self._next_disk_check = 0.0
        self._archive_keys: set[str] | None = None
        self._extractor_keys: dict[tuple[str, str], str | None] = {}
        self._name_max_bytes: int | None = None
        self.capture_playlist_fields = False  # note the playlist fields of the first entry (a full read's)
        params = dict(params)
        params["progress_hooks"] = [*params.get("progress_hooks", []), self._on_progress]
        params["post_hooks"] = [*params.get("post_hooks", []), self._on_finished_file]
        params["logger"] = _Logger(reporter, self._current)
        if session is None:
            super().__init__(params)
            return
        # The check's playlists share one copy of the archive's lines: read once, not once per playlist.
        archive_file = params.pop("download_archive")
        super().__init__(params)
        in_database = session.database_archive is not None
        yt_dlp_private.share_archive(self, None if in_database else archive_file, session.archive())

    def _current(self) -> _Entry | None:
        return self._entries[-1] if self._entries else None

    @property
    def reporter(self) -> Reporter:
        return self._reporter

    @property
    def marking_archived(self) -> bool:
        return self._mark_archived

    # The benchmark-justified shortcuts: extractor and archive look-ups that yt-dlp would repeat for every entry.

    def extractor_key_for(self, url: str) -> str | None:
        """The archive key of the extractor yt-dlp would pick for `url`, looked up once per folder of URLs.

        A feed's enclosures share a host and a folder, and the search tries every extractor's pattern (a few
        milliseconds each time); yt-dlp repeats it when it processes the entry, so without this cache a new entry
        would pay for it twice.
        """
        shape = _url_shape(url)
        if shape not in self._extractor_keys:
            self._extractor_keys[shape] = yt_dlp_private.first_suitable_extractor(self, url)
        ie_key = self._extractor_keys[shape]
        return ie_key.lower() if ie_key else None

    def known_ie_key(self, url: str) -> str | None:
        """The extractor already looked up for this folder of URLs, if any: yt-dlp need not search again."""
        return self._extractor_keys.get(_url_shape(url))

    def archived_extractors(self, video_id: str) -> set[str]:
        """The extractor keys under which the archive holds `video_id`.

        An archive names few extractors (youtube, generic, ...): they are gathered once, and then each is tried
        against the archive's own set, with no index of 100,000 ids to hold in memory.
        """
        if self._archive_keys is None:
            self._archive_keys = {line.partition(" ")[0] for line in yt_dlp_private.archive_lines(self)}
        return {key for key in self._archive_keys if yt_dlp_private.archive_holds(self, f"{key} {video_id}")}

    def record_download_archive(self, info_dict: dict[str, Any]) -> None:
        super().record_download_archive(info_dict)
        archive_id = yt_dlp_private.archive_id(self, info_dict)
        if archive_id and self._session is not None and self._session.database_archive is not None:
            entry = self._current()
            if entry is not None and not self._mark_archived:
                # Written with the video's counters, in one transaction (`Reporter.video_downloaded`).
                entry.archive_line = archive_id
            else:
                self._session.database_archive.add(archive_id, self._session.config.host_name)
        if self._archive_keys is not None and archive_id:
            self._archive_keys.add(archive_id.partition(" ")[0])

    # Following yt-dlp through a playlist: which call is the playlist, which is one of its entries.

    def process_ie_result(self, ie_result: Any, download: bool = True, extra_info: Any = None) -> Any:
        is_dict = isinstance(ie_result, dict)
        if is_dict and ie_result.get("_type", "video") == "video" and self._playlist_depth == 0 and not self._entries:
            # The playlist URL led, through a redirect or a url result, to one video: not what was configured.
            raise _NotAPlaylist(f"yt-dlp resolved it to one video (id {ie_result.get('id')!r}); nothing was downloaded")
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
            archive_id = _archive_id(self, dict(info_dict))
            if archive_id and yt_dlp_private.archive_holds(self, archive_id):
                self._count_archived()  # raises _StopPlaylist at the first one, when told to stop there
            else:
                self._result.filtered += 1
        return reason

    def _note_playlist_fields(self, entry_fields: Any) -> None:
        """Keep the playlist fields of a full read's first entry, for feed reads to give their entries the same."""
        if self.capture_playlist_fields and self._result.playlist_fields is None:
            self._result.playlist_fields = {
                name: value if isinstance(value, str) else None
                for name in PLAYLIST_FIELDS
                for value in [(entry_fields or {}).get(name)]
            }

    def _process_playlist(self, ie_result: dict[str, Any], download: bool, extra_info: Any) -> Any:
        """Let yt-dlp go through a playlist (or one nested in an entry), one level deeper."""
        if self._entries:
            self._entries[-1].is_container = True
        if self._playlist_depth == 0 and self._result.title is None:
            self._result.title = ie_result.get("title")
            if feeds.is_channel_id(ie_result.get("channel_id")):
                self._result.channel_id = ie_result["channel_id"]
        self._playlist_depth += 1
        try:
            return super().process_ie_result(ie_result, download, extra_info)
        finally:
            self._playlist_depth -= 1

    def _process_entry(self, ie_result: dict[str, Any], download: bool, extra_info: Any) -> Any:
        """One playlist entry: decide from the playlist alone, else let yt-dlp run it; then count what it came to."""
        ie_result = _with_plain_id(ie_result)
        self._note_playlist_fields(extra_info)
        entry = _Entry(self._playlist_depth, _archive_id(self, ie_result), ie_result.get("url"), ie_result.get("title"))
        self._reporter.activity()
        if self._settled_without_request(entry, ie_result):
            return None
        answer = self._run_entry(entry, self._with_known_extractor(ie_result), download, extra_info)
        self._count_outcome(entry)
        return answer

    def _settled_without_request(self, entry: _Entry, ie_result: dict[str, Any]) -> bool:
        """Decide: count an entry that the playlist alone settles (archived, too old, to mark, retry not due) and
        return True; return False when yt-dlp must run it."""
        result = self._result
        if entry.archive_id and yt_dlp_private.archive_holds(self, entry.archive_id):
            self._count_archived()
            return True
        if self._before_date_after(ie_result):
            result.filtered += 1  # known from the playlist itself: no request for it
            return True
        if self._mark_archived and entry.archive_id:
            extractor, _, video_id = entry.archive_id.partition(" ")
            self.record_download_archive({"extractor_key": extractor, "id": video_id})
            result.marked_archived += 1
            return True
        if not self._reporter.retry_is_due(entry.key):
            result.waiting_retry += 1
            return True
        return False

    def _with_known_extractor(self, ie_result: dict[str, Any]) -> dict[str, Any]:
        """A url result with the extractor already looked up for its folder, so that yt-dlp need not search."""
        if ie_result.get("_type") in ("url", "url_transparent") and not ie_result.get("ie_key"):
            plain_url, _ = yt_dlp_private.smuggled_video_id(str(ie_result.get("url")))
            ie_key = self.known_ie_key(plain_url)
            if ie_key:
                return {**ie_result, "ie_key": ie_key}
        return ie_result

    def _run_entry(self, entry: _Entry, ie_result: dict[str, Any], download: bool, extra_info: Any) -> Any:
        """Run: let yt-dlp process the entry, with the hooks below noting what happens to it; None when it failed.

        In a fleet, the video is locked while it runs: one held by another host, or archived by one since this
        check read the archive, is counted as archived and not run.
        """
        fleet = self._session.fleet if self._session is not None else None
        if fleet is None or not entry.archive_id:
            return self._run_locked_entry(entry, ie_result, download, extra_info)
        if not fleet.lock_video(entry.archive_id):
            entry.archived = True  # another host downloads it right now
            return None
        try:
            assert self._session is not None and self._session.database_archive is not None
            if self._session.database_archive.holds(entry.archive_id):
                self._session.archive().add(entry.archive_id)
                entry.archived = True
                return None
            return self._run_locked_entry(entry, ie_result, download, extra_info)
        finally:
            fleet.unlock_video(entry.archive_id)

    def _run_locked_entry(self, entry: _Entry, ie_result: dict[str, Any], download: bool, extra_info: Any) -> Any:
        self._entries.append(entry)
        try:
            return super().process_ie_result(ie_result, download, extra_info)
        except (DownloadCancelled, RateLimited):
            raise
        except Exception as error:  # one bad video must not end the playlist: it is recorded and retried later
            self._record_failure(entry, self.failure_of(error))
            return None
        finally:
            self._entries.pop()

    def _record_failure(self, entry: _Entry, failure: Failure) -> None:
        """Count a failed entry: a network failure apart (the check decides), any other as the video's own."""
        raise_when_check_must_stop(failure)
        entry.failed = True
        video_failure = VideoFailure(
            entry.video_id, entry.key, entry.title, entry.url, failure.message, self._playlist.url
        )
        if failure.kind == NETWORK:
            self._result.network_failures.append(video_failure)
            return
        self._result.failed += 1
        self._reporter.video_failed(
            video_failure.video_id,
            video_failure.key,
            video_failure.title,
            video_failure.url,
            video_failure.error,
            video_failure.playlist_url,
        )

    def _count_outcome(self, entry: _Entry) -> None:
        """Count: what yt-dlp's run of an entry came to (downloaded, archived, marked or filtered)."""
        result = self._result
        if entry.failed or entry.is_container:  # a failure is counted already; a container's entries count
            return
        if self._mark_archived:
            result.marked_archived += 0 if entry.archived else 1
            result.already_archived += 1 if entry.archived else 0
        elif entry.filename is not None:
            self._count_download(entry, entry.filename)
        elif entry.archived:
            self._count_archived()
        else:
            result.filtered += 1

    def _count_download(self, entry: _Entry, filename: str) -> None:
        """Report a downloaded video; stop the playlist when it reached the per-check limit."""
        result = self._result
        size_bytes = _size(filename)
        result.downloaded += 1
        result.bytes += size_bytes
        self._reporter.video_downloaded(
            entry.video_id,
            entry.key,
            (entry.info or {}).get("title") or entry.title,
            filename,
            size_bytes,
            time.monotonic() - entry.started_at,
            archive_line=entry.archive_line,
        )
        limit = self._playlist.max_downloads_per_check
        if limit and result.downloaded >= limit:
            result.stopped = STOPPED_AT_MAX_DOWNLOADS
            raise _StopPlaylist()

    def _count_archived(self) -> None:
        """Count an archived entry; stop the playlist there when it is read up to the first archived video."""
        self._result.already_archived += 1
        if self._playlist.stop_at_first_archived and not self._mark_archived:
            self._result.stopped = STOPPED_AT_ARCHIVED
            raise _StopPlaylist()

    def run_due_retries(self) -> None:
        """Try the playlist's failed videos that are due, which the read did not meet: it stopped at the first
        archived video, or was a feed read (a feed lists only the newest entries)."""
        result = self._result
        playlist_fields = {"playlist": result.title, "playlist_title": result.title, "playlist_id": result.url}
        for url, title in self._reporter.due_retries(self._playlist.url):
            entry = {"_type": "url", "url": url, "title": title}
            try:
                self.process_ie_result(entry, download=True, extra_info={**playlist_fields, "playlist_autonumber": 0})
            except _StopPlaylist:
                if result.stopped == STOPPED_AT_MAX_DOWNLOADS:
                    return

    def _before_date_after(self, entry: dict[str, Any]) -> bool:
        """Whether the playlist already tells this entry is older than `date_after` (yt-dlp checks the rest)."""
        if self._date_range is None:
            return False
        upload_date = entry.get("upload_date")
        if not upload_date and isinstance(entry.get("timestamp"), (int, float)):
            upload_date = time.strftime("%Y%m%d", time.gmtime(entry["timestamp"]))
        return bool(upload_date) and upload_date not in self._date_range

    # Hooks where yt-dlp tells what happens to the entry being run.

    def prepare_filename(
        self, info_dict: dict[str, Any], dir_type: str = "", *, outtmpl: Any = None, warn: bool = False
    ) -> Any:
        """yt-dlp's file name, with the longest fields shortened until every part of the path fits the filesystem.

        The video's own name decides first, so that the files written beside it (".info.json", subtitles) share it.
        """
        name_max = self._filesystem_name_max_bytes()
        video_fields = fit_fields(
            lambda fields: str(super(_Downloader, self).prepare_filename(fields) or ""),
            info_dict,
            name_max - NAME_RESERVE_BYTES,
        )
        if dir_type or outtmpl is not None:
            reserve_bytes = NAME_RESERVE_BYTES if dir_type == "temp" else SIDECAR_RESERVE_BYTES
            video_fields = fit_fields(
                lambda fields: str(super(_Downloader, self).prepare_filename(fields, dir_type, outtmpl=outtmpl) or ""),
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

    def watch_disk(self, download_dir: str, min_free_bytes: int) -> None:
        self._download_dir = download_dir
        self._min_free_bytes = min_free_bytes

    def _check_disk(self) -> None:
        now = time.monotonic()
        if now < self._next_disk_check:
            return
        self._next_disk_check = now + DISK_CHECK_EVERY_S
        free_bytes = shutil.disk_usage(self._download_dir).free
        if free_bytes < self._min_free_bytes:
            raise DiskFull(
                f"free space in {self._download_dir} fell to {free_bytes} bytes during a download, "
                f"below min_free_bytes ({self._min_free_bytes}); the partial file resumes next time",
            )

    def _on_progress(self, progress: dict[str, Any]) -> None:
        info = progress.get("info_dict") or {}
        video_id = str(info.get("id") or "?")
        if progress.get("status") == "downloading":
            self._check_disk()
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

    def _on_finished_file(self, filename: str) -> None:
        entry = self._current()
        if entry is not None:
            entry.filename = filename


class _Logger:
    """yt-dlp's logger: its warnings go to our log, its chatter only proves it is alive."""

    def __init__(self, reporter: Reporter, current: Callable[[], _Entry | None]) -> None:
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


def _url_shape(url: str) -> tuple[str, str]:
    """A URL's folder and extension: the URLs of a feed's enclosures that share them go to the same extractor."""
    folder, _, name = url.rpartition("/")
    return folder, name.rpartition(".")[2] if "." in name else ""


def _size(filename: str) -> int:
    try:
        return os.path.getsize(filename)
    except OSError:
        return 0


class Session:
    """What the playlists of one check share: the archive's lines, read once, and one yt-dlp client per network
    setting for feed reads. Close it at the end of the check."""

    def __init__(self, config: Config, *, database_archive: Any = None, fleet: Any = None) -> None:
        self.config = config
        self.database_archive = database_archive  # storage.postgres.PostgresArchive: the archive is in a database
        self.fleet = fleet  # storage.claims.Fleet: videos are locked while they download, fleet-wide
        self._archive: set[str] | None = None
        self._fetchers: dict[tuple[str, ...], _Fetcher] = {}

    def archive(self) -> set[str]:
        """The archive's lines, as yt-dlp reads them (stripped); kept up to date by every download of the check."""
        if self._archive is None and self.database_archive is not None:
            self._archive = set(self.database_archive.lines())
        if self._archive is None:
            try:
                with open(self.config.archive_file, encoding="utf-8") as archive_file:
                    self._archive = {line.strip() for line in archive_file}
            except FileNotFoundError:
                self._archive = set()
        return self._archive

    def fetcher(self, playlist: Playlist, reporter: Reporter) -> _Fetcher:
        """A yt-dlp client with the playlist's network options (proxy, cookies, headers), shared by the playlists
        that have the same `yt_dlp_args`; what yt-dlp warns about goes to the log, never to cron's mail."""
        key = playlist.yt_dlp_args
        if key not in self._fetchers:
            params = _yt_dlp_params(self.config, playlist, mark_archived=False)
            params.pop("download_archive")
            params["logger"] = _Logger(reporter, lambda: None)
            self._fetchers[key] = _Fetcher(params, auto_init=False)
        fetcher = self._fetchers[key]
        fetcher.failed_host = None
        return fetcher

    def close(self) -> None:
        for fetcher in self._fetchers.values():
            fetcher.close()
        self._fetchers.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def download_playlist(
    config: Config,
    playlist: Playlist,
    reporter: Reporter,
    *,
    read: ReadPlan | None = None,
    mark_archived: bool = False,
    session: Session | None = None,
) -> PlaylistResult:
    """Given a playlist and what to read of it (a full read when not told), download what is new in it and return
    what happened.

    A feed read whose entries are all settled by the feed alone (archived, too old, waiting for a retry), and a
    304, need no more of yt-dlp than its networking. Raise ConfigError when yt-dlp refuses the playlist's
    `yt_dlp_args`, RateLimited when the site says to slow down, and DiskFull when the disk is full; every other
    problem is recorded in the result (a video's, the feed's `feed_error`, or the playlist's `error` with its
    `error_kind`).
    """
    if session is None:
        with Session(config) as own_session:
            return download_playlist(
                config, playlist, reporter, read=read, mark_archived=mark_archived, session=own_session
            )
    read = read or ReadPlan("full", "every check")
    result = PlaylistResult(url=playlist.url, read=read.kind)
    answer = None
    if read.kind == "feed" and read.feed_url and not mark_archived:
        answer = _ask_feed(session.fetcher(playlist, reporter), read.feed_url, read)
        if _settled_by_feed(session.archive(), playlist, read, answer, result, reporter):
            return result
    params = _yt_dlp_params(config, playlist, mark_archived=mark_archived)
    with _Downloader(params, playlist, result, reporter, mark_archived=mark_archived, session=session) as ydl:
        ydl.watch_disk(str(config.download_dir), config.min_free_bytes)
        _follow(ydl, playlist, read, result, answer)
    return result


class _FeedAnswer(NamedTuple):
    """A feed request's outcome: what came (a 304 has no feed) or why nothing usable did."""

    fetched: feeds.FetchResult | None
    feed: feeds.Feed | None
    failure: feeds.FeedError | Failure | None


def _ask_feed(fetcher: _Fetcher, feed_url: str, read: ReadPlan) -> _FeedAnswer:
    """Fetch and parse a feed; raise RateLimited when the site says to slow down, DiskFull when the disk is full."""
    try:
        fetched = _fetch_feed(fetcher, feed_url, read.etag, read.last_modified)
        feed = None if fetched.body is None else feeds.parse_feed(fetched.body, feed_url)
    except feeds.FeedError as error:
        if fetcher.rate_limited:  # a bot-check page where the feed should be
            raise RateLimited(fetcher.rate_limited) from None
        return _FeedAnswer(None, None, error)
    except (RateLimited, DiskFull):
        raise
    except Exception as error:  # no answer, or an error status
        failure = fetcher.failure_of(error, host_of(feed_url))
        raise_when_check_must_stop(failure)
        return _FeedAnswer(None, None, failure)
    return _FeedAnswer(fetched, feed, None)


def _settled_by_feed(
    archive: set[str],
    playlist: Playlist,
    read: ReadPlan,
    answer: _FeedAnswer,
    result: PlaylistResult,
    reporter: Reporter,
) -> bool:
    """Count a feed read whose every entry the feed alone settles, as the downloader would, and return True; return
    False, leaving `result` as it was, when yt-dlp has something to run (a new entry, a retry that is due) or the
    feed failed."""
    if answer.fetched is None or reporter.due_retries(playlist.url):
        return False
    # Unchanged, the feed is not looked at: its failed videos are those the state says wait for a retry.
    counts = {
        "already_archived": 0,
        "filtered": 0,
        "waiting_retry": 0 if answer.feed else reporter.waiting_retries(playlist.url),
    }
    stopped = None
    date_range = DateRange(playlist.date_after) if playlist.date_after else None
    for entry in answer.feed.entries if answer.feed is not None else []:
        archive_id = _feed_archive_id(archive, entry)
        if archive_id is None:
            return False  # no id without yt-dlp's extractors: a new entry, most likely
        if archive_id in archive:
            counts["already_archived"] += 1
            if playlist.stop_at_first_archived:
                stopped = STOPPED_AT_ARCHIVED
                break
        elif date_range is not None and entry.published_s is not None and _day_of(entry.published_s) not in date_range:
            counts["filtered"] += 1
        elif not reporter.retry_is_due(archive_id):
            counts["waiting_retry"] += 1
        else:
            return False
    _note_feed_read(result, read, answer)
    if answer.feed is not None:
        result.playlist_fields = _feed_playlist_fields(answer.feed, playlist, read.playlist_fields)
    result.already_archived = counts["already_archived"]
    result.filtered = counts["filtered"]
    result.waiting_retry = counts["waiting_retry"]
    result.stopped = stopped
    return True


def _feed_archive_id(archive: set[str], entry: feeds.FeedEntry) -> str | None:
    """The archive line a feed entry would have, when the archive alone tells (see `_archive_id`), else None."""
    if entry.video_id:
        return f"youtube {entry.video_id}"
    if not entry.own_id:
        return None
    keys = {line.partition(" ")[0] for line in archive}
    found = [key for key in keys if f"{key} {entry.id}" in archive]
    return f"{found[0]} {entry.id}" if len(found) == 1 else None


def _day_of(epoch_s: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(epoch_s))


def _note_feed_read(result: PlaylistResult, read: ReadPlan, answer: _FeedAnswer) -> None:
    """Record in `result` a feed read that got an answer."""
    assert answer.fetched is not None
    result.read = "feed"
    result.feed_url = read.feed_url
    result.feed_status = answer.fetched.status
    result.feed_error = None
    result.etag, result.last_modified = answer.fetched.etag, answer.fetched.last_modified
    stored_title = (read.playlist_fields or {}).get("playlist_title")
    if answer.feed is not None:
        result.feed_entries = len(answer.feed.entries)
    if result.title is None:
        result.title = stored_title or (answer.feed.title if answer.feed is not None else None)


def _follow(
    ydl: _Downloader, playlist: Playlist, read: ReadPlan, result: PlaylistResult, answer: _FeedAnswer | None
) -> None:
    """Read the playlist as planned: its feed, falling back to a full read when the feed fails; or a full read,
    then its feed when the full read failed, so that what the feed lists is not missed."""
    if read.probe and _probe(ydl, playlist, result):
        return
    if read.kind == "feed" and read.feed_url:
        failure = _go_through_feed(ydl, playlist, read.feed_url, read, result, answer)
        if failure is None:
            return
        if read.playlist_is_feed and not isinstance(failure, feeds.FeedError):
            _record_playlist_failure(failure, result)  # the feed is the playlist: there is nothing fuller to read
            return
        if read.playlist_is_feed:
            result.is_feed = False  # no longer a feed: yt-dlp reads it from now on
        reporter_then = "reading the playlist whole instead"
        _tell_feed_failed(ydl, playlist, read.feed_url, failure, result, reporter_then)
    result.read = "full"
    ydl.capture_playlist_fields = True
    _go_through_playlist(ydl, playlist, result)
    ydl.capture_playlist_fields = False
    result.full_read_complete = result.error is None and result.stopped in COMPLETE_READ_STOPS
    if result.error is not None and read.feed_url and result.feed_error is None and not read.playlist_is_feed:
        # The full read failed: what the feed lists still downloads, and the playlist's error still stands.
        failure = _go_through_feed(ydl, playlist, read.feed_url, read, result)
        if failure is not None:
            _tell_feed_failed(ydl, playlist, read.feed_url, failure, result, "nothing more was read")


def _probe(ydl: _Downloader, playlist: Playlist, result: PlaylistResult) -> bool:
    """The playlist's URL has not been looked at yet: when yt-dlp would give it to its generic extractor, fetch it
    as a feed. Return True when that settled the playlist's part of the check (it was a feed, or the site could not
    be read); False when yt-dlp must read it.

    A URL that yt-dlp has an extractor of its own for is no feed, and costs no request here.
    """
    if yt_dlp_private.first_suitable_extractor(ydl, playlist.url) != "Generic":
        result.is_feed = False
        return False
    failure = _go_through_feed(ydl, playlist, playlist.url, ReadPlan("feed", "probe"), result)
    if failure is None:
        result.is_feed = True
        return True
    result.feed_url = result.feed_status = None
    if isinstance(failure, feeds.FeedError):
        result.is_feed = False  # a page for yt-dlp to read: looked at once, never again
        return False
    _record_playlist_failure(failure, result)  # the same request through yt-dlp would fail the same way
    return True


def _go_through_feed(
    ydl: _Downloader,
    playlist: Playlist,
    feed_url: str,
    read: ReadPlan,
    result: PlaylistResult,
    answer: _FeedAnswer | None = None,
) -> feeds.FeedError | Failure | None:
    """Read a feed (unless `answer` has it already) and run its entries as yt-dlp would run the playlist's; return
    why it failed, or None.

    A 304 (unchanged) runs nothing but the failed videos that are due. Raise RateLimited when the site says to
    slow down, and DiskFull when the disk is full.
    """
    result.feed_url = feed_url
    answer = answer or _ask_feed(ydl, feed_url, read._replace(feed_url=feed_url))
    if answer.failure is not None:
        return answer.failure
    _note_feed_read(result, read._replace(feed_url=feed_url), answer)
    if answer.feed is None:
        result.waiting_retry += ydl.reporter.waiting_retries(playlist.url)  # counted before the due ones run
    else:
        info = _feed_playlist(answer.feed, playlist, feed_url, read.playlist_fields)
        result.playlist_fields = _feed_playlist_fields(answer.feed, playlist, read.playlist_fields)
        try:
            ydl.process_ie_result(info, download=True)
        except _StopPlaylist:
            pass
        except DownloadCancelled as cancelled:
            result.stopped = type(cancelled).__name__
            return None
    if result.stopped != STOPPED_AT_MAX_DOWNLOADS and not ydl.marking_archived:
        with contextlib.suppress(_StopPlaylist):
            ydl.run_due_retries()
    return None


def _tell_feed_failed(
    ydl: _Downloader,
    playlist: Playlist,
    feed_url: str,
    failure: feeds.FeedError | Failure,
    result: PlaylistResult,
    then: str,
) -> None:
    reason: str
    if isinstance(failure, feeds.FeedError):
        reason, error = failure.reason, failure.detail
    else:
        reason, error = failure.kind, failure.message
    result.feed_error = f"{reason}: {error}"
    result.feed_status = failure.status if isinstance(failure, Failure) else result.feed_status
    ydl.reporter.feed_failed(playlist.url, feed_url, reason, error, then)


def _record_playlist_failure(failure: feeds.FeedError | Failure, result: PlaylistResult) -> None:
    if isinstance(failure, feeds.FeedError):
        result.error = f"not a feed ({failure.reason}): {failure.detail}"
        return
    result.error = failure.message
    result.error_kind = failure.kind


def _fetch_feed(ydl: _Downloader, url: str, etag: str | None, last_modified: str | None) -> feeds.FetchResult:
    """Fetch a feed through yt-dlp (its proxy, cookies and headers apply), sending the last read's validators.

    Raise FeedError when the answer is not XML or too big to be a feed, and yt-dlp's errors for the rest (an
    HTTPError for a status other than 200 and 304).
    """
    from yt_dlp.networking import Request

    headers = {"Accept": FEED_ACCEPT, **feeds.conditional_headers(etag, last_modified)}
    try:
        response = ydl.urlopen(Request(url, headers=headers))
    except HTTPError as error:
        if error.status != 304:
            raise
        answered = error.response.headers
        return feeds.FetchResult(
            304, None, answered.get("ETag") or etag, answered.get("Last-Modified") or last_modified
        )
    with response:
        head = b""
        while len(head) < FEED_SNIFF_BYTES:
            chunk = response.read(FEED_SNIFF_BYTES - len(head))
            if not chunk:
                break
            head += chunk
        feeds.check_looks_like_xml(head, response.headers.get("Content-Type"))
        body = head + response.read(feeds.MAX_FEED_BYTES + 1 - len(head))
    if len(body) > feeds.MAX_FEED_BYTES:
        raise feeds.FeedError("too_large", f"the answer is larger than {feeds.MAX_FEED_BYTES} bytes")
    return feeds.FetchResult(
        int(response.status), body, response.headers.get("ETag"), response.headers.get("Last-Modified")
    )


def _feed_playlist(
    feed: feeds.Feed, playlist: Playlist, feed_url: str, stored_fields: dict[str, str | None] | None
) -> dict[str, Any]:
    """Given a parsed feed, return it as yt-dlp's playlist info, its entries as a full read would give them.

    A YouTube entry is the video's page with its extractor named (archived as `youtube <videoId>`); any other
    entry is its enclosure (else its link) carrying its id, as yt-dlp's generic extractor hands on an RSS item.
    The playlist's own fields are those of the last full read, so that output templates name the same folders.
    """
    from yt_dlp.utils import smuggle_url

    entries: list[dict[str, Any]] = []
    for entry in feed.entries:
        if entry.video_id:
            entries.append(
                {
                    "_type": "url",
                    "ie_key": "Youtube",
                    "id": entry.video_id,
                    "url": f"https://www.youtube.com/watch?v={entry.video_id}",
                    "title": entry.title,
                    "timestamp": entry.published_s,
                }
            )
            continue
        url = entry.media_url or entry.page_url
        if not url:
            continue
        entries.append(
            {
                "_type": "url_transparent",
                "url": smuggle_url(url, {"force_videoid": entry.id}) if entry.own_id else url,
                "title": entry.title,
                "timestamp": entry.published_s,
            }
        )
    is_youtube = feed.kind == "youtube"
    fields = _feed_playlist_fields(feed, playlist, stored_fields)
    return {
        "_type": "playlist",
        **{name[len("playlist_") :]: value for name, value in fields.items() if name.startswith("playlist_")},
        "entries": entries,
        "original_url": playlist.url,
        "extractor": "youtube:tab" if is_youtube else "generic",
        "extractor_key": "YoutubeTab" if is_youtube else "Generic",
        "feed_url": feed_url,
    }


def _feed_playlist_fields(
    feed: feeds.Feed, playlist: Playlist, stored_fields: dict[str, str | None] | None
) -> dict[str, str | None]:
    """yt-dlp's playlist fields for a feed read's entries: those of the last full read where there was one, else
    what the feed says (its title), as yt-dlp's generic extractor gives them for an RSS feed."""
    fields: dict[str, str | None] = dict.fromkeys(PLAYLIST_FIELDS)
    fields.update(
        {
            "playlist": feed.title or playlist.url,
            "playlist_id": playlist.url,
            "playlist_title": feed.title,
            "playlist_webpage_url": playlist.url,
        }
    )
    fields.update({name: value for name, value in (stored_fields or {}).items() if value is not None})
    return fields


def _yt_dlp_params(config: Config, playlist: Playlist, *, mark_archived: bool) -> dict[str, Any]:
    """yt-dlp's params for one playlist: the user's `yt_dlp_args`, then what playlist-cron manages."""
    params = parse_yt_dlp_args(config, playlist.yt_dlp_args_key, playlist.yt_dlp_args)
    params.update(
        {
            "download_archive": str(config.archive_file),
            "outtmpl": {**(params.get("outtmpl") or {}), "default": playlist.output_template},
            "paths": {"home": str(config.download_dir), **_temp_path(config)},
            "quiet": True,
            "no_warnings": False,
            "noprogress": True,
            "ignoreerrors": False,
            "color": {"stdout": "never", "stderr": "never"},
        }
    )
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


def _temp_path(config: Config) -> dict[str, str]:
    """yt-dlp's `temp` path: host-local in a fleet (`<state_dir>/partial`), so that two hosts sharing the download
    folder never write the same `.part` file; beside the download otherwise, as yt-dlp does by default."""
    return {"temp": str(config.state_dir / "partial")} if config.database_url else {}


def _go_through_playlist(ydl: _Downloader, playlist: Playlist, result: PlaylistResult) -> None:
    """Read the playlist and run its entries; record in `result` why reading stopped, or why the playlist failed.

    Raise RateLimited, or DiskFull, when the whole check must stop.
    """
    try:
        _read_and_run(ydl, playlist, result)
    except _StopPlaylist:
        if result.stopped == STOPPED_AT_ARCHIVED:
            ydl.run_due_retries()
    except DownloadCancelled as cancelled:  # yt-dlp's own --break-* and max-downloads stops end a check normally
        result.stopped = type(cancelled).__name__
    except RateLimited:
        raise
    except _NotAPlaylist as refusal:
        result.error = _not_a_playlist(ydl.first_content_type, str(refusal))
    except Exception as error:  # the playlist itself could not be read: the other playlists still are
        failure = ydl.failure_of(error, host_of(playlist.url))
        raise_when_check_must_stop(failure)
        result.error = failure.message
        result.error_kind = failure.kind


def _read_and_run(ydl: _Downloader, playlist: Playlist, result: PlaylistResult) -> None:
    """Read the playlist, then let yt-dlp run its entries (stopping at the first archived one, when told to)."""
    info = _read_playlist(ydl, playlist.url)
    if ydl.rate_limited:
        raise RateLimited(ydl.rate_limited)
    if info is None or info.get("_type", "video") == "video":
        # Not a playlist: for a feed, what came back did not parse as RSS. Nothing is downloaded.
        result.error = _not_a_playlist(ydl.first_content_type, "yt-dlp read it as one video")
    else:
        ydl.process_ie_result(info, download=True)
    if result.stopped == STOPPED_AT_ARCHIVED:
        ydl.run_due_retries()


def _read_playlist(ydl: _Downloader, url: str) -> Any:
    """Return what yt-dlp reads at `url`, its entries not yet processed.

    Raise _NotAPlaylist when yt-dlp has no extractor for a document that is a feed (an Atom feed, say), so that the
    check says what it is rather than yt-dlp's "Unsupported URL".
    """
    try:
        return ydl.extract_info(url, download=False, process=False)
    except DownloadError as error:
        media_type = (ydl.first_content_type or "").partition(";")[0].strip().lower()
        exc_info = getattr(error, "exc_info", None) or (None, None, None)
        if isinstance(exc_info[1], UnsupportedError) and media_type in FEED_CONTENT_TYPES:
            raise _NotAPlaylist("yt-dlp found no videos in it") from None
        raise
