"""The state's layout: counters in a small state file, each playlist's read record in a file of its own beside it.

A config of 10,000 playlists has about 8 MiB of read records; the not-due and skip paths, which run every cron
minute, must read neither them nor the playlists' entries of an unchanged config.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Project
from playlist_cron import clock, config, reads, state
from playlist_cron.state import StateStore


def reads_file(project: Project) -> Path:
    return project.state_file.with_name("config.reads.json")


def check(project: Project, *options: str, code: int = 0) -> dict[str, Any]:
    result = project.run("check", "--now", *options)
    assert result.returncode == code, result.stderr
    return [event for event in project.events() if event["event"].startswith("check_")][-1]


def test_a_check_keeps_the_read_records_out_of_the_state_file(project: Project) -> None:
    project.write_config()
    check(project)
    on_disk = project.state()
    assert on_disk["version"] == state.STATE_VERSION == 2
    assert "playlists" not in on_disk, "the state file holds counters and the run's records, not each playlist's"
    records = json.loads(reads_file(project).read_text())
    assert records["version"] == 1
    assert list(records["playlists"]) == [reads.record_key(project.feed.feed_url)]
    assert records["playlists"][reads.record_key(project.feed.feed_url)]["is_feed"] is True
    assert oct(reads_file(project).stat().st_mode & 0o777) == oct(state.FILE_MODE)


def test_a_version_1_state_gives_its_read_records_to_the_reads_file(project: Project) -> None:
    """Upgrading keeps each playlist's validators: the first check of the new release sends them, and gets a 304."""
    project.write_config(
        playlist_url=None, playlists=[{"url": project.feed.feed_url, "feed_url": project.feed.feed_url}]
    )
    check(project)
    check(project)  # the feed read that learns the validators
    on_disk = project.state()
    records = json.loads(reads_file(project).read_text())["playlists"]
    old = on_disk | {"version": 1, "playlists": records}
    del old["config_digest"]
    project.state_file.write_text(json.dumps(old))
    reads_file(project).unlink()
    assert StateStore(project.state_file.parent, project.config_path).read_reads() == records
    final = check(project)
    assert final["playlists"][0]["feed_status"] == 304, "the validators of the version 1 state were sent"
    assert project.state()["version"] == 2 and "playlists" not in project.state()
    assert json.loads(reads_file(project).read_text())["playlists"].keys() == records.keys()


def test_a_reads_file_from_a_newer_release_is_refused_and_left_alone(project: Project) -> None:
    project.write_config()
    check(project)
    newer = {"version": 2, "playlists": {}, "shape": "unknown to this release"}
    reads_file(project).write_text(json.dumps(newer))
    before = project.state_file.read_bytes()
    result = project.run("check", "--now")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert str(reads_file(project)) in line and "newer version" in line
    assert json.loads(reads_file(project).read_text()) == newer, "never written over with an older format"
    assert project.state()["checks_total"] == json.loads(before)["checks_total"] + 1


def test_a_damaged_reads_file_is_kept_aside_and_written_whole_again(project: Project) -> None:
    project.write_config()
    check(project)
    reads_file(project).write_text('{"version": 1, "playlists": {"https://example.org/": {"etag": 7}}}')
    final = check(project)
    assert final["outcome"] == "COMPLETED"
    [kept] = reads_file(project).parent.glob("config.reads.json.damaged-*")
    assert '"etag": 7' in kept.read_text()
    [note] = project.events("state_recovered")[-1:]
    assert str(reads_file(project)) in note["message"]
    assert note["level"] == "warning", "as the log's reference says: damage is a warning, though cron hears nothing"
    records = json.loads(reads_file(project).read_text())["playlists"]
    assert list(records) == [reads.record_key(project.feed.feed_url)], "written whole again"


def test_read_records_are_merged_per_playlist_not_written_back_from_a_copy(tmp_path: Path) -> None:
    """`retry` drops one playlist's validators while a check reads another: both changes stay."""
    store = StateStore(tmp_path / "state", tmp_path / "config.json")
    with store.update_reads() as records:
        records["https://example.org/a"] = {"etag": '"a1"'}
        records["https://example.org/b"] = {"etag": '"b1"'}
    at_start = store.read_reads()  # what a check took at its start
    with store.update_reads() as records:  # `retry`, meanwhile
        records["https://example.org/a"]["etag"] = None
    with store.update_reads() as records:  # the check's end: the one playlist it read
        records["https://example.org/b"] = at_start["https://example.org/b"] | {"etag": '"b2"'}
    assert store.read_reads() == {"https://example.org/a": {"etag": None}, "https://example.org/b": {"etag": '"b2"'}}


@pytest.fixture
def many_playlists(project: Project) -> Iterator[Project]:
    project.write_config(playlist_url=None, playlists=[f"{project.feed.feed_url}?n={number}" for number in range(200)])
    yield project


def _spy_on_playlist_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checked: list[str] = []
    real = config._Reader.playlists

    def counting(reader: Any, defaults: dict[str, Any]) -> list[config.Playlist]:
        checked.append(str(reader.path))
        return real(reader, defaults)

    monkeypatch.setattr(config._Reader, "playlists", counting)
    return checked


def _opened_paths() -> list[str]:
    opened: list[str] = []

    def hook(event: str, arguments: tuple[Any, ...]) -> None:
        if event == "open" and isinstance(arguments[0], (str, Path)):
            opened.append(str(arguments[0]))

    sys.addaudithook(hook)
    return opened


def _settle_as_after_a_check(project: Project) -> None:
    """The state and read records of a check moments ago, through the code under test (the config's digest too)."""
    loaded = config.load(project.config_path)
    store = StateStore.for_config(loaded)
    with store.update() as current:
        current["checks_total"] = 1
        current["last_check_at"] = clock.iso(clock.now_s())
        current["config_digest"] = loaded.digest
    with store.update_reads() as records:
        for playlist in loaded.playlists:
            records[reads.record_key(playlist.url)] = {"etag": '"x"'}


def test_the_not_due_path_of_an_unchanged_config_neither_checks_its_playlists_nor_reads_their_records(
    many_playlists: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = many_playlists
    _settle_as_after_a_check(project)
    checked = _spy_on_playlist_checks(monkeypatch)
    opened = _opened_paths()
    result = project.run_here("check")
    assert (result.returncode, result.stderr) == (0, "")
    assert checked == [], "the config's bytes are those a check of this release validated whole"
    assert str(reads_file(project)) not in opened


def test_the_not_due_path_checks_a_changed_config_whole(
    many_playlists: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = many_playlists
    _settle_as_after_a_check(project)
    written = json.loads(project.config_path.read_text())
    written["playlists"][7] = "not a url"
    project.config_path.write_text(json.dumps(written))
    checked = _spy_on_playlist_checks(monkeypatch)
    result = project.run_here("check")
    assert result.returncode == 78
    assert "At 'playlists[7]'" in result.stderr
    assert checked == [str(project.config_path)]


def test_the_skip_path_of_an_unchanged_config_neither_checks_its_playlists_nor_reads_their_records(
    many_playlists: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playlist_cron import lock

    project = many_playlists
    _settle_as_after_a_check(project)
    held = lock.try_lock(project.lock_file)
    assert held is not None
    try:
        checked = _spy_on_playlist_checks(monkeypatch)
        opened = _opened_paths()
        result = project.run_here("check", "--now")
    finally:
        held.release()
    assert result.returncode == 0, result.stderr
    assert project.events()[-1]["event"] == "check_skipped"
    assert checked == []
    assert str(reads_file(project)) not in opened
