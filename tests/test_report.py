"""`playlist-cron report`: the log as one self-contained HTML page, from logs written by real checks (no browser)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from typing import Any

import pytest

import report_log
from conftest import FlockHolder, Project, clean_env, wait_for


class Page(HTMLParser):
    """A report page as a parser sees it: its elements with their attributes, and each section's text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.section_text: dict[str, list[str]] = {}
        self.section: str | None = None
        self.title_open = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if tag == "section":
            self.section = attributes.get("id")
            self.section_text.setdefault(self.section or "", [])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.section = None

    def handle_data(self, data: str) -> None:
        if self.section is not None:
            self.section_text[self.section].append(data)

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [attributes for _, attributes in self.elements if name in attributes.get("class", "").split()]

    def text(self, section: str) -> str:
        return "\n".join(self.section_text[section])

    def lines(self, section: str) -> list[str]:
        return [line.strip() for line in self.section_text[section] if line.strip()]


def report(project: Project, *arguments: str) -> tuple[str, Page]:
    result = project.run("report", "--output", "-", *arguments)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout, Page(result.stdout)


def assert_self_contained(text: str) -> None:
    assert "<script" not in text.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text, re.IGNORECASE)
    assert "@import" not in text and "url(http" not in text
    assert text.count("<style>") == 1
    assert '<meta name="color-scheme" content="light dark">' in text
    assert "prefers-color-scheme" in text


def status_lines(project: Project) -> list[str]:
    result = project.run("status")
    return result.stdout.splitlines()


def overlapping_checks(project: Project) -> None:
    """Check #1 downloads for seconds; #2 starts meanwhile and is SKIPPED behind it; #3 is SKIPPED behind another
    process (flock); #4 runs; #5 FAILS (no disk space)."""
    project.feed.settings.bytes_per_second = 200_000
    first = project.start("check")
    wait_for(lambda: project.events("check_started"), what="the first check to start")
    assert project.run("check", "--now").returncode == 0
    assert first.wait(60) == 0
    project.feed.settings.bytes_per_second = None
    with FlockHolder(project.lock_file):
        assert project.run("check", "--now").returncode == 0
    assert project.run("check", "--now").returncode == 0
    project.write_config(min_free_bytes=10**18)
    assert project.run("check", "--now").returncode == 1
    project.write_config()


def test_the_page_draws_each_check_that_ran_and_each_skip_on_the_bar_of_its_holder(project: Project) -> None:
    project.write_config()
    overlapping_checks(project)
    finals = {e["check"]: e for e in project.events() if e["event"].startswith("check_") and "outcome" in e}
    assert [finals[n]["outcome"] for n in sorted(finals)] == ["COMPLETED", "SKIPPED", "SKIPPED", "COMPLETED", "FAILED"]

    text, page = report(project)
    assert_self_contained(text)
    assert len(text.encode()) < 2_000_000
    marks = page.with_class("check")
    assert sorted(int(mark["data-check"]) for mark in marks) == [1, 4, 5]
    for mark in marks:
        assert f"outcome-{finals[int(mark['data-check'])]['outcome']}" in mark["class"].split()
    ticks = {int(tick["data-check"]): tick["data-holder-check"] for tick in page.with_class("skip-tick")}
    assert ticks == {2: "1", 3: ""}  # #3 was held by flock(1), no check
    titles = page.text("timeline")
    assert "Check #2 SKIPPED: previous download still in progress (held by check #1)" in titles
    assert "Check #5 FAILED" in titles and "disk_space" in titles
    assert page.with_class("bucket") == []

    # The summary's two lines are the ones `status` prints.
    seed = [line for line in status_lines(project) if line.startswith(("Total checks", "Checks skipped"))]
    assert seed == ["Total checks performed: 5", "Checks skipped due to long downloads: 2"]
    assert page.lines("summary")[1:3] == seed
    # Every chart has a text alternative.
    charts = [attributes for tag, attributes in page.elements if tag == "svg" and attributes.get("role") == "img"]
    assert charts and all(chart.get("aria-labelledby") for chart in charts)
    assert len([tag for tag, _ in page.elements if tag == "desc"]) == len(charts)
    for section in ("summary", "timeline", "durations", "failed-videos", "playlists", "sources"):
        assert section in page.section_text
    assert str(project.log_file) in page.text("sources")
    assert project.feed.feed_url in page.text("playlists")


def test_a_long_check_is_an_overrun_of_the_interval(project: Project) -> None:
    project.write_config(check_interval_seconds=1)
    project.feed.settings.bytes_per_second = 300_000  # three 200 kB videos: 2 s, longer than the interval
    assert project.run("check", "--now").returncode == 0
    _, page = report(project)
    [duration] = [e["duration_s"] for e in project.events("check_completed")]
    assert duration > 1
    overruns = [attributes for _, attributes in page.elements if "overrun" in attributes.get("class", "").split()]
    assert any(tag == "tr" for tag, attributes in page.elements if attributes in overruns)
    assert "1 took longer than the interval of 1 s" in page.text("durations")


def test_rotated_and_gzipped_logs_are_read_and_listed_with_their_lines_that_are_not_json(project: Project) -> None:
    project.write_config()
    logs = project.log_file.parent
    assert project.run("check", "--now").returncode == 0
    with open(project.log_file, "rb") as plain, gzip.open(logs / "downloader.log.2.gz", "wb") as packed:
        packed.write(plain.read() + b"not json at all\n")
    project.log_file.unlink()
    assert project.run("check", "--now").returncode == 0
    with open(project.log_file, "ab") as file:
        file.write(b'half a line {"timestamp\n\n')
    project.log_file.rename(logs / "downloader.log.1")
    assert project.run("check", "--now").returncode == 0
    shutil.copy(logs / "downloader.log.1", logs / "downloader.log-20261201")  # a dated copy: read too
    (logs / "other.log").write_text("not this one\n")
    for age, name in enumerate(("downloader.log-20261201", "downloader.log.2.gz", "downloader.log.1")):
        stamp = time.time() - 300 + age * 60
        os.utime(logs / name, (stamp, stamp))

    _, page = report(project)
    numbers = sorted(int(mark["data-check"]) for mark in page.with_class("check"))
    assert numbers == [1, 2, 3]  # the dated copy repeats #2's lines: the same run, one bar
    rows = {row[0]: row for row in _source_rows(page)}
    assert set(rows) == {
        str(logs / name)
        for name in ("downloader.log", "downloader.log.1", "downloader.log.2.gz", "downloader.log-20261201")
    }
    assert rows[str(logs / "downloader.log.2.gz")][2] == "1"
    assert rows[str(logs / "downloader.log.1")][2] == "1"
    assert rows[str(logs / "downloader.log")][2] == "0"
    assert [row[0] for row in _source_rows(page)][-1] == str(project.log_file)  # oldest first, the live log last


def _source_rows(page: Page) -> list[list[str]]:
    """The #sources table's rows: file, lines, not JSON, first, last, note."""
    cells = page.lines("sources")
    start = cells.index("Note") + 1
    rows: list[list[str]] = []
    for cell in cells[start:]:
        if cell.startswith("/"):
            rows.append([cell])
        elif rows:
            rows[-1].append(cell)
    return rows


def test_since_leaves_out_what_is_older(project: Project) -> None:
    project.write_config()
    generated = report_log.write(project.log_file, 3, interval_s=3600)  # 72 checks, one an hour
    _, page = report(project, "--since", "5d")
    assert len(page.with_class("check")) == len(generated.ran)
    _, page = report(project, "--since", "24h")
    assert 23 <= len(page.with_class("check")) <= 25
    _, page = report(project, "--since", "90m")
    assert 1 <= len(page.with_class("check")) <= 2


def test_without_output_the_page_is_written_beside_the_log_and_its_path_printed(project: Project) -> None:
    project.write_config()
    assert project.run("check", "--now").returncode == 0
    result = project.run("report")
    assert result.returncode == 0, result.stderr
    page_path = project.log_file.parent / "report.html"
    assert result.stdout == f"Report written to {page_path}\n"
    assert Page(page_path.read_text()).with_class("check")[0]["data-check"] == "1"


def test_bad_since_is_a_usage_error_and_a_bad_config_a_config_error(project: Project) -> None:
    project.write_config()
    for since in ("0d", "7", "7w", "-1d", "d"):
        result = project.run("report", "--since", since)
        assert result.returncode == 2, since
        assert "--since" in result.stderr
    project.config_path.write_text("{")
    assert project.run("report").returncode == 78


def test_a_stdout_log_leaves_no_file_to_read_but_the_summary_stands(project: Project) -> None:
    project.write_config(log_file="-")
    assert project.run("check", "--now").returncode == 0
    _, page = report(project)
    assert "There is no log file to read" in page.text("sources")
    assert "Total checks performed: 1" in page.lines("summary")
    assert page.with_class("check") == []


def test_report_file_is_rewritten_after_a_check_that_ran_but_not_after_a_skipped_one(project: Project) -> None:
    page_path = project.root / "www" / "playlist.html"
    project.write_config(report_file=str(page_path))
    assert project.run("check", "--now").returncode == 0
    page = Page(page_path.read_text())
    assert [mark["data-check"] for mark in page.with_class("check")] == ["1"]
    assert "Total checks performed: 1" in page.lines("summary")
    assert oct(page_path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in page_path.parent.iterdir()] == ["playlist.html"]  # no temporary file left
    page_path.unlink()
    with FlockHolder(project.lock_file):
        assert project.run("check", "--now").returncode == 0
    assert project.events("check_skipped")
    assert not page_path.exists(), "a SKIPPED check does not draw the page"
    assert project.run("check").returncode == 0  # not due: nothing either
    assert not page_path.exists()
    assert project.run("check", "--now").returncode == 0
    assert sorted(mark["data-check"] for mark in Page(page_path.read_text()).with_class("check")) == ["1", "3"]
    assert project.events("report_failed") == []


def test_a_report_file_that_cannot_be_written_changes_nothing_but_a_log_line(project: Project) -> None:
    (project.root / "a-file").write_text("")
    project.write_config(report_file=str(project.root / "a-file" / "report.html"))  # its folder is a file
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    [failed] = project.events("report_failed")
    assert failed["report_file"] == str(project.root / "a-file" / "report.html")
    assert failed["level"] == "warning"
    [completed] = project.events("check_completed")
    assert completed["outcome"] == "COMPLETED"
    assert project.status()["healthy"]


def test_a_month_of_checks_is_drawn_per_hour_on_a_small_page(project: Project) -> None:
    project.write_config()
    generated = report_log.write(project.log_file, 30)
    text, page = report(project, "--since", "31d")
    assert len(text.encode()) < 2_000_000
    assert page.with_class("check") == [] and page.with_class("skip-tick") == []
    buckets = page.with_class("bucket")
    assert sum(int(bucket["data-checks"]) for bucket in buckets) == len(generated.ran) + len(generated.skipped)
    assert sum(int(bucket["data-skipped"]) for bucket in buckets) == len(generated.skipped)
    assert sum(int(bucket["data-failed"]) for bucket in buckets) == sum(
        1 for outcome in generated.ran.values() if outcome == "FAILED"
    )
    assert "drawn per hour" in page.text("timeline")
    assert [row[2] for row in _source_rows(page)] == [str(generated.not_json)]


def test_importing_report_loads_no_downloader_database_driver_or_structlog() -> None:
    probe = (
        "import sys, playlist_cron.report; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('yt_dlp', 'psycopg', 'structlog')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr


def _events_json(project: Project) -> list[dict[str, Any]]:
    return [json.loads(line) for line in project.log_file.read_text().splitlines()]


@pytest.mark.parametrize("holder_pid", [None, 999_999])
def test_a_skip_without_a_known_holder_is_still_drawn(project: Project, holder_pid: int | None) -> None:
    project.write_config()
    assert project.run("check", "--now").returncode == 0
    skip = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
        "level": "warning",
        "event": "check_skipped",
        "check": 2,
        "outcome": "SKIPPED",
        "run_id": "r2",
        "reason": "previous download still in progress",
        "holder_pid": holder_pid,
        "lock_held_s": None,
    }
    with open(project.log_file, "a") as file:
        file.write(json.dumps(skip) + "\n")
    assert _events_json(project)[-1]["event"] == "check_skipped"
    _, page = report(project)
    [tick] = page.with_class("skip-tick")
    assert (tick["data-check"], tick["data-holder-check"]) == ("2", "")


def test_a_skip_logged_before_its_holder_logged_check_started_is_on_the_holder_bar(project: Project) -> None:
    """On a busy machine a check logs `check_started` seconds after it took the lock (it counts itself in the state
    first): a check finding the lock held in between is still drawn on the holder's bar, by `lock_held_s`."""
    project.write_config()
    now_s = time.time() - 60
    iso = lambda at_s: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_s)) + f".{int(at_s % 1 * 1e6):06d}Z"  # noqa: E731
    lines = [
        {"timestamp": iso(now_s + 1), "event": "check_skipped", "check": 2, "outcome": "SKIPPED", "run_id": "b",
         "reason": "previous download still in progress", "holder_pid": 4242, "lock_held_s": 1.0},
        {"timestamp": iso(now_s + 6), "event": "check_started", "check": 1, "run_id": "a", "pid": 4242},
        {"timestamp": iso(now_s + 20), "event": "check_completed", "check": 1, "outcome": "COMPLETED", "run_id": "a",
         "duration_s": 19.5, "downloaded": 0, "bytes": 0, "playlists": []},
        {"timestamp": iso(now_s + 30), "event": "check_started", "check": 3, "run_id": "c", "pid": 4242},
        {"timestamp": iso(now_s + 31), "event": "check_completed", "check": 3, "outcome": "COMPLETED", "run_id": "c",
         "duration_s": 1.0, "downloaded": 0, "bytes": 0, "playlists": []},
    ]  # fmt: skip
    project.log_file.parent.mkdir(parents=True)
    project.log_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    _, page = report(project)
    [tick] = page.with_class("skip-tick")
    assert (tick["data-check"], tick["data-holder-check"]) == ("2", "1")  # not #3, a later check of the same pid
