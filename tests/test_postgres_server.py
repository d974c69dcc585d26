"""The throwaway PostgreSQL server the tests start, and the behaviour of PostgreSQL the lock will rely on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from conftest import unstarted_postgres_server, wait_for
from postgres_server import SUPERUSER, PostgresServer, PostgresUnavailable, find_bin_dir

LOCK_KEY = 1234
# A process that takes the session advisory lock, says so, and sleeps holding it (a host's check, in short).
HOLDER = """
import sys, time, psycopg
connection = psycopg.connect(sys.argv[1], autocommit=True)
connection.execute("SELECT pg_advisory_lock(%s)", (int(sys.argv[2]),))
print("locked", flush=True)
time.sleep(300)
"""


def try_lock(connection: psycopg.Connection[tuple[object, ...]], key: int = LOCK_KEY) -> bool:
    row = connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    assert row is not None
    return bool(row[0])


def advisory_locks(server: PostgresServer, database: str) -> list[tuple[object, ...]]:
    """The advisory locks held in `database` (a URL): the pid of each holder's backend, and the key."""
    return server.execute(
        "SELECT l.pid, l.objid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE l.locktype = 'advisory' AND d.datname = %s",
        (database.rsplit("/", 1)[1],),
    )


def test_a_fresh_database_of_its_own_takes_connections_and_keeps_rows(database: str) -> None:
    assert re.fullmatch(rf"postgresql://{SUPERUSER}@127\.0\.0\.1:\d+/test_\w+", database), database
    with psycopg.connect(database) as connection:
        row = connection.execute("SELECT current_database(), current_user").fetchone()
        assert row == (database.rsplit("/", 1)[1], SUPERUSER)
        assert connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        connection.execute("CREATE TABLE archive (extractor text, id text, PRIMARY KEY (extractor, id))")
        connection.execute("INSERT INTO archive VALUES ('youtube', 'abc')")
    with psycopg.connect(database) as connection:
        assert connection.execute("SELECT * FROM archive").fetchall() == [("youtube", "abc")]


def test_the_server_runs_as_postgres_under_root_and_as_the_user_otherwise(postgres_server: PostgresServer) -> None:
    owner = postgres_server.data_dir.stat().st_uid
    expected = _uid_of("postgres") if os.geteuid() == 0 else os.geteuid()
    assert owner == expected
    assert postgres_server.execute("SHOW listen_addresses") == [("127.0.0.1",)]


def _uid_of(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def test_databases_are_created_and_dropped_even_with_a_client_connected(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("made_here")
    assert url == postgres_server.url("made_here")
    assert "made_here" in postgres_server.databases()
    named_at_random = postgres_server.create_database()
    assert named_at_random.rsplit("/", 1)[1] in postgres_server.databases()
    client = psycopg.connect(url, autocommit=True)
    try:
        postgres_server.drop_database("made_here")
        postgres_server.drop_database(named_at_random.rsplit("/", 1)[1])
        assert {"made_here", named_at_random.rsplit("/", 1)[1]} & postgres_server.databases() == set()
        with pytest.raises(psycopg.OperationalError):
            client.execute("SELECT 1")
    finally:
        client.close()


def test_a_session_advisory_lock_is_refused_to_another_connection_at_once(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as holder, psycopg.connect(database, autocommit=True) as other:
        assert try_lock(holder)
        started = time.monotonic()
        assert not try_lock(other)
        assert time.monotonic() - started < 1  # refused, not waited for
        assert try_lock(other, LOCK_KEY + 1), "another key is another lock"
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        assert try_lock(other)


def test_a_kill_9d_holders_advisory_lock_is_free_again_at_once(
    database: str, postgres_server: PostgresServer, reliability: Callable[[str], None]
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database, str(LOCK_KEY)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        said = holder.stdout.readline()  # type: ignore[union-attr]
        assert said == "locked\n", holder.stderr.read() if holder.stderr else said
        with psycopg.connect(database, autocommit=True) as other:
            assert not try_lock(other)
            killed_at = time.monotonic()
            os.kill(holder.pid, signal.SIGKILL)
            wait_for(lambda: try_lock(other), timeout=30, what="the dead holder's lock to be free")
            free_after_s = time.monotonic() - killed_at
            assert [row[0] for row in advisory_locks(postgres_server, database)] == [other.info.backend_pid]
        reliability(f"PostgreSQL: a kill -9'd holder's advisory lock was free again after {free_after_s * 1000:.1f} ms")
        assert free_after_s < 5
    finally:
        holder.kill()
        holder.wait()
    wait_for(lambda: not advisory_locks(postgres_server, database), timeout=30, what="no advisory lock left")


def test_a_terminated_backend_fails_its_next_query_with_an_operational_error(
    database: str, postgres_server: PostgresServer
) -> None:
    with psycopg.connect(database, autocommit=True) as victim:
        assert try_lock(victim)
        terminated = postgres_server.execute(
            "SELECT pg_terminate_backend(%s, 10000)", (victim.info.backend_pid,)
        )  # the timeout: return once it has ended
        assert terminated == [(True,)]
        with pytest.raises(psycopg.OperationalError) as raised:
            victim.execute("SELECT 1")
        # Its own subclass, with SQLSTATE 57P01: the server says why before it closes the connection.
        assert type(raised.value) is psycopg.errors.AdminShutdown
        assert raised.value.sqlstate == "57P01"
        assert victim.broken
    assert not advisory_locks(postgres_server, database), "the terminated session's lock went with it"


def test_a_killed_server_drops_every_connection_and_restarts_with_what_was_committed(
    own_postgres_server: PostgresServer,
) -> None:
    url = own_postgres_server.create_database("kept")
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("CREATE TABLE counters (name text PRIMARY KEY, value int)")
        setup.execute("INSERT INTO counters VALUES ('checks_total', 7)")
    client = psycopg.connect(url, autocommit=True)
    port = own_postgres_server.port
    own_postgres_server.kill()
    assert not own_postgres_server.running
    # A plain OperationalError: the connection closed with nothing said (a killed backend says nothing).
    with pytest.raises(psycopg.OperationalError) as raised:
        client.execute("SELECT 1")
    assert type(raised.value) is psycopg.OperationalError, type(raised.value)
    client.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)
    own_postgres_server.restart()
    assert own_postgres_server.running and own_postgres_server.port == port
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT value FROM counters").fetchall() == [(7,)]


def test_a_stopped_server_starts_again_and_its_folder_is_removed_after() -> None:
    with unstarted_postgres_server() as server:
        server.stop()
        assert not server.running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.dsn, connect_timeout=5)
        server.restart()
        assert server.execute("SELECT 1") == [(1,)]
        root = server.root
    assert not Path(root).exists()
    assert not server.running


def test_the_server_programs_are_taken_from_path_else_from_debians_newest_major_version(tmp_path: Path) -> None:
    debian_root = tmp_path / "lib" / "postgresql"
    for version in ("9.6", "13", "16"):
        _fake_server_programs(debian_root / version / "bin")
    (debian_root / "16" / "bin" / "postgres").unlink()  # an incomplete install is passed over
    empty_path = str(tmp_path / "nothing")
    assert find_bin_dir(empty_path, debian_root) == debian_root / "13" / "bin"
    on_path = _fake_server_programs(tmp_path / "local" / "bin")
    assert find_bin_dir(str(on_path), debian_root) == on_path
    with pytest.raises(PostgresUnavailable, match="apt-get install postgresql"):
        find_bin_dir(empty_path, tmp_path / "none")


def _fake_server_programs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("initdb", "pg_ctl", "postgres"):
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    return folder
