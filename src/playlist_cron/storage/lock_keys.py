"""Every advisory lock key playlist-cron takes in a fleet's database, in one place.

PostgreSQL has two key spaces for advisory locks: one bigint, or two int4s (a class and an object; `pg_locks` shows
them with `objsubid` 1 and 2). The claims and the video locks use the two-int4 form, each with a class id of its own
("PCCP" and "PCCV" in ASCII), so that another program's `pg_advisory_lock(1)` in the same database, or its own
classes, never meets them. `db migrate` takes one bigint key, for the length of its transaction.

A release before schema version 2 claimed a playlist with the one-bigint form (`pg_try_advisory_lock(row id)`):
the schema's version keeps hosts of the two releases apart (see `schema.MIGRATIONS[2]`).
"""

from __future__ import annotations

LOCK_CLASS_PLAYLISTS = 0x50434350  # "PCCP": a claim, `pg_try_advisory_lock(LOCK_CLASS_PLAYLISTS, playlist_key(id))`
LOCK_CLASS_VIDEOS = 0x50434356  # "PCCV": a video downloading, its second key `hashtext('<collection> <archive line>')`
MIGRATE_LOCK_KEY = 0x706C_6372_6F6E_0001  # "plcron" and 1: `pg_advisory_xact_lock(MIGRATE_LOCK_KEY)` in `db migrate`

_INT4_SPAN = 1 << 32


def playlist_key(row_id: int) -> int:
    """Given a playlist's row id (a bigserial), return the int4 second key of its claim: the id itself up to 2**31 - 1
    (`pg_locks.objid` shows the id modulo 2**32, as an unsigned oid); ids 2**32 apart would share a key."""
    key = row_id % _INT4_SPAN
    return key - _INT4_SPAN if key >= 1 << 31 else key


def playlist_key_sql(column: str) -> str:
    """`playlist_key` in SQL, of the bigint `column` (a row id): the id's low 32 bits, read as a signed int4."""
    return f"{column}::bit(32)::integer"


# `pg_locks` rows of a claim on the row `playlist_cron_playlists.id`, granted, in this database (a SQL fragment).
CLAIM_LOCK_MATCH = (
    f"locktype = 'advisory' AND granted AND objsubid = 2 AND classid::bigint = {LOCK_CLASS_PLAYLISTS} "  # noqa: S608  # constants
    f"AND objid::bigint = mod(playlist_cron_playlists.id, {_INT4_SPAN}) "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
# The claims' keys held now, in this database, as `mod(id, 2^32)` of their rows (a SQL subquery): `mod(id, 2^32) NOT
# IN (...)` is a hashed filter the planner keeps beside an ordered index scan, where `NOT EXISTS` would become a join
# that reads every due row before the first.
CLAIM_KEYS_HELD = (
    f"SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "  # noqa: S608  # constants
    f"AND classid::bigint = {LOCK_CLASS_PLAYLISTS} "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
CLAIM_KEY_OF_ROW = f"mod(playlist_cron_playlists.id, {_INT4_SPAN})"
