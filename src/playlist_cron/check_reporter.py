"""What a check hears from the downloader as it works (its `Reporter`): each video's start, progress and end.

The reads run in threads of their own (`parallel_reads`): every callback that writes (the state, the log, the
console) or reads what another writes does so under the check's one writer lock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from playlist_cron import clock, log
from playlist_cron.errors import stopping_when_database_lost

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron.config import Config
    from playlist_cron.console import Console
    from playlist_cron.parallel_reads import Reads
    from playlist_cron.records import FailedVideoRecord
    from playlist_cron.storage import StateStorage, Storage
    from playlist_cron.watchdog import Watchdog


class ReporterCallbacks:
    """The `playlist_result.Reporter` of a check that holds the run lock (a part of `check._Check`)."""

    config: Config
    storage: Storage
    store: StateStorage
    logger: FilteringBoundLogger
    console: Console
    watchdog: Watchdog
    failed_videos: dict[str, FailedVideoRecord]
    _titles: dict[str, str]
    downloaded_titles: list[str]  # what this check downloaded, and gave up on: for its notifications
    given_up_videos: list[tuple[str, str | None, int, str]]  # (video_id, title, attempts, the last error)
    writer: threading.RLock
    reading: Reads | None
    finished: bool

    def go_on(self) -> None:
        """Raise in a read that must stop: the check is stopping, or the read's site said to slow down."""
        if self.reading is not None:
            self.reading.go_on()

    def activity(self) -> None:
        self.watchdog.activity()
        self.go_on()

    def retry_is_due(self, key: str) -> bool:
        from playlist_cron import failures

        with self.writer:
            return failures.is_due(self.failed_videos.get(key), clock.now_s())

    def video_started(self, video_id: str, title: str | None) -> None:
        self.activity()
        with self.writer:
            self._titles[video_id] = title or video_id
            self.console.say(f"Downloading {title or video_id}")

    def video_progress(
        self,
        video_id: str,
        downloaded_bytes: int,
        total_bytes: int | None,
        speed_bps: float | None,
        eta_s: float | None,
    ) -> None:
        self.activity()
        with self.writer:
            self.console.progress(self._titles.get(video_id, video_id), downloaded_bytes, total_bytes, speed_bps, eta_s)

    def video_downloaded(
        self,
        video_id: str,
        key: str,
        title: str | None,
        filename: str,
        size_bytes: int,
        duration_s: float,
        archive_line: str | None = None,
    ) -> None:
        """A video was downloaded: count it. `archive_line` is given when the archive is the check's to write (in a
        database): its row goes in with the counters, one transaction, so that neither is ever without the other."""
        self.watchdog.activity()
        with self.writer:
            with stopping_when_database_lost(), self.store.update() as state:
                if archive_line is not None:
                    self.storage.archive.add(archive_line)
                state["downloaded_total"] += 1
                state["failed_videos"].pop(key, None)
                self.failed_videos = state["failed_videos"]
            self.logger.info(
                log.VIDEO_DOWNLOADED,
                video_id=video_id,
                title=title,
                filename=filename,
                bytes=size_bytes,
                duration_s=round(duration_s, 3),
            )
            self.downloaded_titles.append(title or video_id)
            self.console.say(f"Downloaded {title or video_id} ({size_bytes} bytes) in {duration_s:.1f} s")

    def due_retries(self, playlist_url: str) -> list[tuple[str, str | None]]:
        """The failed videos of a playlist that are due for another try and whose URL is known: (url, title)."""
        from playlist_cron import failures

        with self.writer:
            return failures.due_retries(self.failed_videos, playlist_url, clock.now_s())

    def waiting_retries(self, playlist_url: str) -> int:
        """How many failed videos of a playlist wait for a later retry: what a 304 counts as waiting."""
        from playlist_cron import failures

        with self.writer:
            return failures.waiting_count(self.failed_videos, playlist_url, clock.now_s())

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
        from playlist_cron import failures

        self.activity()
        with self.writer:
            with stopping_when_database_lost(), self.store.update() as state:
                record = failures.record_failure(
                    state["failed_videos"],
                    key,
                    video_id=video_id,
                    title=title,
                    url=url,
                    error=error,
                    playlist_url=playlist_url,
                    now_s=clock.now_s(),
                    backoff_s=self.config.retry_backoff_seconds,
                )
                self.failed_videos = state["failed_videos"]
            self.logger.warning(
                log.VIDEO_FAILED,
                video_id=video_id,
                title=title,
                **({"reason": reason} if reason is not None else {}),
                error=error,
                attempts=record["attempts"],
                next_retry_at=record["next_retry_at"],
            )
            if record["given_up"]:
                self.given_up_videos.append((video_id, title, record["attempts"], error))
                self.logger.error(
                    log.VIDEO_GIVEN_UP,
                    video_id=video_id,
                    title=title,
                    attempts=record["attempts"],
                    error=error,
                    message=(
                        f"gave up on {video_id} after {record['attempts']} attempts; "
                        f"`playlist-cron retry {video_id}` tries again"
                    ),
                )
            self.console.say(f"Failed {title or video_id}: {error}")

    def warning(self, message: str) -> None:
        with self.writer:
            self.logger.warning("yt_dlp_warning", message=message)

    def feed_failed(self, playlist_url: str, feed_url: str, reason: str, error: str, then: str) -> None:
        self.activity()
        with self.writer:
            self.logger.warning(
                "feed_failed",
                playlist_url=playlist_url,
                feed_url=feed_url,
                reason=reason,
                error=error,
                message=f"the feed {feed_url} of {playlist_url} could not be read ({error}); {then}",
            )
            self.console.say(f"The feed {feed_url} could not be read ({error}); {then}")

    def feed_repaired(self, playlist_url: str, feed_url: str, repairs: tuple[str, ...]) -> None:
        with self.writer:
            self.logger.warning(
                "feed_repaired",
                playlist_url=playlist_url,
                feed_url=feed_url,
                repairs=list(repairs),
                message=f"the feed {feed_url} of {playlist_url} was read after repairing it: {', '.join(repairs)}",
            )
