"""The PostgreSQL-backed storage of a fleet: the state's rows and the archive's rows of one collection.

Imported only when the config sets `database_url`: psycopg is loaded here (and in `connection` and `schema`) and
nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from psycopg.types.json import Jsonb

from playlist_cron import state as states
from playlist_cron.errors import StateError
from playlist_cron.outcomes import MONOTONIC_COUNTERS
from playlist_cron.reads_file import RECORDS
from playlist_cron.storage.base import ArchiveHealth, Note
from playlist_cron.storage.connection import Database as Database  # the names callers of this module know
from playlist_cron.storage.connection import connect as connect
from playlist_cron.stored_fields import Field, record_problems

if TYPE_CHECKING:
    from playlist_cron.records import PlaylistReadRecord, State

STATE_TABLE = "playlist_cron_state"
FLEET_HOST = ""  # the state row every host of the collection shares
# The state's fields kept fleet-wide: a video's retry schedule and a playlist's reads are the collection's, not a
# host's. Every other field (the counters, `running`, the cooldown after a 429: a ban is on one host's address, the
# network streak, the last check) is in the host's own row. Both rows carry `version`.
# The rows keep the layout of the state's version 1 (a version 2 state file moved the read records to a file of
# their own; here they stay in the fleet's row): a row's `version` is ROW_VERSION, the State read from it the file's.
ROW_VERSION = 1
FLEET_FIELDS = ("failed_videos", "playlists")
_ROW_VERSION_FIELD = Field(
    lambda value: value == ROW_VERSION and not isinstance(value, bool), str(ROW_VERSION), nullable=False, required=True
)
HOST_STATE_FIELDS = {name: field for name, field in states.STATE_FIELDS.items() if name not in FLEET_FIELDS} | {
    "version": _ROW_VERSION_FIELD
}
FLEET_STATE_FIELDS = {
    "version": _ROW_VERSION_FIELD,
    "failed_videos": states.STATE_FIELDS["failed_videos"],
    "playlists": RECORDS._replace(required=False, default=dict),
}
# An archive line as yt-dlp writes it, "extractor id": the file backend's `ARCHIVE_LINE`, for text.
ARCHIVE_LINE = re.compile(r"[A-Za-z0-9_.:-]+ [^\s\x00]+")


# -- the state ----------------------------------------------------------------------------------------------------


class PostgresState:
    """The state of one host in a collection: its own row and the fleet's row of `playlist_cron_state`, read as one
    State and changed as one, in one transaction that locks both rows (always the fleet's first: no deadlock)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def ensure_ready(self) -> None:
        self.database.connection()

    def read(self) -> State:
        state, _ = self._merge(self._rows())
        return state

    def read_reads(self) -> dict[str, PlaylistReadRecord]:
        _, reads = self._merge(self._rows())
        return reads

    def _rows(self) -> dict[str, object]:
        database = self.database
        with database.guard():
            rows = database.connection().execute(
                "SELECT host, state FROM playlist_cron_state WHERE collection = %s AND host IN (%s, %s)",
                (database.collection, FLEET_HOST, database.host),
            )
            return dict(rows.fetchall())

    @contextlib.contextmanager
    def update(self) -> Iterator[State]:
        """Lock both rows (creating them empty first), yield the state, and write back what the caller leaves."""
        with self._locked() as found:
            before, reads = self._merge(found)
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
                    f"playlist-cron: refusing to write a bad state to {self._where(self.database.host)}: "
                    + "; ".join(problems)
                )
            self._write(found, changed, reads)

    @contextlib.contextmanager
    def update_reads(self) -> Iterator[dict[str, PlaylistReadRecord]]:
        """Lock both rows, yield the read records (kept in the fleet's row), and write back what the caller leaves."""
        with self._locked() as found:
            state, reads = self._merge(found)
            changed: dict[str, PlaylistReadRecord] = json.loads(json.dumps(reads))
            yield changed
            problems = record_problems({"playlists": changed}, {"playlists": RECORDS})
            if problems:
                raise StateError(
                    f"playlist-cron: refusing to write bad read records to {self._where(FLEET_HOST)}: "
                    + "; ".join(problems)
                )
            self._write(found, state, changed)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, object]]:
        """In one transaction, lock both rows (creating them empty first; the fleet's first: no deadlock) and yield
        them by host."""
        database = self.database
        with database.guard():
            connection = database.connection()
            with connection.transaction():
                fleet_part, host_part = _split(states.empty(), {})
                connection.execute(
                    "INSERT INTO playlist_cron_state (collection, host, state) VALUES (%s, %s, %s), (%s, %s, %s) "
                    "ON CONFLICT (collection, host) DO NOTHING",
                    (
                        database.collection,
                        FLEET_HOST,
                        Jsonb(fleet_part),
                        database.collection,
                        database.host,
                        Jsonb(host_part),
                    ),
                )
                rows = connection.execute(
                    "SELECT host, state FROM playlist_cron_state WHERE collection = %s AND host IN (%s, %s) "
                    "ORDER BY host FOR UPDATE",
                    (database.collection, FLEET_HOST, database.host),
                )
                yield dict(rows.fetchall())

    def _write(self, found: dict[str, object], state: State, reads: dict[str, PlaylistReadRecord]) -> None:
        """Write back the rows whose part changed from what was `found` (within `_locked`'s transaction)."""
        database = self.database
        connection = database.connection()
        for host, part in zip((FLEET_HOST, database.host), _split(state, reads), strict=True):
            if part != found.get(host):
                connection.execute(
                    "UPDATE playlist_cron_state SET state = %s, updated_at = now() WHERE collection = %s AND host = %s",
                    (Jsonb(part), database.collection, host),
                )

    def take_notes(self) -> list[Note]:
        return []  # the database neither adopts old files nor recovers damaged rows: it refuses them

    def _merge(self, found: dict[str, object]) -> tuple[State, dict[str, PlaylistReadRecord]]:
        """Given the rows found by host, return the State and the read records they make; raise StateError for a bad
        or newer row."""
        empty_fleet, empty_host = _split(states.empty(), {})
        parts = []
        for host, fields, empty in (
            (self.database.host, HOST_STATE_FIELDS, empty_host),
            (FLEET_HOST, FLEET_STATE_FIELDS, empty_fleet),
        ):
            part = found.get(host, empty)
            version = part.get("version") if isinstance(part, dict) else None
            if isinstance(version, int) and not isinstance(version, bool) and version > ROW_VERSION:
                raise StateError(
                    f"playlist-cron: the state in {self._where(host)} was written by a newer version of playlist-cron "
                    f"(state version {version}; this one reads version {ROW_VERSION}): upgrade playlist-cron"
                )
            problems = record_problems(part, fields) if isinstance(part, dict) else ["not a JSON object"]
            if problems:
                raise StateError(
                    f"playlist-cron: the state in {self._where(host)} is damaged ({'; '.join(problems)}); "
                    "fix or delete that row to go on"
                )
            assert isinstance(part, dict)
            parts.append(part)
        own, fleet = parts
        merged: dict[str, object] = {**states.empty(), **own, "version": states.STATE_VERSION}
        merged["failed_videos"] = fleet.get("failed_videos", {})
        return merged, fleet.get("playlists", {})  # type: ignore[return-value]  # validated field by field above

    def _where(self, host: str) -> str:
        row = "the fleet's row" if host == FLEET_HOST else f"host {host!r}"
        return f"table playlist_cron_state (collection {self.database.collection!r}, {row})"


def _split(
    state: State | dict[str, object], reads: dict[str, PlaylistReadRecord]
) -> tuple[dict[str, object], dict[str, object]]:
    """Given a state and the read records, return the fleet's row and the host's (each with the row's version)."""
    fleet = {"version": ROW_VERSION, "failed_videos": state.get("failed_videos", {}), "playlists": reads}
    own = {name: value for name, value in state.items() if name not in FLEET_FIELDS} | {"version": ROW_VERSION}
    return fleet, own


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

    def holds(self, line: str) -> bool:
        """Whether the line is archived now (another host may have added it since `lines`)."""
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
