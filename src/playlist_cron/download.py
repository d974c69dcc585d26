"""Download one playlist's new videos through yt-dlp's Python API; the only module that imports yt_dlp."""

from __future__ import annotations

import contextlib
import copy
import errno
import http
import io
import optparse
import os
import re
import shutil
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import yt_dlp
from yt_dlp.networking.exceptions import CertificateVerifyError, HTTPError, IncompleteRead, TransportError
from yt_dlp.options import create_parser
from yt_dlp.utils import DateRange, DownloadCancelled, DownloadError, UnsupportedError, smuggle_url, unsmuggle_url

from playlist_cron.config import MANAGED_DESTS, Config, Playlist, managed_message
from playlist_cron.errors import ConfigError, DiskFull

BOT_CHECK_PATTERN = re.compile(rb"confirm you(?:'|&#39;|&#x27;|\xe2\x80\x99|\\u0027)re not a bot", re.IGNORECASE)
PAGE_PEEK_MAX_BYTES = 4 * 1024 * 1024  # an HTML page is read whole (and handed on) to look for a bot check
DISK_CHECK_EVERY_S = 1.0
# Messages yt-dlp gives on every generic feed item: noise in a log that people read.
QUIET_WARNINGS = ("Falling back on generic information extractor",)
RETRY_WORDS = re.compile(r"retry|retrying|got error|timed out", re.IGNORECASE)
# A file's name leaves this much room below the filesystem's limit for what yt-dlp appends while it works:
# ".f<format id>.<ext>.part-Frag<n>.part" for a fragment of one format (about 45 bytes), ".temp.<ext>", ".ytdl".
NAME_RESERVE_BYTES = 60
# The names of files written beside the video (".info.json", ".en.vtt", ".jpg") get only ".part" or ".temp" added.
SIDECAR_RESERVE_BYTES = 16
NAME_MAX_FALLBACK_BYTES = 255
KEPT_FIELDS = frozenset({"id", "ext"})  # a name always keeps them: the id finds the file again, the extension opens it
MAX_FIT_ROUNDS = 8
FEED_CONTENT_TYPES = ("application/atom+xml", "application/rss+xml", "application/xml", "text/xml")


class Reporter(Protocol):
    """What the check wants to hear from a download, as it happens."""

    def activity(self) -> None: ...

    def video_started(self, video_id: str, title: str | None) -> None: ...

    def video_progress(
        self,
        video_id: str,
        downloaded_bytes: int,
        total_bytes: int | None,
        speed_bps: float | None,
        eta_s: float | None,
    ) -> None: ...

    def video_downloaded(
        self,
        video_id: str,
        key: str,
        title: str | None,
        filename: str,
        size_bytes: int,
        duration_s: float,
    ) -> None: ...

    def video_failed(
        self, video_id: str, key: str, title: str | None, url: str | None, error: str, playlist_url: str
    ) -> None: ...

    def retry_is_due(self, key: str) -> bool: ...

    def due_retries(self, playlist_url: str) -> list[tuple[str, str | None]]: ...

    def warning(self, message: str) -> None: ...


class RateLimited(Exception):
    """The site answered HTTP 429 or asked to confirm we are not a bot: stop making requests now."""


class _NotAPlaylist(Exception):
    """The playlist URL led to one video: nothing is downloaded, and the check says why."""


RATE_LIMITED = "rate_limited"
NO_SPACE = "no_space"
NETWORK = "network"
OTHER = "other"
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
UNREACHABLE_ERRNOS = {
    errno.ENETUNREACH: "the network is unreachable",
    errno.ENETDOWN: "the network is down",
    errno.EHOSTUNREACH: "no route to the host",
    errno.EHOSTDOWN: "the host is down",
}
UNRESOLVED_GAI_ERRORS = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


@dataclass(frozen=True)
class Failure:
    """What kind of failure an exception is (`RATE_LIMITED`, `NO_SPACE`, `NETWORK`, `OTHER`), and plain words for it."""

    kind: str
    message: str


def classify(error: BaseException, host: str | None = None) -> Failure:
    """Given an exception from yt-dlp, say what kind of failure it is, from types, statuses and errnos alone.

    Everything the exception wraps is looked at (DownloadError.exc_info, ExtractorError.cause, __cause__,
    __context__, URLError.reason), never its message: that carries URLs, ids and titles, which say nothing about
    what the site answered. `host` names the host in a network message when the exception does not tell it.
    """
    links = list(_chain(error))
    for link in links:
        if isinstance(link, HTTPError) and link.status == 429:
            return Failure(RATE_LIMITED, f"HTTP 429 Too Many Requests from {_host(link.response.url)}")
    for link in links:
        if isinstance(link, OSError) and link.errno in NO_SPACE_ERRNOS:
            where = f" ({link.filename})" if link.filename else ""
            return Failure(NO_SPACE, f"{link.strerror or os.strerror(link.errno)}{where}")
    # The nearest link that tells is the cause: an answer such as 404 says the site was reached, even when
    # yt-dlp met it while handling an earlier, incidental failure (chained as __context__, further out).
    decisive = next((link for link in links if isinstance(link, HTTPError) or _network_words(link)), None)
    words = _network_words(decisive) if decisive is not None else None
    transport_failed = any(isinstance(link, TransportError) for link in links)
    # A certificate that does not verify needs a human, not patience: it is no outage.
    if decisive is None and transport_failed and not any(isinstance(link, CertificateVerifyError) for link in links):
        words = "the connection failed"
    if words is None:
        return Failure(OTHER, _one_line(error))
    if isinstance(decisive, HTTPError):
        host = _host(decisive.response.url)
    return Failure(NETWORK, f"cannot reach {host or 'the site'}: {words}")


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The exception and every exception it wraps, each once, outermost first."""
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        link = pending.pop(0)
        if not isinstance(link, BaseException) or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        exc_info = getattr(link, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) == 3:
            pending.append(exc_info[1])
        pending.extend([getattr(link, "cause", None), link.__cause__, link.__context__, getattr(link, "reason", None)])


def _network_words(link: BaseException) -> str | None:
    """Plain words for one exception that says the site could not be reached, or None when it does not."""
    if isinstance(link, HTTPError):
        if link.status < 500:
            return None
        try:
            phrase = f" {http.HTTPStatus(link.status).phrase}"
        except ValueError:
            phrase = ""
        return f"it answered HTTP {link.status}{phrase}"
    if isinstance(link, socket.gaierror):
        if link.errno in UNRESOLVED_GAI_ERRORS:
            return "the name does not resolve"
        return "the name could not be looked up (no answer from DNS)"
    if isinstance(link, ConnectionRefusedError):
        return "connection refused"
    if isinstance(link, ConnectionResetError):
        return "the connection was reset"
    if isinstance(link, (ConnectionAbortedError, BrokenPipeError)):
        return "the connection was cut"
    if isinstance(link, TimeoutError):
        return "timed out"
    if isinstance(link, IncompleteRead):
        return "the connection closed before the whole answer came"
    if isinstance(link, OSError) and link.errno in UNREACHABLE_ERRNOS:
        return UNREACHABLE_ERRNOS[link.errno]
    return None


@dataclass(frozen=True)
class VideoFailure:
    """A video that failed, as the check records it (`Reporter.video_failed`'s arguments)."""

    video_id: str
    key: str
    title: str | None
    url: str | None
    error: str
    playlist_url: str


class _StopPlaylist(DownloadCancelled):  # type: ignore[misc]
    """Stop reading this playlist: the first archived video was met, or the per-check limit was reached."""

    msg = "playlist-cron stopped reading the playlist"


@dataclass
class PlaylistResult:
    """What one playlist's part of a check did."""

    url: str
    title: str | None = None
    downloaded: int = 0
    failed: int = 0
    already_archived: int = 0
    waiting_retry: int = 0
    filtered: int = 0
    marked_archived: int = 0
    bytes: int = 0
    error: str | None = None
    error_kind: str | None = None  # NETWORK when the playlist could not be read because the site was unreachable
    stopped: str | None = None  # why reading stopped early, when it did
    # Videos that failed because the site was unreachable: the check records them as failed videos only when
    # it is not itself a network failure (an outage must not spend every video's retry steps).
    network_failures: list[VideoFailure] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "title": self.title,
            "downloaded": self.downloaded,
            "failed": self.failed,
            "already_archived": self.already_archived,
            "waiting_retry": self.waiting_retry,
            "filtered": self.filtered,
            "stopped": self.stopped,
            "error": self.error,
            **({"marked_archived": self.marked_archived} if self.marked_archived else {}),
            **({"network_failed": len(self.network_failures)} if self.network_failures else {}),
        }


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


def parse_yt_dlp_args(config: Config, key: str, arguments: tuple[str, ...]) -> dict[str, Any]:
    """Given the user's yt-dlp options, return yt-dlp's params for them; ConfigError where yt-dlp refuses them.

    Options that playlist-cron manages are refused before yt-dlp reads anything: it reads a `--batch-file` or a
    `--config-locations` file while it parses, and would show their lines in its complaints.
    """
    _refuse_managed_options(config, key, arguments)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            parsed = yt_dlp.parse_options(list(arguments))
    except (SystemExit, optparse.OptParseError) as refusal:
        raise ConfigError(
            str(config.path), [f"At '{key}': yt-dlp says: {_refusal_reason(refusal, captured)}"]
        ) from None
    if parsed.urls:
        raise ConfigError(
            str(config.path), [f"At '{key}': {parsed.urls[0]!r} is not an option (URLs go in 'playlists')"]
        )
    params: dict[str, Any] = dict(parsed.ydl_opts)
    return params


def cut_to_bytes(text: str, limit_bytes: int) -> str:
    """Given text, return its longest beginning that takes at most `limit_bytes` in UTF-8, cut between characters."""
    return text.encode("utf-8", "surrogateescape")[: max(limit_bytes, 0)].decode("utf-8", "ignore")


def _too_long_part(path: str, limit_bytes: int) -> int | None:
    """Given a path, return the index of its first part longer than `limit_bytes`, or None."""
    for index, part in enumerate(path.split(os.sep)):
        if len(os.fsencode(part)) > limit_bytes:
            return index
    return None


def _part_bytes(path: str, index: int, parts: int) -> int | None:
    split = path.split(os.sep)
    return len(os.fsencode(split[index])) if len(split) == parts else None


def fit_fields(evaluate: Callable[[dict[str, Any]], str], info: dict[str, Any], limit_bytes: int) -> dict[str, Any]:
    """Given the fields of a video and how they become a path, return them with text fields shortened until every
    part of the path takes at most `limit_bytes`.

    The path is measured after templating, so sanitizing (a "/" becomes a 3-byte "⧸") and the template's own text
    count. Each round shortens the field that gives the too-long part the most bytes; `id` and `ext` are never
    shortened. A part that stays too long (the template's own text, or an id) is left for yt-dlp to report.
    """
    path = evaluate(info)
    for _ in range(MAX_FIT_ROUNDS):
        index = _too_long_part(path, limit_bytes) if path else None
        if index is None:
            return info
        parts = len(path.split(os.sep))
        before_bytes = len(os.fsencode(path.split(os.sep)[index]))
        gains: dict[str, int] = {}
        for key, value in info.items():
            if key in KEPT_FIELDS or not isinstance(value, str) or not value:
                continue
            probe_bytes = _part_bytes(
                evaluate({**info, key: cut_to_bytes(value, len(value.encode()) // 2)}), index, parts
            )
            if probe_bytes is not None and probe_bytes < before_bytes:
                gains[key] = before_bytes - probe_bytes
        if not gains:
            return info
        key = max(gains, key=lambda name: gains[name])
        value = str(info[key])
        # The longest beginning of the field with which the part fits: the part's length grows with the field's.
        low, high = 0, len(value.encode()) - 1
        while low < high:
            middle = (low + high + 1) // 2
            middle_bytes = _part_bytes(evaluate({**info, key: cut_to_bytes(value, middle)}), index, parts)
            if middle_bytes is not None and middle_bytes <= limit_bytes:
                low = middle
            else:
                high = middle - 1
        info = {**info, key: cut_to_bytes(value, low).rstrip()}
        path = evaluate(info)
    return info


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
    plain_url, data = unsmuggle_url(url, {})
    video_id = data.get("force_videoid") if isinstance(data, dict) else None
    if not isinstance(video_id, str) or video_id == " ".join(video_id.split()):
        return entry
    return {**entry, "url": smuggle_url(plain_url, {**data, "force_videoid": " ".join(video_id.split())})}


def _not_a_playlist(content_type: str | None, what: str) -> str:
    """The playlist error for a URL that gave `what` (one video, or nothing yt-dlp can read) instead of a playlist."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type == "application/atom+xml":
        return (
            f"this URL is not a playlist yt-dlp can read: it is an Atom feed, and yt-dlp reads only RSS feeds as "
            f"playlists ({what}); give the site's RSS feed or its playlist page instead"
        )
    if media_type in FEED_CONTENT_TYPES:
        return (
            f"this URL is not a playlist yt-dlp can read: it answered with an XML document ({media_type}) that is not "
            f"an RSS feed ({what}); give the site's RSS feed or its playlist page instead"
        )
    return f"this URL is not a playlist: {what}; give a playlist, channel or feed URL instead"


def _refusal_reason(refusal: BaseException, captured: io.StringIO) -> str:
    said = (str(refusal) if isinstance(refusal, optparse.OptParseError) else captured.getvalue()).strip()
    reason = said.splitlines()[-1] if said else "rejected by yt-dlp"
    return re.sub(r"^[\w.-]+: error: ", "", reason)


def _refuse_managed_options(config: Config, key: str, arguments: tuple[str, ...]) -> None:
    """Raise ConfigError when yt-dlp's own parser reads one of `arguments` as an option playlist-cron manages.

    First each argument as yt-dlp resolves it (abbreviations, short-option clusters), to name it; then the
    options parsed into a values object, which also sees what an `--alias` expands to. Neither reads a file.
    """
    parser = create_parser()
    found = _managed_arguments(parser, arguments)
    problems = [f"At '{key}[{index}]': {said}" for index, said in found]
    if not problems:
        defaults = copy.deepcopy(vars(parser.get_default_values()))
        captured = io.StringIO()
        try:
            with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
                values, _ = parser.parse_args(list(arguments))
        except (SystemExit, optparse.OptParseError) as refusal:  # said before yt-dlp reads any file named here
            problems = [f"At '{key}': yt-dlp says: {_refusal_reason(refusal, captured)}"]
        else:
            problems = [
                f"At '{key}': an --alias sets {_spelling(parser, dest)}, which is managed by playlist-cron: "
                f"set '{config_key}' in the config instead"
                for dest, config_key in MANAGED_DESTS.items()
                if getattr(values, dest, None) != defaults.get(dest)
            ]
    if problems:
        raise ConfigError(str(config.path), problems)


def _spelling(parser: optparse.OptionParser, dest: str) -> str:
    """Given a dest, return the long option a user knows it by (the one that takes a value, like --batch-file)."""
    named = sorted((name, not option.takes_value()) for name, option in parser._long_opt.items() if option.dest == dest)
    return min(named, key=lambda pair: pair[1])[0] if named else dest


def _managed_arguments(parser: optparse.OptionParser, arguments: tuple[str, ...]) -> list[tuple[int, str]]:
    """Given yt-dlp's parser, return (index, what to say) for each argument that it reads as a managed option."""
    found = []
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if argument == "--":
            break
        if argument.startswith("--"):
            typed = argument.split("=", 1)[0]
            try:
                name = parser._match_long_opt(typed)  # optparse's own rule: a unique prefix, or the exact name
            except optparse.BadOptionError:  # unknown or ambiguous: yt-dlp's parse says so
                index += 1
                continue
            option = parser._long_opt[name]
            if option.dest in MANAGED_DESTS:
                found.append((index, managed_message(typed, name)))
            if option.takes_value() and "=" not in argument:
                index += option.nargs or 1
        elif argument.startswith("-") and argument != "-":
            for position, letter in enumerate(argument[1:], start=1):  # a cluster: -ia is -i -a
                short_option = parser._short_opt.get("-" + letter)
                if short_option is None:
                    break
                if short_option.dest in MANAGED_DESTS:
                    found.append((index, managed_message(argument[: position + 1], "-" + letter)))
                if short_option.takes_value():
                    if position == len(argument) - 1:  # the value is the next argument, not the rest of this one
                        index += short_option.nargs or 1
                    break
        index += 1
    return found


def _archive_id(ydl: _Downloader, entry: dict[str, Any]) -> str | None:
    """Return an entry's archive id without a request: from yt-dlp, or from the id a feed smuggles into the URL."""
    archive_id = ydl._make_archive_id(entry)
    if archive_id:
        return str(archive_id)
    url = entry.get("url")
    if not isinstance(url, str):
        return None
    plain_url, data = unsmuggle_url(url, {})
    video_id = data.get("force_videoid") if isinstance(data, dict) else None
    if not video_id:
        return None
    # yt-dlp would find the extractor by trying every one of its ~1,800 on the URL: milliseconds an entry. When the
    # archive holds this id under one extractor, that is the answer; only new ids pay for the full search.
    extractors = ydl.archived_extractors(str(video_id))
    if len(extractors) == 1:
        return f"{next(iter(extractors))} {video_id}"
    extractor = ydl.extractor_key_for(plain_url)
    return f"{extractor} {video_id}" if extractor else None


class _Downloader(yt_dlp.YoutubeDL):  # type: ignore[misc]
    """yt-dlp's YoutubeDL, told to report each playlist entry's outcome to playlist-cron."""

    def __init__(
        self,
        params: dict[str, Any],
        playlist: Playlist,
        result: PlaylistResult,
        reporter: Reporter,
        *,
        mark_archived: bool = False,
    ) -> None:
        self._playlist = playlist
        self._mark_archived = mark_archived
        self._date_range = DateRange(playlist.date_after) if playlist.date_after else None
        self._result = result
        self._reporter = reporter
        self._entries: list[_Entry] = []
        self._playlist_depth = 0
        self._min_free_bytes = 0
        self._download_dir = ""
        self._next_disk_check = 0.0
        self.rate_limited: str | None = None  # set by urlopen when the site says to slow down
        self.failed_host: str | None = None  # the host of the last request that got no answer
        self._archive_keys: set[str] | None = None
        self._extractor_keys: dict[tuple[str, str], str | None] = {}
        self._name_max_bytes: int | None = None
        self.first_content_type: str | None = None  # of the playlist URL's answer: says what a non-playlist was
        params = dict(params)
        params["progress_hooks"] = [*params.get("progress_hooks", []), self._on_progress]
        params["post_hooks"] = [*params.get("post_hooks", []), self._on_finished_file]
        params["logger"] = _Logger(reporter, self._current)
        super().__init__(params)

    def _current(self) -> _Entry | None:
        return self._entries[-1] if self._entries else None

    def extractor_key_for(self, url: str) -> str | None:
        """The archive key of the extractor yt-dlp would pick for `url`, looked up once per folder of URLs.

        A feed's enclosures share a host and a folder, and the search tries every extractor's pattern (a few
        milliseconds each time); yt-dlp repeats it when it processes the entry, so without this cache a new entry
        would pay for it twice.
        """
        folder, _, name = url.rpartition("/")
        shape = (folder, name.rpartition(".")[2] if "." in name else "")
        if shape not in self._extractor_keys:
            self._extractor_keys[shape] = next((key for key, ie in self._ies.items() if ie.suitable(url)), None)
        ie_key = self._extractor_keys[shape]
        return ie_key.lower() if ie_key else None

    def known_ie_key(self, url: str) -> str | None:
        """The extractor already looked up for this folder of URLs, if any: yt-dlp need not search again."""
        folder, _, name = url.rpartition("/")
        return self._extractor_keys.get((folder, name.rpartition(".")[2] if "." in name else ""))

    def archived_extractors(self, video_id: str) -> set[str]:
        """The extractor keys under which the archive holds `video_id`.

        An archive names few extractors (youtube, generic, ...): they are gathered once, and then each is tried
        against the archive's own set, with no index of 100,000 ids to hold in memory.
        """
        if self._archive_keys is None:
            self._archive_keys = {line.partition(" ")[0] for line in self.archive}
        return {key for key in self._archive_keys if f"{key} {video_id}" in self.archive}

    def record_download_archive(self, info_dict: dict[str, Any]) -> None:
        super().record_download_archive(info_dict)
        archive_id = self._make_archive_id(info_dict)
        if self._archive_keys is not None and archive_id:
            self._archive_keys.add(str(archive_id).partition(" ")[0])

    def process_ie_result(self, ie_result: Any, download: bool = True, extra_info: Any = None) -> Any:
        if (
            isinstance(ie_result, dict)
            and ie_result.get("_type", "video") == "video"
            and self._playlist_depth == 0
            and not self._entries
        ):
            # The playlist URL led, through a redirect or a url result, to one video: not what was configured.
            raise _NotAPlaylist(f"yt-dlp resolved it to one video (id {ie_result.get('id')!r}); nothing was downloaded")
        if isinstance(ie_result, dict) and ie_result.get("_type") in ("playlist", "multi_video"):
            if self._entries:
                self._entries[-1].is_container = True
            if self._playlist_depth == 0 and self._result.title is None:
                self._result.title = ie_result.get("title")
            self._playlist_depth += 1
            try:
                return super().process_ie_result(ie_result, download, extra_info)
            finally:
                self._playlist_depth -= 1
        is_new_entry = (
            extra_info is not None
            and "playlist_autonumber" in extra_info
            and (not self._entries or self._entries[-1].depth < self._playlist_depth)
        )
        if not is_new_entry:
            return super().process_ie_result(ie_result, download, extra_info)
        return self._process_entry(ie_result, download, extra_info)

    def _process_entry(self, ie_result: dict[str, Any], download: bool, extra_info: Any) -> Any:
        result, playlist = self._result, self._playlist
        ie_result = _with_plain_id(ie_result)
        archive_id = _archive_id(self, ie_result)
        entry = _Entry(self._playlist_depth, archive_id, ie_result.get("url"), ie_result.get("title"))
        self._reporter.activity()
        if archive_id and archive_id in self.archive:
            result.already_archived += 1
            if playlist.stop_at_first_archived and not self._mark_archived:
                result.stopped = "first archived video"
                raise _StopPlaylist()
            return None
        if self._before_date_after(ie_result):
            result.filtered += 1  # known from the playlist itself: no request for it
            return None
        if self._mark_archived and archive_id:
            extractor, _, video_id = archive_id.partition(" ")
            self.record_download_archive({"extractor_key": extractor, "id": video_id})
            result.marked_archived += 1
            return None
        if not self._reporter.retry_is_due(entry.key):
            result.waiting_retry += 1
            return None
        if ie_result.get("_type") in ("url", "url_transparent") and not ie_result.get("ie_key"):
            ie_key = self.known_ie_key(unsmuggle_url(str(ie_result.get("url")), {})[0])
            if ie_key:
                ie_result = {**ie_result, "ie_key": ie_key}
        self._entries.append(entry)
        try:
            answer = super().process_ie_result(ie_result, download, extra_info)
        except (DownloadCancelled, RateLimited):
            raise
        except Exception as error:  # one bad video must not end the playlist: it is recorded and retried later
            failure = self.failure_of(error)
            if failure.kind == RATE_LIMITED:
                raise RateLimited(failure.message) from None
            if failure.kind == NO_SPACE:  # not the video's fault: no retry step is spent
                raise DiskFull(failure.message) from None
            if failure.kind == NETWORK:
                result.network_failures.append(
                    VideoFailure(entry.video_id, entry.key, entry.title, entry.url, failure.message, playlist.url)
                )
                return None
            result.failed += 1
            self._reporter.video_failed(
                entry.video_id, entry.key, entry.title, entry.url, failure.message, playlist.url
            )
            return None
        finally:
            self._entries.pop()
        if entry.is_container:
            return answer
        if self._mark_archived:
            result.marked_archived += 0 if entry.archived else 1
            result.already_archived += 1 if entry.archived else 0
            return answer
        if entry.filename is not None:
            size_bytes = _size(entry.filename)
            result.downloaded += 1
            result.bytes += size_bytes
            self._reporter.video_downloaded(
                entry.video_id,
                entry.key,
                (entry.info or {}).get("title") or entry.title,
                entry.filename,
                size_bytes,
                time.monotonic() - entry.started_at,
            )
            if playlist.max_downloads_per_check and result.downloaded >= playlist.max_downloads_per_check:
                result.stopped = "max_downloads_per_check"
                raise _StopPlaylist()
        elif entry.archived:
            result.already_archived += 1
            if playlist.stop_at_first_archived:
                result.stopped = "first archived video"
                raise _StopPlaylist()
        else:
            result.filtered += 1
        return answer

    def retry_behind_first_archived(self) -> None:
        """Reading stopped at the first archived video: try the playlist's failed videos that are due anyway."""
        result = self._result
        playlist_fields = {"playlist": result.title, "playlist_title": result.title, "playlist_id": result.url}
        for url, title in self._reporter.due_retries(self._playlist.url):
            entry = {"_type": "url", "url": url, "title": title}
            try:
                self.process_ie_result(entry, download=True, extra_info={**playlist_fields, "playlist_autonumber": 0})
            except _StopPlaylist:
                if result.stopped == "max_downloads_per_check":
                    return

    def _before_date_after(self, entry: dict[str, Any]) -> bool:
        """Whether the playlist already tells this entry is older than `date_after` (yt-dlp checks the rest)."""
        if self._date_range is None:
            return False
        upload_date = entry.get("upload_date")
        if not upload_date and isinstance(entry.get("timestamp"), (int, float)):
            upload_date = time.strftime("%Y%m%d", time.gmtime(entry["timestamp"]))
        return bool(upload_date) and upload_date not in self._date_range

    def prepare_filename(
        self, info_dict: dict[str, Any], dir_type: str = "", *, outtmpl: Any = None, warn: bool = False
    ) -> Any:
        """yt-dlp's file name, with the longest fields shortened until every part of the path fits the filesystem.

        The video's own name decides first, so that the files written beside it (".info.json", subtitles) share it.
        """
        name_max_bytes = self._filesystem_name_max_bytes()
        video_fields = fit_fields(
            lambda fields: str(super(_Downloader, self).prepare_filename(fields) or ""),
            info_dict,
            name_max_bytes - NAME_RESERVE_BYTES,
        )
        if dir_type or outtmpl is not None:
            reserve_bytes = NAME_RESERVE_BYTES if dir_type == "temp" else SIDECAR_RESERVE_BYTES
            video_fields = fit_fields(
                lambda fields: str(super(_Downloader, self).prepare_filename(fields, dir_type, outtmpl=outtmpl) or ""),
                video_fields,
                name_max_bytes - reserve_bytes,
            )
        return super().prepare_filename(video_fields, dir_type, outtmpl=outtmpl, warn=warn)

    def _filesystem_name_max_bytes(self) -> int:
        """The longest file name, in bytes, that the download folder's filesystem takes."""
        if self._name_max_bytes is None:
            home = (self.params.get("paths") or {}).get("home") or "."
            try:
                self._name_max_bytes = int(os.pathconf(home, "PC_NAME_MAX"))
            except (OSError, ValueError):
                self._name_max_bytes = NAME_MAX_FALLBACK_BYTES
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

    def failure_of(self, error: BaseException, fallback_host: str | None = None) -> Failure:
        """What kind of failure `error` is, given also what this downloader saw of the site's answers."""
        if self.rate_limited:  # a bot-check page, or a 429 that yt-dlp went on from
            return Failure(RATE_LIMITED, self.rate_limited)
        return classify(error, self.failed_host or fallback_host)

    def urlopen(self, req: Any) -> Any:
        """Every request yt-dlp makes passes here: notice HTTP 429, "confirm you're not a bot" pages, failed hosts."""
        try:
            response = super().urlopen(req)
        except HTTPError as error:
            if error.status == 429:
                self.rate_limited = f"HTTP 429 Too Many Requests from {_host(error.response.url)}"
            raise
        except Exception:
            url = req if isinstance(req, str) else getattr(req, "url", None) or getattr(req, "full_url", None)
            self.failed_host = _host(str(url)) if url else None  # a refused connection does not name its host
            raise
        content_type = response.headers.get("Content-Type", "")
        if self.first_content_type is None:
            self.first_content_type = content_type
        length = int(response.headers.get("Content-Length") or 0)
        if "html" in content_type and length <= PAGE_PEEK_MAX_BYTES:
            body = response.read()
            response.fp = io.BytesIO(body)  # hand the page on unread, as if we had never looked
            if BOT_CHECK_PATTERN.search(body):
                self.rate_limited = f"{_host(response.url)} asked to confirm we are not a bot"
        return response

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
            self._reporter.warning(_one_line(message))

    def error(self, message: str) -> None:
        pass  # raised as DownloadError right after, and reported there with the video it belongs to


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc.rpartition("@")[2] or url


def _one_line(error: object) -> str:
    text = str(error).replace("\n", " ").strip()
    return re.sub(r"^ERROR:\s*", "", text)


def _size(filename: str) -> int:
    try:
        return os.path.getsize(filename)
    except OSError:
        return 0


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


def download_playlist(
    config: Config, playlist: Playlist, reporter: Reporter, *, mark_archived: bool = False
) -> PlaylistResult:
    """Given a playlist, download what is new in it and return what happened.

    Raise ConfigError when yt-dlp refuses the playlist's `yt_dlp_args`, RateLimited when the site says to slow
    down, and DiskFull when the disk is full; every other problem is recorded in the result (a
    video's, or the playlist's `error` with its `error_kind`).
    """
    params = parse_yt_dlp_args(config, playlist.yt_dlp_args_key, playlist.yt_dlp_args)
    params.update(
        {
            "download_archive": str(config.archive_file),
            "outtmpl": {**(params.get("outtmpl") or {}), "default": playlist.output_template},
            "paths": {"home": str(config.download_dir)},
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
    result = PlaylistResult(url=playlist.url)
    with _Downloader(params, playlist, result, reporter, mark_archived=mark_archived) as ydl:
        ydl.watch_disk(str(config.download_dir), config.min_free_bytes)
        try:
            info = _read_playlist(ydl, playlist.url)
            if ydl.rate_limited:
                raise RateLimited(ydl.rate_limited)
            if info is None or info.get("_type", "video") == "video":
                # Not a playlist: for a feed, what came back did not parse as RSS. Nothing is downloaded.
                result.error = _not_a_playlist(ydl.first_content_type, "yt-dlp read it as one video")
            else:
                ydl.process_ie_result(info, download=True)
            if result.stopped == "first archived video":
                ydl.retry_behind_first_archived()
        except _StopPlaylist:
            if result.stopped == "first archived video":
                ydl.retry_behind_first_archived()
        except DownloadCancelled as cancelled:  # yt-dlp's own --break-* and max-downloads stops end a check normally
            result.stopped = type(cancelled).__name__
        except RateLimited:
            raise
        except _NotAPlaylist as refusal:
            result.error = _not_a_playlist(ydl.first_content_type, str(refusal))
        except Exception as error:  # the playlist itself could not be read: the other playlists still are
            failure = ydl.failure_of(error, _host(playlist.url))
            if failure.kind == RATE_LIMITED:
                raise RateLimited(failure.message) from None
            if failure.kind == NO_SPACE:
                raise DiskFull(failure.message) from None
            result.error = failure.message
            result.error_kind = failure.kind
    return result
