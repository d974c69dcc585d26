"""What `status` shows of a fleet, read from the database in one snapshot: this host's state, every host's row, and
the claims and due times of the config's playlists.

Imported by `status` only for a config with `database_url`: it loads psycopg.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from playlist_cron.storage.connection import Database, describe
from playlist_cron.storage.postgres import FLEET_HOST, PostgresState
from playlist_cron.storage.status_view import FleetView, PlaylistRow, StatusReading

if TYPE_CHECKING:
    from playlist_cron.config import Config


def read(config: Config, url_keys: list[str]) -> FleetView:
    """Given a config with `database_url` and its playlists' keys, return the fleet as the database has it now.

    Raise DatabaseUnavailable, SchemaMissing, SchemaNewer, or StateError for a damaged or newer row of this host's.
    """
    with Database(config) as database:
        connection = database.connection()
        with database.guard(), connection.transaction():
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")  # one snapshot
            stored = PostgresState(database)
            state, reads = stored.read(), stored.read_reads()
            hosts = connection.execute(
                "SELECT host, state FROM playlist_cron_state WHERE collection = %s AND host <> %s ORDER BY host",
                (database.collection, FLEET_HOST),
            ).fetchall()
            playlists = connection.execute(
                "SELECT url, extract(epoch FROM due_at), extract(epoch FROM last_checked_at), holder_host, holder_pid, "
                "extract(epoch FROM held_since), extract(epoch FROM now() - held_since), "
                # Whether the holder still holds its advisory lock (the row's id, one bigint key): a holder killed
                # with -9 leaves its name in the row, until the next claim, but its session's lock is gone.
                "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND (classid::bigint << 32) + objid::bigint = playlist_cron_playlists.id) "
                "FROM playlist_cron_playlists WHERE collection = %s AND url = ANY(%s)",
                (database.collection, url_keys),
            ).fetchall()
        return FleetView(
            database=describe(config),
            host=database.host,
            collection=database.collection,
            state=state,
            reads=reads,
            hosts=[(str(host), row if isinstance(row, dict) else {}) for host, row in hosts],
            playlists={
                url: PlaylistRow(
                    _seconds(due_at),
                    _seconds(checked_at),
                    holder_host if locked else None,
                    holder_pid if locked else None,
                    _seconds(since) if locked else None,
                    _seconds(held) if locked else None,
                )
                for url, due_at, checked_at, holder_host, holder_pid, since, held, locked in playlists
            },
        )


def _seconds(value: object) -> float | None:
    """Given an `extract(epoch ...)` (a Decimal; -Infinity for the never-checked due time), return finite seconds."""
    if value is None:
        return None
    seconds = float(value)  # type: ignore[arg-type]  # a Decimal from numeric
    return seconds if math.isfinite(seconds) else None


class FleetStatus:
    """`status`'s reading of a config kept in a database: this host's state and the fleet's, in one snapshot."""

    def __init__(self, config: Config, url_keys: list[str]) -> None:
        self.config = config
        self.url_keys = url_keys

    @property
    def where(self) -> str:
        return f"the database {describe(self.config)}"

    def read(self) -> StatusReading:
        view = read(self.config, self.url_keys)
        return StatusReading(view.state, view.reads, [], lock_file=None, holder=None, state_file=None, fleet=view)
