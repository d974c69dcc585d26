"""docs/jq.md's recipes, "Reading the log with jq", run as written with the real jq on a log made by real checks."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import FlockHolder, Project, read_events, wait_for, yt_dlp_python_notice
from playlist_cron import clock
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items

PAGE = Path(__file__).parent.parent / "docs" / "jq.md"
SECTION = "# Reading the log with jq"
LOG = Path("logs") / "downloader.log"
REMOVED = "removed-video"


@dataclass
class Folder:
    """A config's folder holding `logs/downloader.log`, and the events of that log as Python reads them (yt-dlp's
    notice that this Python is deprecated left out: no recipe looks for it)."""

    root: Path
    text: str

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for event in map(json.loads, self.text.splitlines()) if not yt_dlp_python_notice(event)]


def page_recipes() -> dict[str, str]:
    """Return each recipe of the page, by the comment on its first line, exactly as written."""
    text = PAGE.read_text()
    assert text.startswith(SECTION + "\n"), f"docs/jq.md must open with its title, {SECTION!r}"
    start = len(SECTION)
    following = re.compile(r"^## ", re.MULTILINE).search(text, start)  # "# name" lines are the recipes' own
    section = text[start : following.start() if following else len(text)]
    recipes: dict[str, str] = {}
    for block in re.findall(r"^```sh\n(.*?)^```$", section, re.MULTILINE | re.DOTALL):
        first, *rest = block.splitlines()
        assert first.startswith("# "), f"a recipe's first line names it, as a comment: {block!r}"
        commands = [line for line in rest if line.strip()]
        assert len(commands) == 1, f"a recipe is one line: {block!r}"
        assert "logs/downloader.log" in commands[0], f"a recipe reads logs/downloader.log: {block!r}"
        assert first[2:] not in recipes, f"two recipes named {first[2:]!r}"
        recipes[first[2:]] = block
    return recipes


def page_recipe(name: str) -> str:
    recipes = page_recipes()
    assert name in recipes, f"docs/jq.md has no recipe whose first line is '# {name}'"
    return recipes[name]


def run_recipe(recipe: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", recipe], cwd=folder, capture_output=True, text=True, timeout=30)


# -- what each recipe must print, computed from the log with Python's json ------------------------------------------


def tsv(value: object) -> str:
    """Given a value, return it as jq's @tsv writes it (null as an empty field)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def check_skips_per_day(output: str, events: list[dict[str, Any]]) -> None:
    expected = sorted(Counter(e["timestamp"][:10] for e in events if e["event"] == "check_skipped").items())
    answered = [(day, int(count)) for count, day in (line.split() for line in output.splitlines())]
    assert answered == expected


def check_durations(output: str, events: list[dict[str, Any]]) -> None:
    expected = [(e["check"], e["duration_s"]) for e in events if e["event"] == "check_completed"]
    answered = [(int(check), float(duration)) for check, duration in (line.split("\t") for line in output.splitlines())]
    assert answered == expected


def check_slowest(output: str, events: list[dict[str, Any]]) -> None:
    ended = [
        {"check": e["check"], "outcome": e["outcome"], "duration_s": e["duration_s"]}
        for e in events
        if e.get("outcome") is not None and e.get("duration_s") is not None
    ]
    answered = [json.loads(line) for line in output.splitlines()]
    # Checks that took exactly as long may come in either order: compare the durations, then that each line is a check.
    assert [a["duration_s"] for a in answered] == sorted((e["duration_s"] for e in ended), reverse=True)[:5]
    for line in answered:
        assert line in ended
    assert len({a["check"] for a in answered}) == len(answered)


def check_failed_videos(output: str, events: list[dict[str, Any]]) -> None:
    expected = [
        [tsv(e["check"]), e["video_id"], tsv(e["attempts"]), e["next_retry_at"] or "given up", tsv(e["error"])]
        for e in events
        if e["event"] == "video_failed"
    ]
    assert [line.split("\t") for line in output.splitlines()] == expected


def check_last_outcome(output: str, events: list[dict[str, Any]]) -> None:
    last = [e for e in events if e.get("outcome") is not None][-1]
    expected = {key: last.get(key) for key in ("timestamp", "check", "outcome", "reason")}
    assert [json.loads(line) for line in output.splitlines()] == [expected]


def check_downloads_per_day(output: str, events: list[dict[str, Any]]) -> None:
    count: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for event in events:
        if event["event"] == "video_downloaded":
            count[event["timestamp"][:10]] += 1
            size[event["timestamp"][:10]] += event["bytes"]
    expected = [[day, str(count[day]), str(size[day])] for day in sorted(count)]
    assert [line.split("\t") for line in output.splitlines()] == expected


CHECKS: dict[str, Callable[[str, list[dict[str, Any]]], None]] = {
    "skips per day": check_skips_per_day,
    "check durations": check_durations,
    "the five slowest checks": check_slowest,
    "videos that failed": check_failed_videos,
    "the last outcome": check_last_outcome,
    "downloads per day": check_downloads_per_day,
}

# Near misses an edit of the page could make; each must give a wrong answer.
WRONG: dict[str, tuple[str, str]] = {
    "skips per day": ('.event=="check_skipped"', '.outcome!="COMPLETED"'),
    "check durations": ('select(.event=="check_completed")', "select(.duration_s != null)"),
    "the five slowest checks": ("sort_by(-.duration_s)", "sort_by(.duration_s)"),
    "videos that failed": ('.event=="video_failed"', '.level=="warning"'),
    "the last outcome": ("select(.outcome != null) | ", ""),
    "downloads per day": ("group_by(.day)[]", "group_by(.bytes)[]"),
}


# -- the log: real checks against the loopback feed ------------------------------------------------------------------


def _final(project: Project, check: int) -> dict[str, Any]:
    [final] = [e for e in project.events() if e["check"] == check and e.get("outcome") is not None]
    return final


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Folder]]:
    """The project's folder, while a tenth check is still downloading, and a copy whose first checks ran a day earlier.

    1 downloads three videos, throttled, while 2 and 3 are SKIPPED; the removed video fails (next try in 1 s).
    4 downloads a new video, and the removed video fails again and is given up. 5 to 7 find nothing new;
    8 is SKIPPED while flock(1) holds the lock. 9 reads a feed that is not XML: FAILED. 10 is still running.
    """
    with FeedServer([*make_items(3), FeedItem(REMOVED, "Removed video", media_status=404)]) as feed:
        project = Project(tmp_path_factory.mktemp("jq") / "project", feed)
        project.root.mkdir()
        project.write_config(retry_backoff_seconds=[1])

        feed.settings.bytes_per_second = 200_000  # three 200 kB videos: about 3 s
        first = project.start("check")
        wait_for(lambda: project.events("check_started"), what="the first check to start")
        for _ in range(2):
            assert project.run_here("check", "--now").returncode == 0
        assert first.wait(60) == 0, first.stderr.read()  # type: ignore[union-attr]
        feed.settings.bytes_per_second = None
        assert [_final(project, n)["outcome"] for n in (1, 2, 3)] == ["COMPLETED", "SKIPPED", "SKIPPED"]
        [failed] = project.events("video_failed")
        retry_at_s = clock.parse_iso(failed["next_retry_at"])
        assert retry_at_s is not None, failed
        wait_for(lambda: time.time() > retry_at_s, timeout=30, what="the failed video's retry to be due")

        feed.settings.items.extend(make_items(1, prefix="new"))
        for _ in range(4):
            assert project.run_here("check", "--now").returncode == 0
        with FlockHolder(project.lock_file):
            assert project.run_here("check", "--now").returncode == 0
        feed.settings.feed_body = b"this is not xml"
        assert project.run_here("check", "--now").returncode == 1
        feed.settings.feed_body = None
        outcomes = [_final(project, n)["outcome"] for n in range(4, 10)]
        assert outcomes == ["COMPLETED"] * 4 + ["SKIPPED", "FAILED"]
        assert [(e["attempts"], e["next_retry_at"]) for e in project.events("video_failed")][1] == (2, None)
        assert len(project.events("video_downloaded")) == 4

        feed.settings.items.append(FeedItem("slow-video", "Slow video", size_bytes=4_000_000))
        feed.settings.bytes_per_second = 50_000  # 80 s: it is still downloading while the recipes run
        running = project.start("check", "--now")
        try:
            wait_for(lambda: feed.requests_for("/media/slow-video"), what="the tenth check to download")
            assert project.events()[-1]["event"] == "check_started"
            text = project.log_file.read_text()

            earlier = tmp_path_factory.mktemp("jq-two-days")
            (earlier / "logs").mkdir()
            (earlier / LOG).write_text(_first_checks_a_day_earlier(text, until_check=4))
            yield {"real": Folder(project.root, text), "two days": Folder(earlier, (earlier / LOG).read_text())}
        finally:
            running.send_signal(signal.SIGTERM)
            running.wait(30)


def _first_checks_a_day_earlier(text: str, until_check: int) -> str:
    """Given a log, return it with the lines before check `until_check` started moved back a day."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        event = json.loads(line)
        if event["check"] >= until_check:
            break
        stamp = event["timestamp"]
        earlier = (date.fromisoformat(stamp[:10]) - timedelta(days=1)).isoformat() + stamp[10:]
        lines[index] = line.replace(f'"timestamp":"{stamp}"', f'"timestamp":"{earlier}"', 1)
        assert lines[index] != line
    return "".join(lines)


# -- the tests -------------------------------------------------------------------------------------------------------


def test_jq_is_installed() -> None:
    assert shutil.which("jq"), "jq is needed: .ci/run installs it (apt-get install jq)"


def test_the_page_has_every_recipe() -> None:
    assert sorted(page_recipes()) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
@pytest.mark.parametrize("which", ["real", "two days"])
def test_recipe_answers_as_python_reads_the_log(folders: dict[str, Folder], which: str, name: str) -> None:
    assert shutil.which("jq")
    folder = folders[which]
    result = run_recipe(page_recipe(name), folder.root)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip(), "every recipe has something to say about this log"
    CHECKS[name](result.stdout, folder.events)
    assert (folder.root / LOG).read_text() == folder.text, "the log changed while the recipe ran"


def test_the_log_has_what_the_recipes_look_for(folders: dict[str, Folder]) -> None:
    real = folders["real"].events
    first_day, last_day = real[0]["timestamp"][:10], real[-1]["timestamp"][:10]
    if first_day == last_day:  # not a log made across midnight
        skips = Counter(e["timestamp"][:10] for e in folders["two days"].events if e["event"] == "check_skipped")
        assert skips == {(date.fromisoformat(first_day) - timedelta(days=1)).isoformat(): 2, last_day: 1}
    durations = [e["duration_s"] for e in real if e.get("outcome") and e.get("duration_s") is not None]
    assert len(durations) == 6
    assert real[-1]["event"] == "check_started", "a check is still running"
    assert [e["outcome"] for e in real if e.get("outcome")][-1] == "FAILED"
    assert next(e["outcome"] for e in real if e.get("outcome")) == "SKIPPED"
    assert [(e["video_id"], e["attempts"]) for e in real if e["event"] == "video_failed"] == [
        (REMOVED, 1),
        (REMOVED, 2),
    ]
    assert read_events(folders["real"].root / LOG, "video_given_up")


@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_wrong_recipe_gives_a_wrong_answer(folders: dict[str, Folder], name: str) -> None:
    right, wrong = WRONG[name]
    recipe = page_recipe(name)
    assert right in recipe, f"docs/jq.md's {name!r} recipe changed: update WRONG in this test"
    folder = folders["two days"]
    result = run_recipe(recipe.replace(right, wrong), folder.root)
    assert result.returncode == 0, result.stderr
    with pytest.raises(AssertionError):
        CHECKS[name](result.stdout, folder.events)
