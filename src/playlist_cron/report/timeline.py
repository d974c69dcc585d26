"""The page's timeline: a row per day (or hour) of the period, each check that ran a bar and each skip a tick on
the check that held the lock; per hour blocks instead when there are more than `MAX_DRAWN_CHECKS`."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from playlist_cron.report.formatting import byte_size, escape, utc
from playlist_cron.report.history import DAY_S, HOUR_S, MAX_DRAWN_CHECKS, Check, Log


class _Row(NamedTuple):
    start_s: float
    end_s: float
    label: str
    key: str


def _rows(log: Log, since_s: float, now_s: float) -> list[_Row]:
    """The timeline's rows: one per day of the period; per hour, or one short row, when the checks span less."""
    first, last = log.tally.first_s, log.tally.last_s
    if first is None or last is None:
        return []
    if last - first <= HOUR_S:  # one row: the checks' own span, padded
        pad = max(1.0, (last - first) * 0.05)
        start, end = first - pad, last + pad
        return [_Row(start, end, f"{utc(first)[11:]}–{utc(last)[11:]}", "span")]
    step = HOUR_S if last - first <= DAY_S else DAY_S
    start = (max(first, since_s) // step) * step
    rows = []
    while start <= last:
        label = utc(start)[:10] if step == DAY_S else utc(start)[5:]
        rows.append(_Row(start, start + step, label, str(int(start))))
        start += step
    return rows


def timeline(log: Log, since_s: float, now_s: float, interval_s: int) -> str:
    """Given the log's records of the period, return the timeline section with its legend."""
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
    total = log.tally.ran + log.tally.skipped
    if not log.drawn:
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
        f'<div class="row"><span class="label" id="{label_id}">{escape(row.label)}</span>'
        f'<svg role="img" aria-labelledby="{label_id} {label_id}-d" viewBox="0 0 1000 20" '
        f'preserveAspectRatio="none" width="100%"><desc id="{label_id}-d">{escape(desc)}</desc>'
        f"{''.join(body)}</svg></div>"
    )


def check_name(check: Check) -> str:
    """Given a check, return how the page names it: `#12`, or `-` for one that logged no number."""
    return "-" if check.number is None else f"#{check.number}"


def _check_title(check: Check) -> str:
    duration = check.final.get("duration_s")
    took = f"{duration:.1f} s" if isinstance(duration, (int, float)) else "duration unknown"
    outcome = check.outcome or "RUNNING"
    named = f"Check {outcome} (no check number)" if check.number is None else f"Check #{check.number} {outcome}"
    words = f"{named}, {took}, started {utc(check.start_s, True)}"
    if check.outcome == "COMPLETED":
        words += f", {check.final.get('downloaded', 0)} downloaded ({byte_size(int(check.final.get('bytes') or 0))})"
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
            f'<rect class="{kind}" data-check="{"" if check.number is None else check.number}" x="{x}" y="4" '
            f'width="{width:.2f}" height="12">'
            f"<title>{escape(_check_title(check))}</title></rect>"
        )
    for skip in log.skips:
        holder = skip.holder
        index = _row_index(rows, holder.start_s or skip.at_s if holder else skip.at_s)
        row = rows[index]
        x = _x(row, skip.at_s)
        counts[index]["SKIPPED"] += 1
        if holder is not None:
            held = f"held by check {check_name(holder)}"
        elif skip.holder_pid is not None:
            held = f"held by pid {skip.holder_pid}, not a check in this log"
        else:
            held = "held by an unknown process"
        title = f"Check #{skip.number} SKIPPED: {skip.reason} ({held})"
        extra = "" if holder else " orphan"
        holder_number = holder.number if holder is not None and holder.number is not None else ""
        bodies[index].append(
            f'<line class="skip-tick{extra}" data-check="{skip.number}" '
            f'data-holder-check="{holder_number}" x1="{x}" y1="0" x2="{x}" y2="20">'
            f"<title>{escape(title)}</title></line>"
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
    """Blocks of an hour on rows of a day, else of 150 s (the tally counts them so as it reads the log)."""
    step = log.tally.block_s
    buckets = log.tally.blocks  # block -> checks, skipped, failed
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
        title = f"{utc(start_s)} UTC: {checks} checks, {skipped} skipped, {failed} failed"
        bodies[index].append(
            f'<rect class="bucket" data-checks="{checks}" data-skipped="{skipped}" data-failed="{failed}" '
            f'x="{x}" y="{y:.1f}" width="{width:.2f}" height="{height:.1f}"><title>{escape(title)}</title></rect>'
        )
        if failed:
            failed_width = min(width, max(2.0, width * failed / checks))
            bodies[index].append(
                f'<rect class="bucket-failed" x="{x + width - failed_width:.2f}" y="{y:.1f}" '
                f'width="{failed_width:.2f}" height="{height:.1f}"><title>{escape(title)}</title></rect>'
            )
        if skipped:
            bodies[index].append(f'<line class="bucket-skipped" x1="{x}" y1="1" x2="{x + width:.2f}" y2="1"/>')
    return [
        _svg_row(row, index, f"{row.label}: {s[0]} checks, {s[1]} skipped, {s[2]} failed", bodies[index])
        for index, (row, s) in enumerate(zip(rows, sums, strict=True))
    ]
