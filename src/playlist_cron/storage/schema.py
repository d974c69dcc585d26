"""The database's tables, versioned: `migrate` creates or upgrades them, `require_current` refuses any other version."""

from __future__ import annotations

from typing import Any

import psycopg

from playlist_cron.errors import SchemaMissing, SchemaNewer
from playlist_cron.storage.lock_keys import MIGRATE_LOCK_KEY

SCHEMA_VERSION = 3
# Two `db migrate` at once (two hosts set up by one script) take turns: a transaction-level advisory lock on
# MIGRATE_LOCK_KEY.

# Each version's statements, applied in order from the version the database has. Every table is created in the
# connection's search_path (the schema of `?options=-csearch_path%3D...` or the user's own), so that several
# fleets can share one database in separate schemas.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE IF NOT EXISTS playlist_cron_archive (
            collection text NOT NULL,
            extractor text NOT NULL,
            video_id text NOT NULL,
            added_at timestamptz NOT NULL DEFAULT now(),
            added_by text,
            PRIMARY KEY (collection, extractor, video_id)
        )
        """,
        # host '' was the fleet's row (`failed_videos`, `playlists`) until version 3; each host's own row: the rest.
        """
        CREATE TABLE IF NOT EXISTS playlist_cron_state (
            collection text NOT NULL,
            host text NOT NULL,
            state jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (collection, host)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS playlist_cron_playlists (
            id bigserial PRIMARY KEY,
            collection text NOT NULL,
            url text NOT NULL,
            due_at timestamptz NOT NULL DEFAULT '-infinity',
            holder_host text,
            holder_pid integer,
            held_since timestamptz,
            last_checked_at timestamptz,
            UNIQUE (collection, url)
        )
        """,
        # The claim loop's question, "which of this collection's playlists are due", answered from an index.
        "CREATE INDEX IF NOT EXISTS playlist_cron_playlists_due ON playlist_cron_playlists (collection, due_at)",
    ),
    # Version 2 changes no table: a claim's advisory lock moves to a key space of playlist-cron's own (the two-int4
    # form, `lock_keys`), where version 1 took `pg_try_advisory_lock(row id)`. A host of each would not see the
    # other's claims, so the version keeps them apart: a release that knows version 1 refuses a database at
    # version 2 ("made by a newer playlist-cron"), and this one refuses a database at version 1 until migrated.
    2: (),
    # Version 3, two changes. The configured playlists reach the table once per change of the list, not with every
    # claim: the collection's row keeps the digest of the list its rows were last made to match (`configured`), and
    # a claim takes the due rows of the list in the order of an index of their own. And what is the collection's
    # moves out of the fleet's shared row (host '' of `playlist_cron_state`), which every host locked and rewrote
    # whole at each change: each playlist's read record into its own row (`read_record`, written as its claim is
    # released), each failed video's record into a row of its own, both kept as {"version": 1, "record": {...}}; the
    # fleet's row goes. Rows made here for records of playlists no longer configured are marked so at the first
    # check, whose list's digest the new `playlist_cron_collections` does not have yet.
    3: (
        """
        CREATE TABLE IF NOT EXISTS playlist_cron_collections (
            collection text PRIMARY KEY,
            playlists_digest text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        "ALTER TABLE playlist_cron_playlists ADD COLUMN IF NOT EXISTS configured boolean NOT NULL DEFAULT true",
        "CREATE INDEX IF NOT EXISTS playlist_cron_playlists_claim ON playlist_cron_playlists (collection, due_at, id) "
        "WHERE configured",
        "DROP INDEX IF EXISTS playlist_cron_playlists_due",
        "ALTER TABLE playlist_cron_playlists ADD COLUMN IF NOT EXISTS read_record jsonb",
        """
        CREATE TABLE IF NOT EXISTS playlist_cron_failed_videos (
            collection text NOT NULL,
            video text NOT NULL,
            record jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (collection, video)
        )
        """,
        """
        INSERT INTO playlist_cron_playlists (collection, url, read_record)
        SELECT fleet.collection, records.key, jsonb_build_object('version', 1, 'record', records.value)
        FROM playlist_cron_state AS fleet,
            jsonb_each(CASE WHEN jsonb_typeof(fleet.state -> 'playlists') = 'object'
                THEN fleet.state -> 'playlists' ELSE '{}' END) AS records
        WHERE fleet.host = ''
        ON CONFLICT (collection, url) DO UPDATE SET read_record = EXCLUDED.read_record
        """,
        """
        INSERT INTO playlist_cron_failed_videos (collection, video, record)
        SELECT fleet.collection, failed.key, jsonb_build_object('version', 1, 'record', failed.value)
        FROM playlist_cron_state AS fleet,
            jsonb_each(CASE WHEN jsonb_typeof(fleet.state -> 'failed_videos') = 'object'
                THEN fleet.state -> 'failed_videos' ELSE '{}' END) AS failed
        WHERE fleet.host = ''
        ON CONFLICT (collection, video) DO NOTHING
        """,
        "DELETE FROM playlist_cron_state WHERE host = ''",
    ),
}
SCHEMA_TABLE = """
    CREATE TABLE IF NOT EXISTS playlist_cron_schema (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version integer NOT NULL
    )
"""

MIGRATE_FIRST = "run `playlist-cron db migrate` first"


def version(connection: psycopg.Connection[Any]) -> int | None:
    """Given a connection, return the version of the schema its search_path finds, or None when there is none."""
    row = connection.execute("SELECT to_regclass('playlist_cron_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    row = connection.execute("SELECT version FROM playlist_cron_schema").fetchone()
    return None if row is None else int(row[0])


def migrate(connection: psycopg.Connection[Any]) -> tuple[int, int]:
    """Create or upgrade the schema in one transaction; return (the version found, 0 for none; the version now).

    Raise SchemaNewer, changing nothing, when a newer playlist-cron made the schema.
    """
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
        found = version(connection)
        if found is not None and found > SCHEMA_VERSION:
            raise _newer(found)
        start = found or 0
        for step in range(start + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                connection.execute(statement)
        connection.execute(SCHEMA_TABLE)
        connection.execute(
            "INSERT INTO playlist_cron_schema (version) VALUES (%s) "
            "ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
            (SCHEMA_VERSION,),
        )
    return start, SCHEMA_VERSION


def require_current(connection: psycopg.Connection[Any]) -> None:
    """Return when the schema is the one this release knows; raise SchemaMissing (none, or older) or SchemaNewer.

    On an autocommit connection (every check's) in one statement: a missing table is the server's UndefinedTable,
    which aborts no transaction there.
    """
    found = _version_in_one_statement(connection) if connection.autocommit else version(connection)
    if found is None:
        raise SchemaMissing(f"playlist-cron: the database has no playlist-cron tables: {MIGRATE_FIRST}")
    if found < SCHEMA_VERSION:
        raise SchemaMissing(
            f"playlist-cron: the database's schema is version {found}, older than this release's {SCHEMA_VERSION}: "
            "run `playlist-cron db migrate`"
        )
    if found > SCHEMA_VERSION:
        raise _newer(found)


def _version_in_one_statement(connection: psycopg.Connection[Any]) -> int | None:
    try:
        row = connection.execute("SELECT version FROM playlist_cron_schema").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else int(row[0])


def _newer(found: int) -> SchemaNewer:
    return SchemaNewer(
        f"playlist-cron: the database's schema is version {found}, made by a newer playlist-cron (this one knows "
        f"version {SCHEMA_VERSION}): upgrade playlist-cron on this host",
        found=found,
        known=SCHEMA_VERSION,
    )
