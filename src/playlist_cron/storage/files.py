"""The file-backed storage: flock(2) on `<archive_file>.lock`, the state's JSON file, yt-dlp's archive text file."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from playlist_cron import lock
from playlist_cron.config import Config
from playlist_cron.errors import ConfigError
from playlist_cron.state import StateStore
from playlist_cron.storage import ArchiveHealth, Note, Storage

if TYPE_CHECKING:
    from playlist_cron.records import State

# Patterns, not compiled at import: the skip path loads this module but never tends the archive (re caches them).
ARCHIVE_LINE = rb"[A-Za-z0-9_.:-]+ \S+"
WHOLE_ARCHIVE = rb"(?:[A-Za-z0-9_.:-]+ [^\s]+\n)*"


def open_for(config: Config) -> Storage:
    """Given a config, return its file-backed storage."""
    return Storage(
        run_lock=FileRunLock(config.lock_file),
        state=FileState(StateStore.for_config(config)),
        archive=FileArchive(config.archive_file, config.path),
    )


class FileRunLock:
    """The run lock as a non-blocking flock(2) on a file beside the archive; the holder is read from /proc."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def name(self) -> str:
        return str(self.path)

    def try_acquire(self) -> lock.HeldLock | None:
        return lock.try_lock(self.path)

    def holder(self) -> lock.Holder | None:
        return lock.holder(self.path)


class FileState:
    """The state as one JSON file per config, replaced atomically (see `state.StateStore`)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def ensure_ready(self) -> None:
        self.store.ensure_directory()

    def read(self) -> State:
        return self.store.read()

    def update(self) -> AbstractContextManager[State]:
        return self.store.update()

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
        self.store.migration_notes.clear()
        self.store.recovery_notes.clear()
        return notes


class FileArchive:
    """yt-dlp's download archive: a text file of "extractor id" lines that yt-dlp reads and appends to."""

    def __init__(self, path: Path, config_path: Path) -> None:
        self.path = path
        self.config_path = config_path

    @property
    def name(self) -> str:
        return str(self.path)

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
