"""Every way a fleet's database can fail a check ends with one line on stderr and the documented exit code, never a
traceback: real processes as hosts, a real PostgreSQL server (stopped, restarted, locked) and real loopback feeds."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import wait_for
from playlist_cron.demo.feed import FeedServer, make_items
from postgres_server import PostgresServer
from test_fleet import Host, migrate

pytest.importorskip("psycopg", reason="the postgres extra is not installed")


@pytest.fixture
def slow_feed() -> Iterator[FeedServer]:
    with FeedServer(make_items(3, size_bytes=100_000)) as server:
        server.settings.bytes_per_second = 20_000  # fifteen seconds of downloading at least
        yield server


def one_line(stderr: str) -> str:
    """The one line a failure prints; fails the test on a traceback or on more lines."""
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def downloading_host(tmp_path: Path, server: PostgresServer, feed: FeedServer) -> tuple[Host, subprocess.Popen[str]]:
    """A host of a new database (heartbeat 1 s) whose check has begun downloading from `feed`: the host, and its
    check's process."""
    host = Host(
        tmp_path,
        "a",
        server.create_database("fleet"),
        tmp_path / "downloads",
        playlist_url=feed.feed_url,
        database_heartbeat_seconds=1,
    )
    migrate(host)
    holder = host.start("check")
    wait_for(lambda: feed.requests_for("/media/"), what="the host downloading")
    return host, holder


def test_a_database_restarted_in_the_middle_of_a_check_ends_it_with_one_line(
    tmp_path: Path, own_postgres_server: PostgresServer, slow_feed: FeedServer
) -> None:
    host, holder = downloading_host(tmp_path, own_postgres_server, slow_feed)
    own_postgres_server.restart()  # pg_ctl stop --mode fast, then start: every session is ended
    _, stderr = holder.communicate(timeout=60)
    line = one_line(stderr)
    [failed] = host.events("check_failed")
    assert failed["reason"] in ("lock_lost", "database"), failed
    assert holder.returncode == (1 if failed["reason"] == "lock_lost" else 75), stderr
    assert line.startswith(f"playlist-cron: check #1 FAILED ({failed['reason']}): "), line
    slow_feed.settings.bytes_per_second = None
    result = host.run("check", "--now")
    assert (result.returncode, result.stderr) == (0, "")
    downloaded = sorted(path.name for path in (tmp_path / "downloads").rglob("*") if path.is_file())
    assert len(downloaded) == 3, downloaded


def test_a_database_still_down_when_the_check_ends_gets_its_end_written_once_it_is_back(
    tmp_path: Path, own_postgres_server: PostgresServer, slow_feed: FeedServer
) -> None:
    """A restart slower than the heartbeat: the check has logged its end (`lock_lost`) while the server is still down.
    It writes that end once the server is back, within database_connect_timeout_seconds, and says the same one line
    with the same exit code as when the server came back first (before: exit 75, "cannot reach the database")."""
    host, holder = downloading_host(tmp_path, own_postgres_server, slow_feed)
    own_postgres_server.stop()
    wait_for(lambda: host.events("check_failed"), timeout=30, what="the check to log its end")
    own_postgres_server.restart()  # stopped: started again on the same port
    _, stderr = holder.communicate(timeout=60)
    line = one_line(stderr)
    [failed] = host.events("check_failed")
    assert failed["reason"] == "lock_lost", failed
    assert (holder.returncode, line.startswith("playlist-cron: check #1 FAILED (lock_lost): ")) == (1, True), stderr
    status = host.run("status", "--json")
    assert json.loads(status.stdout)["last_outcome"] == "FAILED", status.stdout


def test_an_archive_table_locked_by_another_session_ends_the_check_with_timeout_in_one_line(
    tmp_path: Path, database: str, slow_feed: FeedServer
) -> None:
    import psycopg

    slow_feed.settings.bytes_per_second = None
    host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url=slow_feed.feed_url, max_runtime_seconds=3)
    migrate(host)
    with psycopg.connect(database) as locker:
        locker.execute("LOCK TABLE playlist_cron_archive IN ACCESS EXCLUSIVE MODE")
        result = host.run("check")
    line = one_line(result.stderr)
    [failed] = host.events("check_failed")
    assert failed["reason"] == "timeout", failed
    assert result.returncode == 1, result.stderr
    assert line.startswith("playlist-cron: check #1 FAILED (timeout): "), line


def test_the_database_stopped_while_a_check_claims_ends_it_with_one_line(
    tmp_path: Path, own_postgres_server: PostgresServer
) -> None:
    """Twelve playlists read one after another, the server stopped between two claims: the check ends in one line."""
    with FeedServer(channels=12, channel_items=1, delay_s=0.3) as server:
        url = own_postgres_server.create_database("fleet")
        host = Host(
            tmp_path,
            "a",
            url,
            tmp_path / "downloads",
            playlists=server.channel_urls,
            parallel_reads=1,
            database_heartbeat_seconds=30,
        )
        migrate(host)
        holder = host.start("check")
        wait_for(lambda: server.counts().by_path.get("/channel/3/feed"), what="the third playlist read")
        own_postgres_server.stop()
        _, stderr = holder.communicate(timeout=60)
    line = one_line(stderr)
    assert not host.events("check_error"), "no traceback in the log either: the failure is a known one"
    [failed] = host.events("check_failed")
    assert failed["reason"] in ("database", "lock_lost"), failed
    # The database is gone for good: the check cannot record its end there, and says so (exit 75).
    assert holder.returncode == 75, stderr
    assert line.startswith(
        ("playlist-cron: lost the database postgresql://", "playlist-cron: cannot reach the database")
    ), line
