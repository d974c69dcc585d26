"""Every statement a fleet's check sends is named, and finds its rows by an index: a check run through the storage's
own calls against a real PostgreSQL database of thousands of playlists and archive rows, each statement it sent
explained with the planner's own choices (tests/fleet_statements.py; the claims benchmark does the same with 10,000
playlists and a 1,000,000-row archive), and the statements of real checks of the installed command, as the server
logs them, each found in the same list."""

from __future__ import annotations

from pathlib import Path

import pytest

from playlist_cron.demo.feed import FeedItem, FeedServer
from postgres_server import PostgresServer
from test_fleet import Host, migrate
from test_fleet_queries import ServerLog, work

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")

import fleet_statements  # noqa: E402 - it imports psycopg, which may be missing

# Big enough that the planner reads the playlists and the archive through their indexes, not whole.
PLAYLISTS = 2000
ARCHIVE_ROWS = 20_000
FAILED_VIDEOS = 50
BATCH = 8  # parallel_reads
ENTRIES = 50


def explained_problems(loaded: fleet_statements.Loaded) -> tuple[set[str], list[str]]:
    """Run a check through the loaded database; return the names of the statements it sent at its first and its
    last claim, and what is wrong with their plans at either."""
    first, last, at_first, at_last = fleet_statements.first_and_last(loaded, BATCH, ENTRIES, runs=1)
    assert last.done >= PLAYLISTS - BATCH, "the last claim comes after the others were claimed and released"
    problems = [
        problem for explained in (at_first, at_last) for one in explained.values() for problem in one.problems()
    ]
    return fleet_statements.names_of([first, last]), problems


def test_every_statement_a_check_sends_is_named_and_finds_its_rows_by_an_index(database: str) -> None:
    loaded = fleet_statements.load(database, "explained", PLAYLISTS, ARCHIVE_ROWS, FAILED_VIDEOS)
    sent, problems = explained_problems(loaded)
    assert sent == {statement.name for statement in fleet_statements.STATEMENTS}, "each statement listed was sent"
    assert problems == []


def test_a_dropped_index_is_caught(database: str) -> None:
    """The test above can fail: without the archive's primary key and the claims' index, the plans say so."""
    loaded = fleet_statements.load(database, "explained", PLAYLISTS, ARCHIVE_ROWS, FAILED_VIDEOS)
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("ALTER TABLE playlist_cron_archive DROP CONSTRAINT playlist_cron_archive_pkey")
        connection.execute("DROP INDEX playlist_cron_playlists_claim")
    _, problems = explained_problems(loaded)
    named = {problem.split(":")[0].split(" (")[0] for problem in problems}  # each begins with its statement's name
    print("\n".join(problems))
    assert {"claim", "archive look-up", "archive holds", "archive extractors"} <= named, problems
    assert any("Seq Scan on playlist_cron_archive" in problem for problem in problems), problems


def test_every_statement_real_checks_send_is_named(tmp_path: Path, own_postgres_server: PostgresServer) -> None:
    """The list holds what the installed command sends, as the server logs it: a check that downloads, one whose
    new videos fail, one whose feeds answer 304, one with nothing due (its host's note of the next due time gone)."""
    url = own_postgres_server.create_database("logged")
    own_postgres_server.execute("ALTER DATABASE logged SET log_statement = 'all'")
    log = ServerLog(own_postgres_server)
    with FeedServer(channels=3, channel_items=2) as server:
        host = Host(
            tmp_path,
            "a",
            url,
            tmp_path / "downloads",
            playlists=server.channel_urls,
            parallel_reads=2,
            check_interval_seconds=3600,
        )
        migrate(host)
        log.mark()
        assert host.run("check").returncode == 0
        for number in range(1, 4):
            server.channel(number).items.insert(0, FeedItem(f"new-{number}", "new", size_bytes=1000, media_status=404))
        assert host.run("check", "--now").returncode == 0
        assert host.run("check", "--now").returncode == 0
        (host.folder / "state" / "config.state.json").unlink()
        assert host.run("check").returncode == 0
        logged = work(log.since())
    assert len(host.events("video_downloaded")) == 6 and host.events("video_failed"), "each kind of check ran"
    names = {fleet_statements.known_logged(text).name for text in logged}  # raises for a statement not named
    assert {"claim", "archive look-up", "archive add", "failed video written", "release", "look"} <= names, names
