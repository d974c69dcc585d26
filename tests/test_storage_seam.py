"""The storage seam: a check runs against any backend with the run lock, state and archive interfaces.

The file backend has the rest of the suite; here an in-memory double stands in for a backend that does not exist
yet (a database), which no test can start, to show that the check's logic talks to the interfaces alone.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from conftest import Project
from playlist_cron import check, check_skip, clock, config, state
from playlist_cron.console import Console
from playlist_cron.lock import Holder
from playlist_cron.storage import ArchiveHealth, Note, Storage
from playlist_cron.storage.status_view import StatusReading


class MemoryHeld:
    video_locks = None

    def __init__(self, run_lock: MemoryRunLock, playlists: tuple[config.Playlist, ...]) -> None:
        self.run_lock = run_lock
        self.started_at = clock.now_s()
        self._next = iter(playlists)
        self._guard = threading.Lock()
        self.done_with: list[config.Playlist] = []

    def watch(self, on_lost: Callable[[str], None]) -> None:
        pass

    def next_playlist(self) -> config.Playlist | None:
        with self._guard:
            return next(self._next, None)

    def done(self, playlist: config.Playlist, read_record: object = None) -> bool:
        with self._guard:
            self.done_with.append(playlist)
        return False  # the check's end stores the records, with `update_reads`

    def release(self) -> None:
        self.run_lock.holder_pid = None


class MemoryRunLock:
    name = "memory lock"
    nothing_due = False

    def __init__(self) -> None:
        self.holder_pid: int | None = None
        self.started_at: float | None = None
        self.playlists: tuple[config.Playlist, ...] = ()

    def try_acquire(self, *, force: bool = False) -> MemoryHeld | None:
        if self.holder_pid is not None:
            return None
        self.holder_pid, self.started_at = os.getpid(), clock.now_s()
        return MemoryHeld(self, self.playlists)

    def holder(self) -> Holder | None:
        return None if self.holder_pid is None else Holder(self.holder_pid, self.started_at)


class MemoryState:
    def __init__(self) -> None:
        self.state = state.empty()
        self.reads: dict[str, Any] = {}
        self.writes = 0

    def ensure_ready(self) -> None:
        pass

    def read(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        changed = self.read()
        yield changed
        assert not state.validate(changed), state.validate(changed)
        self.state = changed
        self.writes += 1

    def read_reads(self) -> dict[str, Any]:
        return copy.deepcopy(self.reads)

    @contextlib.contextmanager
    def update_reads(self) -> Iterator[dict[str, Any]]:
        changed = self.read_reads()
        yield changed
        self.reads = changed

    def take_notes(self) -> list[Note]:
        return []


class MemoryArchive:
    """An archive yt-dlp appends to as a file: the double's lines live in the project's archive file."""

    name = "memory archive"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.added: list[str] = []

    @property
    def yt_dlp_file(self) -> Path | None:
        return self.path

    def lines(self) -> set[str]:
        return set(self.path.read_text().split("\n")) - {""} if self.path and self.path.exists() else set()

    def lookup(self, lines: Collection[str]) -> set[str]:
        return set(lines) & self.lines()

    def extractors(self) -> set[str]:
        return {line.partition(" ")[0] for line in self.lines()}

    def holds(self, line: str) -> bool:
        return line in self.lines()

    def add(self, line: str, host: str | None = None) -> bool:
        self.added.append(line)
        return True

    def ensure_ready(self) -> None:
        pass

    def tend(self) -> ArchiveHealth:
        return ArchiveHealth()


class MemoryStatus:
    where = "memory"

    def __init__(self, run_lock: MemoryRunLock, state: MemoryState) -> None:
        self.run_lock = run_lock
        self.state = state

    def read(self) -> StatusReading:
        return StatusReading(
            self.state.read(), self.state.read_reads(), [], self.run_lock.name, self.run_lock.holder(), state_file=None
        )


def memory_storage() -> Storage:
    run_lock, memory_state = MemoryRunLock(), MemoryState()
    return Storage(
        run_lock=run_lock, state=memory_state, archive=MemoryArchive(), status=MemoryStatus(run_lock, memory_state)
    )


def run_check(project: Project, storage: Storage) -> check.Outcome:
    loaded = config.load(project.config_path)
    assert isinstance(storage.run_lock, MemoryRunLock)
    storage.run_lock.playlists = loaded.playlists
    return check.run_due(loaded, storage, console=Console(io.StringIO(), interactive=False), now_s=clock.now_s())


def test_a_check_downloads_with_its_lock_and_state_in_another_backend(project: Project) -> None:
    storage = memory_storage()
    outcome = run_check(project, storage)
    assert (outcome.outcome, outcome.reason, outcome.check) == ("COMPLETED", None, 1)
    counted = storage.state.read()
    assert (counted["checks_total"], counted["completed_total"], counted["downloaded_total"]) == (1, 1, 3)
    # The archive has no file for yt-dlp to append to: the check added each download's line through the interface.
    assert isinstance(storage.archive, MemoryArchive)
    assert len(storage.archive.added) == 3
    assert not project.archive_file.exists()
    assert counted["running"] is None
    assert storage.run_lock.holder() is None, "the lock was released"
    assert len([path for path in project.downloaded_files() if path.suffix == ".mp4"]) == 3
    # Nothing of the file backend was touched: no state file, no lock file.
    assert not project.state_file.parent.exists()
    assert not project.lock_file.exists()
    assert [event["outcome"] for event in project.events("check_completed")] == ["COMPLETED"]


def test_a_check_is_skipped_when_the_other_backend_says_its_lock_is_held(project: Project) -> None:
    storage = memory_storage()
    storage.run_lock.try_acquire()  # another check holds it
    outcome = run_check(project, storage)
    assert (outcome.outcome, outcome.reason, outcome.check) == ("SKIPPED", check_skip.SKIP_REASON, 1)
    counted = storage.state.read()
    assert (counted["checks_total"], counted["skipped_total"], counted["consecutive_skipped"]) == (1, 1, 1)
    (skipped,) = project.events("check_skipped")
    assert skipped["holder_pid"] == os.getpid()
    assert project.downloaded_files() == []
    assert not project.state_file.parent.exists()


def test_the_file_archive_answers_every_call_of_the_interface(tmp_path: Path) -> None:
    # yt-dlp appends to the file during a check; the interface's own calls must agree with what it wrote.
    from playlist_cron.storage.files import FileArchive

    archive = FileArchive(tmp_path / "archive.txt", tmp_path / "config.json")
    assert archive.yt_dlp_file == tmp_path / "archive.txt"
    assert archive.lines() == set()
    assert archive.add("youtube aaaaaaaaaaa") is True
    assert archive.add("youtube aaaaaaaaaaa") is False, "a line already there is not added twice"
    with (tmp_path / "archive.txt").open("a") as appended:  # as yt-dlp appends
        appended.write("generic b\n")
    assert archive.lines() == {"youtube aaaaaaaaaaa", "generic b"}
    assert archive.holds("generic b") and not archive.holds("generic c")
    assert (tmp_path / "archive.txt").read_text() == "youtube aaaaaaaaaaa\ngeneric b\n"
