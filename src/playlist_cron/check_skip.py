"""A SKIPPED check: the run lock is held, so count it, log who holds it and for how long, and say so only if overdue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playlist_cron import log, monitoring
from playlist_cron.check_records import count_due_check, count_lost_log_lines, log_recovery, new_run_id
from playlist_cron.outcomes import Outcome

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron.config import Config
    from playlist_cron.console import Console
    from playlist_cron.storage import Storage

SKIP_REASON = "previous download still in progress"


def skip(
    config: Config,
    storage: Storage,
    log_file: log.LogFile,
    logger: FilteringBoundLogger,
    console: Console,
    now_s: float,
) -> Outcome:
    """Count, log and say a check that found the run lock held: SKIPPED, and by whom for how long."""
    holder = storage.run_lock.holder()
    with storage.state.update() as state:
        number = count_due_check(state, now_s)
        state["skipped_total"] += 1
        state["consecutive_skipped"] += 1
        state["last_outcome"] = "SKIPPED"
        state["last_outcome_check"] = number
    logger = logger.bind(check=number, run_id=new_run_id())
    log_recovery(storage.state, logger, console)
    held_s = holder.held_s(now_s) if holder else None
    overdue = held_s is not None and held_s > config.max_runtime_seconds
    holder_pid = holder.pid if holder else None
    (logger.error if overdue else logger.warning)(
        log.CHECK_SKIPPED,
        outcome="SKIPPED",
        reason=SKIP_REASON,
        skipped_total=state["skipped_total"],
        consecutive_skipped=state["consecutive_skipped"],
        holder_pid=holder_pid,
        **({"holder_host": holder.host} if holder is not None and holder.host is not None else {}),
        lock_held_s=held_s,
        message=f"Check #{number} - SKIPPED ({SKIP_REASON}) - Total skipped: {state['skipped_total']}",
    )
    who = f"pid {holder_pid}" if holder is None or holder.host is None else f"{holder.host} (pid {holder_pid})"
    if overdue:
        console.alert(
            f"playlist-cron: the lock {storage.run_lock.name} has been held by {who} for {held_s:.0f} s, "
            f"longer than max_runtime_seconds ({config.max_runtime_seconds}); is a download stuck?"
        )
    else:
        console.say(f"Check #{number} SKIPPED: {SKIP_REASON} ({who}, for {held_s or 0:.0f} s)")
    if log_file.uncounted_lines:  # before the metrics, which must show a log that fails
        with storage.state.update() as state:
            count_lost_log_lines(state, log_file, number)
    # A SKIPPED check leaves every other field as it was: the last success stays the last COMPLETED check's.
    monitoring.send_metrics(config, state, held_s, logger)
    return Outcome("SKIPPED", SKIP_REASON, check=number)
