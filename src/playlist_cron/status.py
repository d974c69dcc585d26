"""`status`: the counters, the last check, the lock holder, each playlist's reads and a health verdict, as JSON or
as text."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypedDict

from playlist_cron import clock, lock, outage, reads
from playlist_cron import state as state_module
from playlist_cron.config import Config
from playlist_cron.records import Counters
from playlist_cron.state import StateStore

if TYPE_CHECKING:
    from playlist_cron.records import LogFailureRecord, State
    from playlist_cron.state import OutcomeName

STALE_AFTER_INTERVALS = 3


# The shapes of `status --json` (see the contract); a test proves `report` gives exactly these keys.


class HolderRecord(TypedDict):
    """A lock holder as `status --json` shows it."""

    pid: int | None
    started_at: str | None
    held_s: float | None


class NetworkOutage(TypedDict):
    """A streak of network failures as `status --json` shows it."""

    since: str
    failing_s: float
    failed_checks: int
    error: str | None
    alerted_at: str | None
    alert_after_s: int
    past_threshold: bool


class FailedVideo(TypedDict):
    """A failed video as `status --json` shows it."""

    video_id: str | None
    archive_id: str
    title: str | None
    attempts: int | None
    next_retry_at: str | None
    given_up: bool
    error: str | None


class PlaylistReads(TypedDict):
    """How a playlist was last read and when it is next read whole, as `status --json` shows it.

    `url` and `feed_url` are redacted as the log redacts them. `feed_url` is the feed a check would read now (null:
    none, so every check reads the playlist whole); `feed_reads` says whether it has one. `next_full_read_at` is null
    when the playlist is never read whole again (its feed alone: `full_scan_interval_seconds` 0, or its URL is itself
    a feed). Otherwise it is when a check next reads it whole: its last full read plus `full_scan_interval_seconds`,
    but no sooner than the next check is due (`next_check_due_at`, or now before any check), since only a check reads.
    `full_read_due` is true when the next check reads it whole: the full read is already due by then, or it has no
    feed, or it has never been read whole. A `last_feed_error` is the last feed read's failure, cleared by a feed
    read that works; the check fell back to a full read, so it is no problem by itself.
    """

    url: str
    feed_url: str | None
    feed_reads: bool
    last_feed_read_at: str | None
    last_feed_error: str | None
    last_full_read_at: str | None
    next_full_read_at: str | None
    full_read_due: bool
    channel_id: str | None
    full_scan_interval_seconds: int


class Status(Counters):
    """The `status --json` object (see the contract)."""

    config: str
    last_check_at: str | None
    last_outcome: OutcomeName | None
    last_outcome_check: int | None
    last_duration_s: float | None
    last_completed_at: str | None
    last_failure_reason: str | None
    last_error: str | None
    next_check_due_at: str | None
    lock_file: str
    lock_holder: HolderRecord | None
    cooldown_until: str | None
    failed_videos: list[FailedVideo]
    playlists: list[PlaylistReads]
    network_outage: NetworkOutage | None
    log_file: str
    log_write_failures_total: int
    last_log_write_failure: LogFailureRecord | None
    state_file: str
    healthy: bool
    problems: list[str]
    notes: list[str]


def printed_id(text: str) -> str:
    """Given a video id or key as recorded, return it on one line: a feed's guid may hold line breaks."""
    return " ".join(text.split())


def report(config: Config) -> Status:
    """Given a config, return the `status --json` object."""
    store = StateStore.for_config(config)
    state = store.read()
    now_s = clock.now_s()
    notes = list(store.recovery_notes)
    if store.read_path != store.path:
        notes.append(
            f"the state is read from {store.read_path}, which every config in {store.state_dir} used to share; "
            f"the next check moves it to {store.path}, unless another config's check takes it first"
        )
    capped_from = state_module.cap_cooldown(state, config.cooldown_seconds, now_s)
    if capped_from is not None:
        notes.append(
            f"the cooldown until {capped_from} is further ahead than {state_module.MAX_COOLDOWN_FACTOR} x "
            f"cooldown_seconds; the next check cuts it to {state['cooldown_until']}"
        )
    holder = lock.holder(config.lock_file)
    problems = []
    last_check_s = clock.parse_iso(state["last_check_at"])
    stale_after_s = STALE_AFTER_INTERVALS * config.check_interval_seconds
    held_s = holder.held_s(now_s) if holder else None
    # A check that holds the lock within max_runtime_seconds is the reason no other has started (systemd's
    # timer never starts one beside it): that is not staleness. A lock held longer is its own problem below.
    running = holder is not None and (held_s is None or held_s <= config.max_runtime_seconds)
    if last_check_s is None and not running:
        problems.append("no check has run yet: is the crontab entry (or the systemd timer) installed?")
    elif last_check_s is not None and now_s - last_check_s > stale_after_s and not running:
        problems.append(
            f"the last check started {now_s - last_check_s:.0f} s ago, more than three intervals ({stale_after_s} s): "
            "is cron (or the systemd timer) running the command?"
        )
    if holder is not None and held_s is not None and held_s > config.max_runtime_seconds:
        problems.append(
            f"the lock has been held by pid {holder.pid} for {held_s:.0f} s, longer than max_runtime_seconds "
            f"({config.max_runtime_seconds})"
        )
    network_outage = outage.describe(state, now_s, config.network_alert_after_seconds)
    if network_outage is not None and network_outage["past_threshold"]:
        problems.append(
            f"network failures for {network_outage['failing_s']:.0f} s since {network_outage['since']} "
            f"({outage.checks(network_outage['failed_checks'])}), longer than network_alert_after_seconds "
            f"({config.network_alert_after_seconds}): {network_outage['error']}"
        )
    # A network failure is a problem only once its streak has lasted past the threshold (above).
    if state.get("last_ran_outcome") == "FAILED" and state.get("last_failure_reason") != "network":
        problems.append(f"the last check failed ({state.get('last_failure_reason')}): {state.get('last_error')}")
    log_failure = state.get("last_log_write_failure")
    if isinstance(log_failure, dict) and log_failure.get("check") == state["checks_total"]:
        # Only while the latest check could not write: a check that writes its log again clears it.
        problems.append(
            f"the log {config.log_file} could not record the events of check #{log_failure['check']} "
            f"({log_failure.get('error')}); {state.get('log_write_failures_total', 0)} lines missed in all"
        )
    failed_videos: list[FailedVideo] = [
        {
            "video_id": printed_id(record["video_id"]) if isinstance(record.get("video_id"), str) else None,
            "archive_id": printed_id(archive_id),
            "title": record.get("title"),
            "attempts": record.get("attempts"),
            "next_retry_at": record.get("next_retry_at"),
            "given_up": bool(record.get("given_up")),
            "error": record.get("error"),
        }
        for archive_id, record in sorted(state["failed_videos"].items())
    ]
    next_check_s = last_check_s + config.check_interval_seconds if last_check_s else None
    return {
        "config": str(config.path),
        "checks_total": state["checks_total"],
        "skipped_total": state["skipped_total"],
        "consecutive_skipped": state["consecutive_skipped"],
        "completed_total": state["completed_total"],
        "failed_total": state["failed_total"],
        "deferred_total": state["deferred_total"],
        "downloaded_total": state["downloaded_total"],
        "last_check_at": state["last_check_at"],
        "last_outcome": state["last_outcome"],
        "last_outcome_check": state.get("last_outcome_check"),
        "last_duration_s": state["last_duration_s"],
        "last_completed_at": state["last_completed_at"],
        "last_failure_reason": state.get("last_failure_reason"),
        "last_error": state.get("last_error"),
        "next_check_due_at": clock.iso(next_check_s),
        "lock_file": str(config.lock_file),
        "lock_holder": holder.as_dict(now_s) if holder else None,
        "cooldown_until": state["cooldown_until"] if _in_future(state["cooldown_until"], now_s) else None,
        "failed_videos": failed_videos,
        "playlists": playlist_reads(config, state, now_s if next_check_s is None else next_check_s),
        "network_outage": network_outage,
        "log_file": str(config.log_file),
        "log_write_failures_total": state.get("log_write_failures_total", 0),
        "last_log_write_failure": state.get("last_log_write_failure"),
        "state_file": str(store.path),
        "healthy": not problems,
        "problems": problems,
        "notes": notes,
    }


def playlist_reads(config: Config, state: State, next_check_s: float) -> list[PlaylistReads]:
    """Given a config, its state and when its next check is due, return each playlist's reads in config order."""
    shown: list[PlaylistReads] = []
    for playlist in config.playlists:
        record = state["playlists"].get(reads.record_key(playlist.url))
        feed_url = reads.feed_url_for(playlist, record)
        full_read_s = reads.next_full_read_s(playlist, record)
        record = record or {}
        shown.append(
            {
                "url": reads.record_key(playlist.url),
                "feed_url": reads.record_key(feed_url) if feed_url else None,
                "feed_reads": feed_url is not None,
                "last_feed_read_at": record.get("last_feed_read_at"),
                "last_feed_error": record.get("last_feed_error"),
                "last_full_read_at": record.get("last_full_read_at"),
                "next_full_read_at": None if full_read_s is None else clock.iso(max(full_read_s, next_check_s)),
                "full_read_due": full_read_s is not None and full_read_s <= next_check_s,
                "channel_id": record.get("channel_id"),
                "full_scan_interval_seconds": playlist.full_scan_interval_seconds,
            }
        )
    return shown


def _in_future(timestamp: str | None, now_s: float) -> bool:
    moment = clock.parse_iso(timestamp)
    return moment is not None and moment > now_s


def render_text(status: Status) -> str:
    """Given the `status --json` object, return it as lines for a person."""
    lines = [
        f"playlist-cron status for {status['config']}",
        f"Total checks performed: {status['checks_total']}",
        f"Checks skipped due to long downloads: {status['skipped_total']}",
        f"Completed: {status['completed_total']}  Failed: {status['failed_total']}  "
        f"Deferred: {status['deferred_total']}  Videos downloaded: {status['downloaded_total']}",
    ]
    if status["last_check_at"]:
        lines.append(f"Last check started: {status['last_check_at']}")
        duration = ""
        if status["last_duration_s"] is not None:
            took = "in" if status["last_outcome"] != "SKIPPED" else "; the last check that ran took"
            duration = f" {took} {status['last_duration_s']:.1f} s"
        lines.append(f"Last outcome: {status['last_outcome']} (check #{status['last_outcome_check']}){duration}")
        lines.append(f"Next check due: {status['next_check_due_at']}")
    else:
        lines.append("Last check: none yet")
    lines.append(f"Last completed: {status['last_completed_at'] or 'never'}")
    if status["consecutive_skipped"]:
        lines.append(f"Consecutive skips: {status['consecutive_skipped']}")
    holder = status["lock_holder"]
    if holder:
        held = f"{holder['held_s']:.0f} s" if holder["held_s"] is not None else "an unknown time"
        lines.append(f"Lock: held by pid {holder['pid']} for {held} ({status['lock_file']})")
    else:
        lines.append(f"Lock: free ({status['lock_file']})")
    if status["cooldown_until"]:
        lines.append(f"Cooldown: no requests until {status['cooldown_until']}")
    network_outage = status.get("network_outage")
    if network_outage:
        threshold_s = network_outage["alert_after_s"]
        alerting = (
            f"longer than {threshold_s} s" if network_outage["past_threshold"] else f"quiet until {threshold_s} s"
        )
        lines.append(
            f"Network: failing since {network_outage['since']} ({network_outage['failing_s']:.0f} s, "
            f"{outage.checks(network_outage['failed_checks'])}; {alerting}): {network_outage['error']}"
        )
    if status["playlists"]:
        lines.append("Playlists (times UTC):")
        lines.extend(f"  {playlist['url']}: {_reads_line(playlist)}" for playlist in status["playlists"])
    if status["failed_videos"]:
        given_up = sum(1 for video in status["failed_videos"] if video["given_up"])
        lines.append(f"Failed videos: {len(status['failed_videos'])} ({given_up} given up)")
        for video in status["failed_videos"]:
            when = "given up" if video["given_up"] else f"next try at {video['next_retry_at']}"
            error = printed_id(str(video["error"]))
            lines.append(f"  {video['video_id']}: {video['attempts']} attempts, {when}: {error}")
    lines.append(f"Log: {status['log_file']}")
    if status["log_write_failures_total"]:
        lines.append(f"Log lines lost (the log was unwritable): {status['log_write_failures_total']}")
    lines.append(f"State: {status['state_file']}")
    for note in status["notes"]:
        lines.append(f"Note: {note}")
    if status["healthy"]:
        lines.append("Health: OK")
    else:
        lines.append("Health: UNHEALTHY")
        lines.extend(f"  - {problem}" for problem in status["problems"])
    return "\n".join(lines)


def _reads_line(playlist: PlaylistReads) -> str:
    """Given a playlist's reads, return them in a few words: `feed read 23:40, full read 18:00, next full read ...`."""
    full_read = f"full read {_short_time(playlist['last_full_read_at'])}"
    if not playlist["feed_reads"]:
        return f"{full_read}, every check (no feed)"
    feed_read = f"feed read {_short_time(playlist['last_feed_read_at'])}"
    if playlist["last_feed_error"]:
        feed_read += f" (last try failed: {printed_id(playlist['last_feed_error'])})"
    next_full_read = "at the next check" if playlist["full_read_due"] else _short_time(playlist["next_full_read_at"])
    return f"{feed_read}, {full_read}, next full read {next_full_read}"


def _short_time(timestamp: str | None) -> str:
    """Given an ISO timestamp, return it as few characters as today allows (`23:40`, `12-01 23:40`), or "never"."""
    moment_s = clock.parse_iso(timestamp)
    if moment_s is None:
        return "never"
    moment = datetime.fromtimestamp(moment_s, tz=timezone.utc)
    today = datetime.fromtimestamp(clock.now_s(), tz=timezone.utc)
    if moment.date() == today.date():
        return moment.strftime("%H:%M")
    return moment.strftime("%m-%d %H:%M" if moment.year == today.year else "%Y-%m-%d %H:%M")
