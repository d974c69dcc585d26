"""Every statement a fleet's check sends, sent for real against a loaded database and then explained, for the claims
benchmark (`benchmarks/bench.py --only claims`) and for tests/test_fleet_explain.py.

The statements are not copied here: a check's own storage calls (`claims.Fleet`, `postgres.PostgresState`,
`postgres.PostgresArchive`) run on connections that record what they send, once as at a check's first claim and
once as at its last, and each statement recorded is then explained (`EXPLAIN (ANALYZE, BUFFERS)`, in a transaction
rolled back) in the database as it is at that moment. `STATEMENTS` names every statement a check sends, and how
often: a statement recorded that it does not name is an error, so that a new one cannot go unexplained. The list was
made from the server's log of real fleet checks (`log_statement = 'all'`: a check that downloads, one whose videos
fail, one whose feeds answer 304, one with nothing due; tests/test_fleet_explain.py holds it to that log) and from
the code, which also sends `let go`, `unclaim` and `failed video forgotten` (none of which those checks needed):

- schema version: per connection, two a check (`schema.require_current`)
- sync (collection's digest, playlists' rows, configured flags, statistics): per change of the config's list
  (`Fleet._sync`)
- claim: per batch of up to `parallel_reads` playlists (`Fleet.claim`)
- look: at a first claim that finds none, and at a check's end (`Fleet.look`)
- heartbeat: every `database_heartbeat_seconds` (`Fleet.beat`)
- read records, archive extractors: per check (`PostgresState.read_reads`, `PostgresArchive.extractors`)
- archive look-up, release (with the read record): per playlist read (`PostgresArchive.lookup`, `Fleet.release`)
- let go: per playlist handed to a reader without a claim (`Fleet.let_go`: the claims released since the last)
- unclaim: at a check's end, the claims no reader took (`Fleet.unclaim`)
- video lock, archive holds, video unlock: per video to download (`Fleet.lock_video`, `PostgresArchive.holds`)
- host state row made, locked and written, failed videos read: per change of the state, a check's start and end
  and each video downloaded or failed (`PostgresState.update`)
- archive add: per video downloaded, in the state's transaction (`PostgresArchive.add`)
- failed video written, failed video forgotten: per video failed, per failed video downloaded
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from psycopg.types.json import Jsonb

from playlist_cron import clock, failures
from playlist_cron.storage import claims, schema
from playlist_cron.storage.lock_keys import LOCK_CLASS_PLAYLISTS, playlist_key_sql
from playlist_cron.storage.postgres import PostgresArchive, PostgresState, read_record_row

PER_CHECK = "per check"
PER_LIST_CHANGE = "per change of the list"
PER_CLAIM = "per claim"
PER_PLAYLIST = "per playlist"
PER_VIDEO = "per video"
# Statements sent this often must find their rows by an index: a sequential scan of a table of more rows than this
# (its planner statistics, `reltuples`) would cost a scan of the table per playlist or per video.
SEQ_SCAN_ROWS = 1000
FEW_ROWS = 100  # a sequential scan of a table of more rows than this is named in the benchmark's rows
GROWING = (PER_CLAIM, PER_PLAYLIST, PER_VIDEO)


class Known(NamedTuple):
    """A statement a check sends: its name, how often, and a piece of its text that tells it from the others."""

    name: str
    sent: str
    marker: str


# In the order a check sends them; the first whose marker the text holds names a statement.
STATEMENTS = (
    Known("schema version", PER_CHECK, "SELECT version FROM playlist_cron_schema"),
    Known("sync: collection's digest", PER_LIST_CHANGE, "INSERT INTO playlist_cron_collections"),
    Known("sync: playlists' rows", PER_LIST_CHANGE, "INSERT INTO playlist_cron_playlists"),
    Known("sync: configured flags", PER_LIST_CHANGE, "SET configured = NOT row.configured"),
    Known("sync: statistics", PER_LIST_CHANGE, "ANALYZE playlist_cron_playlists"),
    Known("claim", PER_CLAIM, claims.CLAIM),
    Known("look", PER_CHECK, claims.LOOK),
    Known("heartbeat", PER_CHECK, "SELECT true"),
    Known("read records", PER_CHECK, "json_object_agg(url, read_record)"),
    Known("archive extractors", PER_CHECK, "WITH RECURSIVE found (extractor)"),
    Known("archive look-up", PER_PLAYLIST, "AS asked (extractor, video_id)"),
    Known("video lock", PER_VIDEO, "pg_try_advisory_lock(%s, hashtext(%s))"),
    Known("archive holds", PER_VIDEO, "SELECT EXISTS (SELECT 1 FROM playlist_cron_archive"),
    Known("host state row made", PER_VIDEO, "INSERT INTO playlist_cron_state"),
    Known(
        "host state row locked", PER_VIDEO, "FROM playlist_cron_state WHERE collection = %s AND host = %s FOR UPDATE"
    ),
    Known("failed videos read", PER_VIDEO, "SELECT video, record FROM playlist_cron_failed_videos"),
    Known("archive add", PER_VIDEO, "INSERT INTO playlist_cron_archive"),
    Known("host state row written", PER_VIDEO, "UPDATE playlist_cron_state SET state"),
    Known("failed video written", PER_VIDEO, "INSERT INTO playlist_cron_failed_videos"),
    Known("failed video forgotten", PER_VIDEO, "DELETE FROM playlist_cron_failed_videos"),
    Known("video unlock", PER_VIDEO, "pg_advisory_unlock(%s, hashtext(%s))"),
    Known("release", PER_PLAYLIST, "SET due_at = now() + make_interval"),
    Known("let go", PER_PLAYLIST, "FROM unnest(%(ids)s::bigint[]) AS id"),
    Known("unclaim", PER_CHECK, "WHERE id = ANY(%s) AND holder_host = %s"),
)
NOT_EXPLAINABLE = ("sync: statistics",)  # a utility statement: EXPLAIN takes none
# The index each of these statements must find its rows by, whatever the size of its table.
REQUIRED_INDEXES = {
    "claim": "playlist_cron_playlists_claim",
    "release": "playlist_cron_playlists_pkey",
    "archive look-up": "playlist_cron_archive_pkey",
    "archive holds": "playlist_cron_archive_pkey",
    "archive extractors": "playlist_cron_archive_pkey",
}


def known(sql: str) -> Known:
    """Given a statement's text, return what it is; raise LookupError for one `STATEMENTS` does not name."""
    for statement in STATEMENTS:
        if statement.marker in sql:
            return statement
    raise LookupError(f"a statement STATEMENTS does not name: {' '.join(sql.split())[:200]}")


def known_logged(text: str) -> Known:
    """Given a statement as the server logs it (its parameters `$1`, `$2`..., its white space made single spaces),
    return what it is; raise LookupError for one `STATEMENTS` does not name."""
    for statement in STATEMENTS:
        words = re.split(r"(%\([a-z_]+\)s|%s)", " ".join(statement.marker.split()))
        parts = [r"\$\d+" if index % 2 else re.escape(part.replace("%%", "%")) for index, part in enumerate(words)]
        if re.search("".join(parts), text):
            return statement
    raise LookupError(f"a statement STATEMENTS does not name: {text[:200]}")


class Sent(NamedTuple):
    """A statement as sent: its text and its parameters (the first set, of an `executemany`)."""

    sql: str
    parameters: Any


def recording(sent: list[Sent]) -> type[psycopg.Cursor[Any]]:
    """A cursor class that appends what it sends to `sent` (a connection's `execute` goes through its cursor)."""

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            sent.append(Sent(str(query), params))
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
            rows = list(params_seq)
            sent.append(Sent(str(query), rows[0] if rows else None))
            super().executemany(query, rows, **kwargs)

    return Recording


class OneConnection:
    """The part of `connection.Database` the state and the archive use, over one given connection."""

    def __init__(self, connection: psycopg.Connection[Any], collection: str, host: str) -> None:
        self._connection = connection
        self.collection = collection
        self.host = host

    def connection(self) -> psycopg.Connection[Any]:
        return self._connection

    def guard(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass
class Loaded:
    """A fleet's database as the explained checks find it."""

    url: str
    collection: str
    playlists: int
    archive_rows: int
    failed_videos: int
    sent: list[Sent] = field(default_factory=list)  # what the recording connections sent, in order


def archive_id(number: int) -> str:
    """The id of the archive's `number`th video (as YouTube's, 11 characters)."""
    return f"v{number:010d}"


def playlist_key(number: int) -> str:
    return f"https://example.com/playlist/{number:05d}"


def read_record(key: str) -> dict[str, object]:
    """A playlist's read record as a feed read that got a 304 leaves it."""
    now = clock.iso(clock.now_s())
    return {"feed_url": f"{key}/feed", "etag": '"0123456789abcdef"', "last_feed_read_at": now, "is_feed": False}


def failed_record(video_id: str) -> dict[str, object]:
    record: dict[str, object] = {}
    failures.record_failure(
        record,  # type: ignore[arg-type]
        video_id,
        video_id=video_id,
        title=f"video {video_id}",
        url=f"https://example.com/watch?v={video_id}",
        error="HTTP Error 404: Not Found",
        playlist_url=playlist_key(0),
        now_s=clock.now_s(),
        backoff_s=(3600, 86400),
    )
    return record[video_id]  # type: ignore[return-value]


def load(url: str, collection: str, playlists: int, archive_rows: int, failed_videos: int) -> Loaded:
    """Migrate the database at `url` and load it: `playlists` configured playlists synced by a first claim (its
    statements recorded, as the first check of the list sends them) and then all due, each with a read record (as
    after a check); `archive_rows` archive rows (all of extractor "youtube" but a few of "generic"), and
    `failed_videos` failed videos, made in the database itself; every table analyzed."""
    loaded = Loaded(url, collection, playlists, archive_rows, failed_videos)
    with psycopg.connect(url) as connection:
        schema.migrate(connection)
    with _connections(loaded) as (work, lock):
        fleet = claims.Fleet(work, lock, collection, "loader", os.getpid())
        fleet.add_playlists(playlist_key(number) for number in range(playlists))
        fleet.unclaim(fleet.claim(1))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "UPDATE playlist_cron_playlists SET due_at = '-infinity', "
            "read_record = jsonb_build_object('version', 1, 'record', %s::jsonb || jsonb_build_object('feed_url', url))"
            " WHERE collection = %s",
            (Jsonb(read_record(playlist_key(0))), collection),
        )
        connection.execute(
            "INSERT INTO playlist_cron_archive (collection, extractor, video_id, added_by) "
            "SELECT %s, CASE WHEN number %% 100000 = 0 THEN 'generic' ELSE 'youtube' END, "
            "'v' || lpad(number::text, 10, '0'), 'loader' FROM generate_series(1, %s) AS number",
            (collection, archive_rows),
        )
        connection.execute(
            "INSERT INTO playlist_cron_failed_videos (collection, video, record) "
            "SELECT %s, 'youtube f' || lpad(number::text, 10, '0'), "
            "jsonb_build_object('version', 1, 'record', %s::jsonb) FROM generate_series(1, %s) AS number",
            (collection, Jsonb(failed_record("f0000000000")), failed_videos),
        )
        connection.execute("VACUUM ANALYZE")
    return loaded


@contextlib.contextmanager
def _connections(loaded: Loaded) -> Iterator[tuple[psycopg.Connection[Any], psycopg.Connection[Any]]]:
    """A check's two connections, work and lock (autocommit both, as a check's), recording what they send."""
    cursor = recording(loaded.sent)
    work = psycopg.connect(loaded.url, autocommit=True, cursor_factory=cursor)
    lock = psycopg.connect(loaded.url, autocommit=True, cursor_factory=cursor)
    try:
        yield work, lock
    finally:
        work.close()
        lock.close()


class Moment(NamedTuple):
    """What a check sent at one moment (its first claim, its last), and how many playlists were done before."""

    sent: list[Sent]
    done: int


class Check:
    """A check of the loaded fleet, as a host runs it, through the storage's own calls on recording connections."""

    def __init__(self, loaded: Loaded, work: psycopg.Connection[Any], lock: psycopg.Connection[Any]) -> None:
        self.loaded = loaded
        self.work = work
        self.fleet = claims.Fleet(work, lock, loaded.collection, "host", os.getpid())
        self.fleet.add_playlists(playlist_key(number) for number in range(loaded.playlists))
        database = OneConnection(work, loaded.collection, "host")
        self.state = PostgresState(database)  # type: ignore[arg-type]  # the part of Database it uses
        self.archive = PostgresArchive(database)  # type: ignore[arg-type]
        self.done = 0
        self.videos = 0

    def first(self, batch: int, entries: int) -> Moment:
        """A check's start and its first claim, and the first playlist it reads; with the statements `load` sent to
        make the list's rows (as the first check of a list sends them)."""
        mark = 0
        schema.require_current(self.work)
        self.state.read_reads()
        claimed = self.fleet.claim(batch)
        self.archive.extractors()
        self.fleet.beat()
        self.read(claimed[0], entries)
        self.fleet.let_go()
        self.fleet.look()
        moment = Moment(self.loaded.sent[mark:], self.done)
        for claim in claimed[1:]:
            self.fleet.release(claim, 3600)
            self.done += 1
        return moment

    def drain(self, batch: int) -> None:
        """Claim and release the playlists until at most `batch` are left (not recorded)."""
        mark = len(self.loaded.sent)
        while self.loaded.playlists - self.done > batch:
            claimed = self.fleet.claim(min(batch, self.loaded.playlists - self.done - batch))
            if not claimed:
                break
            for claim in claimed:
                self.fleet.release(claim, 3600, read_record_row(read_record(claim.url_key)))  # type: ignore[arg-type]
                self.done += 1
        del self.loaded.sent[mark:]

    def last(self, batch: int, entries: int) -> Moment:
        """The last claim of the check, the last playlist it reads, and its end (the claims no reader took given
        back, as by a check stopped first)."""
        mark = len(self.loaded.sent)
        claimed = self.fleet.claim(batch)
        if not claimed:
            raise RuntimeError(f"none left to claim after {self.done} of {self.loaded.playlists}")
        self.fleet.beat()
        self.read(claimed[0], entries)
        self.fleet.unclaim(claimed[1:])
        self.fleet.look()
        return Moment(self.loaded.sent[mark:], self.done)

    def read(self, claim: claims.Claim, entries: int) -> None:
        """What a check sends about one playlist read: its entries looked up in the archive (three in four found),
        one new video downloaded (it had failed before: its failed record goes), one failing, and the release."""
        base = (self.done * 7919) % max(1, self.loaded.archive_rows - entries)
        lines = [f"youtube {archive_id(base + number)}" for number in range(entries * 3 // 4)]
        lines += [f"youtube n{self.done:05d}{number:05d}" for number in range(entries - len(lines))]
        self.archive.lookup(lines)
        self.videos += 1
        downloaded = f"youtube f{self.videos:010d}"  # one of the failed videos
        if self.fleet.lock_video(downloaded) and not self.archive.holds(downloaded):
            with self.state.update() as state:
                self.archive.add(downloaded, "host")
                state["downloaded_total"] += 1
                state["failed_videos"].pop(downloaded, None)
        self.fleet.unlock_video(downloaded)
        failing = f"youtube x{self.done:010d}"
        with self.state.update() as state:
            failures.record_failure(
                state["failed_videos"],
                failing,
                video_id=failing.split()[1],
                title=None,
                url=None,
                error="HTTP Error 404: Not Found",
                playlist_url=claim.url_key,
                now_s=clock.now_s(),
                backoff_s=(3600,),
            )
        self.fleet.release(claim, 3600, read_record_row(read_record(claim.url_key)))  # type: ignore[arg-type]
        self.done += 1


@dataclass
class Explained:
    """One statement explained at one moment: its execution times (ms), its plan's nodes, the tables it scans
    sequentially with their rows (the planner's statistics), and the indexes it uses."""

    statement: Known
    times_ms: list[float]
    shape: str
    scanned: dict[str, int]
    indexes: list[str]

    @property
    def big_seq_scans(self) -> list[str]:
        """The tables of more than `SEQ_SCAN_ROWS` rows it scans sequentially."""
        return [table for table, rows in self.scanned.items() if rows > SEQ_SCAN_ROWS]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else 0.0

    def problems(self) -> list[str]:
        """What is wrong with its plan: a big table scanned by a statement sent per claim, per playlist or per
        video, or the index it must use (`REQUIRED_INDEXES`) not used."""
        found = []
        if self.big_seq_scans and self.statement.sent in GROWING:
            found.append(f"{self.statement.name} ({self.statement.sent}): Seq Scan on {', '.join(self.big_seq_scans)}")
        required = REQUIRED_INDEXES.get(self.statement.name)
        if required is not None and required not in self.indexes:
            found.append(f"{self.statement.name}: does not use {required} ({self.shape})")
        return found


def explain(url: str, moment: Moment, runs: int) -> dict[str, Explained]:
    """Each statement of `moment` by name (the last sent of each name), explained `runs` times after one more to
    warm up, in a transaction rolled back, on a connection of its own (the advisory locks it took let go of after).
    A statement that lets go of advisory locks (a claim lets go of the last batch's) finds them held by that
    connection, as the check's own session held them."""
    latest = {known(sent.sql).name: sent for sent in moment.sent}
    explained: dict[str, Explained] = {}
    with psycopg.connect(url, autocommit=True) as connection:
        rows = {
            name: float(count)
            for name, count in connection.execute(
                "SELECT relname, reltuples FROM pg_class WHERE relname LIKE 'playlist_cron%%' AND relkind = 'r'"
            )
        }
        for name, sent in latest.items():
            statement = known(sent.sql)
            if name in NOT_EXPLAINABLE:
                explained[name] = Explained(statement, [], "(a utility statement: not explained)", {}, [])
                continue
            times_ms: list[float] = []
            plan: dict[str, Any] = {}
            for attempt in range(runs + 1):
                _hold_what_it_lets_go_of(connection, name, sent, latest)
                with connection.transaction(force_rollback=True):
                    [(plans,)] = connection.execute(
                        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sent.sql}",  # type: ignore[arg-type]
                        sent.parameters,
                    ).fetchall()
                connection.execute("SELECT pg_advisory_unlock_all()")
                [plan] = plans
                if attempt:
                    times_ms.append(float(plan["Execution Time"]))
            root = plan["Plan"]
            scanned = {table: int(rows.get(table, 0)) for table in seq_scans(root)}
            explained[name] = Explained(statement, times_ms, plan_shape(root), scanned, index_names(root))
    return explained


def _hold_what_it_lets_go_of(
    connection: psycopg.Connection[Any], name: str, sent: Sent, latest: dict[str, Sent]
) -> None:
    """Take the advisory locks the statement `sent` lets go of: a claim's `freed` and let go's `ids` (claims), a
    video unlock's (the video lock's statement with the same parameters)."""
    claims_freed = {"claim": "freed", "let go": "ids"}.get(name)
    if claims_freed is not None:
        connection.execute(
            f"SELECT pg_advisory_lock({LOCK_CLASS_PLAYLISTS}, {playlist_key_sql('id')}) "  # noqa: S608 - constants
            "FROM unnest(%s::bigint[]) AS id",
            (sent.parameters[claims_freed],),
        )
    elif name == "video unlock":
        connection.execute(latest["video lock"].sql, sent.parameters)  # type: ignore[arg-type]


def seq_scans(node: dict[str, Any]) -> list[str]:
    """The tables a plan scans sequentially."""
    found = [str(node["Relation Name"])] if node["Node Type"] == "Seq Scan" and "Relation Name" in node else []
    for child in node.get("Plans", []):
        found += seq_scans(child)
    return found


def index_names(node: dict[str, Any]) -> list[str]:
    """The indexes a plan uses."""
    found = [str(node["Index Name"])] if "Index Name" in node else []
    for child in node.get("Plans", []):
        found += index_names(child)
    return found


def plan_shape(node: dict[str, Any]) -> str:
    """A plan's nodes, depth first, as `Update(Nested Loop(Index Scan on playlist_cron_playlists using ...))`."""
    name = str(node["Node Type"])
    if "Relation Name" in node:
        name += f" on {node['Relation Name']}"
    if "Index Name" in node:
        name += f" using {node['Index Name']}"
    children = [plan_shape(child) for child in node.get("Plans", [])]
    return f"{name}({', '.join(children)})" if children else name


def names_of(moments: Sequence[Moment]) -> set[str]:
    """The names of the statements sent at these moments."""
    return {known(sent.sql).name for moment in moments for sent in moment.sent}


def first_and_last(
    loaded: Loaded, batch: int, entries: int, runs: int
) -> tuple[Moment, Moment, dict[str, Explained], dict[str, Explained]]:
    """Run a check through the loaded database, and explain what it sent at its first claim and at its last (`runs`
    times each); at the last, the statements a check sends only at its start are explained again as the database is
    then."""
    url = loaded.url
    with _connections(loaded) as (work, lock):
        check = Check(loaded, work, lock)
        first = check.first(batch, entries)
        check.drain(batch)
        last = check.last(batch, entries)
    at_first = explain(url, first, runs)
    at_last = explain(url, Moment(first.sent + last.sent, last.done), runs)
    return first, last, at_first, at_last
