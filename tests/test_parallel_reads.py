"""Reads in parallel: at most `parallel_reads` at once, the same final event as one after another, one writer."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, read_events, wait_for
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items

VOLATILE_FIELDS = ("timestamp", "duration_s", "message", "run_id", "check", "pid")


def channels(count: int, items_each: int, *, size_bytes: int = 20_000, **settings: Any) -> FeedServer:
    """A started loopback server with `count` channel feeds of `items_each` videos of `size_bytes` each."""
    server = FeedServer(channels=count, channel_items=items_each, **settings)
    for number in range(1, count + 1):
        for item in server.channel(number).items:
            item.size_bytes = size_bytes
    return server.start()


def channel_items(server: FeedServer) -> dict[str, FeedItem]:
    """Every channel's videos, by guid."""
    numbers = range(1, server.settings.channels + 1)
    return {item.guid: item for number in numbers for item in server.channel(number).items}


def project_in(root: Path, server: FeedServer, urls: list[str], **options: Any) -> Project:
    root.mkdir()
    project = Project(root, server)
    project.write_config(playlist_url=None, playlists=urls, **options)
    return project


def final_event(project: Project) -> dict[str, Any]:
    [event] = [e for e in project.events() if e["event"].startswith("check_") and e["event"] != "check_started"][-1:]
    return event


def without_volatile(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in VOLATILE_FIELDS}


@pytest.mark.parametrize(
    ("playlists", "delay_s", "parallel_reads"),
    [(20, 0.2, 3), (6, 0.1, 1)],
    ids=["reads overlap up to the bound", "parallel_reads 1 reads one playlist after another"],
)
def test_reads_overlap_and_never_exceed_parallel_reads(
    tmp_path: Path, playlists: int, delay_s: float, parallel_reads: int
) -> None:
    with channels(playlists, 1, delay_s=delay_s) as server:
        project = project_in(tmp_path / "project", server, server.channel_urls, parallel_reads=parallel_reads)
        result = project.run_here("check")
        assert result.returncode == 0, result.stderr
        assert final_event(project)["downloaded"] == playlists
        assert server.counts().max_in_flight == parallel_reads


def test_a_parallel_check_ends_with_the_final_event_of_a_sequential_one(tmp_path: Path) -> None:
    finals = []
    with channels(12, 2, delay_s=0.05) as server:
        for parallel_reads in (1, 4):
            root = tmp_path / f"parallel-{parallel_reads}"
            project = project_in(root, server, server.channel_urls, parallel_reads=parallel_reads)
            for _ in range(2):  # the first check downloads everything; the next one finds it all unchanged
                result = project.run_here("check", "--now")
                assert result.returncode == 0, result.stderr
            finals.append([without_volatile(event) for event in project.events("check_completed")])
            assert project.state()["downloaded_total"] == 24
            assert len(project.archive_lines()) == 24 == len(set(project.archive_lines()))
    sequential, parallel = finals
    assert [event["downloaded"] for event in sequential] == [24, 0]
    assert [playlist["url"] for playlist in parallel[0]["playlists"]] == server.channel_urls, "in the config's order"
    assert parallel == sequential


def test_a_rate_limited_site_defers_its_own_playlists_only(tmp_path: Path) -> None:
    with (
        FeedServer(make_items(2, prefix="limited"), host="127.0.0.2", every_status=429) as limited,
        FeedServer(make_items(3, prefix="open")) as other,
    ):
        urls = [limited.feed_url, f"{limited.feed_url}?page=2", other.feed_url]
        project = project_in(tmp_path / "project", other, urls, parallel_reads=2)
        result = project.run_here("check")
        assert result.returncode == 0, result.stderr
        final = final_event(project)
        assert (final["outcome"], final["reason"]) == ("DEFERRED", "rate_limited")
        assert final["downloaded"] == 3, "the other site's playlist was read and its videos downloaded"
        assert "127.0.0.2" in final["error"]
        assert sorted(project.archive_lines()) == sorted(f"generic {item.guid}" for item in other.settings.items)
        assert project.state()["cooldown_until"] == final["cooldown_until"]
        assert limited.counts().total <= 2, "one request per playlist read before the 429 was heard"


def test_sigterm_ends_a_check_whose_reads_are_in_reader_threads(tmp_path: Path) -> None:
    with channels(8, 1, size_bytes=1_000_000, bytes_per_second=200_000) as server:
        project = project_in(tmp_path / "project", server, server.channel_urls, parallel_reads=4)
        check = project.start("check")
        wait_for(
            lambda: [p for p in project.download_dir.rglob("*.part") if p.stat().st_size > 0], what="a partial file"
        )
        check.send_signal(signal.SIGTERM)
        assert check.wait(30) == 128 + signal.SIGTERM
    [failed] = project.events("check_failed")
    assert failed["reason"] == "interrupted"
    assert project.state()["running"] is None
    assert project.events()[-1] == failed, "no read wrote anything after the final event"


def test_a_stalled_read_in_a_reader_thread_fails_the_check_stalled(tmp_path: Path) -> None:
    # Every download hangs after 100 kB, its connection held open.
    with channels(6, 1, size_bytes=1_000_000, stall_after_bytes=100_000) as server:
        project = project_in(
            tmp_path / "project", server, server.channel_urls, parallel_reads=3, stall_timeout_seconds=3
        )
        started_s = time.monotonic()
        result = project.run("check", timeout=60)
        server.release_stalls()
    assert result.returncode == 1
    assert "FAILED (stalled)" in result.stderr
    assert time.monotonic() - started_s < 30, "the hung read did not keep the process alive"
    [failed] = project.events("check_failed")
    assert failed["reason"] == "stalled"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_9_of_a_check_reading_200_playlists_in_parallel_loses_nothing(tmp_path: Path) -> None:
    with channels(200, 1, size_bytes=60_000, bytes_per_second=300_000) as server:
        kill_9_mid_download_and_settle(tmp_path, server)


def kill_9_mid_download_and_settle(tmp_path: Path, server: FeedServer) -> None:
    project = project_in(tmp_path / "project", server, server.channel_urls, parallel_reads=8)
    victim = project.start("check")
    wait_for(lambda: len(project.events("video_downloaded")) >= 3, timeout=120, what="three downloads")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    state = json.loads(project.state_file.read_text())  # whole: it is only ever replaced whole
    assert state["running"] is not None, "killed before its final event"
    downloaded_events = project.events("video_downloaded")
    # One writer: the counter and the log go together (a kill between the two leaves the counter one ahead).
    assert state["downloaded_total"] - len(downloaded_events) in (0, 1)
    lines = project.archive_lines()
    assert len(lines) == len(set(lines)) >= state["downloaded_total"]
    served = channel_items(server)
    for line in lines:
        extractor, _, guid = line.partition(" ")
        assert extractor == "generic"
        assert project.file_for(guid).read_bytes() == served[guid].content
    server.settings.bytes_per_second = None
    result = project.run_here("check", "--now")
    assert result.returncode == 0, result.stderr
    [interrupted] = project.events("check_failed")
    assert (interrupted["reason"], interrupted["check"]) == ("interrupted", 1)
    assert project.events()[-1]["event"] == "check_completed"
    after = project.state()
    assert after["running"] is None
    assert (after["checks_total"], after["completed_total"], after["failed_total"]) == (2, 1, 1)
    assert sorted(project.archive_lines()) == sorted(f"generic {guid}" for guid in served)
    assert after["downloaded_total"] - len(read_events(project.log_file, "video_downloaded")) in (0, 1)
    assert not list(project.download_dir.rglob("*.part"))


def test_two_threads_of_one_process_change_the_state_in_turn_without_losing_a_count(tmp_path: Path) -> None:
    from playlist_cron.state import StateStore
    from playlist_cron.storage.files import FileState

    store = FileState(StateStore(tmp_path / "state", tmp_path / "config.json"))
    store.ensure_ready()

    def count(times: int) -> None:
        for _ in range(times):
            with store.update() as state:
                state["downloaded_total"] += 1

    threads = [threading.Thread(target=count, args=(100,)) for _ in range(2)]
    started_s = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert store.read()["downloaded_total"] == 200
    assert time.monotonic() - started_s < 30, "neither waited on a flock its own process held"


def test_a_first_check_marking_many_channels_archived_in_parallel_shares_one_archive(tmp_path: Path) -> None:
    # Readers add to the check's one copy of the archive's lines while others look through it.
    with FeedServer(channels=100) as server:
        project = project_in(tmp_path / "project", server, server.channel_urls, parallel_reads=8)
        result = project.run_here("check", "--mark-archived")
        assert result.returncode == 0, result.stderr
    final = final_event(project)
    assert (final["outcome"], final["marked_archived"]) == ("COMPLETED", 1500)
    assert len(project.archive_lines()) == 1500 == len(set(project.archive_lines()))
