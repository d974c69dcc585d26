"""The `status --json` object gathered from the state file and the lock; for a config with `database_url`, from the
database, with every host's counters (the fleet)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from playlist_cron import clock, failures, outage, reads
from playlist_cron import state as state_module
from playlist_cron.config import STDOUT_LOG, Config
from playlist_cron.failures import printed_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from playlist_cron.config import Playlist
    from playlist_cron.records import (
        FailedVideo,
        Fleet,
        FleetHost,
        FleetTotals,
        HolderRecord,
        PlaylistHolder,
        PlaylistReadRecord,
        PlaylistReads,
        State,
        Status,
    )
    from playlist_cron.storage.status_view import FleetView, PlaylistRow, StatusReading

    # A playlist of the config, its key, its read record, and its row in the database (a fleet's).
    PlaylistEntry = tuple[Playlist, str, PlaylistReadRecord | None, PlaylistRow | None]

STALE_AFTER_INTERVALS = 3


def log_setting(config: Config) -> str:
    """The log's path, or "-" (the config's own spelling) when the events go to each check's stdout: `status` has
    no file to point at then, and a script reading `log_file` can tell the two apart."""
    return STDOUT_LOG if config.log_file is None else str(config.log_file)


def report(config: Config) -> Status:
    """Given a config, return the `status --json` object, whole.

    For a config with `database_url`, raise SchemaMissing or SchemaNewer as a check would; a database that cannot be
    reached is a problem in the object, not an error.
    """
    status, playlists = stream(config)
    status["playlists"] = list(playlists)
    return status


def stream(config: Config) -> tuple[Status, Iterator[PlaylistReads]]:
    """Given a config, return the `status --json` object without its playlists (an empty list in their place), and
    its playlists, made one at a time as they are iterated: 10,000 of them, with their records, are never held
    at once. Iterate them once, to the end (or close them): a fleet's are read from the database as they go.

    Raise as `report` does; and DatabaseUnavailable when the database is lost while the playlists are read.
    """
    from playlist_cron import storage as storages
    from playlist_cron.errors import DatabaseUnavailable

    source = storages.status_for(config)
    try:
        reading = source.read()
    except DatabaseUnavailable as error:
        storage = storages.open_for(config)  # the streak of checks that could not reach it: this host's own
        local = storage.reach_state.read() if storage.reach_state is not None else None
        return _unreachable(config, local, f"{source.where} cannot be reached: {error.detail}"), iter(())
    now_s = clock.now_s()
    if reading.fleet is not None:
        return _fleet_report(config, reading.fleet, now_s)
    return _file_report(config, reading, now_s)


def _file_report(config: Config, reading: StatusReading, now_s: float) -> tuple[Status, Iterator[PlaylistReads]]:
    """The status of a config whose storage is this host's files."""
    holder = reading.holder
    problems = []
    last_check_s = clock.parse_iso(reading.state["last_check_at"])
    held_s = holder.held_s(now_s) if holder else None
    # A check that holds the lock within max_runtime_seconds is the reason no other has started (systemd's
    # timer never starts one beside it): that is not staleness. A lock held longer is its own problem below.
    running = holder is not None and (held_s is None or held_s <= config.max_runtime_seconds)
    problems += _staleness(config, last_check_s, now_s, running, fleet=False)
    if holder is not None and held_s is not None and held_s > config.max_runtime_seconds:
        problems.append(
            f"the lock has been held by pid {holder.pid} for {held_s:.0f} s, longer than max_runtime_seconds "
            f"({config.max_runtime_seconds})"
        )
    records = reading.reads
    entries: Iterable[PlaylistEntry] = (
        (playlist, key, records.get(key), None)
        for playlist, key in ((playlist, reads.record_key(playlist.url)) for playlist in config.playlists)
    )
    return _with_state(
        config,
        reading.state,
        entries,
        now_s,
        problems=problems,
        notes=reading.notes,
        lock_file=reading.lock_file,
        lock_holder=holder.as_dict(now_s) if holder else None,
        state_file=reading.state_file,
    )


DAMAGE_NAMED = 3  # the damaged read records a fleet's status names; the rest it counts


def _fleet_report(config: Config, view: FleetView, now_s: float) -> tuple[Status, Iterator[PlaylistReads]]:
    """The status of a config whose storage several hosts share: this host's state and the fleet's."""
    problems: list[str] = []
    hosts = [_fleet_host(host, row, now_s) for host, row in view.hosts]
    checks_s = [moment for moment in (clock.parse_iso(host["last_check_at"]) for host in hosts) if moment is not None]
    # A playlist held within max_runtime_seconds is a check at work: while it runs, no other host may find anything
    # due, so the fleet's last check may be old without anything wrong.
    running = any(row.held_s is None or row.held_s <= config.max_runtime_seconds for row in view.held.values())
    problems += _staleness(config, max(checks_s, default=None), now_s, running, fleet=True)
    for key, row in view.held.items():
        if row.held_s is not None and row.held_s > config.max_runtime_seconds:
            problems.append(
                f"the playlist {key} has been held by {row.holder_host} (pid {row.holder_pid}) for {row.held_s:.0f} s, "
                f"longer than max_runtime_seconds ({config.max_runtime_seconds})"
            )
    fleet: Fleet = {
        "database": view.database,
        "collection": view.collection,
        "host": view.host,
        "hosts": hosts,
        "totals": _totals(hosts),
    }
    held = view.held
    damaged: list[str] = []

    def entries() -> Iterator[PlaylistEntry]:
        # The database's playlists first: the last of them ends its snapshot, before zip looks at the config's.
        for found, playlist in zip(view.playlists, config.playlists, strict=True):
            if found.damage is not None:
                damaged.append(found.damage)
            yield playlist, found.key, found.record, held.get(found.key, found.row)

    status, playlists = _with_state(
        config,
        view.state,
        entries(),
        now_s,
        problems=problems,
        notes=list(view.notes),
        lock_file=None,
        lock_holder=None,
        state_file=None,
        fleet=fleet,
    )

    def noting_damage() -> Iterator[PlaylistReads]:
        """The playlists; then, before the notes are shown (they follow the playlists), the damaged records."""
        yield from playlists
        status["notes"] += damage_notes(damaged)

    return status, noting_damage()


def damage_notes(damaged: list[str]) -> list[str]:
    """Given the notes of the read records left out as damaged, return those status shows: the first few, the rest
    counted (10,000 damaged rows are not 10,000 notes)."""
    notes = damaged[:DAMAGE_NAMED]
    if len(damaged) > DAMAGE_NAMED:
        notes.append(f"{len(damaged) - DAMAGE_NAMED} more damaged read records; each is read whole too")
    return notes


def _totals(hosts: list[FleetHost]) -> FleetTotals:
    return {
        "checks_total": sum(host["checks_total"] for host in hosts),
        "skipped_total": sum(host["skipped_total"] for host in hosts),
        "completed_total": sum(host["completed_total"] for host in hosts),
        "failed_total": sum(host["failed_total"] for host in hosts),
        "deferred_total": sum(host["deferred_total"] for host in hosts),
        "downloaded_total": sum(host["downloaded_total"] for host in hosts),
    }


def _unreachable(config: Config, local: State | None, problem: str) -> Status:
    """The status of a config whose database cannot be reached: the problem, and what this host keeps itself (`local`:
    the streak of checks that could not reach the database, in its state file)."""
    network_outage = outage.describe(local, clock.now_s(), config.network_alert_after_seconds) if local else None
    return {
        "config": str(config.path),
        "checks_total": None,
        "skipped_total": None,
        "consecutive_skipped": None,
        "completed_total": None,
        "failed_total": None,
        "deferred_total": None,
        "downloaded_total": None,
        "last_check_at": None,
        "last_outcome": None,
        "last_outcome_check": None,
        "last_duration_s": None,
        "last_completed_at": None,
        "last_failure_reason": None,
        "last_error": None,
        "next_check_due_at": None,
        "lock_file": None,
        "lock_holder": None,
        "cooldown_until": None,
        "failed_videos": [],
        "playlists": [],
        "network_outage": network_outage,
        "log_file": log_setting(config),
        "log_write_failures_total": None,
        "last_log_write_failure": None,
        "state_file": None,
        "fleet": None,
        "healthy": False,
        "problems": [problem],
        "notes": [],
    }


def _fleet_host(host: str, row: dict[str, Any], now_s: float) -> FleetHost:
    """Given a host's name and its row of the state (read as it is: another host's row is not this one's to judge),
    return what `status` shows of it."""

    def count(name: str) -> int:
        value = row.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def text(name: str) -> str | None:
        value = row.get(name)
        return value if isinstance(value, str) else None

    cooldown_until = text("cooldown_until")
    return {
        "host": host,
        "checks_total": count("checks_total"),
        "skipped_total": count("skipped_total"),
        "completed_total": count("completed_total"),
        "failed_total": count("failed_total"),
        "deferred_total": count("deferred_total"),
        "downloaded_total": count("downloaded_total"),
        "last_check_at": text("last_check_at"),
        "last_outcome": text("last_outcome"),
        "cooldown_until": cooldown_until if _in_future(cooldown_until, now_s) else None,
    }


def _staleness(config: Config, last_check_s: float | None, now_s: float, running: bool, *, fleet: bool) -> list[str]:
    """The problem when no check has started for three intervals (a fleet: no check of any host), unless one runs."""
    if running:
        return []
    stale_after_s = STALE_AFTER_INTERVALS * config.check_interval_seconds
    where = " on the hosts" if fleet else ""
    if last_check_s is None:
        who = "no host has checked" if fleet else "no check has run"
        return [f"{who} yet: is the crontab entry (or the systemd timer) installed{where}?"]
    if now_s - last_check_s > stale_after_s:
        whose = "the last check of any host" if fleet else "the last check"
        return [
            f"{whose} started {now_s - last_check_s:.0f} s ago, more than three intervals ({stale_after_s} s): "
            f"is cron (or the systemd timer) running the command{where}?"
        ]
    return []


def _with_state(
    config: Config,
    state: State,
    entries: Iterable[PlaylistEntry],
    now_s: float,
    *,
    problems: list[str],
    notes: list[str],
    lock_file: str | None,
    lock_holder: HolderRecord | None,
    state_file: str | None,
    fleet: Fleet | None = None,
) -> tuple[Status, Iterator[PlaylistReads]]:
    """Given a config's state and what its storage found, return the `status --json` object: the state's fields and
    the problems the state itself shows (this host's), after `problems`; and its playlists, made from `entries` as
    they are iterated."""
    problems = list(problems)
    notes = list(notes)
    capped_from = state_module.cap_cooldown(state, config.cooldown_seconds, now_s)
    if capped_from is not None:
        notes.append(
            f"the cooldown until {capped_from} is further ahead than {state_module.MAX_COOLDOWN_FACTOR} x "
            f"cooldown_seconds; the next check cuts it to {state['cooldown_until']}"
        )
    retries_capped = failures.cap_retry_times(state["failed_videos"], config.retry_backoff_seconds, now_s)
    if retries_capped:
        shown = ", ".join(
            f"{printed_id(state['failed_videos'][key]['video_id'])} (was {was})" for key, was in retries_capped[:3]
        )
        more = f" and {len(retries_capped) - 3} more" if len(retries_capped) > 3 else ""
        notes.append(
            f"{len(retries_capped)} failed videos had a next try further ahead than their retry step allows: "
            f"{shown}{more}; shown at now plus their step, and the next check cuts them so"
        )
    last_check_s = clock.parse_iso(state["last_check_at"])
    worked = not outage.never_completed(state)
    network_outage = outage.describe(state, now_s, config.network_alert_after_seconds, worked=worked)
    if network_outage is not None and network_outage["past_threshold"] and not worked:
        problems.append(
            f"no check has completed yet, and the last failed ({state.get('last_failure_reason')}): "
            f"{network_outage['error']} ({outage.checks(network_outage['failed_checks'])} since "
            f"{network_outage['since']}; an outage is kept quiet only after a first completed check)"
        )
    elif network_outage is not None and network_outage["past_threshold"]:
        problems.append(
            f"network failures for {network_outage['failing_s']:.0f} s since {network_outage['since']} "
            f"({outage.checks(network_outage['failed_checks'])}), longer than network_alert_after_seconds "
            f"({config.network_alert_after_seconds}): {network_outage['error']}"
        )
    # A network (or database) failure is a problem only once its streak is past the threshold (above).
    if state.get("last_ran_outcome") == "FAILED" and state.get("last_failure_reason") not in ("network", "database"):
        problems.append(f"the last check failed ({state.get('last_failure_reason')}): {state.get('last_error')}")
    log_failure = state.get("last_log_write_failure")
    if isinstance(log_failure, dict) and log_failure.get("check") == state["checks_total"]:
        # Only while the latest check could not write: a check that writes its log again clears it.
        problems.append(
            f"the log {config.log_name} could not record the events of check #{log_failure['check']} "
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
    status: Status = {
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
        "lock_file": lock_file,
        "lock_holder": lock_holder,
        "cooldown_until": state["cooldown_until"] if _in_future(state["cooldown_until"], now_s) else None,
        "failed_videos": failed_videos,
        "playlists": [],
        "network_outage": network_outage,
        "log_file": log_setting(config),
        "log_write_failures_total": state.get("log_write_failures_total", 0),
        "last_log_write_failure": state.get("last_log_write_failure"),
        "state_file": state_file,
        "fleet": fleet,
        "healthy": not problems,
        "problems": problems,
        "notes": notes,
    }
    return status, playlist_reads(entries, now_s if next_check_s is None else next_check_s)


def playlist_reads(entries: Iterable[PlaylistEntry], next_check_s: float) -> Iterator[PlaylistReads]:
    """Given the config's playlists with their keys, read records and rows (a fleet's), and when its next check is
    due, return each playlist's reads, in the same order, as they are iterated; a fleet's with their holders and due
    times."""
    next_check_at = clock.iso(next_check_s)  # the next full read of each playlist whose full read is due by then
    for playlist, key, record, row in entries:
        feed_url = reads.feed_url_for(playlist, record)
        full_read_s = reads.full_read_s_given(playlist, record, key, feed_url)
        full_read_due = full_read_s is not None and full_read_s <= next_check_s
        found = record or {}
        yield {
            "url": key,
            "feed_url": reads.record_key(feed_url) if feed_url else None,
            "feed_reads": feed_url is not None,
            "last_feed_read_at": found.get("last_feed_read_at"),
            "last_feed_error": found.get("last_feed_error"),
            "feed_repairs": list(found.get("feed_repairs") or []),
            "last_full_read_at": found.get("last_full_read_at"),
            "next_full_read_at": next_check_at if full_read_due else clock.iso(full_read_s),
            "full_read_due": full_read_due,
            "channel_id": found.get("channel_id"),
            "full_scan_interval_seconds": playlist.full_scan_interval_seconds,
            "holder": _playlist_holder(row),
            "due_at": row.due_at if row is not None else None,
            "last_checked_at": row.last_checked_at if row is not None else None,
        }


def _playlist_holder(row: PlaylistRow | None) -> PlaylistHolder | None:
    if row is None or row.holder_host is None:
        return None
    return {
        "host": row.holder_host,
        "pid": row.holder_pid,
        "since": clock.iso(row.held_since_s),
        "held_s": round(row.held_s, 3) if row.held_s is not None else None,
    }


def _in_future(timestamp: str | None, now_s: float) -> bool:
    moment = clock.parse_iso(timestamp)
    return moment is not None and moment > now_s
