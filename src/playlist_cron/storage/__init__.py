"""The storage seam: a config's run lock, state and archive, each behind a small interface, chosen once."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from playlist_cron.config import Config
    from playlist_cron.lock import Holder
    from playlist_cron.records import State


class HeldRunLock(Protocol):
    """A run lock this process holds; it must be freed when the process ends, however it ends."""

    @property
    def started_at(self) -> float: ...

    def release(self) -> None: ...


class RunLock(Protocol):
    """The lock a check holds from start to end, so that one check of a config runs at a time."""

    @property
    def name(self) -> str: ...  # how messages name it: the lock file's path, say

    def try_acquire(self) -> HeldRunLock | None:
        """Return the held lock, or None at once when another process holds it."""
        ...

    def holder(self) -> Holder | None:
        """Return who holds the lock, or None when nobody does."""
        ...


# The records below are NamedTuples, not dataclasses: the skip path uses them, and a dataclass costs it ~0.1 ms each.


class Note(NamedTuple):
    """Something the state storage had to do on its own (adopt an old file, recover a damaged one), to be logged."""

    event: str  # the log event: state_migrated or state_recovered
    message: str
    alert: bool  # a human should look (stderr), not only the log
    fields: dict[str, str] | None = None  # more fields for the log event


class StateStorage(Protocol):
    """The state of one config: its counters and records, read whole and changed whole, atomically."""

    def ensure_ready(self) -> None:
        """Make the state's home usable; raise StateError (a config error when the configured place is unusable)."""
        ...

    def read(self) -> State:
        """Return the current state, without waiting for a lock."""
        ...

    def update(self) -> AbstractContextManager[State]:
        """Yield the state to change under a short lock; what the caller leaves in it is stored when it ends."""
        ...

    def take_notes(self) -> list[Note]:
        """Return (and forget) what the storage did on its own since the last call, for the check to log."""
        ...


class ArchiveHealth(NamedTuple):
    """What tending the archive found."""

    repaired: bool = False  # a last line cut short by a crash was ended, so the next id is not glued to it
    bad_line_numbers: tuple[int, ...] = ()  # lines that are not "extractor id" lines: yt-dlp ignores them


class Archive(Protocol):
    """The download archive: the "extractor id" lines of every video downloaded or marked as archived."""

    @property
    def name(self) -> str: ...  # how messages name it: the archive file's path, say

    def ensure_ready(self) -> None:
        """Make the archive's home usable; raise ConfigError when the configured place cannot be."""
        ...

    def tend(self) -> ArchiveHealth:
        """Mend what a crash can leave behind and report lines that are not archive lines."""
        ...


class Storage(NamedTuple):
    """Where one config keeps its run lock, its state and its archive."""

    run_lock: RunLock
    state: StateStorage
    archive: Archive


def open_for(config: Config) -> Storage:
    """Given a config, return its storage; the only place a backend is chosen: the database when `database_url` is
    set (psycopg is loaded then only), else files."""
    if config.database_url:
        from playlist_cron.storage import postgres

        return postgres.open_for(config)
    from playlist_cron.storage import files

    return files.open_for(config)
