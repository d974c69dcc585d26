"""The log's history read into records: the checks that ran, the skips with the checks that held the lock, the
failed videos and the files read. No HTML: `page` and `timeline` draw these records."""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from playlist_cron import clock

DAY_S = 86400
HOLDER_SLACK_S = 600  # how long after a skip its holder may log `check_started` (a very busy machine)
HOUR_S = 3600
RAN_EVENTS = {"check_completed": "COMPLETED", "check_failed": "FAILED", "check_deferred": "DEFERRED"}
WANTED = ("check_", "video_")  # the events read; the others are not parsed further than their name
_UNUSED = b'"event":"video_downloaded"'  # the checks' final events count the downloads
_STAMP = b'{"timestamp":"'  # how every line of the log begins (structlog, the key order of log.py)
_ROTATED = r"(?:\.\d+|-\d{8}(?:-\d+)?)?(?:\.gz)?"


class Source(NamedTuple):
    """One log file read: its path, its lines, those that were not JSON, the first and last timestamps."""

    path: Path
    lines: int
    not_json: int
    first: str | None
    last: str | None
    note: str = ""


class Check:
    """One check that ran, from its `check_started` and final events."""

    __slots__ = ("end_s", "final", "number", "outcome", "pid", "run_id", "start_s")

    def __init__(self, number: int, run_id: str) -> None:
        self.number = number
        self.run_id = run_id
        self.pid: int | None = None
        self.start_s: float | None = None
        self.end_s: float | None = None
        self.outcome: str | None = None  # None: still running (or its end was not logged)
        self.final: dict[str, Any] = {}


class Skip(NamedTuple):
    number: int
    at_s: float
    holder_pid: int | None
    lock_held_s: float | None
    reason: str
    holder: Check | None


class Log(NamedTuple):
    """What the log files say about the period."""

    checks: list[Check]
    skips: list[Skip]
    videos_failed: list[dict[str, Any]]
    videos_given_up: list[dict[str, Any]]
    downloads: list[tuple[float, str]]  # (when, playlist url) per video downloaded, from the checks' playlists
    sources: list[Source]


def log_files(log_file: Path) -> list[Path]:
    """Given the log's path, return it and logrotate's copies beside it (`.1`, `.2.gz`, `-20261201[.gz]`), oldest
    first (by modification time)."""
    pattern = re.compile(re.escape(log_file.name) + _ROTATED)
    try:
        names = [entry for entry in os.scandir(log_file.parent) if pattern.fullmatch(entry.name)]
    except OSError:
        return []
    found = []
    for entry in names:
        try:
            if entry.is_file():
                found.append((entry.stat().st_mtime, Path(entry.path)))
        except OSError:
            continue
    return [path for _, path in sorted(found, key=lambda pair: (pair[0], pair[1] != log_file))]


def _iso_bytes(epoch_s: float) -> bytes:
    """Given a moment, return the start of the log's timestamps at or after it, for comparing as bytes."""
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S").encode("ascii")


def _epoch(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return clock.parse_iso(text)  # not datetime.fromisoformat alone: before Python 3.11 it refuses a trailing Z
    except ValueError:
        return None


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as file:
        yield from file


def read_log(log_file: Path, since_s: float) -> Log:
    """Given the log's path and the start of the period, return the checks, skips and videos of the period."""
    checks: dict[str, Check] = {}
    starts_by_pid: dict[int, list[Check]] = defaultdict(list)
    skip_events: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    given_up: list[dict[str, Any]] = []
    sources: list[Source] = []
    read_from = _iso_bytes(since_s - DAY_S)
    for path in log_files(log_file):
        try:
            modified_s = path.stat().st_mtime
        except OSError:
            continue
        # A file last written before the period holds nothing of it; the holders of early skips are looked up
        # in the files read, so one file of slack is kept.
        if modified_s < since_s - DAY_S:
            sources.append(Source(path, 0, 0, None, None, "not read: last written before the period"))
            continue
        count = not_json = 0
        first = last = None
        try:
            for raw in _lines(path):
                count += 1
                if not raw.strip():
                    continue
                if raw.startswith(_STAMP) and raw.rstrip().endswith(b"}"):
                    # Lines older than the period (with a day's slack for the holders of early skips), and the
                    # downloads (a third of a busy log; the final events count them), are not parsed.
                    stamp = raw[len(_STAMP) : len(_STAMP) + len(read_from)]
                    if stamp < read_from or _UNUSED in raw:
                        whole = raw[len(_STAMP) : raw.find(b'"', len(_STAMP))].decode("ascii", "replace")
                        first, last = first or whole, whole
                        continue
                try:
                    event = json.loads(raw)
                except ValueError:
                    not_json += 1
                    continue
                if not isinstance(event, dict):
                    not_json += 1
                    continue
                timestamp = event.get("timestamp")
                if isinstance(timestamp, str):
                    first = first or timestamp
                    last = timestamp
                name = event.get("event")
                if not isinstance(name, str) or not name.startswith(WANTED):
                    continue
                _take(event, name, checks, starts_by_pid, skip_events, failed, given_up)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            sources.append(Source(path, count, not_json, first, last, f"read stopped: {error}"))
            continue
        sources.append(Source(path, count, not_json, first, last))
    ran = [check for check in checks.values() if check.start_s is not None or check.end_s is not None]
    for check in ran:
        if check.start_s is None and check.end_s is not None:
            check.start_s = check.end_s - float(check.final.get("duration_s") or 0)
    skips = [_skip(event, starts_by_pid) for event in skip_events]
    in_period = [check for check in ran if (check.end_s or check.start_s or 0) >= since_s]
    in_period.sort(key=lambda check: check.start_s or 0)
    downloads = [
        (check.end_s or 0.0, str(playlist.get("url")))
        for check in in_period
        for playlist in check.final.get("playlists") or []
        if isinstance(playlist, dict)
        for _ in range(int(playlist.get("downloaded") or 0))
    ]
    return Log(
        checks=in_period,
        skips=sorted((skip for skip in skips if skip.at_s >= since_s), key=lambda skip: skip.at_s),
        videos_failed=[event for event in failed if (_epoch(event.get("timestamp")) or 0) >= since_s],
        videos_given_up=[event for event in given_up if (_epoch(event.get("timestamp")) or 0) >= since_s],
        downloads=downloads,
        sources=sources,
    )


def _take(
    event: dict[str, Any],
    name: str,
    checks: dict[str, Check],
    starts_by_pid: dict[int, list[Check]],
    skip_events: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    given_up: list[dict[str, Any]],
) -> None:
    """Note one event of the log."""
    if name == "check_skipped":
        skip_events.append(event)
        return
    if name == "video_failed":
        failed.append(event)
        return
    if name == "video_given_up":
        given_up.append(event)
        return
    if name != "check_started" and name not in RAN_EVENTS:
        return
    number, run_id = event.get("check"), event.get("run_id")
    if not isinstance(number, int):
        return
    key = run_id if isinstance(run_id, str) else f"#{number}"
    check = checks.get(key)
    if check is None:
        check = checks[key] = Check(number, key)
    at_s = _epoch(event.get("timestamp"))
    if name == "check_started":
        check.start_s = at_s
        pid = event.get("pid")
        if isinstance(pid, int):
            check.pid = pid
            starts_by_pid[pid].append(check)
        return
    check.outcome = RAN_EVENTS[name]
    check.final = _slim(event)
    duration_s = event.get("duration_s")
    if check.start_s is not None and isinstance(duration_s, (int, float)) and duration_s >= 0:
        check.end_s = min(check.start_s + duration_s, at_s) if at_s is not None else check.start_s + duration_s
    else:
        check.end_s = at_s


_KEPT = ("duration_s", "downloaded", "bytes", "reason", "error")


def _slim(event: dict[str, Any]) -> dict[str, Any]:
    """The fields of a final event the page uses: a month of checks is held at once."""
    kept = {key: event[key] for key in _KEPT if event.get(key) is not None}
    playlists = event.get("playlists")
    if isinstance(playlists, list):
        kept["playlists"] = [
            {"url": sys.intern(str(p.get("url"))), "read": p.get("read"), "downloaded": p.get("downloaded")}
            for p in playlists
            if isinstance(p, dict)
        ]
    return kept


def _skip(event: dict[str, Any], starts_by_pid: dict[int, list[Check]]) -> Skip:
    """The skip of `event`, with the check that held the lock: of the checks started by `holder_pid` and not ended
    before it, the one whose start is nearest to when the lock was taken (`lock_held_s` before the skip).

    A check logs `check_started` only after it took the lock and counted itself in the state: on a busy machine
    that can be seconds after another check found the lock held.
    """
    at_s = _epoch(event.get("timestamp")) or 0.0
    holder_pid = event.get("holder_pid")
    held = event.get("lock_held_s")
    taken_s = at_s - held if isinstance(held, (int, float)) else at_s
    candidates = [
        check
        for check in (starts_by_pid.get(holder_pid, []) if isinstance(holder_pid, int) else [])
        if (check.end_s is None or check.end_s >= at_s - 1) and (check.start_s or 0.0) <= at_s + HOLDER_SLACK_S
    ]
    holder = min(candidates, key=lambda check: abs((check.start_s or 0.0) - taken_s), default=None)
    return Skip(
        number=event["check"] if isinstance(event.get("check"), int) else 0,
        at_s=at_s,
        holder_pid=holder_pid if isinstance(holder_pid, int) else None,
        lock_held_s=float(held) if isinstance(held, (int, float)) else None,
        reason=str(event.get("reason") or "previous download still in progress"),
        holder=holder,
    )
