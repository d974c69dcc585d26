"""The log's events as the report understands them: each field it reads checked by type and range, else the whole
event is not understood (counted with the lines that are not JSON, never a crash nor a count to allocate by)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from playlist_cron import clock

MAX_CHECK_NUMBER = 2**53  # a check a second for 285 million years
MAX_PID = 2**31
MAX_VIDEOS = 10**7  # in one check (a whole channel's first sync is thousands)
MAX_BYTES = 10**18  # an exabyte
MAX_SECONDS = 10 * 365 * 86400.0  # a duration, a lock held: ten years
MAX_PLAYLISTS = 100_000  # in one final event
LATEST_S = 2**35  # the year 3058: later timestamps are not the log's
FINAL_EVENTS = ("check_completed", "check_failed", "check_deferred")

Rule = Callable[[object], bool]


def _whole(maximum: int, minimum: int = 0) -> Rule:
    def rule(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum

    return rule


def _seconds(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= MAX_SECONDS
    )


def _text(value: object) -> bool:
    return isinstance(value, str)


def _playlist(value: object) -> bool:
    return isinstance(value, dict) and _fields_hold(value, PLAYLIST_FIELDS, ("url",))


def _playlists(value: object) -> bool:
    return isinstance(value, list) and len(value) <= MAX_PLAYLISTS and all(_playlist(item) for item in value)


PID = _whole(MAX_PID, minimum=1)
COUNT = _whole(MAX_VIDEOS)
PLAYLIST_FIELDS: dict[str, Rule] = {"url": _text, "read": _text, "downloaded": COUNT}
_COMMON: dict[str, Rule] = {"check": _whole(MAX_CHECK_NUMBER, minimum=1), "run_id": _text}
_FINAL: dict[str, Rule] = {
    **_COMMON,
    "duration_s": _seconds,
    "downloaded": COUNT,
    "failed": COUNT,
    "already_archived": COUNT,
    "waiting_retry": COUNT,
    "bytes": _whole(MAX_BYTES),
    "reason": _text,
    "error": _text,
    "playlists": _playlists,
}
# Per event the report reads: the rules of its fields; a field may be absent or null unless REQUIRED names it.
FIELDS: dict[str, dict[str, Rule]] = {
    "check_started": {**_COMMON, "pid": PID},
    "check_skipped": {**_COMMON, "holder_pid": PID, "lock_held_s": _seconds, "reason": _text},
    **dict.fromkeys(FINAL_EVENTS, _FINAL),
    "video_failed": {**_COMMON, "video_id": _text, "attempts": COUNT},
    "video_given_up": {**_COMMON, "video_id": _text, "attempts": COUNT},
}
# A check that could not reach its database logs its `check_failed` without a number: its counters are there.
REQUIRED: dict[str, tuple[str, ...]] = {"check_started": ("check",), "check_skipped": ("check",)}


def _fields_hold(event: Mapping[str, object], rules: Mapping[str, Rule], required: tuple[str, ...]) -> bool:
    """Whether each field of `event` that `rules` names is null or keeps its rule, and none of `required` is null."""
    for name in required:
        if event.get(name) is None:
            return False
    for name, value in event.items():
        rule = rules.get(name)
        if rule is not None and value is not None and not rule(value):
            return False
    return True


def moment(event: Mapping[str, object], name: str) -> float | None:
    """Given a parsed event the report reads (its `event` is `name`), return its time in seconds since the epoch, or
    None when it is not understood: a field of the wrong type or out of range, or no timestamp."""
    rules = FIELDS.get(name)
    timestamp = event.get("timestamp")
    if rules is None or not isinstance(timestamp, str):
        return None
    try:
        at_s = clock.parse_iso(timestamp)  # not datetime.fromisoformat alone: before 3.11 it refuses a trailing Z
    except (ValueError, OverflowError):
        return None
    if at_s is None or not 0 <= at_s <= LATEST_S:
        return None
    return at_s if _fields_hold(event, rules, REQUIRED.get(name, ())) else None
