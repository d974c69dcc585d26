"""What `status` shows of a fleet, read from the database in one snapshot: this host's state, every host's row, who
holds which playlist, and the config's playlists with their records and due times, one at a time.

Imported by `status` only for a config with `database_url`: it loads psycopg.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import TYPE_CHECKING

from playlist_cron.reads import record_key
from playlist_cron.reads_file import PLAYLIST_READ_FIELDS
from playlist_cron.storage.claims import HOLDER_COLUMNS, holder_of
from playlist_cron.storage.connection import Database, describe
from playlist_cron.storage.lock_keys import CLAIM_LOCK_MATCH
from playlist_cron.storage.postgres import (
    FLEET_HOST,
    READ_WHOLE,
    RECORD_VERSION,
    PostgresState,
    read_record_where,
    stored_record,
)
from playlist_cron.storage.status_view import ConfiguredPlaylist, FleetView, PlaylistRow, StatusReading

if TYPE_CHECKING:
    from collections.abc import Generator

    from playlist_cron.config import Config

# The records a newer release wrote, refused before anything is shown: the version the database sees as a number
# above this release's (checked again, as every record is, by `stored_record`).
_NEWER_RECORDS = (
    "SELECT url, read_record::text FROM playlist_cron_playlists WHERE collection = %s "
    "AND jsonb_typeof(read_record -> 'version') = 'number' AND (read_record -> 'version')::numeric > %s"
)
# A time as `clock.iso` writes it (milliseconds, cut, not rounded), by the server: 20,000 of them cost `status` 30 ms
# in Python. None for the never-checked due time (-infinity).
_ISO = """CASE WHEN isfinite({0}) THEN to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END"""
# Who holds each claim's advisory lock now (`pg_locks`, the session's `pg_stat_activity`): a holder killed with -9
# leaves its name in the row, until the next claim, but its session's lock is gone; a session that is not a check
# holding the key leaves no name in the row, and is described by the server.
_HELD = (
    f"SELECT DISTINCT ON (url) url, {_ISO.format('due_at')}, {_ISO.format('last_checked_at')}, "  # noqa: S608
    f"{HOLDER_COLUMNS}, extract(epoch FROM now())::float8 "
    f"FROM playlist_cron_playlists JOIN pg_locks ON {CLAIM_LOCK_MATCH} "
    "LEFT JOIN pg_stat_activity USING (pid) WHERE collection = %s AND pg_locks.pid IS NOT NULL ORDER BY url"
)
# The config's playlists in its order, each with its row when it has one: looked up one by one by its key, in a
# subquery the planner keeps apart (OFFSET 0), so that rows leave in the order of the list's ordinality as they are
# found, while `status` prints the last ones. Joined at once, a hash join of the whole table sorted its 10,000 rows,
# records and all (7 MB, on disk with the default work_mem), before sending the first.
_CONFIGURED = (
    "SELECT configured.url, found.id IS NOT NULL, found.read_record::text, "  # noqa: S608  # constants
    f"{_ISO.format('found.due_at')}, {_ISO.format('found.last_checked_at')} "
    "FROM unnest(%s::text[]) WITH ORDINALITY AS configured (url, position) "
    "LEFT JOIN LATERAL (SELECT id, read_record, due_at, last_checked_at FROM playlist_cron_playlists "
    "WHERE collection = %s AND url = configured.url OFFSET 0) AS found ON true "
    "ORDER BY configured.position"
)


def read(config: Config, url_keys: list[str]) -> FleetView:
    """Given a config with `database_url` and its playlists' keys, return the fleet as the database has it now; its
    `playlists` are read as they are iterated, in the same snapshot.

    Raise DatabaseUnavailable, SchemaMissing, SchemaNewer, or StateError for a damaged or newer row of this host's
    or a read record of the collection a newer release wrote.
    """
    snapshot = contextlib.ExitStack()
    database = snapshot.enter_context(Database(config))
    try:
        connection = database.connection()
        with database.guard():
            snapshot.enter_context(connection.transaction())
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")  # one snapshot
            stored = PostgresState(database)
            state = stored.read()
            for url, value in connection.execute(_NEWER_RECORDS, (database.collection, RECORD_VERSION)):
                where = read_record_where(url, database.collection)
                stored_record(json.loads(value), PLAYLIST_READ_FIELDS, where)  # raises StateError
            hosts = connection.execute(
                "SELECT host, state FROM playlist_cron_state WHERE collection = %s AND host <> %s ORDER BY host",
                (database.collection, FLEET_HOST),
            ).fetchall()
            held_rows = connection.execute(_HELD, (database.collection,)).fetchall()
    except BaseException:
        snapshot.close()
        raise
    configured = set(url_keys) if held_rows else set()
    return FleetView(
        database=describe(config),
        host=database.host,
        collection=database.collection,
        state=state,
        hosts=[(str(host), row if isinstance(row, dict) else {}) for host, row in hosts],
        held={url: _held_row(row) for url, *row in held_rows if url in configured},
        playlists=_configured(database, snapshot, url_keys),
        notes=tuple(note.message for note in stored.notes),
    )


def _configured(
    database: Database, snapshot: contextlib.ExitStack, url_keys: list[str]
) -> Generator[ConfiguredPlaylist, None, None]:
    """The config's playlists in its order, streamed as the server finds them, each record checked field by field (a
    damaged one is left out: the playlist is read whole at its next check); the snapshot ends with the last."""
    with snapshot, database.guard(), database.connection().cursor() as cursor:
        # Row by row (libpq's single-row mode, in every release psycopg supports; its chunks need libpq 17): as fast
        # as pages of a cursor of the server's, whose each page waits for the server to find its rows.
        for url, has_row, value, due_at, checked_at in cursor.stream(_CONFIGURED, (url_keys, database.collection)):
            record = damage = None
            if value is not None:
                where = read_record_where(url, database.collection)
                record, problem = stored_record(json.loads(value), PLAYLIST_READ_FIELDS, where)
                damage = None if problem is None else f"{problem}; {READ_WHOLE}"  # as a check's note says it
            row = PlaylistRow(due_at, checked_at, None, None, None, None) if has_row else None
            yield ConfiguredPlaylist(url, record, row, damage)  # type: ignore[arg-type]  # a record's checked fields


def _held_row(columns: list[object]) -> PlaylistRow:
    """Given a held playlist's columns after its URL (the times, `HOLDER_COLUMNS`, the database's now), return its
    row."""
    due_at, checked_at, *holder_columns, now = columns
    holder = holder_of(*holder_columns)  # type: ignore[arg-type]  # the columns' types, as selected
    now_s = _seconds(now)
    held_s = now_s - holder.since_s if now_s is not None and holder.since_s is not None else None
    return PlaylistRow(due_at, checked_at, holder.host, holder.pid, holder.since_s, held_s)  # type: ignore[arg-type]


def _seconds(value: object) -> float | None:
    """Given an `extract(epoch ...)` (a float), return finite seconds, or None."""
    if value is None:
        return None
    seconds = float(value)  # type: ignore[arg-type]  # a float8
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
        return StatusReading(view.state, {}, [], lock_file=None, holder=None, state_file=None, fleet=view)
