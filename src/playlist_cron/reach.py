"""A storage on another machine (the database) that cannot be reached: a streak of `database` failures, kept in this
host's own state file, quiet until `network_alert_after_seconds` as network failures are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from playlist_cron import clock, log, outage
from playlist_cron.check_records import new_run_id
from playlist_cron.outcomes import Outcome

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron.config import Config
    from playlist_cron.console import Console
    from playlist_cron.storage import StateStorage


def unreachable(
    config: Config,
    local: StateStorage,
    logger: FilteringBoundLogger,
    console: Console,
    error: str,
    now_s: float,
) -> Outcome:
    """The database could not be reached: FAILED `database` (exit 75), nothing downloaded. Its streak is kept in the
    host's own state file (the database cannot keep it), quiet until `network_alert_after_seconds`."""
    with local.update() as state:
        state["last_check_at"] = clock.iso(now_s)
        streak = outage.streak_of(state)
        failing, _ = outage.track(streak, logger, "FAILED", "database", error, config.network_alert_after_seconds)
        state.update(streak)
    logger = logger.bind(run_id=new_run_id())
    fields: dict[str, Any] = {"reason": "database", "error": error, "duration_s": round(clock.now_s() - now_s, 3)}
    if failing is not None:
        fields["network_failing_s"] = round(failing.failing_s, 3)
        fields["network_failed_checks"] = failing.failed_checks
    logger.error(log.CHECK_FAILED, outcome="FAILED", **fields)
    line = f"playlist-cron: FAILED (database): {error} (log: {config.log_name})"
    (console.alert if failing is None or failing.alert else console.say)(line)
    return Outcome("FAILED", "database")


def reachable(config: Config, local: StateStorage, logger: FilteringBoundLogger, console: Console) -> None:
    """The database answers: end a streak of failures to reach it, if the host's state file holds one."""
    if not local.read().get("network_failing_since"):
        return
    with local.update() as state:
        streak = outage.streak_of(state)
        _, recovered = outage.track(streak, logger, "COMPLETED", None, "", config.network_alert_after_seconds)
        state.update(streak)
    if recovered is not None and recovered.alerted:
        console.alert(f"playlist-cron: {outage.recovery_words(recovered)}")
