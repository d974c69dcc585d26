"""How a check can end and what the state counts: the outcome and counter names, a leaf every room may import."""

from __future__ import annotations

from typing import Literal, get_args

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
