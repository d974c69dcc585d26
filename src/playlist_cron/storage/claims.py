"""The playlists of a fleet shared out in PostgreSQL: each claimed by one host, held by a session advisory lock.

A claim is a row of `playlist_cron_playlists` that is due, picked with `FOR UPDATE SKIP LOCKED` and then held by
a session advisory lock on the row (`lock_keys`: a key space of playlist-cron's own) on the lock connection
(autocommit, its own session) until the host is done with it.
The database frees a session's advisory locks the moment its connection ends, `kill -9` of the host included:
another host can take the playlist over at once. Videos are locked the same way while one downloads, with the
lock class of their own, so that a video two playlists share is downloaded once.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from playlist_cron.errors import WatchdogFired
from playlist_cron.storage.lock_keys import (
    CLAIM_KEY_OF_ROW,
    CLAIM_KEYS_HELD,
    CLAIM_LOCK_MATCH,
    LOCK_CLASS_PLAYLISTS,
    LOCK_CLASS_VIDEOS,
    playlist_key_sql,
)

if TYPE_CHECKING:
    from playlist_cron.storage.connection import Connection


class Claim(NamedTuple):
    """A playlist this host holds: its row and its key (the redacted URL)."""

    row_id: int
    url_key: str


class Holder(NamedTuple):
    """Who holds a playlist: the host, its pid, and since when (epoch seconds). A holder that is not a check of
    playlist-cron's (a session holding a claim's key, or one claiming still unnamed in the row) is `host`: what the
    server says of its session, `pid`: its backend's (`pg_terminate_backend(pid)` ends it), `since_s`: when that
    session began (the server keeps no time of a lock's grant: the longest it can have held it)."""

    host: str | None
    pid: int | None
    since_s: float | None


# What a query joining a playlist's row to the `pg_locks` row of its claim (`CLAIM_LOCK_MATCH`) and the holding
# session's `pg_stat_activity` row selects for `holder_of`.
HOLDER_COLUMNS = (
    "holder_host, holder_pid, extract(epoch FROM held_since), pg_locks.pid, application_name, "
    "extract(epoch FROM backend_start)"
)


def holder_of(
    host: str | None,
    pid: int | None,
    since: object,
    session_pid: int | None,
    application: str | None,
    session_start: object,
) -> Holder:
    """Given the `HOLDER_COLUMNS` of a row, return who holds it: the host its row names, or, when the row names none
    while a session holds its claim's key, that session as the server describes it."""
    if session_pid is None or host is not None:
        return Holder(host, pid, float(since) if since is not None else None)  # type: ignore[arg-type]  # numeric
    described = f"application {application!r}" if application else "no application name"
    return Holder(
        f"a database session that is not a playlist-cron check ({described})",
        session_pid,
        float(session_start) if session_start is not None else None,  # type: ignore[arg-type]  # numeric
    )


# Which rows a check may claim: those due, and for `check --now` (forced) those not due yet too; and of those, none
# checked (released) since this check began claiming: not one of its own due again before the check ends (a pass
# over thousands of playlists may take longer than check_interval_seconds, and would never end), and with `--now`
# not one another host checked meanwhile (two `check --now` at once would read every playlist twice, the second
# reading it again the moment the first released it). A range of the claim index (`due_at <= ...`) either way.
# Its parameters: `forced`, and `since`, when this check began claiming (None before its first claim: now).
DUE = (
    "due_at <= CASE WHEN %(forced)s THEN 'infinity'::timestamptz ELSE now() END "
    "AND (last_checked_at IS NULL OR last_checked_at < coalesce(%(since)s::timestamptz, statement_timestamp()))"
)
# A claim: one statement on the lock connection, taking up to `limit` of the collection's due playlists that no
# session holds, in the order they fell due. Autocommit: the rows are locked (`FOR UPDATE SKIP LOCKED`: another
# host claiming at the same moment takes the next ones) only while it runs, their advisory locks (the claims) stay
# with the session. The rows held now are left out by their locks (`pg_locks`), those done in this check by `DUE`:
# no list of ids goes back and forth. `configured` rows are those of the list whose digest the collection's row
# keeps: a host whose list differs claims nothing until it has made the rows match its own (`Fleet._sync`).
# First, it lets go of the claims this host has released since its last claim (`freed`): one statement per playlist
# read fewer than an unlock of each (their rows are due in the future meanwhile: no one else wants them).
CLAIM = f"""
    WITH freed AS (
        SELECT pg_advisory_unlock({LOCK_CLASS_PLAYLISTS}, {playlist_key_sql("id")})
        FROM unnest(%(freed)s::bigint[]) AS id
    ), picked AS (
        SELECT id FROM playlist_cron_playlists
        WHERE collection = %(collection)s AND configured AND {DUE}
            AND (SELECT count(*) FROM freed) >= 0
            AND {CLAIM_KEY_OF_ROW} NOT IN ({CLAIM_KEYS_HELD})
            AND EXISTS (
                SELECT FROM playlist_cron_collections AS listed
                WHERE listed.collection = %(collection)s AND listed.playlists_digest = %(digest)s
            )
        ORDER BY due_at, id LIMIT %(limit)s
        FOR UPDATE OF playlist_cron_playlists SKIP LOCKED
    ), locked AS (
        SELECT id FROM picked WHERE pg_try_advisory_lock({LOCK_CLASS_PLAYLISTS}, {playlist_key_sql("id")})
    )
    UPDATE playlist_cron_playlists SET holder_host = %(host)s, holder_pid = %(pid)s, held_since = now()
    FROM locked WHERE playlist_cron_playlists.id = locked.id
    RETURNING playlist_cron_playlists.id, url, extract(epoch FROM due_at), statement_timestamp()
"""  # noqa: S608  # constants, no outside value
# What a check that claimed nothing asks next, in one statement: the digest of the list the collection's rows match,
# the earliest due time of its playlists, and who holds a due one (the one held longest), if any. The holder is the
# session whose advisory lock holds the row's claim (`pg_locks`): named by the row when the row names one, else
# described by what the server says of that session (`Holder`). A due row whose lock no one holds is being claimed
# or released this very moment: its holder is unknown (all None).
LOOK = f"""
    SELECT
        (SELECT playlists_digest FROM playlist_cron_collections WHERE collection = %(collection)s),
        (SELECT extract(epoch FROM min(due_at)) FROM playlist_cron_playlists
            WHERE collection = %(collection)s AND configured),
        held.*
    FROM (SELECT) AS one LEFT JOIN LATERAL (
        SELECT true, {HOLDER_COLUMNS} FROM playlist_cron_playlists
        LEFT JOIN pg_locks ON {CLAIM_LOCK_MATCH} LEFT JOIN pg_stat_activity USING (pid)
        WHERE collection = %(collection)s AND configured AND {DUE}
        ORDER BY pg_locks.pid IS NULL, coalesce(held_since, backend_start) NULLS LAST LIMIT 1
    ) AS held ON true
"""  # noqa: S608  # constants, no outside value


class Look(NamedTuple):
    """What `LOOK` found: the digest the collection's rows match (None: no row yet), the earliest due time of its
    playlists (epoch seconds; None: none, or due since ever), and whether a due playlist is held, and by whom."""

    digest: str | None
    next_due_s: float | None
    due_held: bool
    holder: Holder | None


def playlists_digest(url_keys: Iterable[str]) -> str:
    """Given the keys of a config's playlists, return the digest of the list (its order and repeats aside)."""
    return hashlib.sha256("\n".join(sorted(set(url_keys))).encode("utf-8")).hexdigest()


class Fleet:
    """One host's view of the shared playlists, through two connections: `work` (transactions) and `lock`
    (autocommit: the session whose advisory locks are this host's claims)."""

    def __init__(self, work: Connection, lock: Connection, collection: str, host: str, pid: int) -> None:
        self.work = work
        self.lock = lock
        self.collection = collection
        self.host = host
        self.pid = pid
        self.claimed: list[Claim] = []
        self.done: set[int] = set()  # the rows this check has worked on and released
        self.freed: list[int] = []  # of those, the rows whose claim's advisory lock the next claim lets go of
        self.force = False  # `check --now`: every playlist no one holds is due, unless checked since this check began
        self.looked: Look | None = None  # what the last claim that found nothing found instead
        self._url_keys: list[str] = []
        self._digest = ""
        self._synced = False  # whether this check has made the rows match its list (once at most: see `claim`)
        self._started_at: object = None  # when this check began claiming, by the database's clock
        self._lock_guard = threading.Lock()  # the heartbeat thread uses the lock connection too

    def add_playlists(self, url_keys: Iterable[str]) -> None:
        """The config's playlists: the rows are made to match them (new ones due at once, those no longer listed
        never claimed) by the first claim that finds the collection's list different, not before, nor again."""
        self._url_keys = sorted(set(url_keys))
        self._digest = playlists_digest(self._url_keys)

    @property
    def digest(self) -> str:
        """The digest of the config's list of playlists (`add_playlists`)."""
        return self._digest

    def claim(self, limit: int) -> list[Claim]:
        """Claim up to `limit` due playlists that no host holds, those due longest first; none when none is.

        When the first claim of a check finds none, `looked` says what there is instead; and when the collection's
        rows match another list than this config's, they are made to match it (once in a check: two hosts with
        different lists would otherwise take turns at it for ever) and the claim is tried again.
        """
        claimed_again = False
        while True:
            parameters = {**self._parameters(), "limit": limit, "host": self.host, "pid": self.pid, "freed": self.freed}
            rows = self._lock_rows(CLAIM, parameters)
            self.freed = []
            if rows:
                if self._started_at is None:
                    self._started_at = rows[0][3]
                claims = [
                    Claim(row_id, url_key) for row_id, url_key, _, _ in sorted(rows, key=lambda row: (row[2], row[0]))
                ]
                self.claimed.extend(claims)
                return claims
            if self._started_at is not None:  # the rows matched this list at its first claim: none left, no more
                return []
            self.looked = self.look()
            if self.looked.digest == self._digest or self._synced:
                # The claim saw the rows as they were when it began, the look a moment later: another host's first
                # sync of this list, committed between the two, made due rows the claim could not see. Once more,
                # then the look's answer stands (a host found them all held: SKIPPED).
                if self.looked.due_held and not claimed_again:
                    claimed_again = True
                    continue
                return []
            self._sync()

    def claim_next(self) -> Claim | None:
        """Claim the one playlist that has been due longest and that no host holds; None when none is."""
        claims = self.claim(1)
        return claims[0] if claims else None

    def look(self) -> Look:
        """Return the collection's digest, earliest due time and the holder of a due playlist (`LOOK`)."""
        row = self.work.execute(LOOK, self._parameters()).fetchone()
        assert row is not None  # one row always: LEFT JOIN LATERAL
        digest, next_due, found, *holder = row
        next_due_s = float(next_due) if next_due is not None and math.isfinite(float(next_due)) else None
        return Look(digest, next_due_s, bool(found), holder_of(*holder) if found else None)

    def _sync(self) -> None:
        """Make the collection's rows match this config's list: a row for each playlist (due at once when new), the
        rows of playlists no longer listed left unclaimed (`configured` false, their records kept), and the list's
        digest in the collection's row; one transaction, a few statements, whatever the number of playlists."""
        parameters = {"collection": self.collection, "digest": self._digest, "keys": self._url_keys}
        with self.work.transaction():
            self.work.execute(
                "INSERT INTO playlist_cron_collections (collection, playlists_digest) "
                "VALUES (%(collection)s, %(digest)s) ON CONFLICT (collection) DO UPDATE "
                "SET playlists_digest = EXCLUDED.playlists_digest, updated_at = now()",
                parameters,
            )
            added = self.work.execute(
                "INSERT INTO playlist_cron_playlists (collection, url) "
                "SELECT %(collection)s, unnest(%(keys)s::text[]) ON CONFLICT (collection, url) DO NOTHING",
                parameters,
            ).rowcount
            self.work.execute(
                "UPDATE playlist_cron_playlists AS row SET configured = NOT row.configured FROM ("
                "SELECT listed.id FROM playlist_cron_playlists AS listed "
                "LEFT JOIN unnest(%(keys)s::text[]) AS key(url) ON key.url = listed.url "
                "WHERE listed.collection = %(collection)s AND listed.configured <> (key.url IS NOT NULL)"
                ") AS flipped WHERE row.id = flipped.id",
                parameters,
            )
            if added:  # statistics for the claims' plan at once (an ordered scan that stops at LIMIT), not when
                # autovacuum comes by: without, the first check of thousands of new rows sorts them all at each claim
                self.work.execute("ANALYZE playlist_cron_playlists")
        self._synced = True

    def release(self, claim: Claim, next_due_in_s: float, read_record: object = None) -> None:
        """Done with a playlist: it is due again in `next_due_in_s`, and free for any host from now. `read_record`
        (the row's value, `postgres.read_record_row`), when given, is written in the same statement: the playlist's
        read record is never without its release, nor the release without it."""
        with self.work.transaction():
            self.work.execute(
                "UPDATE playlist_cron_playlists SET due_at = now() + make_interval(secs => %s), "
                "holder_host = NULL, holder_pid = NULL, held_since = NULL, last_checked_at = now(), "
                "read_record = coalesce(%s, read_record) WHERE id = %s",
                (next_due_in_s, read_record, claim.row_id),
            )
        self.freed.append(claim.row_id)  # its advisory lock: let go of by the next claim, or `let_go`
        self.claimed.remove(claim)
        self.done.add(claim.row_id)

    def unclaim(self, claims: list[Claim]) -> None:
        """Give back claims never worked on (a check stopped first): free, and due as they were."""
        if not claims:
            return
        self.work.execute(
            "UPDATE playlist_cron_playlists SET holder_host = NULL, holder_pid = NULL, held_since = NULL "
            "WHERE id = ANY(%s) AND holder_host = %s AND holder_pid = %s",
            ([claim.row_id for claim in claims], self.host, self.pid),
        )
        for claim in claims:
            self.claimed.remove(claim)
        self.freed.extend(claim.row_id for claim in claims)
        self.let_go()

    def let_go(self) -> None:
        """Let go of the advisory locks of the claims released since the last claim (`freed`) now, in one statement:
        when no claim follows at once, a released playlist would look held (by this session) to `status`."""
        if self.freed:
            self._lock_rows(
                f"SELECT pg_advisory_unlock({LOCK_CLASS_PLAYLISTS}, {playlist_key_sql('id')}) "  # noqa: S608  # constants
                "FROM unnest(%(ids)s::bigint[]) AS id",
                {"ids": self.freed},
            )
            self.freed = []

    def _parameters(self) -> dict[str, object]:
        """The parameters of `DUE`, `CLAIM` and `LOOK` but the claim's own."""
        return {
            "collection": self.collection,
            "digest": self._digest,
            "forced": self.force,
            "since": self._started_at,
        }

    # -- videos

    def lock_video(self, archive_line: str) -> bool:
        """Hold a video while it downloads; False at once when another host holds it."""
        return self._try_lock(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS_VIDEOS, f"{self.collection} {archive_line}")
        )

    def unlock_video(self, archive_line: str) -> None:
        self._try_lock(
            "SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS_VIDEOS, f"{self.collection} {archive_line}")
        )

    # -- the lock connection

    def beat(self) -> None:
        """Ask the lock connection whether it still lives; raise when it does not."""
        self._try_lock("SELECT true", ())

    def _lock_rows(self, sql: str, parameters: dict[str, object]) -> list[tuple[Any, ...]]:
        """Run one statement on the lock connection and return its rows; raise `WatchdogFired("lock_lost")` when the
        connection is gone, as `_try_lock` does."""
        import psycopg

        try:
            with self._lock_guard:
                return self.lock.execute(sql, parameters).fetchall()
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise WatchdogFired(
                "lock_lost",
                f"the database lock's connection was lost ({type(error).__name__}: {' '.join(str(error).split())})",
            ) from None

    def _try_lock(self, sql: str, parameters: tuple[Any, ...]) -> bool:
        """Run one statement on the lock connection; raise `WatchdogFired("lock_lost")` when it is gone: with it,
        every claim of this host is gone, and another host may already work on the same playlist."""
        import psycopg

        try:
            with self._lock_guard:
                row = self.lock.execute(sql, parameters).fetchone()
        except psycopg.Error as error:
            raise WatchdogFired(
                "lock_lost",
                f"the database lock's connection was lost ({type(error).__name__}: {' '.join(str(error).split())})",
            ) from None
        return bool(row and row[0])


class Heartbeat:
    """A thread that asks the lock connection every `interval_s` whether it lives, and calls `on_lost` with the
    error's words once when it does not (the database restarted, the session was terminated or timed out)."""

    def __init__(self, fleet: Fleet, interval_s: float, on_lost: Callable[[str], None]) -> None:
        self.fleet = fleet
        self.interval_s = interval_s
        self.on_lost = on_lost
        self.lost: str | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="playlist-cron-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            started_s = time.monotonic()
            try:
                self.fleet.beat()
            except WatchdogFired as lost:
                if self._stopped.is_set():
                    return
                self.lost = lost.detail
                self.on_lost(f"{lost.detail}; noticed by the heartbeat in {time.monotonic() - started_s:.1f} s")
                return
