"""The storage interfaces: everything a check, `status` and `retry` ask of a backend, typed, for both to implement.

A check talks to these alone: the file backend (`files.py`) and the database backend (`fleet.py`, `postgres.py`)
answer every call, each in its own way, so that no caller asks which backend it has.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from playlist_cron.config import Playlist
    from playlist_cron.lock import Holder
    from playlist_cron.records import State

# The records below are NamedTuples, not dataclasses: the skip path uses them, and a dataclass costs it ~0.1 ms each.


class VideoLocks(Protocol):
    """Locks on videos while they download, so that two hosts sharing a collection never fetch one video twice."""

    def lock_video(self, archive_line: str) -> bool:
        """Lock the video of this archive line; return False at once when another host holds it."""
        ...

    def unlock_video(self, archive_line: str) -> None: ...


class HeldRunLock(Protocol):
    """A run lock this process holds; it must be freed when the process ends, however it ends."""

    @property
    def started_at(self) -> float: ...

    @property
    def video_locks(self) -> VideoLocks | None:
        """The locks a download takes on each video (a fleet), or None when holding the run lock is enough."""
        ...

    def watch(self, on_lost: Callable[[str], None]) -> None:
        """Watch whatever keeps the lock held; call `on_lost` (from another thread) with why, should it be lost."""
        ...

    def next_playlist(self) -> Playlist | None:
        """The next playlist this check works on, or None when none is left (a fleet claims it as it is asked for,
        and goes on claiming while due playlists remain). Safe to call from several threads."""
        ...

    def done(self, playlist: Playlist) -> None:
        """The check is done with `playlist` (a fleet releases its claim). Safe to call from several threads."""
        ...

    def release(self) -> None: ...


class RunLock(Protocol):
    """The lock a check holds from start to end, so that one check of a config runs at a time."""

    @property
    def name(self) -> str: ...  # how messages name it: the lock file's path, say

    @property
    def nothing_due(self) -> bool:
        """After a `try_acquire` that returned None: whether that was because nothing was due (not a skip)."""
        ...

    def try_acquire(self, *, force: bool = False) -> HeldRunLock | None:
        """Return the held lock, or None at once when another process holds it (or nothing is due). `force`
        (`check --now`): work that is not due yet is taken too."""
        ...

    def holder(self) -> Holder | None:
        """Return who holds the lock, or None when nobody does."""
        ...


class Note(NamedTuple):
    """Something the state storage had to do on its own (adopt an old file, recover a damaged one), to be logged."""

    event: str  # the log event: state_migrated or state_recovered
    message: str
    alert: bool  # a human should look (stderr), not only the log
    fields: dict[str, str] | None = None  # more fields for the log event


class StateStorage(Protocol):
    """The state of one config: its counters and records, read whole and changed whole, atomically."""

    def ensure_ready(self) -> None:
        """Make the state's home usable; raise StateError (a config error when the configured place is unusable),
        or DatabaseUnavailable."""
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

    @property
    def yt_dlp_file(self) -> Path | None:
        """The file yt-dlp itself appends each download's line to; None when the check adds each line (`add`)."""
        ...

    def ensure_ready(self) -> None:
        """Make the archive's home usable; raise ConfigError when the configured place cannot be."""
        ...

    def tend(self) -> ArchiveHealth:
        """Mend what a crash can leave behind and report lines that are not archive lines."""
        ...

    def lines(self) -> set[str]:
        """Return every line of the archive, stripped, as yt-dlp reads them."""
        ...

    def holds(self, line: str) -> bool:
        """Whether the line is archived now (another host may have added it since `lines`)."""
        ...

    def add(self, line: str, host: str | None = None) -> bool:
        """Archive one line (added by `host`, default this one); return whether it was new."""
        ...


class PlaylistRow(NamedTuple):
    """A playlist's row of `playlist_cron_playlists`; times in epoch seconds, None when unset (`due_at`: also when
    it has never been checked, so that it is due at once)."""

    due_at_s: float | None
    last_checked_at_s: float | None
    holder_host: str | None  # None, as the other holder fields, unless the holder's advisory lock is held now
    holder_pid: int | None
    held_since_s: float | None
    held_s: float | None  # by the database's clock, as `held_since` is


class FleetView(NamedTuple):
    """The fleet as one config sees it."""

    database: str  # the database's URL without its password or options

    host: str  # this host's name in the database
    collection: str
    state: State  # this host's row merged with the fleet's row, as a check reads it
    hosts: list[tuple[str, dict[str, Any]]]  # every host's own row, by host name
    playlists: dict[str, PlaylistRow]  # by the playlist's key (its redacted URL); none for one never seen by a check


class StatusReading(NamedTuple):
    """What `status` reads of a storage, in one go."""

    state: State
    notes: list[str]  # what the storage had to do or assume to read it (a state file adopted, recovered)
    lock_file: str | None  # the run lock's file, when the lock is one (files)
    holder: Holder | None  # who holds that lock now
    state_file: str | None  # the state's file, when it is one
    fleet: FleetView | None = None  # the fleet, for a storage several hosts share


class StatusSource(Protocol):
    """What `status` asks of a storage."""

    @property
    def where(self) -> str: ...  # the storage as a message names it: the state file, the database without password

    def read(self) -> StatusReading:
        """Read the state and who holds what, as of now; raise DatabaseUnavailable, SchemaMissing, SchemaNewer or
        StateError as a check would."""
        ...


class Storage(NamedTuple):
    """Where one config keeps its run lock, its state and its archive."""

    run_lock: RunLock
    state: StateStorage
    archive: Archive
    status: StatusSource
    # The host's own state file, where a backend on another machine (a database) keeps the streak of checks that
    # could not reach it: that streak cannot be kept where it could not be reached. None when the state is local.
    reach_state: StateStorage | None = None
    # yt-dlp's folder for partial downloads when it must not be beside the files (a fleet sharing one download
    # folder: each host's own); None for yt-dlp's default.
    partial_dir: Path | None = None
