"""Wall-clock helpers: one notion of "now" and one timestamp format (ISO 8601, UTC)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import overload


def now_s() -> float:
    return time.time()


@overload
def iso(epoch_s: float) -> str: ...


@overload
def iso(epoch_s: None) -> None: ...


@overload
def iso(epoch_s: float | None) -> str | None: ...


def iso(epoch_s: float | None) -> str | None:
    """Given seconds since the epoch, return an ISO 8601 UTC timestamp with milliseconds, or None."""
    if epoch_s is None:
        return None
    moment = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    """Given a timestamp written by `iso`, return seconds since the epoch, or None."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
