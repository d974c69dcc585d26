"""What each playlist entry came to, counted into the playlist's result and told to the check's reporter; no yt-dlp."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from playlist_cron import feeds
from playlist_cron.config import Playlist
from playlist_cron.failure_kinds import NETWORK, SIZE_MISMATCH, Failure, raise_when_check_must_stop
from playlist_cron.playlist_result import (
    PLAYLIST_FIELDS,
    STOPPED_AT_ARCHIVED,
    STOPPED_AT_MAX_DOWNLOADS,
    PlaylistResult,
    Reporter,
    VideoFailure,
)


@dataclass
class Entry:
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


class EntryTally:
    """One playlist read's counts: what each entry came to goes into its result, and to the reporter.

    A method that returns True says that reading must stop there: at the first archived video when the playlist is
    read up to it (`stop_at_first_archived`), or at `max_downloads_per_check`; `result.stopped` says which.
    """

    def __init__(self, playlist: Playlist, result: PlaylistResult, reporter: Reporter, *, mark_archived: bool) -> None:
        self._playlist = playlist
        self._result = result
        self._reporter = reporter
        self._mark_archived = mark_archived

    def playlist_met(self, playlist_info: dict[str, Any]) -> None:
        """Note the title, and the channel's id, of the playlist read (the first met, not one nested in an entry)."""
        if self._result.title is None:
            self._result.title = playlist_info.get("title")
            if feeds.is_channel_id(playlist_info.get("channel_id")):
                self._result.channel_id = playlist_info["channel_id"]

    def playlist_fields_met(self, entry_fields: Any) -> None:
        """Keep the playlist fields of a full read's first entry, for feed reads to give their entries the same."""
        if self._result.playlist_fields is None:
            self._result.playlist_fields = {
                name: value if isinstance(value, str) else None
                for name in PLAYLIST_FIELDS
                for value in [(entry_fields or {}).get(name)]
            }

    def archived(self) -> bool:
        """Count an archived entry; True when the playlist is read up to the first archived video."""
        self._result.already_archived += 1
        if self._playlist.stop_at_first_archived and not self._mark_archived:
            self._result.stopped = STOPPED_AT_ARCHIVED
            return True
        return False

    def filtered(self) -> None:
        """Count an entry left out: too old for `date_after`, or by one of yt-dlp's filters."""
        self._result.filtered += 1

    def marked(self) -> None:
        """Count an entry recorded in the archive without a download (`--mark-archived`)."""
        self._result.marked_archived += 1

    def waiting_retry(self) -> None:
        """Count a failed video whose next try is not due yet."""
        self._result.waiting_retry += 1

    def failed(self, entry: Entry, failure: Failure) -> None:
        """Count a failed entry: a network failure apart (the check decides), any other as the video's own.

        Raise RateLimited or DiskFull for a failure that ends the whole check.
        """
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
            reason=failure.kind if failure.kind == SIZE_MISMATCH else None,
        )

    def outcome(self, entry: Entry) -> bool:
        """Count what yt-dlp's run of an entry came to (downloaded, archived, marked or filtered); True when reading
        must stop there."""
        result = self._result
        if entry.failed or entry.is_container:  # a failure is counted already; a container's entries count
            return False
        if self._mark_archived:
            result.marked_archived += 0 if entry.archived else 1
            result.already_archived += 1 if entry.archived else 0
        elif entry.filename is not None:
            return self._downloaded(entry, entry.filename)
        elif entry.archived:
            return self.archived()
        else:
            result.filtered += 1
        return False

    def _downloaded(self, entry: Entry, filename: str) -> bool:
        """Report a downloaded video; True when the playlist reached the per-check limit."""
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
            return True
        return False


def _size(filename: str) -> int:
    try:
        return os.path.getsize(filename)
    except OSError:
        return 0
