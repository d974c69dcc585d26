"""`report`: the JSON log (and logrotate's copies beside it) drawn as one self-contained HTML page, no script.

The page holds one <style> and inline <svg>; it fetches nothing. The marks a browser (or a test) can look for:

- each check that ran: an SVG element `class="check outcome-COMPLETED"` (or FAILED, DEFERRED) with
  `data-check="N"` and a `<title>` "Check #N COMPLETED, 12.3 s, ..."; FAILED is hatched, DEFERRED has a dashed
  outline, so the outcome is not told by colour alone. A check still running is `class="running"`.
- each SKIPPED check: `class="skip-tick"` with `data-check="N"` and `data-holder-check="M"` (M: the check that held
  the lock, found by its pid in `check_started` and time overlap; empty when another process held it), with a
  `<title>` "Check #N SKIPPED: previous download still in progress (held by check #M)".
- more than `MAX_DRAWN_CHECKS` checks in the period: `class="bucket"` elements per hour instead, with
  `data-checks`, `data-skipped` and `data-failed`; the page says so.
- `id="summary"` (the two lines `status` prints first, then the counters), `id="timeline"`, `id="durations"`
  (overruns of check_interval_seconds marked `class="overrun"`), `id="failed-videos"`, `id="playlists"`,
  `id="sources"` (the files read, their time span, lines that were not JSON).
"""

from __future__ import annotations

import gzip
import html
import itertools
import json
import math
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from playlist_cron import clock

if TYPE_CHECKING:
    from playlist_cron.config import Config
    from playlist_cron.records import Status

MAX_DRAWN_CHECKS = 2000
DEFAULT_SINCE = "7d"
DAY_S = 86400
HOLDER_SLACK_S = 600  # how long after a skip its holder may log `check_started` (a very busy machine)
HOUR_S = 3600
RAN_EVENTS = {"check_completed": "COMPLETED", "check_failed": "FAILED", "check_deferred": "DEFERRED"}
WANTED = ("check_", "video_")  # the events read; the others are not parsed further than their name
_UNUSED = b'"event":"video_downloaded"'  # the checks' final events count the downloads
_STAMP = b'{"timestamp":"'  # how every line of the log begins (structlog, the key order of log.py)
_ROTATED = r"(?:\.\d+|-\d{8}(?:-\d+)?)?(?:\.gz)?"
_SINCE = re.compile(r"(\d{1,6})([dhm])")
_UNIT_S = {"d": DAY_S, "h": HOUR_S, "m": 60}


def parse_since(text: str) -> float:
    """Given `7d`, `12h` or `30m`, return the seconds it names; raise ValueError for anything else."""
    match = _SINCE.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise ValueError(f"expected a number and d, h or m (7d, 12h, 30m), not {text!r}")
    return int(match[1]) * _UNIT_S[match[2]]


def default_output(config: Config) -> Path:
    """Where `report` writes without --output: `report.html` beside the log (beside the config for a stdout log)."""
    folder = config.log_file.parent if config.log_file is not None else config.path.parent
    return folder / "report.html"


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


# The page.


def render(config: Config, since_s: float, now_s: float, status: Status) -> str:
    """Given a config, the period's start, now and its `status` object, return the page."""
    log = Log([], [], [], [], [], []) if config.log_file is None else read_log(config.log_file, since_s)
    parts = [
        _HEAD.replace("{title}", html.escape(f"playlist-cron report: {config.path}")),
        f"<h1>playlist-cron report</h1><p class=meta>{html.escape(str(config.path))}: "
        f"{_utc(since_s)} to {_utc(now_s)} (UTC)</p>",
        _defs(),
        _summary(status, log),
        _timeline(log, since_s, now_s, config.check_interval_seconds),
        _durations(log, config.check_interval_seconds),
        _failed_videos(status, log),
        _playlists(status, log, since_s, now_s),
        _sources(config, log),
        "</main></body></html>\n",
    ]
    return "".join(parts)


def build(config: Config, since_s: float) -> str:
    """Given a config and how far back to look (seconds), return the page of that period."""
    import time

    from playlist_cron import status

    now_s = time.time()
    return render(config, now_s - since_s, now_s, status.report(config))


def write(path: Path, page: str) -> None:
    """Replace `path` with `page` atomically (a temporary file created exclusively beside it, then renamed)."""
    from playlist_cron import metrics

    metrics.write(path, page)


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title}</title>
<style>
:root{--bg:#fff;--fg:#1a1a1a;--muted:#5a5a5a;--grid:#ddd;--ok:#0072b2;--fail:#d55e00;--defer:#e69f00;
--skip:#000;--row:#f3f3f3}
@media (prefers-color-scheme: dark){:root{--bg:#151515;--fg:#eee;--muted:#aaa;--grid:#444;--ok:#56b4e9;
--fail:#ff7f3f;--defer:#f0c040;--skip:#fff;--row:#242424}}
body{background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,sans-serif;margin:0}
main{max-width:72rem;margin:0 auto;padding:0.75rem}
h1{font-size:1.4rem;margin:0.3rem 0}h2{font-size:1.15rem;margin:1.4rem 0 0.4rem}
.meta,.note,desc{color:var(--muted)}
section{overflow-x:auto}
table{border-collapse:collapse;font-size:0.9rem}td,th{padding:0.2rem 0.5rem;border-bottom:1px solid var(--grid);
text-align:left;vertical-align:top}td.n,th.n{text-align:right}
tr.overrun td{font-weight:bold}
.seed{font-family:ui-monospace,monospace;margin:0.1rem 0}
.row{display:flex;align-items:center;gap:0.4rem;margin:2px 0}
.row .label{flex:0 0 6.5rem;font-size:0.8rem;font-family:ui-monospace,monospace}
.row svg{flex:1 1 auto;min-width:0;height:22px;background:var(--row)}
.check,.swatch{stroke:var(--fg);stroke-width:0.5;vector-effect:non-scaling-stroke}
.outcome-COMPLETED{fill:var(--ok)}
.outcome-FAILED{fill:url(#hatch)}
.outcome-DEFERRED{fill:var(--defer);stroke-dasharray:3 2;stroke-width:1.5}
.running{fill:none;stroke:var(--ok);stroke-dasharray:1 2;vector-effect:non-scaling-stroke}
.skip-tick,.swatch-tick{stroke:var(--skip);stroke-width:2;vector-effect:non-scaling-stroke}
.skip-tick.orphan{stroke-dasharray:2 2}
.bucket{fill:var(--ok)}.bucket-failed{fill:url(#hatch)}
.bucket-skipped{stroke:var(--skip);stroke-width:2;stroke-dasharray:4 2;vector-effect:non-scaling-stroke}
.bar{fill:var(--ok)}.bar.overrun{fill:url(#hatch)}
.limit{stroke:var(--fg);stroke-dasharray:4 3;vector-effect:non-scaling-stroke}
.legend{display:flex;flex-wrap:wrap;gap:0.8rem;font-size:0.85rem;margin:0.3rem 0}
.legend svg{width:2rem;height:0.9rem;vertical-align:middle}
.hatch-bg{fill:var(--fail)}.hatch-line{stroke:var(--bg);stroke-width:2}
</style></head><body><main>
"""


def _defs() -> str:
    return (
        '<svg width="0" height="0" aria-hidden="true" style="position:absolute"><defs>'
        '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect class="hatch-bg" width="6" height="6"/><line class="hatch-line" x1="0" y1="0" x2="0" y2="6"/>'
        "</pattern></defs></svg>"
    )


def _utc(epoch_s: float | None, seconds: bool = False) -> str:
    if epoch_s is None:
        return "unknown"
    moment = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _summary(status: Status, log: Log) -> str:
    from playlist_cron.status import render_text

    seed = [line for line in render_text(status).splitlines() if line.startswith(("Total checks", "Checks skipped"))]
    if not seed:
        seed = ["Counters: unknown (they are in the database, which cannot be reached)"]
    out = ['<section id="summary"><h2>Summary</h2>']
    out += [f'<p class="seed">{_e(line)}</p>' for line in seed]
    items = []
    checks, skipped = status["checks_total"], status["skipped_total"]
    if checks:
        items.append(f"Skipped share: {100 * (skipped or 0) / checks:.1f} % of all checks")
    if status["downloaded_total"] is not None:
        items.append(f"Videos downloaded (all time): {status['downloaded_total']}")
    period_bytes = sum(int(check.final.get("bytes") or 0) for check in log.checks)
    items.append(
        f"In this period: {len(log.checks)} checks ran, {len(log.skips)} skipped, "
        f"{len(log.downloads)} videos downloaded, {_size(period_bytes)}"
    )
    reasons = Counter(str(check.final.get("reason")) for check in log.checks if check.outcome == "FAILED")
    if reasons:
        said = ", ".join(f"{reason}: {count}" for reason, count in reasons.most_common())
        items.append(f"Failures by reason (this period): {said}")
    else:
        items.append("Failures (this period): none")
    deferred = Counter(str(check.final.get("reason")) for check in log.checks if check.outcome == "DEFERRED")
    if deferred:
        items.append("Deferred by reason: " + ", ".join(f"{r}: {c}" for r, c in deferred.most_common()))
    items.append(f"Cooldown: {'until ' + str(status['cooldown_until']) if status['cooldown_until'] else 'none'}")
    items.append(
        f"Last outcome: {status['last_outcome'] or 'none yet'}; health: {'OK' if status['healthy'] else 'UNHEALTHY'}"
    )
    out.append("<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>")
    out.extend(f'<p class="note">Problem: {_e(problem)}</p>' for problem in status["problems"])
    out.append("</section>")
    return "".join(out)


class _Row(NamedTuple):
    start_s: float
    end_s: float
    label: str
    key: str


def _rows(log: Log, since_s: float, now_s: float) -> list[_Row]:
    """The timeline's rows: one per day of the period; per hour, or one short row, when the checks span less."""
    moments = [check.start_s for check in log.checks if check.start_s is not None] + [s.at_s for s in log.skips]
    ends = [check.end_s for check in log.checks if check.end_s is not None] + moments
    if not moments:
        return []
    first, last = min(moments), max(ends)
    if last - first <= HOUR_S:  # one row: the checks' own span, padded
        pad = max(1.0, (last - first) * 0.05)
        start, end = first - pad, last + pad
        return [_Row(start, end, f"{_utc(first)[11:]}–{_utc(last)[11:]}", "span")]
    step = HOUR_S if last - first <= DAY_S else DAY_S
    start = (max(first, since_s) // step) * step
    rows = []
    while start <= last:
        label = _utc(start)[:10] if step == DAY_S else _utc(start)[5:]
        rows.append(_Row(start, start + step, label, str(int(start))))
        start += step
    return rows


def _timeline(log: Log, since_s: float, now_s: float, interval_s: int) -> str:
    out = ['<section id="timeline"><h2>Timeline</h2>']
    out.append(
        '<div class="legend"><span><svg viewBox="0 0 20 10"><rect class="swatch outcome-COMPLETED" width="20" '
        'height="10"/></svg> COMPLETED</span><span><svg viewBox="0 0 20 10"><rect class="swatch outcome-FAILED" '
        'width="20" height="10"/></svg> FAILED (hatched)</span><span><svg viewBox="0 0 20 10"><rect class="swatch '
        'outcome-DEFERRED" width="20" height="10"/></svg> DEFERRED (dashed)</span><span><svg viewBox="0 0 20 10">'
        '<line class="swatch-tick" x1="10" y1="0" x2="10" y2="10"/></svg> SKIPPED (a tick on the check holding the '
        "lock)</span></div>"
    )
    rows = _rows(log, since_s, now_s)
    if not rows:
        out.append('<p class="note">No checks in this period.</p></section>')
        return "".join(out)
    total = len(log.checks) + len(log.skips)
    if total > MAX_DRAWN_CHECKS:
        out.append(
            f'<p class="note">{total} checks in this period, more than {MAX_DRAWN_CHECKS}: they are drawn per '
            "hour (each block: the checks of one hour, taller for more; its hatched end: the share that failed; "
            "a dashed line above: some were skipped).</p>"
        )
        out.extend(_bucket_rows(log, rows))
    else:
        out.extend(_check_rows(log, rows))
    out.append("</section>")
    return "".join(out)


def _row_index(rows: list[_Row], at_s: float) -> int:
    if at_s < rows[0].start_s:
        return 0
    for index, row in enumerate(rows):
        if at_s < row.end_s:
            return index
    return len(rows) - 1


def _x(row: _Row, at_s: float) -> float:
    return round(max(0.0, min(1000.0, (at_s - row.start_s) / (row.end_s - row.start_s) * 1000)), 2)


def _svg_row(row: _Row, index: int, desc: str, body: list[str]) -> str:
    label_id = f"row-{index}"
    return (
        f'<div class="row"><span class="label" id="{label_id}">{_e(row.label)}</span>'
        f'<svg role="img" aria-labelledby="{label_id} {label_id}-d" viewBox="0 0 1000 20" '
        f'preserveAspectRatio="none" width="100%"><desc id="{label_id}-d">{_e(desc)}</desc>{"".join(body)}</svg></div>'
    )


def _check_title(check: Check) -> str:
    duration = check.final.get("duration_s")
    took = f"{duration:.1f} s" if isinstance(duration, (int, float)) else "duration unknown"
    words = f"Check #{check.number} {check.outcome or 'RUNNING'}, {took}, started {_utc(check.start_s, True)}"
    if check.outcome == "COMPLETED":
        words += f", {check.final.get('downloaded', 0)} downloaded ({_size(int(check.final.get('bytes') or 0))})"
    elif check.outcome:
        words += f": {check.final.get('reason')}: {check.final.get('error')}"
    return words


def _check_rows(log: Log, rows: list[_Row]) -> list[str]:
    bodies: list[list[str]] = [[] for _ in rows]
    counts: list[Counter[str]] = [Counter() for _ in rows]
    for check in log.checks:
        start_s = check.start_s or 0.0
        index = _row_index(rows, start_s)
        row = rows[index]
        x = _x(row, start_s)
        end_x = _x(row, check.end_s) if check.end_s is not None else 1000.0
        width = max(1.5, end_x - x)
        kind = f"check outcome-{check.outcome}" if check.outcome else "running"
        counts[index][check.outcome or "running"] += 1
        bodies[index].append(
            f'<rect class="{kind}" data-check="{check.number}" x="{x}" y="4" width="{width:.2f}" height="12">'
            f"<title>{_e(_check_title(check))}</title></rect>"
        )
    for skip in log.skips:
        holder = skip.holder
        index = _row_index(rows, holder.start_s or skip.at_s if holder else skip.at_s)
        row = rows[index]
        x = _x(row, skip.at_s)
        counts[index]["SKIPPED"] += 1
        if holder is not None:
            held = f"held by check #{holder.number}"
        elif skip.holder_pid is not None:
            held = f"held by pid {skip.holder_pid}, not a check in this log"
        else:
            held = "held by an unknown process"
        title = f"Check #{skip.number} SKIPPED: {skip.reason} ({held})"
        extra = "" if holder else " orphan"
        bodies[index].append(
            f'<line class="skip-tick{extra}" data-check="{skip.number}" '
            f'data-holder-check="{holder.number if holder else ""}" x1="{x}" y1="0" x2="{x}" y2="20">'
            f"<title>{_e(title)}</title></line>"
        )
    out = []
    for index, row in enumerate(rows):
        count = counts[index]
        desc = (
            f"{row.label}: {count['COMPLETED']} completed, {count['FAILED']} failed, {count['DEFERRED']} deferred, "
            f"{count['SKIPPED']} skipped"
        )
        out.append(_svg_row(row, index, desc, bodies[index]))
    return out


def _bucket_rows(log: Log, rows: list[_Row]) -> list[str]:
    step = HOUR_S if rows[0].end_s - rows[0].start_s >= DAY_S else (rows[0].end_s - rows[0].start_s) / 24
    buckets: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])  # checks, skipped, failed
    for check in log.checks:
        slot = buckets[int((check.start_s or 0) // step)]
        slot[0] += 1
        slot[2] += check.outcome == "FAILED"
    for skip in log.skips:
        slot = buckets[int(skip.at_s // step)]
        slot[0] += 1
        slot[1] += 1
    bodies: list[list[str]] = [[] for _ in rows]
    sums: list[list[int]] = [[0, 0, 0] for _ in rows]
    for slot_index in sorted(buckets):
        checks, skipped, failed = buckets[slot_index]
        start_s = slot_index * step
        index = _row_index(rows, start_s)
        row = rows[index]
        x = _x(row, start_s)
        width = max(1.0, _x(row, start_s + step) - x - 0.5)
        # Taller for more checks (a minute's checks fill it); its failed share hatched (at least a sliver); a
        # dashed line above it when checks were skipped.
        height = max(3.0, min(16.0, 16.0 * checks / max(1.0, step / 60)))
        y = 18 - height
        sums[index] = [a + b for a, b in zip(sums[index], buckets[slot_index], strict=True)]
        title = f"{_utc(start_s)} UTC: {checks} checks, {skipped} skipped, {failed} failed"
        bodies[index].append(
            f'<rect class="bucket" data-checks="{checks}" data-skipped="{skipped}" data-failed="{failed}" '
            f'x="{x}" y="{y:.1f}" width="{width:.2f}" height="{height:.1f}"><title>{_e(title)}</title></rect>'
        )
        if failed:
            failed_width = min(width, max(2.0, width * failed / checks))
            bodies[index].append(
                f'<rect class="bucket-failed" x="{x + width - failed_width:.2f}" y="{y:.1f}" '
                f'width="{failed_width:.2f}" height="{height:.1f}"><title>{_e(title)}</title></rect>'
            )
        if skipped:
            bodies[index].append(f'<line class="bucket-skipped" x1="{x}" y1="1" x2="{x + width:.2f}" y2="1"/>')
    return [
        _svg_row(row, index, f"{row.label}: {s[0]} checks, {s[1]} skipped, {s[2]} failed", bodies[index])
        for index, (row, s) in enumerate(zip(rows, sums, strict=True))
    ]


_BINS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


def _durations(log: Log, interval_s: int) -> str:
    durations = [
        (float(check.final["duration_s"]), check)
        for check in log.checks
        if isinstance(check.final.get("duration_s"), (int, float))
    ]
    out = [f'<section id="durations"><h2>Check durations against the interval ({interval_s} s)</h2>']
    if not durations:
        out.append('<p class="note">No finished checks in this period.</p></section>')
        return "".join(out)
    counts = [0] * len(_BINS)
    for duration, _ in durations:
        share = duration / interval_s
        counts[max(index for index, low in enumerate(_BINS) if share >= low)] += 1
    overruns = sum(1 for duration, _ in durations if duration > interval_s)
    labels = [f"{low:g}–{high:g}×" for low, high in itertools.pairwise(_BINS)] + [f"≥{_BINS[-1]:g}×"]
    most = max(counts) or 1
    bars = []
    for index, (count, label) in enumerate(zip(counts, labels, strict=True)):
        x = index * 100 + 10
        height = 0 if not count else max(2.0, 120 * math.log1p(count) / math.log1p(most))  # a log scale
        overrun = " overrun" if _BINS[index] >= 1 else ""
        bars.append(
            f'<rect class="bar{overrun}" x="{x}" y="{130 - height:.1f}" width="80" height="{height:.1f}">'
            f"<title>{_e(f'{count} checks took {label} the interval')}</title></rect>"
            f'<text x="{x + 40}" y="148" text-anchor="middle" font-size="13" fill="currentColor">{_e(label)}</text>'
            f'<text x="{x + 40}" y="{max(12.0, 126 - height):.1f}" text-anchor="middle" font-size="13" '
            f'fill="currentColor">{count}</text>'
        )
    desc = (
        f"{len(durations)} checks; {overruns} took longer than the interval of {interval_s} s; longest "
        f"{max(d for d, _ in durations):.1f} s. Bars (log scale): checks per duration as a multiple of the interval."
    )
    out.append(
        '<svg role="img" aria-labelledby="durations-t durations-d" viewBox="0 0 710 155" width="100%" '
        'style="max-width:44rem"><title id="durations-t">Check durations</title>'
        f'<desc id="durations-d">{_e(desc)}</desc><line class="limit" x1="405" y1="0" x2="405" y2="135"/>'
        + "".join(bars)
        + "</svg>"
    )
    out.append(f"<p>{_e(desc)} The dashed line is the interval: the hatched bars to its right are overruns.</p>")
    longest = sorted(durations, key=lambda pair: -pair[0])[:10]
    out.append('<table><tr><th>Check</th><th>Outcome</th><th class="n">Duration</th><th>Started (UTC)</th></tr>')
    for duration, check in longest:
        overrun = ' class="overrun"' if duration > interval_s else ""
        out.append(
            f"<tr{overrun}><td>#{check.number}</td><td>{_e(check.outcome)}</td><td class=n>{duration:.1f} s"
            f"{' (overrun)' if overrun else ''}</td><td>{_utc(check.start_s, True)}</td></tr>"
        )
    out.append("</table></section>")
    return "".join(out)


def _failed_videos(status: Status, log: Log) -> str:
    out = ['<section id="failed-videos"><h2>Failed and given-up videos</h2>']
    videos = status["failed_videos"]
    if not videos:
        out.append('<p class="note">None now.</p>')
    else:
        out.append(
            "<table><tr><th>Video</th><th>Title</th><th class=n>Attempts</th><th>Next retry</th>"
            "<th>Last error</th></tr>"
        )
        for video in videos:
            when = "given up" if video["given_up"] else (video["next_retry_at"] or "")
            out.append(
                f"<tr><td>{_e(video['video_id'] or video['archive_id'])}</td><td>{_e(video['title'] or '')}</td>"
                f"<td class=n>{_e(video['attempts'])}</td><td>{_e(when)}</td><td>{_e(video['error'] or '')}</td></tr>"
            )
        out.append("</table>")
    out.append(
        f'<p class="note">In this period the log has {len(log.videos_failed)} failed downloads and '
        f"{len(log.videos_given_up)} videos given up.</p></section>"
    )
    return "".join(out)


def _playlists(status: Status, log: Log, since_s: float, now_s: float) -> str:
    out = ['<section id="playlists"><h2>Playlists</h2>']
    first_day = int(since_s // DAY_S)
    days = int(now_s // DAY_S) - first_day + 1
    per_day: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    for at_s, url in log.downloads:
        day = int(at_s // DAY_S) - first_day
        if 0 <= day < days:
            per_day[url][day] += 1
    last_read: dict[str, tuple[str, float]] = {}
    for check in log.checks:
        for playlist in check.final.get("playlists") or []:
            if isinstance(playlist, dict) and playlist.get("read"):
                last_read[str(playlist.get("url"))] = (str(playlist["read"]), check.end_s or 0.0)
    urls = [playlist["url"] for playlist in status["playlists"]]
    urls += [url for url in per_day if url not in urls]
    if not urls:
        out.append('<p class="note">No playlists.</p></section>')
        return "".join(out)
    out.append("<table><tr><th>Playlist</th><th class=n>Downloaded</th><th>Per day</th><th>Last read</th></tr>")
    for index, url in enumerate(urls):
        counts = per_day.get(url, [0] * days)
        most = max(counts) or 1
        width = 300 / days
        bars = "".join(
            f'<rect class="bar" x="{day * width:.2f}" y="{30 - 28 * count / most:.1f}" '
            f'width="{max(0.5, width - 1):.2f}" '
            f'height="{28 * count / most:.1f}"><title>{_utc((first_day + day) * DAY_S)[:10]}: {count}</title></rect>'
            for day, count in enumerate(counts)
            if count
        )
        read = last_read.get(url)
        read_text = f"{read[0]} at {_utc(read[1])}" if read else "not in this period"
        desc = f"Videos downloaded per day, {days} days: " + ", ".join(str(count) for count in counts)
        out.append(
            f"<tr><td>{_e(url)}</td><td class=n>{sum(counts)}</td><td>"
            f'<svg role="img" aria-labelledby="pl-{index}" viewBox="0 0 300 30" width="100%" '
            f'style="min-width:8rem;max-width:20rem;height:2rem"><desc id="pl-{index}">{_e(desc)}</desc>{bars}</svg>'
            f"</td><td>{_e(read_text)}</td></tr>"
        )
    out.append("</table></section>")
    return "".join(out)


def _sources(config: Config, log: Log) -> str:
    out = ['<section id="sources"><h2>Where the numbers come from</h2>']
    out.append(
        "<p>The summary's counters come from the state file (as <code>status</code> shows them); the rest from the "
        "log.</p>"
    )
    if config.log_file is None:
        out.append(
            '<p class="note">There is no log file to read: log_file is "-", so the events go to each check\'s '
            "standard output (where cron or the container runtime keeps them).</p></section>"
        )
        return "".join(out)
    if not log.sources:
        out.append(f'<p class="note">No log file at {_e(config.log_file)} yet.</p></section>')
        return "".join(out)
    out.append(
        "<table><tr><th>File</th><th class=n>Lines</th><th class=n>Not JSON</th><th>First</th><th>Last</th>"
        "<th>Note</th></tr>"
    )
    for source in log.sources:
        out.append(
            f'<tr class="source"><td>{_e(source.path)}</td><td class=n>{source.lines}</td>'
            f'<td class="n not-json">{source.not_json}</td><td>{_e(source.first or "")}</td>'
            f"<td>{_e(source.last or '')}</td><td>{_e(source.note)}</td></tr>"
        )
    out.append("</table></section>")
    return "".join(out)
