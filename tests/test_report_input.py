"""`report` reads anything the log may hold: odd values in valid JSON lines, a million lines, a reader that goes away,
failed checks without a check number. End to end, with the installed command against real files and real pipes."""

from __future__ import annotations

import json
import re
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import report_logs
from conftest import Project, clean_env
from test_network import TEMPFAIL, closed_port
from test_report import Page, _source_rows

ADDRESS_SPACE_BYTES = 2 * 1024**3  # a safety net: a reader that allocates per count fails here, not on the machine
MILLION = 1_000_000
PEAK_LIMIT_MIB = 150


def limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


def report(project: Project, *arguments: str) -> tuple[subprocess.CompletedProcess[str], Page]:
    result = subprocess.run(
        project.command("report", "--output", "-", *arguments),
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd="/",
        timeout=120,
        preexec_fn=limit_address_space,
    )
    assert (result.returncode, result.stderr) == (0, ""), (result.returncode, result.stderr)
    return result, Page(result.stdout)


def stamp(at_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_s)) + f".{int(at_s % 1 * 1e6):06d}Z"


def final_event(**changes: Any) -> dict[str, Any]:
    """A `check_completed` as a check writes it (check #2, a minute ago), with `changes`."""
    event: dict[str, Any] = {
        "timestamp": stamp(time.time() - 60),
        "level": "info",
        "event": "check_completed",
        "check": 2,
        "outcome": "COMPLETED",
        "run_id": "00000000-0000-4000-8000-000000000002",
        "duration_s": 1.5,
        "downloaded": 1,
        "failed": 0,
        "already_archived": 0,
        "waiting_retry": 0,
        "bytes": 1000,
        "playlists": [{"url": "https://example.com/feed.xml", "read": "feed", "downloaded": 1}],
    }
    event.update(changes)
    return event


ODD_EVENTS = {
    "negative duration": final_event(duration_s=-5),
    "NaN duration": final_event(duration_s=float("nan")),
    "infinite duration": final_event(duration_s=float("inf")),
    "duration as a string": final_event(duration_s="1.5"),
    "downloaded as a string": final_event(downloaded="3"),
    "bytes as a string": final_event(bytes="lots"),
    "negative bytes": final_event(bytes=-1),
    "downloaded 1e12": final_event(downloaded=1e12, playlists=[{"url": "u", "read": "feed", "downloaded": 1e12}]),
    "a playlist's downloaded 10**12": final_event(playlists=[{"url": "u", "read": "feed", "downloaded": 10**12}]),
    "a playlist's downloaded true": final_event(playlists=[{"url": "u", "read": "feed", "downloaded": True}]),
    "playlists not a list": final_event(playlists="all of them"),
    "check number as a string": final_event(check="2"),
    "check number 0": final_event(check=0),
    "timestamp a number": final_event(timestamp=1_800_000_000),
    "timestamp not a time": final_event(timestamp="yesterday"),
    "reason a number": final_event(event="check_failed", outcome="FAILED", reason=7, error="x"),
    "skip with a negative lock_held_s": {
        "timestamp": stamp(time.time() - 30),
        "event": "check_skipped",
        "check": 3,
        "outcome": "SKIPPED",
        "holder_pid": 12,
        "lock_held_s": -3,
    },
    "skip with holder_pid a string": {
        "timestamp": stamp(time.time() - 30),
        "event": "check_skipped",
        "check": 3,
        "outcome": "SKIPPED",
        "holder_pid": "12",
    },
    "started with pid a float": {
        "timestamp": stamp(time.time() - 90),
        "event": "check_started",
        "check": 2,
        "pid": 1.5,
    },
    "video_failed with attempts a string": {
        "timestamp": stamp(time.time() - 30),
        "event": "video_failed",
        "check": 1,
        "video_id": "v",
        "attempts": "2",
    },
}


@pytest.mark.parametrize("odd", sorted(ODD_EVENTS))
def test_a_valid_json_line_with_odd_values_is_not_understood_and_the_page_is_drawn(project: Project, odd: str) -> None:
    assert project.run("check").returncode == 0
    with open(project.log_file, "a") as log:
        log.write(json.dumps(ODD_EVENTS[odd], separators=(",", ":")) + "\n")  # NaN and Infinity as Python writes them

    _, page = report(project)
    [row] = _source_rows(page)
    assert row[2] == "1", (odd, row)  # the odd line, counted with the lines that are not JSON
    assert [mark["data-check"] for mark in page.with_class("check")] == ["1"], odd
    assert page.with_class("skip-tick") == []
    assert "In this period: 1 checks ran, 0 skipped, 3 videos downloaded" in page.text("summary")


def write_million_line_log(path: Path, lines: int) -> dict[str, int]:
    """Write `lines` short log lines over the last 30 days (checks every few seconds: started and final events,
    skips, downloads, failures, a line that is not JSON now and then), streaming to disk; return what is in them."""
    end_s = time.time() - 60
    counts = {"ran": 0, "skipped": 0, "failed": 0, "garbage": 0, "downloaded": 0}
    per_slot = 3  # lines per slot, about
    slots = lines // per_slot
    step_s = 30 * 86400 / slots
    start_s = end_s - slots * step_s
    written = 0
    with path.open("w") as log:
        index = 0
        while written < lines:
            at_s = start_s + index * step_s
            number = index + 1
            when = stamp(at_s)
            if index % 10 == 9:
                log.write(
                    f'{{"timestamp":"{when}","level":"warning","event":"check_skipped","check":{number},'
                    f'"outcome":"SKIPPED","run_id":"s{number}","holder_pid":{1000 + index - 1},"lock_held_s":1.0}}\n'
                )
                counts["skipped"] += 1
                written += 1
            elif index % 1000 == 500:
                log.write("not json at all\n")
                counts["garbage"] += 1
                written += 1
            else:
                run_id = f"r{number}"
                log.write(
                    f'{{"timestamp":"{when}","level":"info","event":"check_started","check":{number},'
                    f'"run_id":"{run_id}","pid":{1000 + index}}}\n'
                )
                downloaded = 1 if index % 4 == 0 else 0
                if downloaded:
                    log.write(
                        f'{{"timestamp":"{stamp(at_s + 0.5)}","level":"info","event":"video_downloaded",'
                        f'"check":{number},"run_id":"{run_id}","video_id":"v{number}","bytes":1000}}\n'
                    )
                    written += 1
                    counts["downloaded"] += 1
                if index % 50 == 7:
                    final = '"event":"check_failed","outcome":"FAILED","reason":"network","error":"refused"'
                    counts["failed"] += 1
                else:
                    final = (
                        f'"event":"check_completed","outcome":"COMPLETED","downloaded":{downloaded},"bytes":'
                        f'{1000 * downloaded},"playlists":[{{"url":"https://example.com/{index % 7}.xml","read":'
                        f'"feed","downloaded":{downloaded}}}]'
                    )
                log.write(
                    f'{{"timestamp":"{stamp(at_s + 1)}","level":"info",{final},"check":{number},"run_id":"{run_id}",'
                    f'"duration_s":1.0}}\n'
                )
                counts["ran"] += 1
                written += 2
            index += 1
    counts["lines"] = written
    return counts


PEAK_PROBE = (
    "import resource, subprocess, sys, time\n"
    "started = time.monotonic()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, round(time.monotonic() - started, 2))\n"
)


def test_a_million_line_log_is_read_in_bounded_memory(project: Project, reliability: Callable[[str], None]) -> None:
    project.log_file.parent.mkdir(parents=True)
    counts = write_million_line_log(project.log_file, MILLION)
    assert counts["lines"] >= MILLION
    page_path = project.root / "report.html"
    probe = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, *project.command("report", "--since", "31d", "--output", str(page_path))],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd="/",
        timeout=300,
        preexec_fn=limit_address_space,
    )
    code, peak_kib, seconds = probe.stdout.split()
    assert (int(code), probe.stderr) == (0, ""), probe
    peak_mib = int(peak_kib) / 1024
    assert peak_mib < PEAK_LIMIT_MIB, f"{peak_mib:.0f} MiB for {counts['lines']:,} lines"

    page = Page(page_path.read_text())
    buckets = page.with_class("bucket")
    assert sum(int(bucket["data-checks"]) for bucket in buckets) == counts["ran"] + counts["skipped"]
    assert sum(int(bucket["data-skipped"]) for bucket in buckets) == counts["skipped"]
    assert sum(int(bucket["data-failed"]) for bucket in buckets) == counts["failed"]
    assert [row[2] for row in _source_rows(page)] == [str(counts["garbage"])]
    summary = page.text("summary")
    assert f"In this period: {counts['ran']} checks ran, {counts['skipped']} skipped" in summary, summary
    assert f"network: {counts['failed']}" in summary
    reliability(
        f"report of a {counts['lines']:,}-line log (30 days, {counts['ran']:,} checks): peak {peak_mib:.0f} MiB, "
        f"{seconds} s (before: 439 MB and 13 s)"
    )


def test_report_into_a_reader_that_goes_away_exits_141_quietly(project: Project) -> None:
    report_logs.write_month_log(project.log_file, days=1)  # 1,440 checks drawn one by one: a page of 300 kB
    pipeline = f"set -o pipefail; {shlex.join(project.command('report', '--output', '-', '--since', '2d'))} | head -1"
    result = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, env=clean_env(), cwd="/")
    assert (result.stdout, result.stderr) == ("<!DOCTYPE html>\n", "")
    assert result.returncode == 141, "as `seq 100000 | head -1` and `status | head -1` report: 128 + SIGPIPE"
    whole = subprocess.run(
        project.command("report", "--output", "-", "--since", "2d"), capture_output=True, env=clean_env(), cwd="/"
    )
    assert whole.returncode == 0 and len(whole.stdout) > 4 * 65536, len(whole.stdout)


def test_a_check_that_could_not_reach_its_database_is_among_the_failures(project: Project) -> None:
    project.write_config(database_url=f"postgresql://nobody@127.0.0.1:{closed_port()}/nothing")
    assert project.run("check").returncode == TEMPFAIL
    [failed] = project.events("check_failed")
    assert failed["reason"] == "database" and "check" not in failed, failed

    _, page = report(project)
    assert "Failures by reason (this period): database: 1" in page.text("summary"), page.text("summary")
    [mark] = page.with_class("check")
    assert "outcome-FAILED" in mark["class"].split() and mark["data-check"] == ""
    assert re.search(r"Check FAILED \(no check number\), .*: database: ", page.text("timeline")), page.text("timeline")
