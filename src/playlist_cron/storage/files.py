"""The file-backed storage: flock(2) on `<archive_file>.lock` and on the download folder's lock, the state's JSON
file, yt-dlp's archive text file."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from playlist_cron import lock
from playlist_cron.config import Config
from playlist_cron.errors import ConfigError, NotARegularFile
from playlist_cron.state import StateStore
from playlist_cron.storage.base import ArchiveHealth, Note
from playlist_cron.storage.parts import Storage

if TYPE_CHECKING:
    from playlist_cron.config import Playlist
    from playlist_cron.records import PlaylistReadRecord, State
    from playlist_cron.storage.interfaces import VideoLocks
    from playlist_cron.storage.status_view import StatusReading

# In the download folder: whatever `archive_file` says, two checks never write one folder at once.
DOWNLOAD_FOLDER_LOCK = ".playlist-cron.lock"

# Patterns, not compiled at import: the skip path loads this module but never tends the archive (re caches them).
ARCHIVE_LINE = rb"[A-Za-z0-9_.:-]+ \S+"
WHOLE_ARCHIVE = rb"(?:[A-Za-z0-9_.:-]+ [^\s]+\n)*"


def open_for(config: Config) -> Storage:
    """Given a config, return its file-backed storage."""
    return Storage(
        run_lock=FileRunLock(
            config.lock_file,
            config.playlists,
            folder_lock=config.download_dir / DOWNLOAD_FOLDER_LOCK,
            config=config.path,
        ),
        state=FileState(StateStore.for_config(config)),
        archive=FileArchive(config.archive_file, config.path),
        status=FileStatus(StateStore.for_config(config), config.lock_file),
    )


class FileRunLock:
    """The run lock as a non-blocking flock(2) on a file beside the archive, then one on a file in the download folder
    (`folder_lock`); the holder is read from /proc.

    The archive's lock keeps the checks of one archive apart; the folder's lock keeps apart checks whose archives
    differ (`archive_file` renamed while a check runs, two configs sharing a folder), which would otherwise write one
    `.part` file together. A check that finds either held is SKIPPED.
    """

    def __init__(
        self,
        path: Path,
        playlists: Sequence[Playlist],
        *,
        folder_lock: Path,
        config: Path,
    ) -> None:
        self.path = path
        self._playlists = playlists
        self._folder_lock = folder_lock
        self._config = config
        self._found_held = path  # the lock the last try found held: the one `holder` and `name` speak of

    @property
    def name(self) -> str:
        return str(self._found_held)

    @property
    def nothing_due(self) -> bool:
        return False  # the due clock is asked before (`due`): a check that gets here has its playlists to read

    def try_acquire(self, *, force: bool = False) -> FileHold | None:
        held = lock.try_lock(self.path)
        if held is None:
            self._found_held = self.path
            return None
        try:
            folder_held = self._lock_folder()
        except BaseException:
            held.release()
            raise
        if folder_held is None:
            held.release()
            return None
        return FileHold(held, self._playlists, folder_held)

    def _lock_folder(self) -> lock.HeldLock | None:
        """Take the download folder's lock (creating the folder); None when another process holds it."""
        path = self._folder_lock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                str(self._config), [f"At 'download_dir': cannot create {path.parent}: {error.strerror}"]
            ) from None
        try:
            folder_held = lock.try_lock(path)
        except NotARegularFile as error:
            raise NotARegularFile(error.path, error.detail, key="download_dir") from None
        if folder_held is None:
            self._found_held = path
        return folder_held

    def holder(self) -> lock.Holder | None:
        return lock.holder(self._found_held)


class FileHold:
    """The flock a check holds: every playlist of the config is its to read, one after another."""

    def __init__(self, held: lock.HeldLock, playlists: Sequence[Playlist], folder_held: lock.HeldLock) -> None:
        self._held = held
        self._folder_held = folder_held
        self._next = iter(playlists)
        self._guard = threading.Lock()  # the check's readers ask from several threads
        self.started_at = held.started_at

    @property
    def video_locks(self) -> VideoLocks | None:
        return None  # the run lock alone keeps every other check of this archive away

    def watch(self, on_lost: Callable[[str], None]) -> None:
        pass  # the kernel holds a flock until the process ends: it cannot be lost

    def next_playlist(self) -> Playlist | None:
        with self._guard:
            return next(self._next, None)

    def done(self, playlist: Playlist, read_record: PlaylistReadRecord | None = None) -> bool:
        return False  # nothing is claimed (the flock covers every playlist), and the records go in at the end

    def release(self) -> None:
        self._folder_held.release()
        self._held.release()


class FileState:
    """The state as one JSON file per config, replaced atomically (see `state.StateStore`)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        # The threads of one process change the state one at a time before they take its flock: a second thread
        # would otherwise wait on a flock its own process holds (each takes it on a descriptor of its own).
        self._threads = threading.RLock()

    def ensure_ready(self) -> None:
        self.store.ensure_directory()

    def read(self) -> State:
        return self.store.read()

    @contextlib.contextmanager
    def update(self) -> Iterator[State]:
        with self._threads, self.store.update() as state:
            yield state

    def read_reads(self) -> dict[str, PlaylistReadRecord]:
        return self.store.read_reads()

    @contextlib.contextmanager
    def update_reads(self) -> Iterator[dict[str, PlaylistReadRecord]]:
        with self._threads, self.store.update_reads() as records:
            yield records

    def take_notes(self) -> list[Note]:
        notes = [
            Note(
                "state_migrated",
                note,
                alert=False,
                fields={"legacy_state_file": str(self.store.legacy_path), "state_file": str(self.store.path)},
            )
            for note in self.store.migration_notes
        ]
        notes += [Note("state_recovered", note, alert=True) for note in dict.fromkeys(self.store.recovery_notes)]
        # Damaged read records cost each playlist one full read, and nothing downloaded or counted: no alert.
        notes += [Note("state_recovered", note, alert=False) for note in self.store.reads.notes]
        self.store.migration_notes.clear()
        self.store.recovery_notes.clear()
        self.store.reads.notes.clear()
        return notes


class FileStatus:
    """`status`'s reading of a config kept in files: the state file, and who holds the lock file (from /proc)."""

    def __init__(self, store: StateStore, lock_path: Path) -> None:
        self.store = store
        self.lock_path = lock_path

    @property
    def where(self) -> str:
        return str(self.store.path)

    def read(self) -> StatusReading:
        from playlist_cron.storage.status_view import StatusReading

        store = self.store
        state = store.read()
        notes = list(store.recovery_notes)
        if store.read_path != store.path:
            notes.append(
                f"the state is read from {store.read_path}, which every config in {store.state_dir} used to share; "
                f"the next check moves it to {store.path}, unless another config's check takes it first"
            )
        reads = store.read_reads()
        notes += store.reads.notes
        return StatusReading(
            state, reads, notes, str(self.lock_path), lock.holder(self.lock_path), state_file=str(store.path)
        )


class FileArchive:
    """yt-dlp's download archive: a text file of "extractor id" lines that yt-dlp reads and appends to."""

    def __init__(self, path: Path, config_path: Path) -> None:
        self.path = path
        self.config_path = config_path
        self._lines: set[str] | None = None  # read at the first look-up: a check's one copy of the archive

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def yt_dlp_file(self) -> Path:
        return self.path

    def ensure_ready(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                str(self.config_path), [f"At 'archive_file': cannot create its folder: {error.strerror}"]
            ) from None

    def tend(self) -> ArchiveHealth:
        """End a last line cut short by a crash, and find the lines yt-dlp cannot use."""
        repaired = False
        try:
            with open(self.path, "rb+") as archive:
                data = archive.read()
                if data and not data.endswith(b"\n"):
                    # yt-dlp appends "id\n": without this, the next id would be glued to the cut-short line.
                    archive.write(b"\n")
                    data += b"\n"
                    repaired = True
        except FileNotFoundError:
            return ArchiveHealth()
        # One regular-expression pass over the whole archive (100,000 lines in about 25 ms); only when it
        # finds something else than "extractor id" lines are they looked at one by one.
        if re.fullmatch(WHOLE_ARCHIVE, data):
            return ArchiveHealth(repaired)
        bad_lines = tuple(
            number
            for number, line in enumerate(data.split(b"\n")[:-1], start=1)
            if line.strip() and not re.fullmatch(ARCHIVE_LINE, line.strip())
        )
        return ArchiveHealth(repaired, bad_lines)

    def lines(self) -> set[str]:
        try:
            with open(self.path, encoding="utf-8") as archive_file:
                return {line.strip() for line in archive_file}
        except FileNotFoundError:
            return set()

    def lookup(self, lines: Collection[str]) -> set[str]:
        """Those of `lines` the archive holds, from its lines read once (the check holds the archive's lock: only
        yt-dlp appends to it meanwhile, and the check knows what it appends)."""
        if self._lines is None:
            self._lines = self.lines()
        return {line for line in lines if line in self._lines}

    def extractors(self) -> set[str]:
        if self._lines is None:
            self._lines = self.lines()
        return {line.partition(" ")[0] for line in self._lines}

    def holds(self, line: str) -> bool:
        return line.strip() in self.lines()

    def add(self, line: str, host: str | None = None) -> bool:
        """Append the line as yt-dlp would (it is yt-dlp that appends during a check: see `yt_dlp_file`)."""
        from playlist_cron import atomic

        if self.holds(line):
            return False
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            atomic.write_all(fd, line.strip().encode("utf-8") + b"\n")
        finally:
            os.close(fd)
        if self._lines is not None:
            self._lines.add(line.strip())
        return True
