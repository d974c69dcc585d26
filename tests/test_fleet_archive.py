"""A fleet's check asks the archive only about the entries its reads list, by primary key: a real PostgreSQL
database holding an archive of 20,000 lines, a real loopback feed, the installed command as the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import wait_for
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items
from postgres_server import PostgresServer
from test_fleet import Host, migrate, sql

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")

ARCHIVED_ELSEWHERE = 20_000  # lines of other playlists' videos: none may be read by this check


def archive_reads(server: PostgresServer, database: str) -> tuple[int, int]:
    """How often the archive's table was scanned whole, and how many of its rows its index scans fetched, so far
    (the statistics each session sends the server as it ends): its index's entries read."""
    [(scans, fetched)] = sql(
        server,
        database,
        "SELECT seq_scan, (SELECT sum(idx_tup_read) FROM pg_stat_user_indexes WHERE relname = 'playlist_cron_archive') "
        "FROM pg_stat_user_tables WHERE relname = 'playlist_cron_archive'",
    )
    return int(scans), int(fetched)


def no_session_left(server: PostgresServer, database: str) -> bool:
    """Whether every session of playlist-cron has ended (and so sent its statistics)."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'playlist-cron %'"
    return sql(server, database, query) == [(0,)]


def test_a_check_looks_up_only_the_entries_it_reads_never_the_whole_archive(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    with FeedServer(make_items(6, size_bytes=10_000)) as server:
        host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url=server.feed_url)
        migrate(host)
        archive = tmp_path / "archive.txt"
        archived = [f"generic {item.guid}" for item in server.settings.items[3:]]
        archive.write_text(
            "".join(f"generic other-{n}\n" for n in range(ARCHIVED_ELSEWHERE)) + "\n".join(archived) + "\n"
        )
        imported = host.run("db", "import-archive", str(archive))
        assert imported.returncode == 0, imported.stderr
        sql(postgres_server, database, "ANALYZE playlist_cron_archive")
        [(collection,)] = sql(postgres_server, database, "SELECT DISTINCT collection FROM playlist_cron_archive")
        wait_for(lambda: no_session_left(postgres_server, database), what="the import's session ended")
        before = archive_reads(postgres_server, database)
        first = host.run("check")  # a full read: yt-dlp lists the feed's six entries
        assert (first.returncode, first.stderr) == (0, "")
        # A new video in the feed, archived already by another host: the feed read is settled by the feed alone.
        server.settings.items.insert(0, FeedItem("extra", "Extra", size_bytes=10_000))
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(
                "INSERT INTO playlist_cron_archive (collection, extractor, video_id) VALUES (%s, 'generic', 'extra')",
                (collection,),
            )
        second = host.run("check", "--now")
        assert (second.returncode, second.stderr) == (0, "")
        wait_for(lambda: no_session_left(postgres_server, database), what="the checks' sessions ended")
        after = archive_reads(postgres_server, database)
    first_read, second_read = (event["playlists"][0] for event in host.events("check_completed"))
    assert (first_read["downloaded"], first_read["already_archived"]) == (3, 3), first_read
    assert (second_read["read"], second_read["already_archived"]) == ("feed", 7), second_read
    scans, fetched = after[0] - before[0], after[1] - before[1]
    assert scans == 0, "the archive's table was scanned whole"
    assert fetched <= 50, f"{fetched} archive rows read for two reads of six entries"
