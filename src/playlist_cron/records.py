"""The shape of the state file and its records for the type checker; `state.STATE_FIELDS` checks their values."""

from __future__ import annotations

from typing import TypedDict

from playlist_cron.state import OutcomeName

# TypedDicts, not dataclasses: the state stays the JSON object it is on disk. Other modules import these only when
# type checking: building them costs about 5 ms (typing compiles each annotation), which the not-due path must not
# pay. A test proves that each one names the fields of its table in `state`, and the same ones as required.


class _RunningRequired(TypedDict):
    check: int
    pid: int
    started_at: str


class RunningRecord(_RunningRequired, total=False):
    """The check that holds the run lock now, or was killed holding it."""

    run_id: str | None  # absent in a record written before run ids


class _FailedVideoRequired(TypedDict):
    video_id: str
    attempts: int


class FailedVideoRecord(_FailedVideoRequired, total=False):
    """A video that failed to download, keyed in `failed_videos` by its archive id ("extractor id")."""

    next_retry_at: str | None
    given_up: bool
    error: str | None
    title: str | None
    url: str | None
    playlist_url: str | None
    first_failed_at: str | None
    last_failed_at: str | None


class PlaylistReadRecord(TypedDict, total=False):
    """How one playlist was last read, keyed in `playlists` by its URL."""

    feed_url: str | None
    etag: str | None
    last_modified: str | None
    last_feed_read_at: str | None
    last_feed_error: str | None
    last_full_read_at: str | None
    channel_id: str | None
    is_feed: bool | None
    playlist_fields: dict[str, str | None] | None


class _LogFailureRequired(TypedDict):
    check: int
    at: str


class LogFailureRecord(_LogFailureRequired, total=False):
    """The latest log line that could not be written."""

    error: str | None


class Counters(TypedDict):
    """The state's counters, which `status --json` shows as they are."""

    checks_total: int
    skipped_total: int
    consecutive_skipped: int
    completed_total: int
    failed_total: int
    deferred_total: int
    downloaded_total: int


class _StateRequired(Counters):
    version: int
    failed_videos: dict[str, FailedVideoRecord]


class State(_StateRequired, total=False):
    """The state of one config. A field added after the first release may be absent from an older file; a read
    fills every absent field with its default (see `STATE_FIELDS`)."""

    last_check_at: str | None
    last_outcome: OutcomeName | None
    last_outcome_check: int | None
    last_ran_outcome: OutcomeName | None
    last_duration_s: float | None
    last_completed_at: str | None
    last_failure_reason: str | None
    last_error: str | None
    cooldown_until: str | None
    cooldown_level: int
    archive_garbage_reported: int
    network_failing_since: str | None
    network_alerted_at: str | None
    network_failed_checks: int
    network_error: str | None
    log_write_failures_total: int
    last_log_write_failure: LogFailureRecord | None
    config_file_writable_reported: str | None
    running: RunningRecord | None
    playlists: dict[str, PlaylistReadRecord]
