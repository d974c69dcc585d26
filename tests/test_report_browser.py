"""`playlist-cron report`'s page in a real browser (headless Chromium): drawn at a desktop's and a phone's width, in
a light and a dark scheme, one mark per check with the right numbers, the summary `status` prints, and no request
leaving the page. The marks are the ones the report package's docstring documents (issue 14's contract)."""

from __future__ import annotations

import html.parser
import re
import time
from pathlib import Path
from typing import Any

import pytest

import browser
from conftest import FlockHolder, Project, flock_busy, wait_for
from report_logs import write_month_log

pytest.importorskip("playlist_cron.report", reason="playlist_cron.report is not there yet (issue 14)")

SEED_LINES = ("Total checks performed: ", "Checks skipped due to long downloads: ")
VOID = frozenset(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"])


class Element:
    def __init__(self, tag: str, attributes: dict[str, str]) -> None:
        self.tag = tag
        self.attributes = attributes
        self.classes = attributes.get("class", "").split()
        self.text = ""


class Dom(html.parser.HTMLParser):
    """The elements of a `--dump-dom` page, flat, each with its attributes and its whole text."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.open) - 1, -1, -1):
            if self.open[depth].tag == tag:
                del self.open[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text += data

    def with_class(self, name: str) -> list[Element]:
        return [element for element in self.elements if name in element.classes]

    def by_id(self, name: str) -> Element:
        found = [element for element in self.elements if element.attributes.get("id") == name]
        assert len(found) == 1, f"{len(found)} elements with id={name!r}"
        return found[0]


def seed_lines(text: str) -> list[str]:
    """The seed's two summary lines in `text`, whitespace made single."""
    flat = " ".join(text.split())
    return [match.group(0) for prefix in SEED_LINES for match in re.finditer(re.escape(prefix) + r"\d+", flat)]


def render(project: Project, output: Path, since: str) -> None:
    started = time.monotonic()
    result = project.run("report", "--since", since, "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert output.is_file(), result.stdout
    print(f"report of {project.log_file.stat().st_size} bytes of log: {time.monotonic() - started:.2f} s")


def check_page(chromium: str, page: Path, tmp_path: Path) -> Dom:
    """The page's checks that need no knowledge of the log: it is self-contained, is drawn at 1280 and 360 px wide
    (served from a loopback server that sees no request but the page's own, and from a file URL with the network
    cut), and its DOM has no script and no external URL. Returns the DOM."""
    with browser.PageServer(page) as server:
        wide = browser.screenshot(chromium, server.url, tmp_path / "wide.png", width=1280, height=900)
        markup = browser.dump_dom(chromium, server.url)
    server.assert_only_the_page(loads=2, browser_favicon=True)
    browser.assert_not_blank(browser.read_png(wide))
    narrow = browser.screenshot(
        chromium, page.as_uri(), tmp_path / "narrow.png", width=360, height=800, flags=browser.offline_flags()
    )
    browser.assert_not_blank(browser.read_png(narrow))
    dom = Dom(markup)
    assert not [element for element in dom.elements if element.tag == "script"]
    external = [
        (element.tag, name, value)
        for element in dom.elements
        for name, value in element.attributes.items()
        if name in ("src", "href", "xlink:href", "action", "srcset") and re.match(r"\s*(https?:)?//", value)
    ]
    assert not external, external
    return dom


def status_seed_lines(project: Project) -> list[str]:
    result = project.run("status")
    assert result.returncode in (0, 1), result.stderr
    lines = seed_lines(result.stdout)
    assert len(lines) == 2, result.stdout
    return lines


@pytest.fixture
def chromium() -> str:
    return browser.find_chromium()


def final_events(project: Project) -> dict[int, dict[str, Any]]:
    return {event["check"]: event for event in project.events() if "outcome" in event}


def test_report_of_real_overlapping_checks_in_a_browser(chromium: str, project: Project, tmp_path: Path) -> None:
    """A long throttled check holds the lock while two checks started beside it are SKIPPED (held by it), one more is
    SKIPPED behind a flock(1) holder, and a last one runs: every one is on the page with its number."""
    project.only_item(600_000)
    project.feed.settings.bytes_per_second = 150_000  # about 4 s
    long_check = project.start("check", "--now")
    # Probing with flock(1) before the check holds the lock could make the check meet the probe's lock and skip.
    wait_for(lambda: project.events("check_started"), what="the long check running")
    assert flock_busy(project.lock_file), "the long check holds the lock while it downloads"
    beside = [project.start("check", "--now") for _ in range(2)]
    for process in beside:
        assert process.wait(60) == 0
    assert long_check.wait(60) == 0, long_check.stderr.read() if long_check.stderr else ""
    with FlockHolder(project.lock_file):
        assert project.run("check", "--now").returncode == 0
    project.feed.settings.bytes_per_second = None
    assert project.run("check", "--now").returncode == 0

    finals = final_events(project)
    ran = {number: event["outcome"] for number, event in finals.items() if event["outcome"] != "SKIPPED"}
    skipped = {number for number, event in finals.items() if event["outcome"] == "SKIPPED"}
    long_number = next(e["check"] for e in project.events("check_started") if e["pid"] == long_check.pid)
    behind_long = {n for n in skipped if finals[n]["holder_pid"] == long_check.pid}
    assert len(ran) == 2 and len(skipped) == 3 and len(behind_long) == 2, finals

    page = tmp_path / "report.html"
    render(project, page, "1d")
    dom = check_page(chromium, page, tmp_path)

    marks = dom.with_class("check")
    assert sorted(int(mark.attributes["data-check"]) for mark in marks) == sorted(ran)
    for mark in marks:
        number = int(mark.attributes["data-check"])
        assert f"outcome-{ran[number]}" in mark.classes
        assert f"Check #{number} {ran[number]}" in " ".join(mark.text.split())
    ticks = dom.with_class("skip-tick")
    assert sorted(int(tick.attributes["data-check"]) for tick in ticks) == sorted(skipped)
    for tick in ticks:
        number = int(tick.attributes["data-check"])
        text = " ".join(tick.text.split())
        assert f"Check #{number} SKIPPED: previous download still in progress" in text
        if number in behind_long:
            assert tick.attributes.get("data-holder-check") == str(long_number)
            assert f"held by check #{long_number}" in text

    assert seed_lines(dom.by_id("summary").text) == status_seed_lines(project)
    for section in ("durations", "failed-videos", "playlists", "sources"):
        dom.by_id(section)

    light = browser.read_png(
        browser.screenshot(
            chromium,
            page.as_uri(),
            tmp_path / "light.png",
            width=1280,
            height=900,
            flags=(*browser.offline_flags(), *browser.LIGHT_FLAGS),
        )
    )
    dark = browser.read_png(
        browser.screenshot(
            chromium,
            page.as_uri(),
            tmp_path / "dark.png",
            width=1280,
            height=900,
            flags=(*browser.offline_flags(), *browser.DARK_FLAGS),
        )
    )
    light_background, dark_background = browser.colours(light).background, browser.colours(dark).background
    assert browser.luminance(dark_background) < browser.luminance(light_background) - 64, (
        light_background,
        dark_background,
    )


def test_report_of_a_month_in_a_browser(chromium: str, project: Project, tmp_path: Path) -> None:
    """30 days at one check a minute (43,200 checks): aggregated into buckets whose counts add up, under 2 MB."""
    month = write_month_log(project.log_file)
    page = tmp_path / "report.html"
    render(project, page, "31d")
    size = page.stat().st_size
    assert size < 2_000_000, f"the page is {size} bytes"
    dom = check_page(chromium, page, tmp_path)

    buckets = dom.with_class("bucket")
    assert buckets, "more than 2,000 checks: the page must aggregate them"

    def total(name: str) -> int:
        return sum(int(bucket.attributes[name]) for bucket in buckets)

    assert total("data-skipped") == month.outcomes["SKIPPED"]
    assert total("data-failed") == month.outcomes["FAILED"]
    assert total("data-checks") in (month.checks, month.ran), (total("data-checks"), month.checks, month.ran)
    assert seed_lines(dom.by_id("summary").text) == status_seed_lines(project)
