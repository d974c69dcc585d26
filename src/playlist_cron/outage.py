"""A streak of `network` failures: quiet until `network_alert_after_seconds` (at once for a config that never completed
a check), then a line a day, and one at its end."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, cast

from playlist_cron import clock

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron.outcomes import OutcomeName
    from playlist_cron.records import NetworkOutage, State

STREAK_FIELDS = (
    "network_failing_since",
    "network_failed_checks",
    "network_alerted_at",
    "network_error",
    "network_reason",
)
OUTAGE_REASONS = ("network", "database")  # the failures a streak counts: what could not be reached
REPEAT_ALERT_S = 86400  # while an alerted outage lasts, at most one more line per day
# Outcomes that prove the site answered: they end a streak. The rest (a cooldown, a full disk, a signal, a
# stall) made no request or says nothing about the network, and leave the streak as it was.
RECOVERED_BY = {("COMPLETED", None), ("DEFERRED", "rate_limited"), ("FAILED", "playlist_error")}


def _clear_streak(state: State) -> None:
    """Set the state fields of a streak to their values when there is none."""
    state["network_failing_since"] = None  # ISO 8601: when the first network failure of the streak ended its check
    state["network_failed_checks"] = 0  # how many checks of the streak failed with reason `network`
    state["network_alerted_at"] = None  # ISO 8601: when the last stderr line about it was printed; null: none yet
    state["network_error"] = None  # the plain words of the latest network failure
    state["network_reason"] = None  # its reason: "network" (the site) or "database" (a fleet's database)


class Failing(NamedTuple):
    """Where a streak stands after one more network failure."""

    failing_s: float
    failed_checks: int
    since: str
    past_threshold: bool  # the outage is the user's business now: unhealthy, `/fail` pings
    alert: bool  # print one line on stderr now
    worked: bool  # a check of this config has completed before; else no failure is kept quiet


class Recovered(NamedTuple):
    """A streak that a check's outcome has ended."""

    failing_s: float
    failed_checks: int
    since: str
    alerted: bool  # the user was told of it, so they are told it is over
    error: str | None
    reason: str | None  # of the streak's last failure: "network", "database", or None (a state older than this field)


def never_completed(state: State) -> bool:
    """Given the state, return whether no check of its config has completed yet.

    The quiet rule is for outages of something that worked: before a first completed check, a failure to reach the
    site is as likely a wrong URL or port as an outage, and nobody has been told that anything works.
    """
    return state.get("last_completed_at") is None and not state.get("completed_total")


def record_failure(
    state: State, now_s: float, alert_after_s: int, error: str, *, worked: bool = True, reason: str = "network"
) -> Failing:
    """Given the state, now, the threshold, the failure's words and whether a check ever completed, extend (or start)
    the streak in `state` (`reason`: the failure's, one of OUTAGE_REASONS). A config that never completed a check is
    past the threshold at once, and told once a day like any outage that is."""
    since = state.get("network_failing_since")
    since_s = clock.parse_iso(since)
    if since is None or since_s is None or since_s > now_s:  # a new streak, or the clock was set back: start it now
        _clear_streak(state)
        since_s = now_s
        since = clock.iso(now_s)
        state["network_failing_since"] = since
    failed_checks = int(state.get("network_failed_checks") or 0) + 1
    state["network_failed_checks"] = failed_checks
    state["network_error"] = error
    state["network_reason"] = reason
    failing_s = now_s - since_s
    past_threshold = failing_s >= alert_after_s or not worked
    alerted_s = clock.parse_iso(state.get("network_alerted_at"))
    alert = past_threshold and (alerted_s is None or not 0 <= now_s - alerted_s < REPEAT_ALERT_S)
    if alert:
        state["network_alerted_at"] = clock.iso(now_s)
    return Failing(failing_s, failed_checks, since, past_threshold, alert, worked)


def record_outcome(state: State, now_s: float, outcome: OutcomeName, reason: str | None) -> Recovered | None:
    """Given a final outcome other than a network failure, end the streak in `state` if the outcome proves it over."""
    since = state.get("network_failing_since")
    since_s = clock.parse_iso(since)
    if since is None or since_s is None or (outcome, reason) not in RECOVERED_BY:
        return None
    recovered = Recovered(
        failing_s=max(0.0, now_s - since_s),
        failed_checks=int(state.get("network_failed_checks") or 0),
        since=since,
        alerted=state.get("network_alerted_at") is not None,
        error=state.get("network_error"),
        reason=state.get("network_reason"),
    )
    _clear_streak(state)
    return recovered


def describe(state: State, now_s: float, alert_after_s: int, *, worked: bool = True) -> NetworkOutage | None:
    """Given the state, return the streak as `status --json` shows it, or None when there is none; `worked`: whether
    a check ever completed (else the streak is past the threshold at once)."""
    since = state.get("network_failing_since")
    since_s = clock.parse_iso(since)
    if since is None or since_s is None:
        return None
    return {
        "since": since,
        "failing_s": round(max(0.0, now_s - since_s), 3),
        "failed_checks": int(state.get("network_failed_checks") or 0),
        "error": state.get("network_error"),
        "reason": state.get("network_reason"),
        "alerted_at": state.get("network_alerted_at"),
        "alert_after_s": alert_after_s,
        "past_threshold": now_s - since_s >= alert_after_s or not worked,
    }


def checks(count: int) -> str:
    """Given a number of checks, return it in words: "1 check", "3 checks"."""
    return f"{count} check" if count == 1 else f"{count} checks"


def streak_of(state: State) -> State:
    """Given the state, return a copy of its streak fields alone.

    Only the check holding the run lock changes them (a SKIPPED check or `retry` never does), so that check works on
    this copy and writes it back with its final count: one state write, not two.
    """
    return cast("State", {name: state.get(name) for name in STREAK_FIELDS})


def track(
    streak: State,
    logger: FilteringBoundLogger,
    outcome: OutcomeName,
    reason: str | None,
    error: str,
    alert_after_s: int,
    *,
    worked: bool = True,
) -> tuple[Failing | None, Recovered | None]:
    """Given a check's streak fields (see `streak_of`) and its final outcome, extend the streak or end it, in `streak`;
    `worked`: whether a check of the config ever completed (see `never_completed`).

    Return where a streak stands after a network failure, or the streak this outcome ended (logged here, before
    the final event); (None, None) when neither.
    """
    now_s = clock.now_s()
    if outcome == "FAILED" and reason in OUTAGE_REASONS:
        return record_failure(streak, now_s, alert_after_s, error, worked=worked, reason=reason), None
    recovered = record_outcome(streak, now_s, outcome, reason)
    if recovered is not None:
        logger.info(
            "network_recovered",
            failing_s=round(recovered.failing_s, 3),
            failed_checks=recovered.failed_checks,
            since=recovered.since,
            alerted=recovered.alerted,
            reason=recovered.reason or "network",
            message=recovery_words(recovered),
        )
    return None, recovered


def reached_again(recovered: Recovered) -> str:
    """Given an ended streak, return what can be reached again, from its last failure's reason."""
    return f"{'the database' if recovered.reason == 'database' else 'the site'} can be reached again"


def recovery_words(recovered: Recovered) -> str:
    """Given an ended streak, return the words that tell the user it is over."""
    return (
        f"{reached_again(recovered)} after {recovered.failing_s:.0f} s of {recovered.reason or 'network'} failures "
        f"({checks(recovered.failed_checks)} since {recovered.since}; the last: {recovered.error})"
    )
