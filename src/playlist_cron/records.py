"""Every record type: the state file's (which `state.STATE_FIELDS` checks value by value) and `status --json`'s."""

from __future__ import annotations

from typing import TypedDict

from playlist_cron.outcomes import OutcomeName

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
    """How one playlist was last read, keyed by its URL in the reads file (`reads_file`)."""

    feed_url: str | None
    etag: str | None
    last_modified: str | None
    last_feed_read_at: str | None
    last_feed_error: str | None
    last_full_read_at: str | None
    channel_id: str | None
    is_feed: bool | None
    playlist_fields: dict[str, str | None] | None
    feed_repairs: list[str] | None


class _LogFailureRequired(TypedDict):
    check: int
    at: str


class LogFailureRecord(_LogFailureRequired, total=False):
    """The latest log line that could not be written."""

    error: str | None


class CollectionDueRecord(TypedDict):
    """A fleet's host: when its collection is due next, as the database last told it, and under which config."""

    next_due_at: str
    learned_at: str
    config_digest: str


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
    first_check_at: str | None
    last_outcome: OutcomeName | None
    last_outcome_check: int | None
    last_ran_outcome: OutcomeName | None
    last_duration_s: float | None
    last_completed_at: str | None
    last_failure_reason: str | None
    last_error: str | None
    consecutive_failed: int
    cooldown_until: str | None
    cooldown_level: int
    archive_garbage_reported: int
    network_failing_since: str | None
    network_alerted_at: str | None
    network_failed_checks: int
    network_error: str | None
    network_reason: str | None
    log_write_failures_total: int
    last_log_write_failure: LogFailureRecord | None
    config_file_writable_reported: str | None
    running: RunningRecord | None
    config_digest: str | None
    collection_due: CollectionDueRecord | None


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
    reason: str | None  # "network" or "database"; null for a streak recorded before this field
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


class PlaylistHolder(TypedDict):
    """The host whose check holds a playlist (a database config), as `status --json` shows it."""

    host: str | None
    pid: int | None
    since: str | None
    held_s: float | None


class PlaylistReads(TypedDict):
    """How a playlist was last read and when it is next read whole, as `status --json` shows it.

    `url` and `feed_url` are redacted as the log redacts them. `feed_url` is the feed a check would read now (null:
    none, so every check reads the playlist whole); `feed_reads` says whether it has one. `next_full_read_at` is null
    when the playlist is never read whole again (its feed alone: `full_scan_interval_seconds` 0, or its URL is itself
    a feed). Otherwise it is when a check next reads it whole (`reads.next_full_read_s`: its next slot in the interval
    after its last full read), but no sooner than the next check is due (`next_check_due_at`, or now before any
    check), since only a check reads.
    `full_read_due` is true when the next check reads it whole: the full read is already due by then, or it has no
    feed, or it has never been read whole. A `last_feed_error` is the last feed read's failure, cleared by a feed
    read that works; the check fell back to a full read, so it is no problem by itself. `feed_repairs` names what
    the last feed read that parsed its feed had to repair to read it (`html_entity`, `truncated`...; empty when clean).

    For a config with `database_url` (null otherwise), from the playlist's row in the database: `holder`, the check
    that holds it now (null: none; a holder that died without letting go is none), `due_at`, when a check of any
    host may take it next (null: at once, it has never been checked), and `last_checked_at`, when a check of any
    host was last done with it.
    """

    url: str
    feed_url: str | None
    feed_reads: bool
    last_feed_read_at: str | None
    last_feed_error: str | None
    feed_repairs: list[str]
    last_full_read_at: str | None
    next_full_read_at: str | None
    full_read_due: bool
    channel_id: str | None
    full_scan_interval_seconds: int
    holder: PlaylistHolder | None
    due_at: str | None
    last_checked_at: str | None


class FleetTotals(TypedDict):
    """The counters of every host of a fleet, summed."""

    checks_total: int
    skipped_total: int
    completed_total: int
    failed_total: int
    deferred_total: int
    downloaded_total: int


class FleetHost(FleetTotals):
    """One host of a fleet, from its row in the database."""

    host: str
    last_check_at: str | None
    last_outcome: str | None
    cooldown_until: str | None


class Fleet(TypedDict):
    """The hosts sharing a config's collection, as `status --json` shows them (a config with `database_url`)."""

    database: str  # the database's URL without its password or options
    collection: str
    host: str  # this host's name
    hosts: list[FleetHost]
    totals: FleetTotals


class Status(TypedDict):
    """The `status --json` object (see the contract).

    For a config with `database_url`, the counters and the other fields of the state are this host's (its row in the
    database; `failed_videos` and the playlists' reads are the fleet's), `fleet` has every host's, `lock_file`,
    `lock_holder` and `state_file` are null (each playlist's `holder` says who holds it), and when the database cannot
    be reached, everything only it knows is null or empty.
    """

    config: str
    checks_total: int | None
    skipped_total: int | None
    consecutive_skipped: int | None
    completed_total: int | None
    failed_total: int | None
    deferred_total: int | None
    downloaded_total: int | None
    last_check_at: str | None
    last_outcome: OutcomeName | None
    last_outcome_check: int | None
    last_duration_s: float | None
    last_completed_at: str | None
    last_failure_reason: str | None
    last_error: str | None
    next_check_due_at: str | None
    lock_file: str | None
    lock_holder: HolderRecord | None
    cooldown_until: str | None
    failed_videos: list[FailedVideo]
    playlists: list[PlaylistReads]
    network_outage: NetworkOutage | None
    log_file: str
    log_write_failures_total: int | None
    last_log_write_failure: LogFailureRecord | None
    state_file: str | None
    fleet: Fleet | None
    healthy: bool
    problems: list[str]
    notes: list[str]
