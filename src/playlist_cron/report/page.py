"""The page drawn from the log's records and the `status` object: its head and style, the summary, the timeline
(from `timeline`), the check durations, the failed videos, the playlists and the files read."""

from __future__ import annotations

import html
import itertools
import math
from typing import TYPE_CHECKING

from playlist_cron.report.formatting import byte_size, escape, utc
from playlist_cron.report.history import DAY_S, DURATION_BINS, Log, empty_log, read_log
from playlist_cron.report.timeline import check_name, timeline

if TYPE_CHECKING:
    from playlist_cron.config import Config
    from playlist_cron.records import Status


def render(config: Config, since_s: float, now_s: float, status: Status) -> str:
    """Given a config, the period's start, now and its `status` object, return the page."""
    interval_s = config.check_interval_seconds
    log = empty_log(interval_s) if config.log_file is None else read_log(config.log_file, since_s, interval_s)
    parts = [
        _HEAD.replace("{title}", html.escape(f"playlist-cron report: {config.path}")),
        f"<h1>playlist-cron report</h1><p class=meta>{html.escape(str(config.path))}: "
        f"{utc(since_s)} to {utc(now_s)} (UTC)</p>",
        _defs(),
        _summary(status, log),
        timeline(log, since_s, now_s, config.check_interval_seconds),
        _durations(log, config.check_interval_seconds),
        _failed_videos(status, log),
        _playlists(status, log, since_s, now_s),
        _sources(config, log),
        "</main></body></html>\n",
    ]
    return "".join(parts)


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


def _summary(status: Status, log: Log) -> str:
    from playlist_cron.status.text import render_text

    seed = [line for line in render_text(status).splitlines() if line.startswith(("Total checks", "Checks skipped"))]
    if not seed:
        seed = ["Counters: unknown (they are in the database, which cannot be reached)"]
    out = ['<section id="summary"><h2>Summary</h2>']
    out += [f'<p class="seed">{escape(line)}</p>' for line in seed]
    items = []
    checks, skipped = status["checks_total"], status["skipped_total"]
    if checks:
        items.append(f"Skipped share: {100 * (skipped or 0) / checks:.1f} % of all checks")
    if status["downloaded_total"] is not None:
        items.append(f"Videos downloaded (all time): {status['downloaded_total']}")
    tally = log.tally
    items.append(
        f"In this period: {tally.ran} checks ran, {tally.skipped} skipped, "
        f"{tally.downloaded} videos downloaded, {byte_size(tally.bytes)}"
    )
    reasons = tally.reasons["FAILED"]
    if reasons:
        said = ", ".join(f"{reason}: {count}" for reason, count in reasons.most_common())
        items.append(f"Failures by reason (this period): {said}")
    else:
        items.append("Failures (this period): none")
    deferred = tally.reasons["DEFERRED"]
    if deferred:
        items.append("Deferred by reason: " + ", ".join(f"{r}: {c}" for r, c in deferred.most_common()))
    items.append(f"Cooldown: {'until ' + str(status['cooldown_until']) if status['cooldown_until'] else 'none'}")
    items.append(
        f"Last outcome: {status['last_outcome'] or 'none yet'}; health: {'OK' if status['healthy'] else 'UNHEALTHY'}"
    )
    out.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>")
    out.extend(f'<p class="note">Problem: {escape(problem)}</p>' for problem in status["problems"])
    out.append("</section>")
    return "".join(out)


_BINS = DURATION_BINS


def _durations(log: Log, interval_s: int) -> str:
    tally = log.tally
    out = [f'<section id="durations"><h2>Check durations against the interval ({interval_s} s)</h2>']
    if not tally.timed:
        out.append('<p class="note">No finished checks in this period.</p></section>')
        return "".join(out)
    counts, overruns = tally.durations, tally.overruns
    longest = [(duration, check) for duration, _, check in sorted(tally.longest, key=lambda entry: -entry[0])]
    labels = [f"{low:g}–{high:g}×" for low, high in itertools.pairwise(_BINS)] + [f"≥{_BINS[-1]:g}×"]
    most = max(counts) or 1
    bars = []
    for index, (count, label) in enumerate(zip(counts, labels, strict=True)):
        x = index * 100 + 10
        height = 0 if not count else max(2.0, 120 * math.log1p(count) / math.log1p(most))  # a log scale
        overrun = " overrun" if _BINS[index] >= 1 else ""
        bars.append(
            f'<rect class="bar{overrun}" x="{x}" y="{130 - height:.1f}" width="80" height="{height:.1f}">'
            f"<title>{escape(f'{count} checks took {label} the interval')}</title></rect>"
            f'<text x="{x + 40}" y="148" text-anchor="middle" font-size="13" fill="currentColor">{escape(label)}</text>'
            f'<text x="{x + 40}" y="{max(12.0, 126 - height):.1f}" text-anchor="middle" font-size="13" '
            f'fill="currentColor">{count}</text>'
        )
    desc = (
        f"{tally.timed} checks; {overruns} took longer than the interval of {interval_s} s; longest "
        f"{longest[0][0]:.1f} s. Bars (log scale): checks per duration as a multiple of the interval."
    )
    out.append(
        '<svg role="img" aria-labelledby="durations-t durations-d" viewBox="0 0 710 155" width="100%" '
        'style="max-width:44rem"><title id="durations-t">Check durations</title>'
        f'<desc id="durations-d">{escape(desc)}</desc><line class="limit" x1="405" y1="0" x2="405" y2="135"/>'
        + "".join(bars)
        + "</svg>"
    )
    out.append(f"<p>{escape(desc)} The dashed line is the interval: the hatched bars to its right are overruns.</p>")
    out.append('<table><tr><th>Check</th><th>Outcome</th><th class="n">Duration</th><th>Started (UTC)</th></tr>')
    for duration, check in longest:
        overrun = ' class="overrun"' if duration > interval_s else ""
        out.append(
            f"<tr{overrun}><td>{check_name(check)}</td><td>{escape(check.outcome)}</td><td class=n>{duration:.1f} s"
            f"{' (overrun)' if overrun else ''}</td><td>{utc(check.start_s, True)}</td></tr>"
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
                f"<tr><td>{escape(video['video_id'] or video['archive_id'])}</td>"
                f"<td>{escape(video['title'] or '')}</td><td class=n>{escape(video['attempts'])}</td>"
                f"<td>{escape(when)}</td><td>{escape(video['error'] or '')}</td></tr>"
            )
        out.append("</table>")
    out.append(
        f'<p class="note">In this period the log has {log.tally.videos_failed} failed downloads and '
        f"{log.tally.videos_given_up} videos given up.</p></section>"
    )
    return "".join(out)


def _playlists(status: Status, log: Log, since_s: float, now_s: float) -> str:
    out = ['<section id="playlists"><h2>Playlists</h2>']
    first_day = int(since_s // DAY_S)
    days = int(now_s // DAY_S) - first_day + 1
    per_day = {
        url: [by_day.get(first_day + day, 0) for day in range(days)] for url, by_day in log.tally.per_day.items()
    }
    last_read = log.tally.last_read
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
            f'height="{28 * count / most:.1f}"><title>{utc((first_day + day) * DAY_S)[:10]}: {count}</title></rect>'
            for day, count in enumerate(counts)
            if count
        )
        read = last_read.get(url)
        read_text = f"{read[0]} at {utc(read[1])}" if read else "not in this period"
        desc = f"Videos downloaded per day, {days} days: " + ", ".join(str(count) for count in counts)
        out.append(
            f"<tr><td>{escape(url)}</td><td class=n>{sum(counts)}</td><td>"
            f'<svg role="img" aria-labelledby="pl-{index}" viewBox="0 0 300 30" width="100%" '
            f'style="min-width:8rem;max-width:20rem;height:2rem"><desc id="pl-{index}">{escape(desc)}</desc>'
            f"{bars}</svg>"
            f"</td><td>{escape(read_text)}</td></tr>"
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
        out.append(f'<p class="note">No log file at {escape(config.log_file)} yet.</p></section>')
        return "".join(out)
    out.append(
        "<table><tr><th>File</th><th class=n>Lines</th><th class=n>Not understood</th><th>First</th><th>Last</th>"
        "<th>Note</th></tr>"
    )
    for source in log.sources:
        out.append(
            f'<tr class="source"><td>{escape(source.path)}</td><td class=n>{source.lines}</td>'
            f'<td class="n not-understood">{source.not_understood}</td><td>{escape(source.first or "")}</td>'
            f"<td>{escape(source.last or '')}</td><td>{escape(source.note)}</td></tr>"
        )
    out.append("</table></section>")
    return "".join(out)
