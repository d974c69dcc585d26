"""Several hosts checking one collection at once keep every playlist's read record and spend a failing video's retry
steps once: real processes as hosts (two and four), one real PostgreSQL database, real loopback feeds."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from playlist_cron import clock
from playlist_cron.demo.feed import FeedItem, FeedServer
from postgres_server import PostgresServer
from test_fleet import Host, migrate, sql
from test_status_fleet import status

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

PLAYLISTS = 8
STORM_INTERVAL_S = 5
REMOVED = "removed-video"


def fleet_of(tmp_path: Path, database: str, server: FeedServer, count: int) -> list[Host]:
    downloads = tmp_path / "downloads"
    return [
        Host(tmp_path, f"host{number}", database, downloads, playlists=server.channel_urls, parallel_reads=2)
        for number in range(count)
    ]


def all_at_once(hosts: list[Host], *arguments: str) -> list[subprocess.CompletedProcess[str]]:
    processes = [host.start(*arguments) for host in hosts]
    results = []
    for host, process in zip(hosts, processes, strict=True):
        stdout, stderr = process.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(host.command(*arguments), process.returncode, stdout, stderr))
    return results


@pytest.mark.parametrize("hosts", [2, 4])
def test_hosts_checking_at_once_keep_every_playlists_read_record(tmp_path: Path, database: str, hosts: int) -> None:
    with FeedServer(channels=PLAYLISTS, channel_items=1, delay_s=0.1) as server:
        for number in range(1, PLAYLISTS + 1):
            server.channel(number).items[0].size_bytes = 10_000
        fleet = fleet_of(tmp_path, database, server, hosts)
        migrate(fleet[0])
        results = all_at_once(fleet, "check")
    assert [(result.returncode, result.stderr) for result in results] == [(0, "")] * hosts
    read_by = [
        playlist["url"] for host in fleet for event in host.events("check_completed") for playlist in event["playlists"]
    ]
    assert sorted(read_by) == sorted(server.channel_urls), "each playlist read by one host"
    for host in fleet:
        _, report = status(host)
        unread = [
            playlist["url"]
            for playlist in report["playlists"]
            if playlist["last_feed_read_at"] is None and playlist["last_full_read_at"] is None
        ]
        assert unread == [], f"{host.name} shows no read record for {unread}"


def test_check_now_on_two_hosts_at_once_reads_each_playlist_once_and_spends_one_retry_step(
    tmp_path: Path, database: str
) -> None:
    with FeedServer(channels=PLAYLISTS, channel_items=1, delay_s=0.1) as server:
        for number in range(1, PLAYLISTS + 1):
            server.channel(number).items[0].size_bytes = 10_000
        server.channel(1).items.append(FeedItem(REMOVED, "Removed video", size_bytes=10_000, media_status=404))
        fleet = fleet_of(tmp_path, database, server, 2)
        migrate(fleet[0])
        results = all_at_once(fleet, "check", "--now")
        by_path = server.counts().by_path
    assert [result.returncode for result in results] == [0, 0], [result.stderr for result in results]
    feeds = {number: by_path.get(f"/channel/{number}/feed", 0) for number in range(1, PLAYLISTS + 1)}
    assert set(feeds.values()) == {1}, f"each playlist's feed read once: {feeds}"
    _, report = status(fleet[0])
    [removed] = report["failed_videos"]
    assert removed["attempts"] == 1, removed
    tried = sum(1 for host in fleet for event in host.events("video_failed") if REMOVED in str(event.get("video_id")))
    assert tried == 1


def test_a_failing_video_two_playlists_share_spends_one_retry_step_when_two_hosts_try_it_at_once(
    tmp_path: Path, database: str
) -> None:
    """Each host reads one of the two playlists; the video locks take turns, and the second host, finding the step
    spent by the first a moment ago (its next_retry_at ahead), does not spend another."""
    with FeedServer(channels=2, channel_items=1, delay_s=0.1) as server:
        for number in (1, 2):
            server.channel(number).items[0].size_bytes = 10_000
            server.channel(number).items.append(FeedItem(REMOVED, "Removed video", size_bytes=10_000, media_status=404))
        fleet = fleet_of(tmp_path, database, server, 2)
        for host in fleet:
            host.config_path.write_text(
                host.config_path.read_text().replace('"parallel_reads": 2', '"parallel_reads": 1')
            )
        migrate(fleet[0])
        results = all_at_once(fleet, "check")
    assert [result.returncode for result in results] == [0, 0], [result.stderr for result in results]
    _, report = status(fleet[0])
    [removed] = report["failed_videos"]
    assert removed["attempts"] == 1, removed


# What a session of a host waits for on the state's rows, and which other host's session it waits for: no host's
# change of the state may wait for another host's (each changes its own row, and its failed videos' rows one by one).
# A host's check may wait on its own killed one's transaction, until the server has ended it: not counted.
WAITS = """
    SELECT waiting.application_name, blocking.application_name, waiting.query
    FROM pg_stat_activity AS waiting
    CROSS JOIN LATERAL unnest(pg_blocking_pids(waiting.pid)) AS blocker(pid)
    JOIN pg_stat_activity AS blocking ON blocking.pid = blocker.pid
    WHERE waiting.application_name LIKE 'playlist-cron %' AND blocking.application_name <> waiting.application_name
    AND (waiting.query LIKE '%playlist_cron_state%' OR waiting.query LIKE '%playlist_cron_failed_videos%')
"""


class WaitWatch:
    """A thread that asks the server every few milliseconds which session of a host waits for which other."""

    def __init__(self, database: str) -> None:
        import psycopg

        self.connection = psycopg.connect(database, autocommit=True)
        self.seen: list[tuple[str, str, str]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.seen += self.connection.execute(WAITS).fetchall()
            self.samples += 1

    def __enter__(self) -> WaitWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.connection.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_four_hosts_killed_with_kill_9_lose_no_read_record_and_never_wait_on_one_another(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    """Four hosts check 24 playlists over and over (each due again a second after its read), checks killed with
    kill -9 at random moments, every change of a host's state row slowed to 0.2 s by a trigger (were two hosts to
    share a row, one would wait on the other's change: the watcher would see it). Then: every playlist released
    has its read record, and one more pass finds every feed unchanged by its record's validators (a 304)."""
    rng = random.Random(2026)
    with FeedServer(channels=24, channel_items=1, delay_s=0.05) as server:
        for number in range(1, 25):
            server.channel(number).items[0].size_bytes = 20_000
        downloads = tmp_path / "downloads"
        hosts = [
            Host(
                tmp_path,
                f"host{n}",
                database,
                downloads,
                playlists=server.channel_urls,
                parallel_reads=2,
                check_interval_seconds=STORM_INTERVAL_S,
            )
            for n in range(4)
        ]
        migrate(hosts[0])
        sql(
            postgres_server,
            database,
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.2); "
            "RETURN NEW; END $$",
        )
        sql(
            postgres_server,
            database,
            "CREATE TRIGGER slow BEFORE UPDATE ON playlist_cron_state FOR EACH ROW EXECUTE FUNCTION slow()",
        )
        running: dict[str, subprocess.Popen[str] | None] = {host.name: None for host in hosts}
        stderr: list[str] = []
        kills = 0
        with WaitWatch(database) as watch:
            deadline = time.monotonic() + 20
            next_kill = time.monotonic() + rng.uniform(0.5, 1.5)
            while time.monotonic() < deadline:
                for host in hosts:
                    process = running[host.name]
                    if process is not None and process.poll() is not None:
                        _, err = process.communicate()
                        if process.returncode >= 0 and err:
                            stderr.append(err)
                        process = running[host.name] = None
                    if process is None:
                        running[host.name] = host.start("check")
                if time.monotonic() >= next_kill:
                    next_kill = time.monotonic() + rng.uniform(0.5, 1.5)
                    victims = [
                        process for process in running.values() if process is not None and process.poll() is None
                    ]
                    if victims:
                        rng.choice(victims).send_signal(signal.SIGKILL)
                        kills += 1
                time.sleep(0.05)  # the poll interval of this loop, which stands in for each host's cron
            for process in running.values():  # the storm ends as it went: with kill -9
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    kills += 1
                if process is not None:
                    process.wait(30)
        assert stderr == [], stderr
        assert watch.samples > 100 and kills > 5, (watch.samples, kills)
        assert watch.seen == [], f"a host's change waited on another's: {watch.seen[:5]}"
        released = dict(
            sql(
                postgres_server,
                database,
                "SELECT url, extract(epoch FROM last_checked_at)::float FROM playlist_cron_playlists "
                "WHERE last_checked_at IS NOT NULL",
            )
        )
        assert len(released) > 0
        # A record written with its release is the released read's, made a moment before it; one kept from an
        # earlier read is older than the release by an interval at least (the playlist was not due before).
        _, report = status(hosts[0])
        read_at = {playlist["url"]: clock.parse_iso(playlist["last_feed_read_at"]) for playlist in report["playlists"]}
        stale = {
            url: read_at[url]
            for url, checked_s in released.items()
            if not (read_at[url] or 0) > checked_s - STORM_INTERVAL_S
        }
        assert stale == {}, f"the record of the last release was lost: {stale}"
        # One more pass, every playlist due at once, by a host not killed: each released playlist's feed is asked
        # with its record's validators, and answers 304.
        since = time.time()
        sql(postgres_server, database, "UPDATE playlist_cron_playlists SET due_at = '-infinity'")
        values = json.loads(hosts[0].config_path.read_text())
        hosts[0].config_path.write_text(json.dumps({**values, "check_interval_seconds": 3600}))
        result = hosts[0].run("check")
        assert (result.returncode, result.stderr) == (0, "")
        asked = {
            request.path: request
            for request in server.requests_for("/channel/")
            if request.at >= since and request.path.endswith("/feed")
        }
    released_paths = {urllib.parse.urlsplit(url).path for url in released}
    unconditional = sorted(path for path in released_paths if asked[path].status != 304)
    assert unconditional == [], f"read whole again: the record of a released playlist was lost: {unconditional}"
    without = "SELECT count(*) FROM playlist_cron_playlists WHERE last_checked_at IS NOT NULL AND read_record IS NULL"
    assert sql(postgres_server, database, without) == [(0,)], "each record in its playlist's row"
