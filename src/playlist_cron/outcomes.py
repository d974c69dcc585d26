"""How a check can end and what the state counts: the outcome and counter names, a leaf every room may import."""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

OutcomeName = Literal["COMPLETED", "FAILED", "DEFERRED", "SKIPPED"]  # how a check ended: its final event's outcome
RanOutcome = Literal["COMPLETED", "FAILED", "DEFERRED"]  # the outcome of a check that ran (held the run lock)
OUTCOMES: tuple[OutcomeName, ...] = ("SKIPPED", "COMPLETED", "FAILED", "DEFERRED")

CounterName = Literal[
    "checks_total",
    "skipped_total",
    "consecutive_skipped",
    "completed_total",
    "failed_total",
    "deferred_total",
    "downloaded_total",
]
COUNTERS: tuple[CounterName, ...] = get_args(CounterName)
MONOTONIC_COUNTERS: tuple[CounterName, ...] = tuple(name for name in COUNTERS if name != "consecutive_skipped")


class Outcome(NamedTuple):
    """How one check ended, for `cli` to turn into an exit code: the outcome of its final event, and why."""

    outcome: OutcomeName | Literal["NOT_DUE"]  # NOT_DUE: a fleet's check that found no playlist due
    reason: str | None = None  # the final event's reason: network, timeout, interrupted, ...
    signal_number: int | None = None  # the signal that ended it, if one did
    check: int | None = None  # the check's number; None for one that never held the run lock
    run_id: str | None = None  # the check's run id, on each of its events

    @property
    def ran(self) -> bool:
        """Whether the check held the run lock and worked (COMPLETED, FAILED or DEFERRED)."""
        return self.check is not None and self.outcome in ("COMPLETED", "FAILED", "DEFERRED")
