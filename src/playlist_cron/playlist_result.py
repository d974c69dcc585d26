"""What one playlist's read and its downloads produced, and the `Reporter` a check hears them through; no yt-dlp."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ReadKind = Literal["feed", "full"]  # what a check reads of a playlist: its feed, or the playlist whole

# Why reading a playlist stopped early (PlaylistResult.stopped), besides the name of a yt-dlp --break-* stop.
STOPPED_AT_ARCHIVED = "first archived video"
STOPPED_AT_MAX_DOWNLOADS = "max_downloads_per_check"
# Stops after which a full read has still seen every entry it had to: the next full read can wait its interval.
# (A stop at max_downloads_per_check or yt-dlp's --max-downloads leaves new entries unread behind it.)
COMPLETE_READ_STOPS = (None, STOPPED_AT_ARCHIVED, "ExistingVideoReached", "RejectedVideoReached")
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


class Reporter(Protocol):
    """What the check wants to hear from a download, as it happens."""

    def activity(self) -> None: ...

    def go_on(self) -> None:
        """Raise when the read must stop now (the check is stopping, or its site said to slow down)."""
        ...

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
        archive_line: str | None = None,
    ) -> None: ...

    def video_failed(
        self,
        video_id: str,
        key: str,
        title: str | None,
        url: str | None,
        error: str,
        playlist_url: str,
        *,
        reason: str | None = None,
    ) -> None:
        """A video failed; `reason` names a failure of a kind the log names (`size_mismatch`)."""
        ...

    def retry_is_due(self, key: str) -> bool: ...

    def due_retries(self, playlist_url: str) -> list[tuple[str, str | None]]: ...

    def waiting_retries(self, playlist_url: str) -> int: ...

    def warning(self, message: str) -> None: ...

    def feed_failed(self, playlist_url: str, feed_url: str, reason: str, error: str, then: str) -> None: ...

    def feed_repaired(self, playlist_url: str, feed_url: str, repairs: tuple[str, ...]) -> None: ...


@dataclass(frozen=True)
class VideoFailure:
    """A video that failed, as the check records it (`Reporter.video_failed`'s arguments)."""

    video_id: str
    key: str
    title: str | None
    url: str | None
    error: str
    playlist_url: str


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
    read: ReadKind = "full"  # what the entries worked on came from
    feed_url: str | None = None  # the feed this check read (or tried to), if any
    feed_status: int | None = None  # its HTTP status: 200, or 304 when unchanged
    feed_error: str | None = None  # why the feed could not be read, when it could not
    feed_entries: int | None = None  # how many entries the feed listed
    feed_repairs: tuple[str, ...] | None = None  # what the feed needed repaired to be read (None: not parsed)
    etag: str | None = None  # the feed's validators, for the next read
    last_modified: str | None = None
    full_read_complete: bool = False  # a full read went through every entry it had to
    channel_id: str | None = None  # the channel's id (UC…), as the full read gave it
    playlist_fields: dict[str, str | None] | None = None  # yt-dlp's playlist fields at the full read
    is_feed: bool | None = None  # whether the playlist's own URL turned out to be a feed (None: not looked)

    @property
    def left_work(self) -> bool:
        """Whether this read left entries that the next check must see even if the feed has not changed: it was
        cut short (max_downloads_per_check), failed, or could not reach the site for some videos."""
        return self.error is not None or self.stopped not in COMPLETE_READ_STOPS or bool(self.network_failures)

    def summary(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "title": self.title,
            "read": self.read,
            **({"feed_url": self.feed_url, "feed_status": self.feed_status} if self.feed_url else {}),
            **({"feed_entries": self.feed_entries} if self.feed_entries is not None else {}),
            **({"feed_error": self.feed_error} if self.feed_error else {}),
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
