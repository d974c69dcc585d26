"""A database session ended under a command (`pg_terminate_backend`, as an administrator or a failover does) ends
that command with one line on stderr and its documented exit code, never a traceback: the installed command against
a real PostgreSQL server, its session terminated while it waits on a lock held by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import wait_for
from playlist_cron import exit_codes
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items
from playlist_cron.storage.lock_keys import MIGRATE_LOCK_KEY
from postgres_server import PostgresServer
from test_fleet import Host, migrate, sql

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")

WAITING = "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'playlist-cron %' AND wait_event_type = 'Lock'"
TABLES = "playlist_cron_state, playlist_cron_playlists, playlist_cron_archive, playlist_cron_failed_videos"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (("check", "--now"), exit_codes.TEMPFAIL),
        (("check", "--now", "ARCHIVE_ONLY"), exit_codes.TEMPFAIL),
        (("status",), exit_codes.FAILED),
        (("retry",), exit_codes.TEMPFAIL),
        (("db", "export-archive", "-"), exit_codes.TEMPFAIL),
        (("db", "import-archive", "ARCHIVE"), exit_codes.TEMPFAIL),
        (("db", "migrate"), exit_codes.TEMPFAIL),
    ],
)
def test_a_session_terminated_under_a_command_ends_it_with_one_line(
    tmp_path: Path, database: str, postgres_server: PostgresServer, command: tuple[str, ...], code: int
) -> None:
    with FeedServer(make_items(2, size_bytes=10_000)) as server:
        host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url=server.feed_url)
        migrate(host)
        first = host.run("check")
        assert (first.returncode, first.stderr) == (0, "")
        server.settings.items.insert(0, FeedItem("new", "New", size_bytes=10_000))  # for the check to look up
        with psycopg.connect(database) as locker:
            if command[-1] == "ARCHIVE_ONLY":  # the check claims and starts, then waits to look the archive up
                command = command[:-1]
                locker.execute("LOCK TABLE playlist_cron_archive IN ACCESS EXCLUSIVE MODE")
            elif command[-1] == "migrate":
                locker.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
            else:
                locker.execute(f"LOCK TABLE {TABLES} IN ACCESS EXCLUSIVE MODE")  # constants
            (tmp_path / "archive.txt").write_text("generic imported\n")
            process = host.start(*(str(tmp_path / "archive.txt") if word == "ARCHIVE" else word for word in command))
            wait_for(lambda: sql(postgres_server, database, WAITING), what="the command waiting on the lock")
            terminated = sql(
                postgres_server, database, WAITING.replace("SELECT pid", "SELECT pg_terminate_backend(pid)")
            )
            assert terminated and all(done for (done,) in terminated)
            stdout, stderr = process.communicate(timeout=60)
    lines = stderr.splitlines()
    assert "Traceback" not in stderr + stdout and len(lines) <= 1, stderr
    assert process.returncode == code, stderr
    assert not host.events("check_error"), "no traceback in the log either: the failure is a known one"
    said = {
        "check": lambda: [event["reason"] for event in host.events("check_failed")] == ["database"],
        "status": lambda: "cannot be reached: terminating connection due to administrator command" in stdout,
    }.get(command[0], lambda: lines[0].startswith("playlist-cron: lost the database postgresql://"))
    assert said(), (stdout, stderr)


def test_a_session_terminated_as_a_video_is_counted_ends_the_check_failed_database(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    """The state's table locked while a video downloads: the check counts it (its archive row and counters, one
    transaction) waiting on the lock, and its session is terminated there, inside yt-dlp's run of the entry. The
    check ends FAILED (database), exit 75: not as that video's failure, nor the playlist's."""
    with FeedServer(make_items(2, size_bytes=100_000)) as server:
        server.settings.bytes_per_second = 100_000
        host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url=server.feed_url)
        migrate(host)
        process = host.start("check")
        wait_for(lambda: server.requests_for("/media/"), what="the first download")
        with psycopg.connect(database) as locker:
            locker.execute("LOCK TABLE playlist_cron_state IN ACCESS EXCLUSIVE MODE")
            wait_for(lambda: sql(postgres_server, database, WAITING), what="the check counting the video")
            sql(postgres_server, database, WAITING.replace("SELECT pid", "SELECT pg_terminate_backend(pid)"))
        _, stderr = process.communicate(timeout=60)
        # The first check of this host: not kept quiet as an outage (nothing has worked yet), said in one line.
        assert process.returncode == exit_codes.TEMPFAIL, stderr
        assert len(stderr.splitlines()) == 1, stderr
        assert stderr.startswith("playlist-cron: check #1 FAILED (database): lost the database postgresql://"), stderr
        assert not host.events("check_error") and not host.events("video_failed")
        [failed] = host.events("check_failed")
        assert failed["reason"] == "database", failed
        assert "terminating connection due to administrator command" in failed["error"], failed
        server.settings.bytes_per_second = None
        again = host.run("check", "--now")
        assert again.returncode == 0, again.stderr
        # The alerted outage ends, in the words of what failed (before: "the site can be reached again after 1 s of
        # network failures" when it was the database).
        [line] = again.stderr.splitlines()
        assert line.startswith("playlist-cron: check #2: the database can be reached again after "), line
        assert " s of database failures (1 check since " in line, line
        [recovered] = host.events("network_recovered")
        assert recovered["reason"] == "database", recovered
    downloaded = sorted(path.name for path in (tmp_path / "downloads").rglob("*") if path.is_file())
    assert len(downloaded) == 2, downloaded
