"""Every command line and config example in docs/ is run or read as written: jq lines with the real jq on a log made by
real checks, `playlist-cron` lines against a real config (the fleet's against a real PostgreSQL), JSON configs through
the config reader. docs/jq.md's recipes have tests of their own (tests/test_jq_recipes.py), and so does the demo
(tests/test_demo.py); lines for other machines (kubectl, podman, systemctl, pip, a crontab) are left to their pages.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import COMMAND, FlockHolder, Project, clean_env, wait_for
from playlist_cron import clock, config
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items

DOCS = Path(__file__).resolve().parent.parent / "docs"
README = DOCS.parent / "README.md"
OWN_TESTS = {"jq.md", "demo.md"}  # pages whose every command has tests of its own
REMOVED = "removed-video"


def code_lines(page: Path) -> Iterator[str]:
    """Given a page, yield the lines of its code blocks (indented or fenced), a `$ ` prompt taken off, and a
    comment at the end of a shell line left out."""
    text = page.read_text()
    blocks = [block for _, block in re.findall(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)]
    blocks += [
        "\n".join(line[4:] for line in block.splitlines())
        for block in re.findall(r"(?:^    \S.*\n)+", re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S), re.M)
    ]
    for block in blocks:
        for line in block.splitlines():
            line = line.removeprefix("$ ").strip()
            yield re.sub(r"\s+# .*$", "", line)


def docs_lines(first_word: str) -> list[tuple[str, str]]:
    """Every code line of the README and docs/ (but the pages with tests of their own) whose first word is
    `first_word`, by page; a line after `|` counts by the first word of its last command (`grep ... | jq ...`)."""
    return [
        (page.name, line)
        for page in [README, *sorted(DOCS.glob("*.md"))]
        if page.name not in OWN_TESTS
        for line in code_lines(page)
        if _first_word(line) == first_word and "[--" not in line  # `demo [--dir PATH]`: a synopsis, not a line
    ]


def _first_word(line: str) -> str:
    """The command a line runs: its first word, or that of its last command for a `grep ... | jq ...` line."""
    last = line.rsplit(" | ", 1)[-1] if line.startswith("grep ") else line
    return last.split(" ", 1)[0].rsplit("/", 1)[-1]  # `.venv/bin/playlist-cron` is `playlist-cron`


def json_configs() -> list[tuple[str, str]]:
    """Every JSON block of docs/ that is a config (it names its playlists)."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"^```json\n(.*?)^```$", page.read_text(), re.MULTILINE | re.DOTALL):
            if '"playlist_url"' in block or '"playlists"' in block:
                found.append((page.name, block))
    return found


JQ_LINES = docs_lines("jq")
# `demo` lines are run by tests/test_demo.py, as the README gives them (`demo --serve` runs until stopped).
COMMAND_LINES = [(page, line) for page, line in docs_lines("playlist-cron") if shlex.split(line)[1] != "demo"]


def test_the_pages_have_the_lines_these_tests_run() -> None:
    # The reader itself: a page rewritten so that its commands are no longer found must fail here, not pass empty.
    assert len(JQ_LINES) >= 5, JQ_LINES
    assert {page for page, _ in COMMAND_LINES} >= {"playlists.md", "fleet.md"}, COMMAND_LINES
    assert len(json_configs()) >= 2


@pytest.fixture(scope="module")
def log_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A config folder whose log has every kind of event the pages' jq lines look for: downloads, a SKIPPED check,
    a failed video given up (level error), feed reads with their statuses."""
    items = [*make_items(2), FeedItem(REMOVED, "Removed video", media_status=404)]
    with FeedServer(items) as feed:
        project = Project(tmp_path_factory.mktemp("docs-log") / "project", feed)
        project.root.mkdir()
        project.write_config(retry_backoff_seconds=[1])
        assert project.run("check").returncode == 0
        [failed] = project.events("video_failed")
        retry_at_s = clock.parse_iso(failed["next_retry_at"])
        assert retry_at_s is not None
        wait_for(lambda: clock.now_s() > retry_at_s, timeout=30, what="the failed video's retry to be due")
        assert project.run("check", "--now").returncode == 0
        with FlockHolder(project.lock_file):
            assert project.run("check", "--now").returncode == 0
        assert project.events("video_given_up") and project.events("check_skipped")
        yield project.root


@pytest.mark.parametrize(("page", "line"), JQ_LINES, ids=[f"{page}:{line[:50]}" for page, line in JQ_LINES])
def test_a_jq_line_of_the_docs_answers_on_a_real_log(log_folder: Path, page: str, line: str) -> None:
    assert shutil.which("jq"), "jq is needed: .ci/run installs it (apt-get install jq)"
    result = subprocess.run(["bash", "-c", line], cwd=log_folder, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{page}: {line}\n{result.stderr}"
    assert result.stdout.strip(), f"{page}: {line} printed nothing from a log that has what it looks for"


def run_line(line: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """Run a docs line as a user would in `folder` (its `config.json` there), with the installed command."""
    words = shlex.split(line)
    return subprocess.run(
        [COMMAND, *words[1:]], cwd=folder, capture_output=True, text=True, timeout=120, env=clean_env()
    )


@pytest.mark.parametrize(
    ("page", "line"),
    [(page, line) for page, line in COMMAND_LINES if " db " not in f" {line} "],
    ids=lambda value: str(value)[:50],
)
def test_a_command_line_of_the_docs_runs_against_a_real_config(project: Project, page: str, line: str) -> None:
    config_path = project.write_config()
    assert config_path == project.root / "config.json", "the pages' lines name config.json in the folder"
    assert project.run("check").returncode == 0  # a config that has run a check, as the pages assume
    result = run_line(line, project.root)
    words = shlex.split(line)
    if words[1] == "retry":  # the page's video id is an example: not among this config's failed videos
        assert (result.returncode, result.stderr) == (
            1,
            f"playlist-cron: {words[-1]} is not among the failed videos (see `playlist-cron status`)\n",
        ), line
    else:
        assert result.returncode == 0, f"{page}: {line}\n{result.stdout}{result.stderr}"


def test_the_fleet_page_commands_run_against_a_real_database(project: Project, database: str) -> None:
    lines = [line for page, line in COMMAND_LINES if " db " in f" {line} "]
    assert [shlex.split(line)[2] for line in lines] == ["migrate", "migrate", "import-archive"]  # README, fleet.md
    project.write_config(database_url=database)
    (project.root / "archive.txt").write_text("youtube dQw4w9WgXcQ\nyoutube aaaaaaaaaaa\n")
    said = [run_line(line, project.root) for line in lines]
    assert [result.returncode for result in said] == [0, 0, 0], [result.stderr for result in said]
    assert said[2].stdout.startswith("imported 2 lines, 0 already there"), said[2].stdout


@pytest.mark.parametrize(("page", "block"), json_configs(), ids=[page for page, _ in json_configs()])
def test_a_config_example_of_the_docs_is_a_config_the_reader_accepts(tmp_path: Path, page: str, block: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(block)
    loaded = config.load(path)
    assert loaded.playlists, f"{page}: the example names no playlist"
    assert json.loads(block)  # and it is JSON a user can copy
