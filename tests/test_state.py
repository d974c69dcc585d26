"""Integration: the state file on a real disk — atomic replace, the kept previous copy, damage, symlinks."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from playlist_cron.errors import StateError
from playlist_cron.state import StateStore


def test_fresh_state_is_zero_and_writes_are_versioned_and_private(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.read()["checks_total"] == 0
    with store.update() as state:
        state["checks_total"] += 1
    saved = json.loads(store.path.read_text())
    assert saved["version"] == 1
    assert saved["checks_total"] == 1
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.state_dir.stat().st_mode & 0o777 == 0o700
    assert not list(store.state_dir.glob(".*.tmp")), "no temporary file is left behind"


def test_previous_good_state_is_kept_beside_the_current_one(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for _ in range(3):
        with store.update() as state:
            state["checks_total"] += 1
    assert json.loads(store.previous_path.read_text())["checks_total"] == 2
    assert json.loads(store.path.read_text())["checks_total"] == 3


def test_damaged_state_is_recovered_from_the_previous_copy_and_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for _ in range(5):
        with store.update() as state:
            state["checks_total"] += 1
    store.path.write_text('{"version": 1, "checks_tot')
    recovered = store.read()
    assert recovered["checks_total"] == 4
    assert "was damaged" in store.recovery_notes[0]
    [kept] = list(tmp_path.glob("state.json.damaged-*"))
    assert kept.read_text() == '{"version": 1, "checks_tot'
    with store.update() as state:
        state["checks_total"] += 1
    assert store.read()["checks_total"] == 5
    assert json.loads(store.previous_path.read_text())["checks_total"] == 4, "the damaged file is not kept as .prev"


def test_damaged_state_without_a_good_copy_is_an_error_not_a_reset(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_text("garbage")
    with pytest.raises(StateError, match=r"is damaged .* a copy was kept at"):
        store.read()


def test_counters_never_go_down(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with store.update() as state:
        state["checks_total"] = 5
    with pytest.raises(StateError, match="checks_total would go down from 5 to 4"), store.update() as state:
        state["checks_total"] = 4
    assert store.read()["checks_total"] == 5


def test_symlink_at_the_state_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    (tmp_path / "state").mkdir()
    os.symlink(target, tmp_path / "state" / "state.json")
    with pytest.raises(StateError, match="symbolic link"):
        StateStore(tmp_path / "state").read()
    assert target.read_text() == "{}"


def _add_many(directory: str, count: int) -> None:
    store = StateStore(Path(directory))
    for _ in range(count):
        with store.update() as state:
            state["checks_total"] += 1


def test_concurrent_updates_from_processes_lose_no_increment(tmp_path: Path) -> None:
    processes = [multiprocessing.Process(target=_add_many, args=(str(tmp_path), 50)) for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert StateStore(tmp_path).read()["checks_total"] == 300
