"""Integration: the state file on a real disk — atomic replace, the kept previous copy, damage, symlinks."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Project
from playlist_cron import clock, reads_file, state
from playlist_cron.errors import StateError
from playlist_cron.state import StateStore

CONFIG = Path("/srv/playlists/config.json")  # only its name matters: the state file is config.state.json


def test_fresh_state_is_zero_and_writes_are_versioned_and_private(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state", CONFIG)
    assert store.read()["checks_total"] == 0
    with store.update() as state:
        state["checks_total"] += 1
    saved = json.loads(store.path.read_text())
    assert saved["version"] == 2
    assert saved["checks_total"] == 1
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.state_dir.stat().st_mode & 0o777 == 0o700
    assert not list(store.state_dir.glob(".*.tmp")), "no temporary file is left behind"


def test_a_short_write_is_finished_not_left_as_a_cut_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # write(2) may take only part of its buffer (a nearly full disk, a signal): the rest must follow.
    store = StateStore(tmp_path, CONFIG)
    real_write = os.write
    taken: list[int] = []

    def half_write(fd: int, data: bytes) -> int:
        written = real_write(fd, bytes(data[: max(1, len(data) // 2)]))
        taken.append(written)
        return written

    with store.update() as state:
        state["checks_total"] = 7
        monkeypatch.setattr(os, "write", half_write)
    monkeypatch.undo()
    assert taken, "the state was written through the short write"
    saved = store.path.read_text()
    assert saved.endswith("}\n"), f"the state file was cut short: {saved[-40:]!r}"
    assert json.loads(saved)["checks_total"] == 7


def test_previous_good_state_is_kept_beside_the_current_one(tmp_path: Path) -> None:
    store = StateStore(tmp_path, CONFIG)
    for _ in range(3):
        with store.update() as state:
            state["checks_total"] += 1
    assert json.loads(store.previous_path.read_text())["checks_total"] == 2
    assert json.loads(store.path.read_text())["checks_total"] == 3


def test_damaged_state_is_recovered_from_the_previous_copy_and_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path, CONFIG)
    for _ in range(5):
        with store.update() as state:
            state["checks_total"] += 1
    store.path.write_text('{"version": 1, "checks_tot')
    recovered = store.read()
    assert recovered["checks_total"] == 4
    assert "was damaged" in store.recovery_notes[0]
    [kept] = list(tmp_path.glob("config.state.json.damaged-*"))
    assert kept.read_text() == '{"version": 1, "checks_tot'
    with store.update() as state:
        state["checks_total"] += 1
    assert store.read()["checks_total"] == 5
    assert json.loads(store.previous_path.read_text())["checks_total"] == 4, "the damaged file is not kept as .prev"


def test_damaged_state_without_a_good_copy_is_an_error_not_a_reset(tmp_path: Path) -> None:
    store = StateStore(tmp_path, CONFIG)
    store.path.write_text("garbage")
    with pytest.raises(StateError, match=r"is damaged .* a copy was kept at"):
        store.read()


def test_counters_never_go_down(tmp_path: Path) -> None:
    store = StateStore(tmp_path, CONFIG)
    with store.update() as state:
        state["checks_total"] = 5
    with pytest.raises(StateError, match="checks_total would go down from 5 to 4"), store.update() as state:
        state["checks_total"] = 4
    assert store.read()["checks_total"] == 5


def test_symlink_at_the_state_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    (tmp_path / "state").mkdir()
    os.symlink(target, tmp_path / "state" / "config.state.json")
    with pytest.raises(StateError, match="symbolic link"):
        StateStore(tmp_path / "state", CONFIG).read()
    assert target.read_text() == "{}"


def _add_many(directory: str, count: int) -> None:
    store = StateStore(Path(directory), CONFIG)
    for _ in range(count):
        with store.update() as state:
            state["checks_total"] += 1


def test_concurrent_updates_from_processes_lose_no_increment(tmp_path: Path) -> None:
    # Fresh interpreters, as checks started by cron are: forking this process, which may have threads left by other
    # tests, risks a deadlock in the child (a DeprecationWarning since Python 3.12).
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_add_many, args=(str(tmp_path), 50)) for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert StateStore(tmp_path, CONFIG).read()["checks_total"] == 300


# -- every field checked on read -----------------------------------------------------------------------------------

GOOD_RECORD = {
    "video_id": "a",
    "attempts": 1,
    "next_retry_at": "2026-01-01T00:00:00.000Z",
    "given_up": False,
    "error": "HTTP Error 404",
    "title": "A",
    "url": "http://127.0.0.1/media/a.mp4",
    "playlist_url": "http://127.0.0.1/feed.xml",
    "first_failed_at": "2026-01-01T00:00:00.000Z",
    "last_failed_at": "2026-01-01T00:00:00.000Z",
}
BAD_FIELDS = [
    ("last_check_at", "yesterday"),
    ("last_check_at", 1767225600),
    ("last_check_at", "2026-01-01T00:00:00"),  # no time zone: which hour would it be?
    ("last_completed_at", "2026-13-45T00:00:00Z"),
    ("cooldown_until", "soon"),
    ("checks_total", -1),
    ("skipped_total", True),
    ("downloaded_total", 1.5),
    ("completed_total", "3"),
    ("consecutive_skipped", None),
    ("cooldown_level", -2),
    ("last_outcome", "MAYBE"),
    ("last_ran_outcome", 1),
    ("last_outcome_check", "one"),
    ("last_duration_s", "fast"),
    ("last_duration_s", -1),
    ("last_failure_reason", 5),
    ("last_error", ["x"]),
    ("archive_garbage_reported", -1),
    ("running", "yes"),
    ("running", {"pid": 1}),
    ("running", {"check": 1, "pid": 1, "started_at": "later", "run_id": "x"}),
    ("failed_videos", []),
    ("failed_videos", {"generic a": "broken"}),
    ("failed_videos", {"generic a": {**GOOD_RECORD, "attempts": -1}}),
    ("failed_videos", {"generic a": {**GOOD_RECORD, "attempts": "1"}}),
    ("failed_videos", {"generic a": {**GOOD_RECORD, "next_retry_at": "tomorrow"}}),
    ("failed_videos", {"generic a": {**GOOD_RECORD, "given_up": "yes"}}),
    ("failed_videos", {"generic a": {**GOOD_RECORD, "video_id": None}}),
    ("network_failing_since", "never"),
    ("network_alerted_at", 7),
    ("version", "1"),
    ("version", 0),
]


def _three_writes(directory: Path) -> StateStore:
    store = StateStore(directory, CONFIG)
    for _ in range(3):
        with store.update() as state:
            state["checks_total"] += 1
            state["failed_videos"]["generic a"] = dict(GOOD_RECORD)
    return store


@pytest.mark.parametrize(
    ("field", "value"), BAD_FIELDS, ids=[f"{field}-{index}" for index, (field, _) in enumerate(BAD_FIELDS)]
)
def test_a_bad_field_is_recovered_from_the_previous_copy_like_a_damaged_file(
    tmp_path: Path, field: str, value: object
) -> None:
    store = _three_writes(tmp_path)
    saved = json.loads(store.path.read_text())
    saved[field] = value
    damaged_text = json.dumps(saved)
    store.path.write_text(damaged_text)
    recovered = store.read()
    assert recovered["checks_total"] == 2, "the previous good copy is used"
    [note] = store.recovery_notes
    assert "was damaged" in note and field in note, note
    [kept] = list(tmp_path.glob(f"{store.path.name}.damaged-*"))
    assert kept.read_text() == damaged_text


def test_good_values_of_every_optional_field_are_accepted(tmp_path: Path) -> None:
    store = _three_writes(tmp_path)
    saved = json.loads(store.path.read_text())
    saved.update(
        network_failing_since="2026-01-01T00:00:00.000Z",
        network_alerted_at=None,
        last_ran_outcome="COMPLETED",
        archive_garbage_reported=3,
        running={"check": 3, "pid": 12, "started_at": "2026-01-01T00:00:00.000Z", "run_id": "abc"},
        some_field_of_a_later_release={"kept": True},
    )
    store.path.write_text(json.dumps(saved))
    state = store.read()
    assert store.recovery_notes == []
    assert state["network_failing_since"] == "2026-01-01T00:00:00.000Z"
    assert state["some_field_of_a_later_release"] == {"kept": True}
    assert state["failed_videos"]["generic a"] == GOOD_RECORD


# -- the installed command on a real state file ---------------------------------------------------------------------


def _edit_state(project: Project, **changes: object) -> str:
    state = project.state()
    state.update(changes)
    text = json.dumps(state, indent=1)
    project.state_file.write_text(text)
    return text


def test_a_bad_timestamp_in_the_state_file_is_recovered_not_an_internal_error_forever(
    project: Project, reliability: Callable[[str], None]
) -> None:
    for _ in range(3):
        assert project.run("check", "--now").returncode == 0
    _edit_state(project, last_check_at="yesterday")
    status = project.run_here("status", "--json")
    assert status.returncode == 0, status.stderr
    assert "was damaged" in json.loads(status.stdout)["notes"][0]
    not_due = project.run("check")  # the previous copy's last check was moments ago
    assert (not_due.returncode, not_due.stdout, not_due.stderr) == (0, "", "")
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert "was damaged" in line and "last_check_at" in line, line
    [recovered] = project.events("state_recovered")
    assert "last_check_at" in recovered["message"]
    assert project.events()[-1]["event"] == "check_completed"
    kept = list(project.state_file.parent.glob(f"{project.state_file.name}.damaged-*"))
    assert len(kept) == 1, "one copy of the damaged file, however many commands read it"
    status = project.run_here("status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["checks_total"] == 4, "the previous copy (from the third check) and one more"
    reliability(
        "state field: last_check_at 'yesterday' after 3 checks -> status exit 0 with a note, a plain check not due "
        "and silent, check --now COMPLETED with state_recovered and 1 stderr line, 1 damaged copy kept, "
        "checks_total 4"
    )


def test_a_state_file_from_a_newer_version_is_refused_not_rolled_back(
    project: Project, reliability: Callable[[str], None]
) -> None:
    for _ in range(3):
        assert project.run("check", "--now").returncode == 0
    newer = _edit_state(project, version=3, checks_total=500, completed_total=500)
    requests_before, log_before = len(project.feed.requests), project.log_file.read_text()
    for arguments in (("check",), ("check", "--now"), ("status",), ("status", "--json"), ("retry",)):
        result = project.run(*arguments)
        assert result.returncode == 1, (arguments, result.stdout, result.stderr)
        [line] = result.stderr.splitlines()
        assert str(project.state_file) in line and "newer version" in line, (arguments, line)
    assert project.state_file.read_text() == newer, "the file is left as it was"
    assert not list(project.state_file.parent.glob("*.damaged-*"))
    assert len(project.feed.requests) == requests_before
    assert project.log_file.read_text() == log_before
    reliability(
        "state version 3 (500 checks) beside a .prev of 3 checks -> check, check --now, status, status --json and "
        "retry each exit 1 naming the file, file unchanged, no request, no log line"
    )


def test_a_cooldown_written_under_a_wrong_clock_is_capped(project: Project, reliability: Callable[[str], None]) -> None:
    project.write_config(cooldown_seconds=1)
    assert project.run("check").returncode == 0
    _edit_state(project, cooldown_until="2100-01-01T00:00:00.000Z", cooldown_level=3)
    before_s = time.time()
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    [deferred] = project.events("check_deferred")
    limit_s = time.time() + 64 * 1
    assert before_s + 64 - 1 <= clock.parse_iso(deferred["cooldown_until"]) <= limit_s, deferred  # type: ignore[operator]
    [capped] = project.events("cooldown_capped")
    assert capped["cooldown_until_was"] == "2100-01-01T00:00:00.000Z"
    assert capped["cooldown_until"] == deferred["cooldown_until"]
    assert clock.parse_iso(project.status()["cooldown_until"]) <= limit_s  # type: ignore[operator]

    # With cooldowns turned off (0 s), a cooldown from a wrong clock defers nothing at all.
    project.write_config(cooldown_seconds=0)
    _edit_state(project, cooldown_until="2100-01-01T00:00:00.000Z")
    assert project.run("check", "--now").returncode == 0
    assert project.events()[-1]["event"] == "check_completed"
    ahead_s = clock.parse_iso(deferred["cooldown_until"]) - before_s  # type: ignore[operator]
    reliability(
        f"cooldown_until 2100-01-01 (a wrong clock) -> cooldown_seconds 1: DEFERRED only {ahead_s:.0f} s ahead "
        "(cap 64 x 1 s), cooldown_capped logged; cooldown_seconds 0: COMPLETED at once"
    )


def test_a_plain_check_goes_by_the_state_file_configs_once_shared_and_leaves_it_in_place(project: Project) -> None:
    # After an upgrade, until a due check adopts it, the shared state/state.json is the due clock.
    assert project.run("check").returncode == 0
    legacy = project.state_file.with_name("state.json")
    os.rename(project.state_file, legacy)
    legacy_text = legacy.read_text()
    not_due = project.run("check")
    assert (not_due.returncode, not_due.stdout, not_due.stderr) == (0, "", "")
    assert legacy.read_text() == legacy_text and not project.state_file.exists(), "not due: nothing adopted"
    assert len(project.events("check_completed")) == 1


# -- big states: 10,000 playlists --------------------------------------------------------------------------------

PLAYLIST_RECORD = {
    "feed_url": "https://example.org/feed.xml?channel=1",
    "etag": '"v1"',
    "last_modified": "Tue, 01 Dec 2026 12:00:00 GMT",
    "last_feed_read_at": "2026-12-01T12:00:00.000Z",
    "last_feed_error": None,
    "last_full_read_at": "2026-12-01T06:00:00.000Z",
    "channel_id": None,
    "is_feed": False,
    "playlist_fields": {"playlist_title": "Chännel «1»", "playlist_id": None},
}


class _Text(str):
    """A string of a subclass, as a library may hand one over: a string all the same."""


def test_every_bad_field_among_many_good_records_is_named_where_it_is() -> None:
    records: dict[str, object] = {f"https://example.org/{number}": dict(PLAYLIST_RECORD) for number in range(10_000)}
    records["https://example.org/bad"] = {
        **PLAYLIST_RECORD,
        "etag": 5,
        "playlist_fields": {"playlist_title": 1},
        "last_full_read_at": "soon",
        "is_feed": "no",
    }
    records["https://example.org/not-an-object"] = ["x"]
    records["https://example.org/subclassed"] = {
        **PLAYLIST_RECORD,
        "playlist_fields": {_Text("playlist_title"): _Text("x")},
    }
    big = state.empty()
    big["failed_videos"] = {"generic a": {**GOOD_RECORD, "attempts": -1}, "generic b": {"attempts": 1}}  # type: ignore[typeddict-item]
    big["running"] = {"pid": 0}  # type: ignore[typeddict-item]
    assert state.validate(big) == [
        "running.check is missing",
        "running.pid is 0, expected a process id >= 1",
        "running.started_at is missing",
        "failed_videos['generic a'].attempts is -1, expected a whole number >= 0",
        "failed_videos['generic b'].video_id is missing",
    ]
    assert reads_file.records_problems(records) == [
        "playlists['https://example.org/bad'].etag is 5, expected null or a string",
        "playlists['https://example.org/bad'].last_full_read_at is 'soon', expected null or an ISO 8601 time with its "
        "offset (2026-01-31T12:00:00.000Z)",
        "playlists['https://example.org/bad'].is_feed is 'no', expected null, true or false",
        "playlists['https://example.org/bad'].playlist_fields is {'playlist_title': 1}, expected null or an object "
        "of strings",
        "playlists['https://example.org/not-an-object'] is not an object",
    ]


def test_the_records_of_10000_playlists_are_written_as_they_were_changed_one_line_a_record(tmp_path: Path) -> None:
    store = StateStore(tmp_path, CONFIG)
    records = {f"https://example.org/{number}": dict(PLAYLIST_RECORD) for number in range(10_000)}
    with store.update_reads() as changed:
        changed.update(records)  # type: ignore[arg-type]
    with store.update_reads() as changed:
        changed["https://example.org/7"]["etag"] = '"v2"'
    with store.update() as counted:
        counted["checks_total"] = 4
    written = store.reads.path.read_text()
    saved = json.loads(written)
    assert saved == {
        "version": 1,
        "playlists": {**records, "https://example.org/7": {**PLAYLIST_RECORD, "etag": '"v2"'}},
    }
    assert store.read_reads() == saved["playlists"]
    assert json.loads(store.path.read_text()) == {**state.empty(), "checks_total": 4}, "the state holds none of them"
    lines = written.splitlines()
    assert len(lines) == 2 + 10_000 + 1 + 2, "a line a field, a record, and the braces"
    assert lines[0] == "{" and lines[-1] == "}" and written.endswith("}\n")
    [line] = [line for line in lines if 'example.org/7"' in line]
    assert json.loads("{" + line.rstrip(",") + "}") == {"https://example.org/7": {**PLAYLIST_RECORD, "etag": '"v2"'}}


def test_a_change_of_the_state_is_not_seen_by_the_counters_it_is_checked_against(tmp_path: Path) -> None:
    store = StateStore(tmp_path, CONFIG)
    with store.update() as changed:
        changed["downloaded_total"] = 5
    with pytest.raises(StateError, match="downloaded_total would go down from 5 to 0"), store.update() as changed:
        changed.clear()
        changed.update(state.empty())
    assert store.read()["downloaded_total"] == 5
