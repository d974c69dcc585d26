"""Several hosts checking one collection at once keep every playlist's read record and spend a failing video's retry
steps once: real processes as hosts (two and four), one real PostgreSQL database, real loopback feeds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from playlist_cron.demo.feed import FeedItem, FeedServer
from test_fleet import Host, migrate
from test_status_fleet import status

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

PLAYLISTS = 8
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
