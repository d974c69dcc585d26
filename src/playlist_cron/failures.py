"""The failed-video policy: when a failed video is due for another try, when it is given up, and forgetting it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from playlist_cron import clock
from playlist_cron.redaction import redact

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron.records import FailedVideoRecord


def is_due(record: FailedVideoRecord | None, now_s: float) -> bool:
    """Given a video's failure record (None: it never failed) and now, return whether it may be tried now."""
    if record is None:
        return True
    if record.get("given_up"):
        return False
    next_retry_s = clock.parse_iso(record.get("next_retry_at"))
    return next_retry_s is None or next_retry_s <= now_s


def retry_step_s(record: FailedVideoRecord, backoff_s: Sequence[int]) -> int | None:
    """Given a failed video's record and the retry steps, return the wait its last failure set (None: given up, or no
    steps at all): the step of its attempts, the last step for attempts beyond them (the steps were shortened)."""
    if record.get("given_up") or not backoff_s:
        return None
    attempts = record.get("attempts") or 1
    return backoff_s[min(max(attempts, 1), len(backoff_s)) - 1]


def cap_retry_times(
    failed_videos: dict[str, FailedVideoRecord], backoff_s: Sequence[int], now_s: float
) -> list[tuple[str, str]]:
    """Bring each `next_retry_at` further ahead than its step allows (set under a wrong clock?) back to now plus that
    step, in `failed_videos`, as `state.cap_cooldown` does for a cooldown.

    Return (key, the value it had) for each one capped.
    """
    capped = []
    for key, record in failed_videos.items():
        step_s = retry_step_s(record, backoff_s)
        next_retry_s = clock.parse_iso(record.get("next_retry_at"))
        if step_s is None or next_retry_s is None or next_retry_s <= now_s + step_s:
            continue
        capped.append((key, str(record["next_retry_at"])))
        record["next_retry_at"] = clock.iso(now_s + step_s)
    return capped


def log_capped(
    logger: FilteringBoundLogger, failed_videos: dict[str, FailedVideoRecord], capped: list[tuple[str, str]]
) -> None:
    """Log `retry_capped` for each retry time `cap_retry_times` cut back: (key, the value it had)."""
    for key, was in capped:
        record = failed_videos[key]
        logger.warning(
            "retry_capped",
            video_id=record["video_id"],
            next_retry_at_was=was,
            next_retry_at=record["next_retry_at"],
            attempts=record.get("attempts"),
            message=f"the next try of {record['video_id']} was at {was}, further ahead than its retry step allows "
            f"(was the clock wrong when it failed?); it is now at {record['next_retry_at']}",
        )


def due_retries(
    failed_videos: dict[str, FailedVideoRecord], playlist_url: str, now_s: float
) -> list[tuple[str, str | None]]:
    """The failed videos of a playlist that are due for another try and whose URL is known: (url, title)."""
    return [
        (url, record.get("title"))
        for record in failed_videos.values()
        if record.get("playlist_url") == redact(playlist_url) and (url := record.get("url")) and is_due(record, now_s)
    ]


def waiting_count(failed_videos: dict[str, FailedVideoRecord], playlist_url: str, now_s: float) -> int:
    """How many failed videos of a playlist wait for a later retry (given up ones too)."""
    return sum(
        1
        for record in failed_videos.values()
        if record.get("playlist_url") == redact(playlist_url) and not is_due(record, now_s)
    )


def record_failure(
    failed_videos: dict[str, FailedVideoRecord],
    key: str,
    *,
    video_id: str,
    title: str | None,
    url: str | None,
    error: str,
    playlist_url: str,
    now_s: float,
    backoff_s: Sequence[int],
) -> FailedVideoRecord:
    """Count one more failure of the video `key` in `failed_videos` and return its record.

    Its next try waits the next step of `backoff_s`; after the last step the video is given up.
    """
    record = failed_videos.get(key) or {"video_id": video_id, "attempts": 0, "first_failed_at": clock.iso(now_s)}
    record["attempts"] += 1
    record["error"] = redact(error)
    record["title"] = title
    record["url"] = redact(url) if url else None
    record["playlist_url"] = redact(playlist_url)
    record["last_failed_at"] = clock.iso(now_s)
    record["given_up"] = record["attempts"] > len(backoff_s)
    record["next_retry_at"] = None if record["given_up"] else clock.iso(now_s + backoff_s[record["attempts"] - 1])
    failed_videos[key] = record
    return record


def forget(failed_videos: dict[str, FailedVideoRecord], video_ids: Sequence[str]) -> list[str]:
    """Forget the failures of the named videos (all, when none is named): they are due at the next check.

    Return the names that matched no record.
    """
    if not video_ids:
        failed_videos.clear()
        return []
    unknown = []
    for video_id in video_ids:
        matches = matching_keys(failed_videos, video_id)
        for key in matches:
            del failed_videos[key]
        if not matches:
            unknown.append(video_id)
    return unknown


def matching_keys(failed_videos: dict[str, FailedVideoRecord], video_id: str) -> list[str]:
    """The keys of the failed videos that `video_id` names, by key or id, written as `status` prints them."""
    wanted = printed_id(video_id)
    return [
        key
        for key, record in failed_videos.items()
        if wanted in (printed_id(key), printed_id(str(record.get("video_id") or "")))
    ]


def printed_id(text: str) -> str:
    """Given a video id or key as recorded, return it on one line: a feed's guid may hold line breaks."""
    return " ".join(text.split())
