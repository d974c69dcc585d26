"""The playlists of a fleet shared out in PostgreSQL: each claimed by one host, held by a session advisory lock.

A claim is a row of `playlist_cron_playlists` that is due, picked with `FOR UPDATE SKIP LOCKED` and then held by
a session advisory lock on the row (`lock_keys`: a key space of playlist-cron's own) on the lock connection
(autocommit, its own session) until the host is done with it.
The database frees a session's advisory locks the moment its connection ends, `kill -9` of the host included:
another host can take the playlist over at once. Videos are locked the same way while one downloads, with the
lock class of their own, so that a video two playlists share is downloaded once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from playlist_cron.errors import WatchdogFired
from playlist_cron.storage.lock_keys import CLAIM_LOCK_MATCH, LOCK_CLASS_PLAYLISTS, LOCK_CLASS_VIDEOS, playlist_key

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


# Which rows a check may claim: those due, and for `check --now` (forced) those not due yet too, but not one another
# host checked (released) after this check began claiming: two `check --now` at once would read every playlist twice,
# the second reading it again the moment the first released it. Its parameters: `Fleet._due_parameters`.
DUE = "(due_at <= now() OR (%s AND (last_checked_at IS NULL OR last_checked_at < %s)))"


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
        self.force = False  # `check --now`: every playlist no one holds is due, unless checked since this check began
        self._started_at: object = None  # when this check began claiming, by the database's clock
        self._lock_guard = threading.Lock()  # the heartbeat thread uses the lock connection too

    def add_playlists(self, url_keys: Iterable[str]) -> None:
        """Make sure every playlist of the config has its row (due at once when new)."""
        with self.work.transaction(), self.work.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO playlist_cron_playlists (collection, url) VALUES (%s, %s) "
                "ON CONFLICT (collection, url) DO NOTHING",
                [(self.collection, key) for key in url_keys],
            )

    def claim_next(self, url_keys: list[str]) -> Claim | None:
        """Claim the playlist of `url_keys` that has been due longest and that no host holds; None when none is.

        The rows are taken one at a time (`LIMIT 1`): a SELECT of every due row `FOR UPDATE` would lock them all
        until this claim commits, and another host claiming at the same moment would skip them all and find
        nothing due (a check SKIPPED, or ended, while playlists waited).
        """
        # Rows whose advisory lock another host holds, and those this check has done already: a check goes through
        # each playlist once, or one whose pass takes longer than check_interval_seconds would never end. Nor those
        # it holds now: an advisory lock is its session's again for the asking, and another reader would read it too.
        tried: list[int] = [*self.done, *(claim.row_id for claim in self.claimed)]
        with self.work.transaction():
            while True:
                row = self.work.execute(
                    "SELECT id, url FROM playlist_cron_playlists WHERE collection = %s AND url = ANY(%s) "  # noqa: S608  # constants
                    f"AND {DUE} AND NOT id = ANY(%s) ORDER BY due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    (self.collection, url_keys, *self._due_parameters(), tried),
                ).fetchone()
                if row is None:
                    return None
                row_id, url_key = row
                if self._try_lock("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS_PLAYLISTS, playlist_key(row_id))):
                    self.work.execute(
                        "UPDATE playlist_cron_playlists SET holder_host = %s, holder_pid = %s, held_since = now() "
                        "WHERE id = %s",
                        (self.host, self.pid, row_id),
                    )
                    claim = Claim(row_id, url_key)
                    self.claimed.append(claim)
                    return claim
                tried.append(row_id)

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
        self._try_lock("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS_PLAYLISTS, playlist_key(claim.row_id)))
        self.claimed.remove(claim)
        self.done.add(claim.row_id)

    def due_holder(self, url_keys: list[str]) -> Holder | None:
        """Who holds a due playlist of `url_keys` (the one held longest), or None when none of them is due.

        The holder is the session whose advisory lock holds the row's claim (`pg_locks`): named by the row when the
        row names one, else described by what the server says of that session (`Holder`). A due row whose lock no
        one holds is being claimed or released this very moment: its holder is unknown (all None).
        """
        row = self.work.execute(
            f"SELECT {HOLDER_COLUMNS} FROM playlist_cron_playlists "  # noqa: S608  # constants, no outside value
            f"LEFT JOIN pg_locks ON {CLAIM_LOCK_MATCH} LEFT JOIN pg_stat_activity USING (pid) "
            f"WHERE collection = %s AND url = ANY(%s) AND {DUE} "
            "ORDER BY pg_locks.pid IS NULL, coalesce(held_since, backend_start) NULLS LAST LIMIT 1",
            (self.collection, url_keys, *self._due_parameters()),
        ).fetchone()
        self.work.commit()
        if row is None:
            return None
        return holder_of(*row)

    def _due_parameters(self) -> tuple[bool, object]:
        """The parameters of `DUE`: whether this check is forced, and since when it has been claiming."""
        if self.force and self._started_at is None:
            row = self.work.execute("SELECT statement_timestamp()").fetchone()
            self._started_at = row[0] if row else None
        return self.force, self._started_at

    def next_due_s(self, url_keys: list[str]) -> float | None:
        """When the first of `url_keys` is due next (epoch seconds), or None when none has a row."""
        row = self.work.execute(
            "SELECT extract(epoch FROM min(due_at)) FROM playlist_cron_playlists WHERE collection = %s "
            "AND url = ANY(%s)",
            (self.collection, url_keys),
        ).fetchone()
        self.work.commit()
        return float(row[0]) if row and row[0] is not None and row[0] != float("-inf") else None

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
