"""The PostgreSQL-backed storage of a fleet: the state's rows and the archive's rows of one collection.

Imported only when the config sets `database_url`: psycopg is loaded here (and in `connection` and `schema`) and
nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from psycopg.types.json import Jsonb

from playlist_cron import state as states
from playlist_cron.errors import StateError
from playlist_cron.outcomes import MONOTONIC_COUNTERS
from playlist_cron.reads_file import PLAYLIST_READ_FIELDS
from playlist_cron.storage.base import ArchiveHealth, Note
from playlist_cron.storage.connection import Connection
from playlist_cron.storage.connection import Database as Database  # the names callers of this module know
from playlist_cron.storage.connection import connect as connect
from playlist_cron.stored_fields import Field, record_problems

if TYPE_CHECKING:
    from playlist_cron.records import FailedVideoRecord, PlaylistReadRecord, State

STATE_TABLE = "playlist_cron_state"
FLEET_HOST = ""  # the fleet's shared row of schema version 2 and before (its records moved by the migration to 3)
# A host's own row of `playlist_cron_state` holds its counters, `running`, the cooldown after a 429 (a ban is on one
# host's address), the network streak, the last check. What is the collection's lives in rows of its own, so that
# no host ever rewrites what another changes: each playlist's read record in its row of `playlist_cron_playlists`
# (`read_record`, written when its claim is released), each failed video's record in its row of
# `playlist_cron_failed_videos` (upserted, or deleted, one by one). Every row carries a version.
ROW_VERSION = 1
RECORD_VERSION = 1  # of `read_record` and of a failed video's `record`: {"version": 1, "record": {...}}
FLEET_FIELDS = ("failed_videos", "playlists")
_ROW_VERSION_FIELD = Field(
    lambda value: value == ROW_VERSION and not isinstance(value, bool), str(ROW_VERSION), nullable=False, required=True
)
HOST_STATE_FIELDS = {name: field for name, field in states.STATE_FIELDS.items() if name not in FLEET_FIELDS} | {
    "version": _ROW_VERSION_FIELD
}
FAILED_VIDEO_FIELDS = states.FAILED_VIDEO_FIELDS
# An archive line as yt-dlp writes it, "extractor id": the file backend's `ARCHIVE_LINE`, for text.
ARCHIVE_LINE = re.compile(r"[A-Za-z0-9_.:-]+ [^\s\x00]+")


class RowRecord(NamedTuple):
    """A record read back from its own row: the record, or None with why it was dropped."""

    record: dict[str, Any] | None
    problem: str | None


# What follows a damaged read record, in its note: the check logs it (`state_recovered`), `status` shows it.
READ_WHOLE = "the playlist is read whole at its next check"


def read_record_where(url: str, collection: str) -> str:
    """Where a playlist's read record is, as a message names it."""
    return f"the read record of {url} in collection {collection!r}"


def stored_record(value: object, fields: dict[str, Field], where: str) -> RowRecord:
    """Given a row's `{"version", "record"}` and its record's fields, return the record checked field by field;
    a damaged one is dropped with its problem; raise StateError for one a newer release wrote."""
    version = value.get("version") if isinstance(value, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > RECORD_VERSION:
        raise StateError(
            f"playlist-cron: {where} was written by a newer version of playlist-cron (record version {version}; "
            f"this one reads version {RECORD_VERSION}): upgrade playlist-cron"
        )
    if not isinstance(value, dict) or version != RECORD_VERSION or isinstance(version, bool):
        return RowRecord(None, f"{where} is damaged (no record of version {RECORD_VERSION})")
    record = value.get("record")
    if not isinstance(record, dict):
        return RowRecord(None, f"{where} is damaged (its record is not an object)")
    problems = record_problems(record, fields)
    if problems:
        return RowRecord(None, f"{where} is damaged ({'; '.join(problems)})")
    return RowRecord(record, None)


def record_row(record: Mapping[str, object], fields: dict[str, Field], where: str) -> Jsonb:
    """Given a record to store, return its row's value; raise StateError when it is bad."""
    problems = record_problems(record, fields)
    if problems:
        raise StateError(f"playlist-cron: refusing to write a bad record to {where}: " + "; ".join(problems))
    return Jsonb({"version": RECORD_VERSION, "record": record})


def read_record_row(record: PlaylistReadRecord) -> Jsonb:
    """A playlist's read record as its row's `read_record`; raise StateError when it is bad."""
    return record_row(record, PLAYLIST_READ_FIELDS, "a playlist's row (read_record)")


# -- the state ----------------------------------------------------------------------------------------------------


class PostgresState:
    """The state of one host in a collection: its own row of `playlist_cron_state`, and the collection's failed
    videos and read records, each in a row of its own. A change locks the host's row alone: hosts never wait on
    one another's changes, and a failed video's change writes that video's row, nothing else."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.notes: list[Note] = []

    def ensure_ready(self) -> None:
        self.database.connection()

    def read(self) -> State:
        database = self.database
        with database.guard():
            connection = database.connection()
            row = connection.execute(
                "SELECT state FROM playlist_cron_state WHERE collection = %s AND host = %s",
                (database.collection, database.host),
            ).fetchone()
            failed = self._failed_videos(connection)
        return self._state(row[0] if row else None, failed)

    def read_reads(self) -> dict[str, PlaylistReadRecord]:
        """Every playlist's read record kept in the collection's rows; a damaged one is left out (that playlist is
        read whole at its next check)."""
        database = self.database
        with database.guard():
            # One JSON document, parsed at once: 10,000 values converted one by one cost several times more.
            row = (
                database.connection()
                .execute(
                    "SELECT coalesce(json_object_agg(url, read_record), '{}')::text FROM playlist_cron_playlists "
                    "WHERE collection = %s AND read_record IS NOT NULL",
                    (database.collection,),
                )
                .fetchone()
            )
        found = json.loads(row[0]) if row else {}
        return self._reads(found.items() if isinstance(found, dict) else [])

    def _reads(self, rows: Iterable[tuple[str, object]]) -> dict[str, PlaylistReadRecord]:
        collection = self.database.collection
        reads = self._sound(rows, PLAYLIST_READ_FIELDS, lambda url: read_record_where(url, collection), READ_WHOLE)
        return cast("dict[str, PlaylistReadRecord]", reads)

    def _sound(
        self,
        rows: Iterable[tuple[str, object]],
        fields: dict[str, Field],
        where: Callable[[str], str],
        consequence: str,
    ) -> dict[str, dict[str, object]]:
        """Given rows of (key, stored record), return the sound records by key; each damaged one is left out with a
        note naming it (`where`, given the key) and what follows (`consequence`)."""
        sound: dict[str, dict[str, object]] = {}
        for key, value in rows:
            found = stored_record(value, fields, where(key))
            if found.record is not None:
                sound[key] = found.record
            elif found.problem is not None:
                self._note(f"{found.problem}; {consequence}")
        return sound

    def _note(self, message: str) -> None:
        if all(note.message != message for note in self.notes):
            self.notes.append(Note("state_recovered", message, alert=False))

    def _failed_videos(self, connection: Connection) -> dict[str, FailedVideoRecord]:
        rows = connection.execute(
            "SELECT video, record FROM playlist_cron_failed_videos WHERE collection = %s", (self.database.collection,)
        )
        where = f"in {self._where()}"
        failed = self._sound(
            rows, FAILED_VIDEO_FIELDS, lambda key: f"failed video {key!r} {where}", "the video is tried as a new one"
        )
        return cast("dict[str, FailedVideoRecord]", failed)

    @contextlib.contextmanager
    def update(self) -> Iterator[State]:
        """Lock this host's row (creating it empty first), yield the state, and write back what the caller leaves:
        the host's row when it changed, and each failed video whose record changed (or that was forgotten)."""
        database = self.database
        with database.guard():
            connection = database.connection()
            with connection.transaction():
                connection.execute(
                    "INSERT INTO playlist_cron_state (collection, host, state) VALUES (%s, %s, %s) "
                    "ON CONFLICT (collection, host) DO NOTHING",
                    (database.collection, database.host, Jsonb(_own_part(states.empty()))),
                )
                row = connection.execute(
                    "SELECT state FROM playlist_cron_state WHERE collection = %s AND host = %s FOR UPDATE",
                    (database.collection, database.host),
                ).fetchone()
                found = row[0] if row else None
                before = self._state(found, self._failed_videos(connection))
                changed: State = json.loads(json.dumps(before))
                yield changed
                problems = states.validate(changed)
                problems += [
                    f"{name} would go down from {before[name]} to {changed[name]}"
                    for name in MONOTONIC_COUNTERS
                    if changed[name] < before[name]
                ]
                if problems:
                    raise StateError(
                        f"playlist-cron: refusing to write a bad state to {self._where(database.host)}: "
                        + "; ".join(problems)
                    )
                own = _own_part(changed)
                if own != found:
                    connection.execute(
                        "UPDATE playlist_cron_state SET state = %s, updated_at = now() "
                        "WHERE collection = %s AND host = %s",
                        (Jsonb(own), database.collection, database.host),
                    )
                self._write_failed_videos(connection, before["failed_videos"], changed["failed_videos"])

    def _write_failed_videos(
        self, connection: Connection, before: dict[str, FailedVideoRecord], after: dict[str, FailedVideoRecord]
    ) -> None:
        collection = self.database.collection
        where = f"table playlist_cron_failed_videos (collection {collection!r})"
        upserts = [
            (collection, key, record_row(record, FAILED_VIDEO_FIELDS, where))
            for key, record in after.items()
            if before.get(key) != record
        ]
        gone = [key for key in before if key not in after]
        if upserts:
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO playlist_cron_failed_videos (collection, video, record) VALUES (%s, %s, %s) "
                    "ON CONFLICT (collection, video) DO UPDATE SET record = EXCLUDED.record, updated_at = now()",
                    upserts,
                )
        if gone:
            connection.execute(
                "DELETE FROM playlist_cron_failed_videos WHERE collection = %s AND video = ANY(%s)",
                (collection, gone),
            )

    @contextlib.contextmanager
    def update_reads(self) -> Iterator[dict[str, PlaylistReadRecord]]:
        """Lock the collection's playlist rows that have a read record, yield the records, and write back the ones the
        caller changed (a record dropped is cleared); a record of a playlist without its row is not kept. The check
        itself writes each playlist's record as it releases it (`FleetHold.done`): this is for `retry`, and for a
        record no release could keep."""
        database = self.database
        with database.guard():
            connection = database.connection()
            with connection.transaction():
                rows = connection.execute(
                    "SELECT url, read_record FROM playlist_cron_playlists WHERE collection = %s "
                    "AND read_record IS NOT NULL ORDER BY id FOR UPDATE",
                    (database.collection,),
                ).fetchall()
                before = self._reads(rows)
                changed: dict[str, PlaylistReadRecord] = json.loads(json.dumps(before))
                yield changed
                writes: list[tuple[Jsonb | None, str, str]] = [
                    (read_record_row(record), database.collection, url)
                    for url, record in changed.items()
                    if before.get(url) != record
                ]
                writes += [(None, database.collection, url) for url, _ in rows if url not in changed]
                if writes:
                    with connection.cursor() as cursor:
                        cursor.executemany(
                            "UPDATE playlist_cron_playlists SET read_record = %s WHERE collection = %s AND url = %s",
                            writes,
                        )

    def take_notes(self) -> list[Note]:
        notes, self.notes = self.notes, []
        return notes

    def _state(self, own: object, failed: dict[str, FailedVideoRecord]) -> State:
        """Given this host's row (None when it has none) and the failed videos, return the State; raise StateError
        for a bad or newer row."""
        host = self.database.host
        part = _own_part(states.empty()) if own is None else own
        version = part.get("version") if isinstance(part, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and version > ROW_VERSION:
            raise StateError(
                f"playlist-cron: the state in {self._where(host)} was written by a newer version of playlist-cron "
                f"(state version {version}; this one reads version {ROW_VERSION}): upgrade playlist-cron"
            )
        problems = record_problems(part, HOST_STATE_FIELDS) if isinstance(part, dict) else ["not a JSON object"]
        if problems:
            raise StateError(
                f"playlist-cron: the state in {self._where(host)} is damaged ({'; '.join(problems)}); "
                "fix or delete that row to go on"
            )
        assert isinstance(part, dict)
        merged: dict[str, object] = {**states.empty(), **part, "version": states.STATE_VERSION}
        merged["failed_videos"] = failed
        return cast("State", merged)

    def _where(self, host: str | None = None) -> str:
        if host is None:
            return f"collection {self.database.collection!r}"
        return f"table playlist_cron_state (collection {self.database.collection!r}, host {host!r})"


def _own_part(state: State | dict[str, object]) -> dict[str, object]:
    """Given a state, return this host's row of it (with the row's version)."""
    return {name: value for name, value in state.items() if name not in FLEET_FIELDS} | {"version": ROW_VERSION}


# -- the archive --------------------------------------------------------------------------------------------------


class ImportCounts(NamedTuple):
    """What `import_lines` did with the lines it was given."""

    added: int
    already: int  # archived before, or twice in the lines given
    bad: int  # not "extractor id" lines (blank lines are not counted)


def archive_key(line: str | bytes) -> tuple[str, str] | None:
    """Given an archive line (its newline and surrounding blanks allowed), return (extractor, id), else None."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return None
    line = line.strip()
    if not ARCHIVE_LINE.fullmatch(line):
        return None
    extractor, video_id = line.split(" ", 1)
    return extractor, video_id


class PostgresArchive:
    """The archive of a collection: one row per "extractor id" line in `playlist_cron_archive`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @property
    def name(self) -> str:
        return f"database archive (collection {self.database.collection})"

    @property
    def yt_dlp_file(self) -> None:
        return None  # the check adds each download's row, in the transaction that counts it

    def ensure_ready(self) -> None:
        self.database.connection()

    def tend(self) -> ArchiveHealth:
        return ArchiveHealth()  # rows are written whole, and only archive lines are written: nothing to mend

    def lines(self) -> set[str]:
        """Return every "extractor id" line of the collection."""
        with self.database.guard():
            rows = self.database.connection().execute(
                "SELECT extractor || ' ' || video_id FROM playlist_cron_archive WHERE collection = %s",
                (self.database.collection,),
            )
            return {line for (line,) in rows}

    def lookup(self, lines: Collection[str]) -> set[str]:
        """Those of `lines` the collection holds: one query, each line found by its primary key (a join on the
        arrays of their extractors and ids), whatever the archive's size."""
        keys = [key for key in map(archive_key, lines) if key is not None]
        if not keys:
            return set()
        with self.database.guard():
            rows = self.database.connection().execute(
                "SELECT archived.extractor || ' ' || archived.video_id "
                "FROM unnest(%s::text[], %s::text[]) AS asked (extractor, video_id) "
                "JOIN playlist_cron_archive AS archived ON archived.collection = %s "
                "AND archived.extractor = asked.extractor AND archived.video_id = asked.video_id",
                ([extractor for extractor, _ in keys], [video_id for _, video_id in keys], self.database.collection),
            )
            return {line for (line,) in rows}

    def extractors(self) -> set[str]:
        """The collection's extractor keys, found by a walk of the primary key's index from one to the next (a
        handful of steps, not a scan of a million rows)."""
        with self.database.guard():
            rows = self.database.connection().execute(
                "WITH RECURSIVE found (extractor) AS ("
                "SELECT min(extractor) FROM playlist_cron_archive WHERE collection = %(collection)s "
                "UNION ALL SELECT (SELECT min(extractor) FROM playlist_cron_archive "
                "WHERE collection = %(collection)s AND extractor > found.extractor) FROM found "
                "WHERE found.extractor IS NOT NULL) "
                "SELECT extractor FROM found WHERE extractor IS NOT NULL",
                {"collection": self.database.collection},
            )
            return {extractor for (extractor,) in rows}

    def holds(self, line: str) -> bool:
        """Whether the line is archived now (another host may have added it since it was looked up)."""
        key = _key_or_raise(line)
        with self.database.guard():
            row = (
                self.database.connection()
                .execute(
                    "SELECT EXISTS (SELECT 1 FROM playlist_cron_archive WHERE collection = %s AND extractor = %s "
                    "AND video_id = %s)",
                    (self.database.collection, *key),
                )
                .fetchone()
            )
        return bool(row and row[0])

    def add(self, line: str, host: str | None = None) -> bool:
        """Archive one line, added by `host` (default: this one); return whether it was new."""
        key = _key_or_raise(line)
        with self.database.guard():
            cursor = self.database.connection().execute(
                "INSERT INTO playlist_cron_archive (collection, extractor, video_id, added_by) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (self.database.collection, *key, host or self.database.host),
            )
        return cursor.rowcount == 1

    def import_lines(self, lines: Iterable[str | bytes]) -> ImportCounts:
        """Archive every good line of `lines` in one transaction (streamed through COPY); count what was done."""
        good = bad = 0
        with self.database.guard():
            connection = self.database.connection()
            with connection.transaction():
                connection.execute(
                    "CREATE TEMPORARY TABLE playlist_cron_import (extractor text, video_id text) ON COMMIT DROP"
                )
                with connection.cursor().copy("COPY playlist_cron_import (extractor, video_id) FROM STDIN") as copy:
                    for line in lines:
                        key = archive_key(line)
                        if key is not None:
                            copy.write_row(key)
                            good += 1
                        elif line.strip():
                            bad += 1
                cursor = connection.execute(
                    "INSERT INTO playlist_cron_archive (collection, extractor, video_id, added_by) "
                    "SELECT DISTINCT %s, extractor, video_id, %s FROM playlist_cron_import "
                    "ON CONFLICT DO NOTHING",
                    (self.database.collection, self.database.host),
                )
        return ImportCounts(added=cursor.rowcount, already=good - cursor.rowcount, bad=bad)

    def export_lines(self) -> Iterator[str]:
        """Yield the collection's lines (without newline), sorted by extractor then id, byte by byte."""
        with self.database.guard():
            connection = self.database.connection()
            with connection.transaction(), connection.cursor(name="playlist_cron_export") as cursor:
                cursor.itersize = 10_000
                cursor.execute(
                    "SELECT extractor || ' ' || video_id FROM playlist_cron_archive WHERE collection = %s "
                    'ORDER BY extractor COLLATE "C", video_id COLLATE "C"',
                    (self.database.collection,),
                )
                for (line,) in cursor:
                    yield line


def _key_or_raise(line: str) -> tuple[str, str]:
    key = archive_key(line)
    if key is None:
        raise ValueError(f"not an archive line (extractor id): {line!r}")
    return key
