"""Several hosts, one collection: real processes as hosts (a folder and a config each), one real PostgreSQL
database, one download folder, real yt-dlp against loopback feeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import COMMAND, clean_env, read_events, wait_for
from playlist_cron.demo.feed import FeedServer, make_items
from postgres_server import PostgresServer

pytest.importorskip("psycopg", reason="the postgres extra is not installed")


class Host:
    """One host of the fleet: its own folder (config, log, state), the shared database and download folder."""

    def __init__(self, root: Path, name: str, database_url: str, downloads: Path, **config: Any) -> None:
        self.name = name
        self.folder = root / name
        self.folder.mkdir()
        self.config_path = self.folder / "config.json"
        values = {
            "database_url": database_url,
            "host_name": name,
            "download_dir": str(downloads),
            "min_free_bytes": 0,
            "check_interval_seconds": 60,
            **config,
        }
        self.config_path.write_text(json.dumps(values))

    @property
    def log_file(self) -> Path:
        return self.folder / "logs" / "downloader.log"

    def command(self, *arguments: str) -> list[str]:
        return [COMMAND, *arguments, "--config", str(self.config_path)]

    def run(self, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*arguments),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
            cwd="/",
        )

    def start(self, *arguments: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*arguments),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
            cwd="/",
        )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return read_events(self.log_file, name)


def sql(server: PostgresServer, database_url: str, query: str) -> list[tuple[Any, ...]]:
    return server.execute(query, database=database_url.rsplit("/", 1)[1])


@pytest.fixture
def fleet_feed() -> Iterator[FeedServer]:
    with FeedServer(make_items(3, size_bytes=100_000)) as server:
        yield server


def migrate(host: Host) -> None:
    result = host.run("db", "migrate")
    assert result.returncode == 0, result.stderr


def test_two_hosts_share_one_playlist_and_download_each_video_once(
    tmp_path: Path, database: str, fleet_feed: FeedServer
) -> None:
    downloads = tmp_path / "downloads"
    hosts = [Host(tmp_path, name, database, downloads, playlist_url=fleet_feed.feed_url) for name in ("a", "b")]
    migrate(hosts[0])
    processes = [host.start("check") for host in hosts]
    for process in processes:
        process.communicate(timeout=120)
    codes = [process.returncode for process in processes]
    assert sorted(codes) == [0, 0], codes
    finals = [event for host in hosts for event in host.events() if "outcome" in event]
    downloaded = [event for host in hosts for event in host.events("video_downloaded")]
    assert sorted(event["video_id"] for event in downloaded) == sorted(item.guid for item in fleet_feed.settings.items)
    assert sorted(event["outcome"] for event in finals) in (["COMPLETED", "SKIPPED"], ["COMPLETED"])


def test_a_second_host_finds_the_playlist_held_and_is_skipped_naming_the_holder(
    tmp_path: Path, database: str, fleet_feed: FeedServer, postgres_server: PostgresServer
) -> None:
    fleet_feed.settings.bytes_per_second = 100_000  # three seconds a video: the first host holds the playlist
    downloads = tmp_path / "downloads"
    first, second = (Host(tmp_path, name, database, downloads, playlist_url=fleet_feed.feed_url) for name in "ab")
    migrate(first)
    holder = first.start("check")
    wait_for(lambda: fleet_feed.requests_for("/media/"), what="the first host downloading")
    result = second.run("check")
    assert (result.returncode, result.stderr) == (0, "")
    [skipped] = second.events("check_skipped")
    assert (skipped["holder_host"], skipped["holder_pid"]) == ("a", holder.pid)
    holder.communicate(timeout=120)
    assert holder.returncode == 0


def test_kill_9_of_a_holder_lets_another_host_take_the_playlist_over_at_once(
    tmp_path: Path, database: str, fleet_feed: FeedServer, postgres_server: PostgresServer
) -> None:
    fleet_feed.settings.bytes_per_second = 50_000
    downloads = tmp_path / "downloads"
    first, second = (Host(tmp_path, name, database, downloads, playlist_url=fleet_feed.feed_url) for name in "ab")
    migrate(first)
    victim = first.start("check")
    wait_for(lambda: fleet_feed.requests_for("/media/"), what="the first host downloading")
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)
    killed_at = time.monotonic()
    fleet_feed.settings.bytes_per_second = None
    result = second.run("check")
    took_s = time.monotonic() - killed_at
    assert result.returncode == 0, result.stderr
    [completed] = second.events("check_completed")
    assert completed["downloaded"] == 3
    print(f"taken over and done {took_s:.2f} s after the kill -9")
    advisory = sql(postgres_server, database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    assert advisory == [(0,)], "no advisory lock left"


def test_a_terminated_lock_connection_stops_the_holder_with_lock_lost(
    tmp_path: Path, database: str, fleet_feed: FeedServer, postgres_server: PostgresServer
) -> None:
    fleet_feed.settings.bytes_per_second = 20_000  # fifteen seconds of downloading at least
    host = Host(
        tmp_path, "a", database, tmp_path / "downloads", playlist_url=fleet_feed.feed_url, database_heartbeat_seconds=1
    )
    migrate(host)
    holder = host.start("check")
    wait_for(lambda: fleet_feed.requests_for("/media/"), what="the host downloading")
    [(backend,)] = sql(
        postgres_server, database, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted LIMIT 1"
    )
    terminated_at = time.monotonic()
    sql(postgres_server, database, f"SELECT pg_terminate_backend({int(backend)})")
    _, stderr = holder.communicate(timeout=60)
    took_s = time.monotonic() - terminated_at
    assert holder.returncode == 1, stderr
    [failed] = host.events("check_failed")
    assert failed["reason"] == "lock_lost"
    assert took_s < 10, took_s
    print(f"stopped {took_s:.2f} s after pg_terminate_backend, heartbeat 1 s")


def test_the_database_down_at_the_start_fails_database_exit_75_quietly(
    tmp_path: Path, own_postgres_server: PostgresServer, fleet_feed: FeedServer
) -> None:
    url = own_postgres_server.create_database("fleet")
    host = Host(tmp_path, "a", url, tmp_path / "downloads", playlist_url=fleet_feed.feed_url)
    migrate(host)
    own_postgres_server.stop()
    started = time.monotonic()
    result = host.run("check")
    assert (result.returncode, result.stderr) == (75, ""), result.stderr
    assert time.monotonic() - started < 15
    [failed] = host.events("check_failed")
    assert failed["reason"] == "database"
    assert fleet_feed.requests == [], "nothing was asked of the site"
    own_postgres_server.restart()
    assert host.run("check", "--now").returncode == 0
    assert host.events("check_completed")[-1]["downloaded"] == 3


def test_the_database_stopped_in_the_middle_of_a_check_stops_it_and_the_next_one_finishes_the_work(
    tmp_path: Path, own_postgres_server: PostgresServer, fleet_feed: FeedServer
) -> None:
    url = own_postgres_server.create_database("fleet")
    downloads = tmp_path / "downloads"
    host = Host(tmp_path, "a", url, downloads, playlist_url=fleet_feed.feed_url, database_heartbeat_seconds=1)
    migrate(host)
    fleet_feed.settings.bytes_per_second = 20_000
    holder = host.start("check")
    wait_for(lambda: fleet_feed.requests_for("/media/"), what="the host downloading")
    own_postgres_server.stop()
    _, stderr = holder.communicate(timeout=60)
    assert holder.returncode in (1, 75), stderr
    [failed] = host.events("check_failed")
    assert failed["reason"] in ("lock_lost", "database"), failed
    assert not list(downloads.rglob("*.part")), "partial files stay in the host's own folder"
    own_postgres_server.restart()
    fleet_feed.settings.bytes_per_second = None
    result = host.run("check", "--now")
    assert result.returncode == 0, result.stderr
    downloaded = [event["video_id"] for event in host.events("video_downloaded")]
    assert sorted(downloaded) == sorted(item.guid for item in fleet_feed.settings.items), "each once"
    print(f"stopped mid-check: {failed['reason']}, exit {holder.returncode}")


def test_an_archive_row_is_written_in_the_same_transaction_as_the_counters(
    tmp_path: Path, database: str, fleet_feed: FeedServer, postgres_server: PostgresServer
) -> None:
    """A database that refuses the counters of the second video (a trigger standing in for any failure between the
    two writes) keeps no archive row for it either: the row and the count are one transaction."""
    host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url=fleet_feed.feed_url)
    migrate(host)
    sql(
        postgres_server,
        database,
        "CREATE FUNCTION refuse_second() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF (NEW.state->>'downloaded_total')::int >= 2 THEN RAISE EXCEPTION 'refused for the test'; END IF; "
        "RETURN NEW; END $$",
    )
    sql(
        postgres_server,
        database,
        "CREATE TRIGGER refuse_second BEFORE UPDATE ON playlist_cron_state "
        "FOR EACH ROW EXECUTE FUNCTION refuse_second()",
    )
    result = host.run("check")
    assert result.returncode != 0
    rows = sql(postgres_server, database, "SELECT extractor || ' ' || video_id FROM playlist_cron_archive")
    [(state,)] = sql(postgres_server, database, "SELECT state FROM playlist_cron_state WHERE host = 'a'")
    assert state["downloaded_total"] == 1
    assert len(rows) == 1, f"one video counted, one archived: {rows}"


def test_check_now_reads_the_playlists_that_are_not_due_yet_and_a_plain_check_does_not(
    tmp_path: Path, database: str, fleet_feed: FeedServer
) -> None:
    host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url=fleet_feed.feed_url)
    migrate(host)
    assert host.run("check").returncode == 0
    fleet_feed.requests.clear()
    plain = host.run("check")  # checked a moment ago: not due (and silent)
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "", "")
    assert fleet_feed.requests == []
    assert host.run("check", "--now").returncode == 0
    assert fleet_feed.requests_for("/feed.xml"), "--now read it anyway"
    assert [e["outcome"] for e in host.events() if "outcome" in e] == ["COMPLETED", "COMPLETED"]


def test_a_host_reads_its_claimed_playlists_in_parallel_each_once(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    with FeedServer(channels=6, channel_items=1, delay_s=0.2) as server:
        for number in range(1, 7):
            server.channel(number).items[0].size_bytes = 20_000
        host = Host(tmp_path, "a", database, tmp_path / "downloads", playlists=server.channel_urls, parallel_reads=3)
        migrate(host)
        result = host.run("check")
        assert (result.returncode, result.stderr) == (0, "")
        assert 1 < server.counts().max_in_flight <= 3
        by_path = server.counts().by_path
    [completed] = host.events("check_completed")
    assert completed["downloaded"] == 6
    assert [playlist["url"] for playlist in completed["playlists"]] == server.channel_urls, "each read once"
    assert all(by_path[f"/channel/{number}/feed"] == 1 for number in range(1, 7)), by_path
    held = sql(postgres_server, database, "SELECT count(*) FROM playlist_cron_playlists WHERE holder_host IS NOT NULL")
    assert held == [(0,)], "every claim released"
    due = sql(postgres_server, database, "SELECT count(*) FROM playlist_cron_playlists WHERE due_at > now()")
    assert due == [(6,)], "each due again in check_interval_seconds"
