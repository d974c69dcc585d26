"""The storage interfaces: everything a check, `status` and `retry` ask of a backend, typed, for both to implement.

A check talks to these alone: the file backend (`files.py`) and the database backend (`fleet.py`, `postgres.py`)
answer every call, each in its own way, so that no caller asks which backend it has. Imported for the type checker
only (`TYPE_CHECKING`): nothing checks them at run time, and a Protocol class costs the skip path its making.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from playlist_cron.config import Playlist
    from playlist_cron.lock import Holder
    from playlist_cron.records import PlaylistReadRecord, State
    from playlist_cron.storage.base import ArchiveHealth, Note


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

    def done(self, playlist: Playlist, read_record: PlaylistReadRecord | None = None) -> bool:
        """The check is done with `playlist` (a fleet releases its claim), which it read as `read_record` says (None:
        not read). Return whether the record was stored with the release (a fleet's, in the playlist's row); when
        not, the check stores it at its end (`StateStorage.update_reads`). Safe to call from several threads."""
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

    def read_reads(self) -> dict[str, PlaylistReadRecord]:
        """Return each playlist's read record by its key, without waiting for a lock."""
        ...

    def update_reads(self) -> AbstractContextManager[dict[str, PlaylistReadRecord]]:
        """Yield the read records to change under a short lock; the caller changes only those it read (a merge per
        playlist, never a copy taken earlier written back); what it leaves is stored when it ends."""
        ...

    def take_notes(self) -> list[Note]:
        """Return (and forget) what the storage did on its own since the last call, for the check to log."""
        ...


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

    def lookup(self, lines: Collection[str]) -> set[str]:
        """Return those of `lines` the archive holds (a database: one query by key, however big the archive)."""
        ...

    def extractors(self) -> set[str]:
        """Return the extractor keys its lines name (youtube, generic, ...)."""
        ...

    def holds(self, line: str) -> bool:
        """Whether the line is archived now (another host may have added it since it was looked up)."""
        ...

    def add(self, line: str, host: str | None = None) -> bool:
        """Archive one line (added by `host`, default this one); return whether it was new."""
        ...
