"""The run lock of a config kept in PostgreSQL: a check holds the playlists it claims, not the config.

Several hosts (or several checks of one host) work through the config's playlists side by side: each claims a due
playlist that no one holds (`claims.Fleet`), works on it, releases it due again in `check_interval_seconds`, and
claims the next; a check holds as many at once as it reads (`parallel_reads`). A check that finds every due playlist
held by others is SKIPPED; one that finds none due has nothing to do. The lock connection is watched by a heartbeat:
when it is lost, so are the claims, and the check is stopped (`lock_lost`) before it writes anything more.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from playlist_cron import clock, lock
from playlist_cron.errors import DatabaseUnavailable, StateError, WatchdogFired
from playlist_cron.lock import Holder
from playlist_cron.reads import record_key
from playlist_cron.state import StateStore, state_file_name
from playlist_cron.storage.claims import Claim, Fleet, Heartbeat, Look
from playlist_cron.storage.connection import Connection, Database, connect_lock, describe
from playlist_cron.storage.files import FileState
from playlist_cron.storage.fleet_view import FleetStatus
from playlist_cron.storage.parts import Storage
from playlist_cron.storage.postgres import PostgresArchive, PostgresState, read_record_row

if TYPE_CHECKING:
    from playlist_cron.config import Config, Playlist
    from playlist_cron.records import PlaylistReadRecord
    from playlist_cron.storage.interfaces import VideoLocks


def open_for(config: Config) -> Storage:
    """Given a config with `database_url`, return its storage: the playlists' claims, the state and the archive, all
    in the database; the streak of checks that could not reach it, and partial downloads, on this host."""
    database = Database(config)
    return Storage(
        run_lock=FleetRunLock(config, database, connect_lock),
        state=PostgresState(database),
        archive=PostgresArchive(database),
        status=FleetStatus(config),  # the playlists' keys made when `status` reads, not at every check's start
        reach_state=FileState(StateStore.for_config(config)),
        # A fleet shares its download folder: partial downloads stay on each host (`<state_dir>/partial`), so that
        # two hosts never write one `.part` file.
        partial_dir=config.state_dir / "partial",
    )


class FleetRunLock:
    """`storage.RunLock` for a database config: acquiring it claims the first due playlist."""

    def __init__(self, config: Config, database: Database, connect_lock: Callable[[Config], Connection]) -> None:
        self.config = config
        self._database = database
        self._connect_lock = connect_lock
        # One check at a time on a host, as with files: the host's `running` record and its counters are one per
        # host, and a second check would take the first for a killed one. A flock in the host's own state folder.
        self._host_lock_path = config.state_dir / (
            state_file_name(config.path).removesuffix(".state.json") + ".check.lock"
        )
        self.nothing_due = False  # set by try_acquire: no playlist was due (not a skip: there was nothing to do)
        self._holder: Holder | None = None

    @property
    def name(self) -> str:
        return f"the playlists of collection {self._database.collection!r} in the database"

    def try_acquire(self, *, force: bool = False) -> FleetHold | None:
        """Claim the first due playlist; None when none could be: another check of this host runs, every due one is
        held (see `holder`), or none is due (`nothing_due`). `force`: playlists not due yet are claimed too."""
        StateStore(self.config.state_dir, self.config.path).ensure_directory()
        local = lock.try_lock(self._host_lock_path)
        if local is None:
            self._holder = lock.holder(self._host_lock_path)
            return None
        try:
            hold = self._claim_first(local, force)
        except BaseException:
            local.release()
            raise
        if hold is None:
            local.release()
        return hold

    def _claim_first(self, local: lock.HeldLock, force: bool) -> FleetHold | None:
        work = self._database.connection()
        lock = self._connect_lock(self.config)
        fleet = Fleet(work, lock, self._database.collection, self._database.host, os.getpid())
        fleet.force = force
        by_key = {record_key(playlist.url): playlist for playlist in self.config.playlists}
        fleet.add_playlists(by_key)
        try:
            with self._database.guard():
                first = fleet.claim(self.config.parallel_reads)
        except WatchdogFired as lost:
            # The claim runs on the lock connection: lost before this check holds anything, it is the database
            # lost, as the work connection's would be (FAILED `database`, exit 75), not a claim taken from a check.
            with contextlib.suppress(Exception):
                lock.close()
            detail = str(lost)
            raise DatabaseUnavailable(
                f"playlist-cron: lost the database {describe(self.config)}: {detail}", detail=detail
            ) from None
        if not first:
            looked = fleet.looked
            self.nothing_due = looked is None or not looked.due_held
            if looked is not None and looked.holder is not None:
                holder = looked.holder
                self._holder = Holder(pid=holder.pid, started_at=holder.since_s, host=holder.host)
            if looked is not None:
                learn_next_due(self.config, looked, fleet.digest)
            lock.close()
            return None
        return FleetHold(self.config, self._database, fleet, first, local, by_key)

    def holder(self) -> Holder | None:
        return self._holder


class FleetHold:
    """What a check holds of the fleet: its claims on the playlists it reads now, and the connections behind it."""

    def __init__(
        self,
        config: Config,
        database: Database,
        fleet: Fleet,
        first: list[Claim],
        local: lock.HeldLock,
        by_key: dict[str, Playlist],
    ) -> None:
        self.config = config
        self._database = database
        self.fleet = fleet
        self._local = local
        self.started_at = clock.now_s()
        self._waiting: list[Claim] = list(first)  # claimed, not yet handed to a reader
        self._by_key = by_key  # the config's playlists by their keys, as the claims name them
        self._claims: dict[str, Claim] = {}  # the playlists handed out and not yet done, by key
        # The work connection's claims and releases, one thread at a time (the check's readers ask from several).
        self._guard = threading.RLock()
        self.heartbeat: Heartbeat | None = None

    @property
    def video_locks(self) -> VideoLocks:
        return self.fleet  # a video two playlists (or two hosts) share is downloaded once

    def watch(self, on_lost: Callable[[str], None]) -> None:
        """Start the heartbeat of the lock connection; `on_lost` is called (from its thread) when it dies."""
        self.heartbeat = Heartbeat(self.fleet, self.config.database_heartbeat_seconds, on_lost).__enter__()

    def next_playlist(self) -> Playlist | None:
        """The next playlist claimed for this check: those due longest first, claimed as many at once as the check
        reads (`parallel_reads`, less those it reads now), never more: a host holds no playlist it cannot read yet
        while other hosts could. None when none is left. Each stays claimed until `done`."""
        with self._guard, self._database.guard():
            if not self._waiting:
                room = self.config.parallel_reads - len(self._claims)
                if room < 1:
                    self.fleet.let_go()
                    return None
                self.fleet.work = self._database.connection()  # a new one, should the last have been lost while idle
                self._waiting = self.fleet.claim(room)  # lets go of the claims released since the last, too
            else:
                self.fleet.let_go()  # no claim now: the released ones are let go of at once all the same
            if not self._waiting:
                return None
            claim = self._waiting.pop(0)
            self._claims[claim.url_key] = claim
            return self._by_key[claim.url_key]

    def done(self, playlist: Playlist, read_record: PlaylistReadRecord | None = None) -> bool:
        """Release the claim on `playlist`: due again in `check_interval_seconds`, free for any host from now; its
        `read_record` (how this check read it) is written with the release, in its row. Return whether it was."""
        try:
            row_value = None if read_record is None else read_record_row(read_record)
        except StateError:
            row_value = None  # refused: the check's end says so (`read_records_not_written`)
        with self._guard, self._database.guard():
            claim = self._claims.pop(record_key(playlist.url), None)
            if claim is None:
                return False
            self.fleet.work = self._database.connection()
            self.fleet.release(claim, self.config.check_interval_seconds, row_value)
        return row_value is not None

    def release(self) -> None:
        """End the claims: the connections close, and the database frees every advisory lock they held. Before,
        when the check ended with its connections sound, learn when the collection is due next (`learn_next_due`),
        and give back the claims no reader took."""
        if self.heartbeat is not None:
            self.heartbeat.__exit__()
        sound = self.heartbeat is None or self.heartbeat.lost is None
        if sound and not self.fleet.work.closed:
            with contextlib.suppress(Exception), self._guard, self._database.guard():
                self.fleet.unclaim(self._waiting)
                self._waiting = []
                learn_next_due(self.config, self.fleet.look(), self.fleet.digest)
        # Closing it frees every advisory lock of its session; one already lost holds nothing any more.
        with contextlib.suppress(Exception):
            self.fleet.lock.close()
        self._local.release()

    def held_s(self) -> float:
        return time.time() - self.started_at


def learn_next_due(config: Config, looked: Look, listed_digest: str) -> None:
    """Keep in this host's own state file when the collection is due next, as the database said just now (`looked`),
    for the not-due path to answer from without loading psycopg (`state.collection_is_due`); forget it when the
    database said nothing to go by: a playlist due or held, or the collection's rows made for another list than the
    config's (`listed_digest`, the digest the claims made of it)."""
    listed = looked.digest == listed_digest
    now_s = clock.now_s()
    learned = looked.next_due_s if listed and not looked.due_held else None
    store = StateStore.for_config(config)
    if learned is None or learned <= now_s:
        if store.read().get("collection_due") is not None:
            with store.update() as state:
                state["collection_due"] = None
        return
    with store.update() as state:
        state["collection_due"] = {
            "next_due_at": clock.iso(learned),
            "learned_at": clock.iso(now_s),
            "config_digest": config.digest,
        }
