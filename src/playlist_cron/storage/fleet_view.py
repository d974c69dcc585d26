"""What `status` shows of a fleet, read from the database in one snapshot: this host's state, every host's row, and
the claims and due times of the config's playlists.

Imported by `status` only for a config with `database_url`: it loads psycopg.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from playlist_cron.reads import record_key
from playlist_cron.storage.claims import HOLDER_COLUMNS, holder_of
from playlist_cron.storage.connection import Database, describe
from playlist_cron.storage.lock_keys import CLAIM_LOCK_MATCH
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
            # Who holds each claim's advisory lock now (`pg_locks`, the session's `pg_stat_activity`): a holder killed
            # with -9 leaves its name in the row, until the next claim, but its session's lock is gone; a session
            # that is not a check holding the key leaves no name in the row, and is described by the server.
            playlists = connection.execute(
                "SELECT DISTINCT ON (url) url, extract(epoch FROM due_at)::float8, "  # noqa: S608  # constants
                f"extract(epoch FROM last_checked_at)::float8, {HOLDER_COLUMNS}, extract(epoch FROM now())::float8 "
                f"FROM playlist_cron_playlists LEFT JOIN pg_locks ON {CLAIM_LOCK_MATCH} "
                "LEFT JOIN pg_stat_activity USING (pid) WHERE collection = %s AND url = ANY(%s) "
                "ORDER BY url, pg_locks.pid IS NULL",
                (database.collection, url_keys),
            ).fetchall()
        return FleetView(
            database=describe(config),
            host=database.host,
            collection=database.collection,
            state=state,
            reads=reads,
            hosts=[(str(host), row if isinstance(row, dict) else {}) for host, row in hosts],
            playlists={url: _row(row) for url, *row in playlists},
        )


def _row(columns: list[object]) -> PlaylistRow:
    """Given a playlist's columns after its URL (the times, `HOLDER_COLUMNS`, the database's now), return its row."""
    due_at, checked_at, *holder_columns, now = columns
    if holder_columns[3] is None:  # no session holds its claim's key
        return PlaylistRow(_seconds(due_at), _seconds(checked_at), None, None, None, None)
    holder = holder_of(*holder_columns)  # type: ignore[arg-type]  # the columns' types, as selected
    now_s = _seconds(now)
    held_s = now_s - holder.since_s if now_s is not None and holder.since_s is not None else None
    return PlaylistRow(_seconds(due_at), _seconds(checked_at), holder.host, holder.pid, holder.since_s, held_s)


def _seconds(value: object) -> float | None:
    """Given an `extract(epoch ...)` (a Decimal; -Infinity for the never-checked due time), return finite seconds."""
    if value is None:
        return None
    seconds = float(value)  # type: ignore[arg-type]  # a Decimal from numeric
    return seconds if math.isfinite(seconds) else None


class FleetStatus:
    """`status`'s reading of a config kept in a database: this host's state and the fleet's, in one snapshot."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @property
    def where(self) -> str:
        return f"the database {describe(self.config)}"

    def read(self) -> StatusReading:
        view = read(self.config, [record_key(playlist.url) for playlist in self.config.playlists])
        return StatusReading(view.state, view.reads, [], lock_file=None, holder=None, state_file=None, fleet=view)
