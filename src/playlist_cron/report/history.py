"""The log's history read line by line into records of the period: the checks and skips to draw (while there are few
enough to draw one by one), and the counts of the period (`Tally`), in memory that grows with the period's checks, not
with the log's lines. No HTML: `page` and `timeline` draw these records."""

from __future__ import annotations

import bisect
import gzip
import heapq
import json
import os
import re
import sys
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from playlist_cron.report.events import FIELDS, FINAL_EVENTS, moment

DAY_S = 86400
HOLDER_SLACK_S = 600  # how long after a skip its holder may log `check_started` (a very busy machine)
HOUR_S = 3600
FINE_S = HOUR_S // 24  # the blocks of a timeline whose rows are hours; those of rows of days are hours
MAX_DRAWN_CHECKS = 2000  # more checks and skips in the period are drawn per block of time, not one by one
MAX_KEPT_BEFORE = 5000  # checks of the day before the period kept to hold early skips' locks
MAX_OPEN = 10_000  # checks started whose end is not read yet; the oldest beyond are taken as still running
MAX_NAMES = 1000  # failure reasons and playlists counted by name; the rest are counted as OTHER
MAX_LINE_BYTES = 1 << 20  # a log line is a few hundred bytes: a longer one is not understood, and not held
LONGEST = 10  # the longest checks listed
OTHER = "(other)"
DURATION_BINS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)  # check durations as multiples of the interval
RAN_EVENTS = dict(zip(FINAL_EVENTS, ("COMPLETED", "FAILED", "DEFERRED"), strict=True))
_UNUSED = b'"event":"video_downloaded"'  # the checks' final events count the downloads
_STAMP = b'{"timestamp":"'  # how every line of the log begins (structlog, the key order of log.py)
_ROTATED = r"(?:\.\d+|-\d{8}(?:-\d+)?)?(?:\.gz)?"
_TOO_LONG = b"\x00"  # stands for a line longer than MAX_LINE_BYTES: not understood
_decode = json.JSONDecoder().decode  # json.loads of bytes would guess their encoding at every line: it is UTF-8


class Source(NamedTuple):
    """One log file read: its path, its lines, those not understood (not JSON, or odd values), the first and last
    timestamps."""

    path: Path
    lines: int
    not_understood: int
    first: str | None
    last: str | None
    note: str = ""


class Check:
    """One check that ran, from its `check_started` and final events; `number` is None for a check that logged none
    (one that could not reach its database)."""

    __slots__ = ("end_s", "final", "number", "outcome", "pid", "run_id", "start_s")

    def __init__(self, number: int | None, run_id: str) -> None:
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


class Tally:
    """What the page counts of the period, kept as the log is read: counters, per day and per block of time."""

    def __init__(self, interval_s: int) -> None:
        self.interval_s = interval_s
        self.ran = self.skipped = self.downloaded = self.bytes = 0
        self.videos_failed = self.videos_given_up = 0
        self.reasons: dict[str, Counter[str]] = {"FAILED": Counter(), "DEFERRED": Counter()}
        self.durations = [0] * len(DURATION_BINS)  # checks per bin of DURATION_BINS
        self.timed = self.overruns = 0
        self.longest: list[tuple[float, int, Check]] = []  # a heap of the LONGEST: (duration, order, check)
        self.per_day: dict[str, Counter[int]] = {}  # playlist URL -> day number -> videos downloaded
        self.last_read: dict[str, tuple[str, float]] = {}  # playlist URL -> (read, when)
        self.block_s = FINE_S
        self.blocks: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])  # block -> checks, skipped, failed
        self.first_s: float | None = None  # the earliest start, the latest end: the timeline's span
        self.last_s: float | None = None

    def _span(self, start_s: float, end_s: float | None) -> None:
        self.first_s = start_s if self.first_s is None else min(self.first_s, start_s)
        last = max(start_s, end_s if end_s is not None else start_s)
        self.last_s = last if self.last_s is None else max(self.last_s, last)
        if self.block_s == FINE_S and self.last_s - self.first_s > DAY_S:  # rows of days: blocks of an hour
            coarse: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
            for block, counts in self.blocks.items():
                hour = coarse[block * FINE_S // HOUR_S]
                hour[:] = [a + b for a, b in zip(hour, counts, strict=True)]
            self.blocks, self.block_s = coarse, HOUR_S

    def _named(self, counter: dict[str, Any], name: str) -> str:
        return name if name in counter or len(counter) < MAX_NAMES else OTHER

    def add_check(self, check: Check) -> None:
        start_s = check.start_s if check.start_s is not None else check.end_s or 0.0
        self._span(start_s, check.end_s)
        self.ran += 1
        block = self.blocks[int(start_s // self.block_s)]
        block[0] += 1
        block[2] += check.outcome == "FAILED"
        final = check.final
        if check.outcome in self.reasons:
            reasons = self.reasons[check.outcome]
            reasons[self._named(reasons, str(final.get("reason")))] += 1
        self.bytes += final.get("bytes") or 0
        for playlist in final.get("playlists") or []:
            url = self._named(self.per_day, playlist["url"])
            downloaded = playlist.get("downloaded") or 0
            self.downloaded += downloaded
            if downloaded:
                self.per_day.setdefault(url, Counter())[int((check.end_s or 0.0) // DAY_S)] += downloaded
            read, when = playlist.get("read"), check.end_s or 0.0
            if read and (url not in self.last_read or self.last_read[url][1] <= when):
                self.last_read[self._named(self.last_read, url)] = (read, when)
        duration_s = final.get("duration_s")
        if duration_s is not None:
            share = duration_s / self.interval_s
            self.durations[bisect.bisect_right(DURATION_BINS, share) - 1] += 1
            self.timed += 1
            self.overruns += duration_s > self.interval_s
            entry = (float(duration_s), self.timed, check)
            (heapq.heappush if len(self.longest) < LONGEST else heapq.heappushpop)(self.longest, entry)

    def add_skip(self, at_s: float) -> None:
        self._span(at_s, None)
        self.skipped += 1
        block = self.blocks[int(at_s // self.block_s)]
        block[0] += 1
        block[1] += 1


class Log(NamedTuple):
    """What the log files say about the period: each check and skip to draw (all of them when `drawn`, else none:
    there are more than MAX_DRAWN_CHECKS, and `tally.blocks` has them), the counts, the files read."""

    checks: list[Check]
    skips: list[Skip]
    drawn: bool
    tally: Tally
    sources: list[Source]


def empty_log(interval_s: int) -> Log:
    return Log([], [], True, Tally(interval_s), [])


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
    return datetime.fromtimestamp(max(0.0, epoch_s), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S").encode("ascii")


def _lines(path: Path) -> Iterator[bytes]:
    """The lines of a log file, one at a time; a line longer than MAX_LINE_BYTES is skipped to its end, as _TOO_LONG."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as file:
        while line := file.readline(MAX_LINE_BYTES):
            if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := file.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                line = _TOO_LONG
            yield line


class _Reader:
    """The state of one read of the log: the checks started and not ended, those ended (by key, to read a run that
    two files repeat once), the checks and skips to draw, and the tally."""

    def __init__(self, since_s: float, interval_s: int) -> None:
        self.since_s = since_s
        self.tally = Tally(interval_s)
        self.open: dict[str, Check] = {}
        self.ended: set[int] = set()  # hashes of the keys of the checks ended in the period (or the day before)
        self.drawn: list[Check] | None = []  # None: too many to draw
        self.skips: list[tuple[int, float, int | None, float | None, str]] | None = []
        self.before: deque[Check] = deque(maxlen=MAX_KEPT_BEFORE)  # checks of the day before: holders of skips

    def take(self, event: dict[str, Any], name: str, at_s: float) -> None:
        """Note one event of the log that `events.moment` understood, at `at_s`."""
        if at_s < self.since_s - DAY_S:
            return
        if name == "video_failed" or name == "video_given_up":
            if at_s >= self.since_s:
                if name == "video_failed":
                    self.tally.videos_failed += 1
                else:
                    self.tally.videos_given_up += 1
            return
        if name == "check_skipped":
            if at_s >= self.since_s:
                self.tally.add_skip(at_s)
                if self.skips is not None:
                    reason = event.get("reason") or "previous download still in progress"
                    self.skips.append((event["check"], at_s, event.get("holder_pid"), event.get("lock_held_s"), reason))
                    self._count_drawn()
            return
        if name != "check_started" and name not in RAN_EVENTS:
            return
        number, run_id = event.get("check"), event.get("run_id")
        key = run_id if isinstance(run_id, str) else f"#{number}" if number is not None else f"@{at_s}"
        if hash(key) in self.ended:
            return  # a run already read, from a copy of the same log
        check = self.open.get(key)
        if check is None:
            check = Check(number, key)
        if name == "check_started":
            check.start_s, check.pid = at_s, event.get("pid")
            self.open[key] = check
            if len(self.open) > MAX_OPEN:
                self._settle(self.open.pop(next(iter(self.open))))
            return
        self.open.pop(key, None)
        check.outcome = RAN_EVENTS[name]
        check.final = _slim(event)
        duration_s = event.get("duration_s")
        if check.start_s is not None and duration_s is not None:
            check.end_s = min(check.start_s + duration_s, at_s)
        else:
            check.end_s = at_s
        if check.start_s is None:
            check.start_s = check.end_s - (duration_s or 0)
        self.ended.add(hash(key))
        self._settle(check)

    def _settle(self, check: Check) -> None:
        """Count a check whose end was read (or that is still running), in the period or as a holder before it."""
        if (check.end_s or check.start_s or 0.0) < self.since_s:
            if self.drawn is not None and check.pid is not None:
                self.before.append(check)
            return
        self.tally.add_check(check)
        if self.drawn is not None:
            self.drawn.append(check)
            self._count_drawn()

    def _count_drawn(self) -> None:
        if self.tally.ran + self.tally.skipped > MAX_DRAWN_CHECKS:
            self.drawn = self.skips = None
            self.before.clear()

    def log(self, sources: list[Source]) -> Log:
        """The records of the period, once every file is read; the checks still open are taken as running."""
        for check in list(self.open.values()):
            self._settle(check)
        self.open.clear()
        if self.drawn is None or self.skips is None:
            return Log([], [], False, self.tally, sources)
        starts_by_pid: dict[int, list[Check]] = defaultdict(list)
        for check in [*self.before, *self.drawn]:
            if check.pid is not None:
                starts_by_pid[check.pid].append(check)
        skips = [_skip(*skip, starts_by_pid) for skip in self.skips]
        drawn = sorted(self.drawn, key=lambda check: check.start_s or 0.0)
        return Log(drawn, sorted(skips, key=lambda skip: skip.at_s), True, self.tally, sources)


def read_log(log_file: Path, since_s: float, interval_s: int) -> Log:
    """Given the log's path, the start of the period and check_interval_seconds, return the records of the period."""
    reader = _Reader(since_s, interval_s)
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
        count = odd = 0
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
                    event = _decode(raw.decode("utf-8"))
                except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError)
                    odd += 1
                    continue
                if not isinstance(event, dict):
                    odd += 1
                    continue
                timestamp = event.get("timestamp")
                if isinstance(timestamp, str):
                    first = first or timestamp
                    last = timestamp
                name = event.get("event")
                if not isinstance(name, str) or name not in FIELDS:
                    continue
                at_s = moment(event, name)
                if at_s is None:  # a field of the wrong type or out of range: the event is not used at all
                    odd += 1
                    continue
                reader.take(event, name, at_s)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            sources.append(Source(path, count, odd, first, last, f"read stopped: {error}"))
            continue
        sources.append(Source(path, count, odd, first, last))
    return reader.log(sources)


_KEPT = ("duration_s", "downloaded", "bytes", "reason", "error")


def _slim(event: dict[str, Any]) -> dict[str, Any]:
    """The fields of a final event the page uses (checked by `events.moment`), strings shared between checks."""
    kept = {key: event[key] for key in _KEPT if event.get(key) is not None}
    playlists = event.get("playlists")
    if playlists:
        kept["playlists"] = [
            {"url": sys.intern(p["url"]), "read": p.get("read"), "downloaded": p.get("downloaded")} for p in playlists
        ]
    return kept


def _skip(
    number: int,
    at_s: float,
    holder_pid: int | None,
    held: float | None,
    reason: str,
    starts_by_pid: dict[int, list[Check]],
) -> Skip:
    """The skip, with the check that held the lock: of the checks started by `holder_pid` and not ended before it,
    the one whose start is nearest to when the lock was taken (`lock_held_s` before the skip).

    A check logs `check_started` only after it took the lock and counted itself in the state: on a busy machine
    that can be seconds after another check found the lock held.
    """
    taken_s = at_s - held if held is not None else at_s
    candidates = [
        check
        for check in (starts_by_pid.get(holder_pid, []) if holder_pid is not None else [])
        if (check.end_s is None or check.end_s >= at_s - 1) and (check.start_s or 0.0) <= at_s + HOLDER_SLACK_S
    ]
    holder = min(candidates, key=lambda check: abs((check.start_s or 0.0) - taken_s), default=None)
    return Skip(number, at_s, holder_pid, held, reason, holder)
