"""Who holds a fleet's playlist: a session that is not a check neither stalls the fleet through a lock of its own
(the claims use a key space of playlist-cron's), nor, holding a claim's key, goes unnoticed past
max_runtime_seconds. Real processes as hosts, a real PostgreSQL database, real loopback feeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import wait_for
from playlist_cron.demo.feed import FeedServer, make_items
from postgres_server import PostgresServer
from test_fleet import Host, migrate, sql
from test_status_fleet import hold_claim_key, status

pytest.importorskip("psycopg", reason="the postgres extra is not installed")


@pytest.fixture
def small_feed() -> Iterator[FeedServer]:
    with FeedServer(make_items(1, size_bytes=10_000)) as server:
        yield server


def playlist_row(server: PostgresServer, database: str) -> int:
    [(row_id,)] = sql(server, database, "SELECT id FROM playlist_cron_playlists")
    return int(row_id)


def test_another_programs_lock_on_the_playlists_row_id_does_not_stall_the_fleet(
    tmp_path: Path, database: str, postgres_server: PostgresServer, small_feed: FeedServer
) -> None:
    import psycopg

    host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url=small_feed.feed_url)
    migrate(host)
    assert host.run("check").returncode == 0
    with psycopg.connect(database, autocommit=True) as other_program:
        other_program.execute("SELECT pg_advisory_lock(%s)", (playlist_row(postgres_server, database),))
        result = host.run("check", "--now")
    assert (result.returncode, result.stderr) == (0, "")
    assert [event["outcome"] for event in host.events() if "outcome" in event] == ["COMPLETED", "COMPLETED"]


def test_a_claim_held_by_a_session_that_is_not_a_check_past_max_runtime_is_an_error_and_unhealthy(
    tmp_path: Path, database: str, postgres_server: PostgresServer, small_feed: FeedServer
) -> None:
    import psycopg

    host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url=small_feed.feed_url)
    migrate(host)
    assert host.run("check").returncode == 0
    settings = json.loads(host.config_path.read_text())
    host.config_path.write_text(json.dumps({**settings, "max_runtime_seconds": 1}))
    with psycopg.connect(database, autocommit=True, application_name="stuck-tool") as stuck:
        hold_claim_key(stuck, playlist_row(postgres_server, database))
        [(backend,)] = stuck.execute("SELECT pg_backend_pid()").fetchall()
        wait_for(
            lambda: (
                stuck.execute(
                    "SELECT now() - backend_start > interval '1.5 s' FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                ).fetchall()
                == [(True,)]
            ),
            what="the session older than max_runtime_seconds",
        )
        result = host.run("check", "--now")
        code, report = status(host)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert "stuck-tool" in line and "longer than max_runtime_seconds (1)" in line, line
    [skipped] = host.events("check_skipped")
    assert skipped["level"] == "error"
    assert skipped["holder_pid"] == backend, "the holder's PostgreSQL backend: pg_terminate_backend ends it"
    assert "stuck-tool" in skipped["holder_host"]
    assert code == 1
    [problem] = [problem for problem in report["problems"] if problem.startswith("the playlist ")]
    assert "stuck-tool" in problem and "longer than max_runtime_seconds (1)" in problem, problem
