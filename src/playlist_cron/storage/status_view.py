"""What `status` reads of a storage: its reading's records and the interface both backends answer it through.

Apart from `base`: only `status` needs these, and each NamedTuple costs the skip path a compile of its annotations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from collections.abc import Generator

    from playlist_cron.lock import Holder
    from playlist_cron.records import PlaylistReadRecord, State


class PlaylistRow(NamedTuple):
    """A playlist's row of `playlist_cron_playlists`; its times as `clock.iso` writes them, None when unset
    (`due_at`: also when it has never been checked, so that it is due at once)."""

    due_at: str | None
    last_checked_at: str | None
    holder_host: str | None  # None, as the other holder fields, unless the holder's advisory lock is held now
    holder_pid: int | None
    held_since_s: float | None
    held_s: float | None  # by the database's clock, as `held_since` is


class ConfiguredPlaylist(NamedTuple):
    """One of the config's playlists as the database has it: its key, its read record (None: none, or a damaged one,
    left out), and its row (None: no check has seen it yet)."""

    key: str  # the playlist's key: its redacted URL
    record: PlaylistReadRecord | None
    row: PlaylistRow | None
    damage: str | None = None  # the note of its record left out as damaged: what is wrong, and what follows


class FleetView(NamedTuple):
    """The fleet as one config sees it."""

    database: str  # the database's URL without its password or options

    host: str  # this host's name in the database
    collection: str
    state: State  # this host's row with the collection's failed videos, as a check reads it
    hosts: list[tuple[str, dict[str, Any]]]  # every host's own row, by host name
    held: dict[str, PlaylistRow]  # the rows of the config's playlists a check holds now, by key
    # Each of the config's playlists, in the config's order, read as it is iterated: one pass, in the same snapshot
    # as the rest, whose transaction stays open until it is exhausted or closed. Not a dict of 10,000 records.
    playlists: Generator[ConfiguredPlaylist, None, None]
    notes: tuple[str, ...] = ()  # what reading the rest found damaged and left out (a failed video's record)


class StatusReading(NamedTuple):
    """What `status` reads of a storage, in one go."""

    state: State
    reads: dict[str, PlaylistReadRecord]  # each playlist's read record, by its key (a fleet's: in `fleet.playlists`)
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
