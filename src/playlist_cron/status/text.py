"""The `status --json` object as lines for a person: what `status` prints without `--json`."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from playlist_cron import clock, outage
from playlist_cron.config import STDOUT_LOG
from playlist_cron.failures import printed_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from playlist_cron.records import FleetHost, FleetTotals, PlaylistReads, Status


# A time as `clock.iso` writes it, in UTC: its date and its hour and minute are where `_short_time` cuts them.
_AS_CLOCK_WRITES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def render_text(status: Status) -> str:
    """Given the `status --json` object, return it as lines for a person."""
    return "\n".join(text_lines(status, status["playlists"]))


def text_lines(status: Status, playlists: Iterable[PlaylistReads]) -> Iterator[str]:
    """Given the `status --json` object and its playlists (in place of its own `playlists`), return its lines for a
    person, each playlist's made as it is reached, and the lines after the playlists (the notes among them) only
    once the playlists are done."""
    lines = [f"playlist-cron status for {status['config']}"]
    if status["checks_total"] is None:
        lines.append("Counters: unknown (they are in the database, which cannot be reached)")
    else:
        lines += [
            f"Total checks performed: {status['checks_total']}",
            f"Checks skipped due to long downloads: {status['skipped_total']}",
            f"Completed: {status['completed_total']}  Failed: {status['failed_total']}  "
            f"Deferred: {status['deferred_total']}  Videos downloaded: {status['downloaded_total']}",
        ]
    if status["checks_total"] is None:
        pass
    elif status["last_check_at"]:
        lines.append(f"Last check started: {status['last_check_at']}")
        duration = ""
        if status["last_duration_s"] is not None:
            took = "in" if status["last_outcome"] != "SKIPPED" else "; the last check that ran took"
            duration = f" {took} {status['last_duration_s']:.1f} s"
        lines.append(f"Last outcome: {status['last_outcome']} (check #{status['last_outcome_check']}){duration}")
        lines.append(f"Next check due: {status['next_check_due_at']}")
    else:
        lines.append("Last check: none yet")
    if status["checks_total"] is not None:
        lines.append(f"Last completed: {status['last_completed_at'] or 'never'}")
    if status["consecutive_skipped"]:
        lines.append(f"Consecutive skips: {status['consecutive_skipped']}")
    holder = status["lock_holder"]
    if status["lock_file"] is None:
        pass  # a database config: each playlist is held on its own, by a host's check (see the playlists)
    elif holder:
        held = f"{holder['held_s']:.0f} s" if holder["held_s"] is not None else "an unknown time"
        lines.append(f"Lock: held by pid {holder['pid']} for {held} ({status['lock_file']})")
    else:
        lines.append(f"Lock: free ({status['lock_file']})")
    if status["cooldown_until"]:
        lines.append(f"Cooldown: no requests until {status['cooldown_until']}")
    network_outage = status.get("network_outage")
    if network_outage:
        threshold_s = network_outage["alert_after_s"]
        if not network_outage["past_threshold"]:
            alerting = f"quiet until {threshold_s} s"
        elif network_outage["failing_s"] >= threshold_s:
            alerting = f"longer than {threshold_s} s"
        else:
            alerting = "not quiet: no check has completed yet"
        lines.append(
            f"Network: failing since {network_outage['since']} ({network_outage['failing_s']:.0f} s, "
            f"{outage.checks(network_outage['failed_checks'])}; {alerting}): {network_outage['error']}"
        )
    fleet = status["fleet"]
    if fleet is not None:
        lines.append(f"Fleet: collection {fleet['collection']} in {fleet['database']} (this host: {fleet['host']})")
        lines.extend(f"  {host['host']}: {_host_line(host)}" for host in fleet["hosts"])
        if len(fleet["hosts"]) > 1:
            lines.append(f"  all {len(fleet['hosts'])} hosts: {_counters_line(fleet['totals'])}")
    yield from lines
    lines = []
    heading = "Playlists (times UTC):"
    for playlist in playlists:
        if heading:
            yield heading
            heading = ""
        yield f"  {playlist['url']}: {_reads_line(playlist)}{_claim_words(playlist, fleet is not None)}"
    if status["failed_videos"]:
        given_up = sum(1 for video in status["failed_videos"] if video["given_up"])
        lines.append(f"Failed videos: {len(status['failed_videos'])} ({given_up} given up)")
        for video in status["failed_videos"]:
            when = "given up" if video["given_up"] else f"next try at {video['next_retry_at']}"
            error = printed_id(str(video["error"]))
            lines.append(f"  {video['video_id']}: {video['attempts']} attempts, {when}: {error}")
    if status["log_file"] == STDOUT_LOG:
        lines.append(
            'Log: stdout (log_file "-"): each check\'s standard output, where cron or the container runtime keeps it'
        )
    else:
        lines.append(f"Log: {status['log_file']}")
    if status["log_write_failures_total"]:
        lines.append(f"Log lines lost (the log was unwritable): {status['log_write_failures_total']}")
    if status["state_file"] is not None:
        lines.append(f"State: {status['state_file']}")
    elif fleet is not None:
        lines.append(f"State: in the database, host {fleet['host']}'s row and the fleet's")
    for note in status["notes"]:
        lines.append(f"Note: {note}")
    if status["healthy"]:
        lines.append("Health: OK")
    else:
        lines.append("Health: UNHEALTHY")
        lines.extend(f"  - {problem}" for problem in status["problems"])
    yield from lines


def _counters_line(counters: FleetTotals) -> str:
    return (
        f"{counters['checks_total']} checks, {counters['skipped_total']} skipped, "
        f"{counters['downloaded_total']} downloaded"
    )


def _host_line(host: FleetHost) -> str:
    """Given a host of the fleet, return it in a few words: `3 checks, 1 skipped, 2 downloaded, last check 23:40`."""
    line = f"{_counters_line(host)}, last check {_short_time(host['last_check_at'])}"
    if host["last_outcome"]:
        line += f" ({host['last_outcome']})"
    if host["cooldown_until"]:
        line += f", cooldown until {_short_time(host['cooldown_until'])}"
    return line


def _claim_words(playlist: PlaylistReads, fleet: bool) -> str:
    """Given a playlist of a database config, return who holds it or when it is due: `; held by a (pid 12, 30 s)`."""
    if not fleet:
        return ""
    holder = playlist["holder"]
    if holder is not None:
        held = f"{holder['held_s']:.0f} s" if holder["held_s"] is not None else "an unknown time"
        return f"; held by {holder['host']} (pid {holder['pid']}, for {held})"
    if playlist["due_at"] is None:
        return "; due now (never checked)"
    return f"; checked {_short_time(playlist['last_checked_at'])}, due {_short_time(playlist['due_at'])}"


def _reads_line(playlist: PlaylistReads) -> str:
    """Given a playlist's reads, return them in a few words: `feed read 23:40, full read 18:00, next full read ...`."""
    full_read = f"full read {_short_time(playlist['last_full_read_at'])}"
    if not playlist["feed_reads"]:
        return f"{full_read}, every check (no feed)"
    feed_read = f"feed read {_short_time(playlist['last_feed_read_at'])}"
    if playlist["last_feed_error"]:
        feed_read += f" (last try failed: {printed_id(playlist['last_feed_error'])})"
    if playlist["feed_repairs"]:
        feed_read += f" (feed needed repair: {', '.join(playlist['feed_repairs'])})"
    next_full_read = "at the next check" if playlist["full_read_due"] else _short_time(playlist["next_full_read_at"])
    return f"{feed_read}, {full_read}, next full read {next_full_read}"


def _short_time(timestamp: str | None) -> str:
    """Given an ISO timestamp, return it as few characters as today allows (`23:40`, `12-01 23:40`), or "never"."""
    if timestamp is not None and _AS_CLOCK_WRITES.fullmatch(timestamp):  # cut, not parsed: 3 for each of 10,000
        today_at = time.strftime("%Y-%m-%d", time.gmtime(clock.now_s()))
        if timestamp[:10] == today_at:
            return timestamp[11:16]
        return f"{timestamp[5 if timestamp[:4] == today_at[:4] else 0 : 10]} {timestamp[11:16]}"
    moment_s = clock.parse_iso(timestamp)
    if moment_s is None:
        return "never"
    moment = datetime.fromtimestamp(moment_s, tz=timezone.utc)
    today = datetime.fromtimestamp(clock.now_s(), tz=timezone.utc)
    if moment.date() == today.date():
        return moment.strftime("%H:%M")
    return moment.strftime("%m-%d %H:%M" if moment.year == today.year else "%Y-%m-%d %H:%M")
