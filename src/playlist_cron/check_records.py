"""What a check writes down besides its events: its final event counted in the state, lost log lines, storage notes.

Shared by a check that runs, a SKIPPED one, and the settling of a check that was killed before its final event.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playlist_cron import clock, log

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron.console import Console
    from playlist_cron.outcomes import CounterName, RanOutcome
    from playlist_cron.records import RunningRecord, State
    from playlist_cron.storage import StateStorage


def new_run_id() -> str:
    """A random UUID (version 4) for one check: in its `running` record, on each event it logs, and in its pings.

    Made from os.urandom rather than the uuid module, whose import would cost the skip path 15 ms.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def count_lost_log_lines(state: State, log_file: log.LogFile, number: int) -> None:
    """Count in the state the lines the log could not record, so that no counter counts what the log lacks unsaid."""
    lost = log_file.take_uncounted()
    if not lost:
        return
    state["log_write_failures_total"] = state.get("log_write_failures_total", 0) + lost
    state["last_log_write_failure"] = {
        "check": number,
        "at": clock.iso(clock.now_s()),
        "error": log.describe(log_file.error) if log_file.error else None,
    }


def log_recovery(state: StateStorage, logger: FilteringBoundLogger, console: Console) -> None:
    """Log what the state storage did on its own (adopted an old file, recovered a damaged one): damage as a warning
    (`state_recovered`), whether or not it is also said on stderr (`alert`)."""
    for note in state.take_notes():
        warn = note.alert or note.event == "state_recovered"
        (logger.warning if warn else logger.info)(note.event, **(note.fields or {}), message=note.message)
        (console.alert if note.alert else console.say)(f"playlist-cron: {note.message}")


def same_run(running: RunningRecord, event: Mapping[str, Any]) -> bool:
    """Whether `event` is a final event of the check that the `running` record names: by its run id.

    Never by check number alone: another config logging to the same file counts its own checks. A record
    written before run ids existed is matched by number among the events that carry no run id either.
    """
    run_id = running.get("run_id")
    if run_id is not None:
        return bool(event.get("run_id") == run_id)
    return event.get("run_id") is None and event.get("check") == running.get("check")


# The counter each outcome of a check that ran adds one to.
RAN_COUNTERS: dict[str, CounterName] = {
    "COMPLETED": "completed_total",
    "FAILED": "failed_total",
    "DEFERRED": "deferred_total",
}


def count_due_check(state: State, started_s: float) -> int:
    """Count a due check that starts at `started_s` (any outcome, SKIPPED too) and return its number."""
    state["checks_total"] += 1
    state["last_check_at"] = clock.iso(started_s)
    if not state.get("first_check_at"):
        state["first_check_at"] = state["last_check_at"]
    return state["checks_total"]


def apply_final_event(state: State, event: Mapping[str, Any]) -> None:
    """Given the state and a check's final event (as logged), count it; shared by a check and its recovery."""
    outcome: RanOutcome = event["outcome"]
    state[RAN_COUNTERS[outcome]] += 1
    state["last_outcome"] = outcome
    state["last_outcome_check"] = event.get("check")
    state["last_ran_outcome"] = outcome
    state["last_duration_s"] = event.get("duration_s")
    state["consecutive_skipped"] = 0
    running = state.get("running")
    if running and same_run(running, event):
        state["running"] = None
    if outcome == "COMPLETED":
        state["last_completed_at"] = event.get("timestamp")
        state["consecutive_failed"] = 0
    elif outcome == "FAILED":
        state["consecutive_failed"] = state.get("consecutive_failed", 0) + 1
        state["last_failure_reason"] = event.get("reason")
        state["last_error"] = event.get("error")


def settle_orphan(state: State, orphan: RunningRecord, log_file: Path | None, logger: FilteringBoundLogger) -> None:
    """The check `orphan` was killed: count its final event if it got one into `log_file`, else log one for it.

    A log on stdout (None) cannot be read back: there a killed check is always settled as interrupted, even one
    killed after its final event went out and before the state counted it (stdout then holds two final events for
    it). A check that still runs (archive_file and download_dir changed since it started, so that it holds other
    locks) is left alone: it logs and counts its own final event.
    """
    from playlist_cron import lock  # loaded already by the storage; named here, where only a running check looks

    if lock.runs_a_check(orphan.get("pid"), clock.parse_iso(orphan.get("started_at"))):
        return
    for event in reversed(log.read_tail(log_file)):
        if event.get("event") in log.FINAL_EVENTS and same_run(orphan, event):
            apply_final_event(state, event)
            return
    event = {
        "check": orphan["check"],
        **({"run_id": orphan["run_id"]} if orphan.get("run_id") else {}),
        "outcome": "FAILED",
        "reason": "interrupted",
        "error": f"the check (pid {orphan.get('pid')}) ended without a final event: it was killed",
        "duration_s": None,
        "started_at": orphan.get("started_at"),
    }
    logger.error(log.CHECK_FAILED, **event)
    event["timestamp"] = clock.iso(clock.now_s())
    apply_final_event(state, event)
