"""A storm on a fleet: three hosts (real processes, a folder each) starting checks every second or two on one
collection of 20 playlists for half a minute, with kill -9 of running checks at random moments, against one real
PostgreSQL database and throttled loopback feeds. Nothing may be downloaded twice, nor lost, nor miscounted."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_for
from playlist_cron import clock
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items
from postgres_server import PostgresServer
from test_fleet import Host, migrate, sql

PLAYLISTS = 20
SHARED = 5  # videos that two playlists list (playlist i and i + 10): each must be downloaded once
STORM_S = 32.0
STORM_MORE_S = 60.0  # at most this much longer, on a busy machine (see storm_did_its_work)
HOSTS = ("a", "b", "c")
# One check of a host at a time, as a systemd timer starts its service (never while it runs): a check of interval
# 1 s finds its first playlists due again and goes on until killed, and a second check of the same host would
# settle the first as killed while it runs (test_a_second_check_of_one_host_leaves_the_first_alone, below).
RUNNING_PER_HOST = 1
BYTES_PER_SECOND = 150_000
FINAL_EVENTS = ("check_skipped", "check_deferred", "check_completed", "check_failed")


def item(guid: str, rng: random.Random) -> FeedItem:
    return FeedItem(guid=guid, title=guid, size_bytes=rng.choice([120_000, 180_000, 250_000]))


@pytest.fixture
def feeds() -> Iterator[list[FeedServer]]:
    """20 loopback feeds of two videos each, five of the videos listed by two feeds, media throttled."""
    rng = random.Random(12)
    servers = [FeedServer([item(f"p{number:02d}-{n}", rng) for n in (1, 2)]) for number in range(PLAYLISTS)]
    for number in range(SHARED):
        shared = item(f"shared-{number}", rng)
        servers[number].settings.items.append(shared)
        servers[number + PLAYLISTS // 2].settings.items.append(FeedItem(shared.guid, shared.title, shared.size_bytes))
    for server in servers:
        server.settings.bytes_per_second = BYTES_PER_SECOND
        server.start()
    yield servers
    for server in servers:
        server.stop()


def set_interval(host: Host, seconds: int) -> None:
    values = json.loads(host.config_path.read_text())
    values["check_interval_seconds"] = seconds
    host.config_path.write_text(json.dumps(values))


def host_states(server: PostgresServer, database: str) -> dict[str, dict[str, Any]]:
    """Each host's own row of the state (the fleet's row is host '')."""
    rows = sql(server, database, "SELECT host, state FROM playlist_cron_state")
    return {host: state if isinstance(state, dict) else json.loads(state) for host, state in rows}


def assert_counters_match_the_log(host: Host, state: dict[str, Any], killed_at: dict[int, float]) -> dict[str, int]:
    """Every check the host's log started has exactly one final event, and the host's counters count those events;
    each check settled as killed was killed (its pid, at `killed_at`, before the settling event)."""
    events = host.events()
    for event in events:
        if event["event"] == "check_failed" and event.get("reason") == "interrupted":
            pid = int(re.search(r"\(pid (\d+)\)", event["error"])[1])  # type: ignore[index]
            assert pid in killed_at, f"{host.name}: settled as killed, never killed: {event}"
            assert killed_at[pid] <= clock.parse_iso(event["timestamp"]), f"{host.name}: settled before the kill"
    started = Counter(event["run_id"] for event in events if event["event"] == "check_started")
    finals = [event for event in events if event["event"] in FINAL_EVENTS]
    final_runs = Counter(event["run_id"] for event in finals)
    assert [run for run, count in final_runs.items() if count > 1] == [], f"{host.name}: two final events for a run"
    assert [run for run, count in started.items() if count > 1] == []
    skipped = [event for event in finals if event["event"] == "check_skipped"]
    # A check killed after it counted itself and before it logged `check_started` (the state's commit and the log's
    # line are two writes) has no start in the log: its final event is the settling one that says it was killed.
    unstarted = set(final_runs) - set(started) - {event["run_id"] for event in skipped}
    settled = {e["run_id"] for e in finals if e["event"] == "check_failed" and e.get("reason") == "interrupted"}
    assert set(started) <= set(final_runs) and unstarted <= settled, (
        f"{host.name}: started without a final event: {sorted(set(started) - set(final_runs))}; "
        f"a final event without a start, not settled as killed: {sorted(unstarted - settled)}"
    )
    outcomes = Counter(event["outcome"] for event in finals)
    expected = {
        "checks_total": len(final_runs),
        "completed_total": outcomes["COMPLETED"],
        "failed_total": outcomes["FAILED"],
        "deferred_total": outcomes["DEFERRED"],
        "skipped_total": outcomes["SKIPPED"],
    }
    assert {name: state[name] for name in expected} == expected, host.name
    assert state["running"] is None, host.name
    interrupted = [e for e in finals if e["event"] == "check_failed" and e.get("reason") == "interrupted"]
    return {**expected, "interrupted": len(interrupted)}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_storm_of_checks_on_three_hosts_with_kill_9_downloads_each_video_once(
    tmp_path: Path,
    database: str,
    postgres_server: PostgresServer,
    feeds: list[FeedServer],
    reliability: Callable[[str], None],
) -> None:
    rng = random.Random(20261212)
    downloads = tmp_path / "downloads"
    urls = [server.feed_url for server in feeds]
    hosts = [Host(tmp_path, name, database, downloads, playlists=urls, check_interval_seconds=1) for name in HOSTS]
    migrate(hosts[0])
    running: dict[str, list[subprocess.Popen[str]]] = {host.name: [] for host in hosts}
    codes: Counter[int] = Counter()
    stderr: list[str] = []
    started = kills = kills_mid_download = new_items = 0
    killed_at: dict[int, float] = {}

    def reap() -> None:
        for processes in running.values():
            for process in [p for p in processes if p.poll() is not None]:
                processes.remove(process)
                _, err = process.communicate()
                codes[process.returncode] += 1
                if process.returncode >= 0 and err:
                    stderr.append(err)

    def mid_download(name: str) -> bool:
        return any((tmp_path / name / "state" / "partial").rglob("*.part"))

    def storm_did_its_work(now: float) -> bool:
        """Whether a check was killed mid-download and a video was downloaded meanwhile. On a busy machine checks
        start so slowly that STORM_S may pass before either: the storm then goes on until both (or STORM_MORE_S)."""
        downloads_seen = any(host.events("video_downloaded") for host in hosts)
        return bool(kills_mid_download and downloads_seen) or now >= deadline + STORM_MORE_S

    now = time.monotonic()
    deadline = now + STORM_S
    next_start = {host.name: now + rng.uniform(0, 1) for host in hosts}
    next_kill, next_item = now + rng.uniform(1, 2), now + 1
    while (now := time.monotonic()) < deadline or not storm_did_its_work(now):
        reap()
        for host in hosts:
            if now >= next_start[host.name]:
                next_start[host.name] = now + rng.uniform(1, 2)
                if len(running[host.name]) < RUNNING_PER_HOST:
                    running[host.name].append(host.start("check"))
                    started += 1
        if now >= next_kill:
            next_kill = now + rng.uniform(1.0, 2.5)
            victims = [(name, p) for name, processes in running.items() for p in processes if p.poll() is None]
            if now >= deadline:  # the storm goes on only for a kill mid-download: only such a kill will do
                victims = [(name, p) for name, p in victims if mid_download(name)]
            if victims:
                name, victim = rng.choice(victims)
                kills_mid_download += mid_download(name)
                killed_at[victim.pid] = time.time()
                victim.send_signal(signal.SIGKILL)
                kills += 1
        if now >= next_item:  # new videos keep coming, so that downloads go on all through the storm
            next_item = now + rng.uniform(0.8, 1.6)
            rng.choice(feeds).settings.items.insert(0, item(f"new-{new_items:03d}", rng))
            new_items += 1
        time.sleep(0.05)  # the poll interval of this loop, which stands in for each host's cron
    for processes in running.values():  # the storm ends as it went: with kill -9
        for process in processes:
            if process.poll() is None:
                killed_at[process.pid] = time.time()
                process.send_signal(signal.SIGKILL)
                kills += 1
        for process in processes:
            process.wait(30)
    reap()

    in_storm = Counter(e["video_id"] for host in hosts for e in host.events("video_downloaded"))
    # The last checks: every playlist due once more, unthrottled, read once by each host in turn (a long interval
    # now, else a check finds its first playlists due again and goes on); each settles the checks of its host
    # that were killed.
    for server in feeds:
        server.settings.bytes_per_second = None
    for host in hosts:
        set_interval(host, 3600)
        sql(postgres_server, database, "UPDATE playlist_cron_playlists SET due_at = '-infinity'")
        result = host.run("check")
        assert (result.returncode, result.stderr) == (0, ""), f"{host.name}: {result.stderr}"
        assert host.events()[-1]["event"] == "check_completed"

    items = {i.guid: i for server in feeds for i in server.settings.items}
    downloaded = Counter(e["video_id"] for host in hosts for e in host.events("video_downloaded"))
    assert {guid: count for guid, count in downloaded.items() if count != 1} == {}, "downloaded more than once"
    # A video's archive row and its count are one transaction, and its `video_downloaded` line is written after it:
    # a check killed between the two leaves a video downloaded, archived and counted whose line the log lacks. Such
    # a video is whole and archived (below), and the hosts' counters count one more download than their lines.
    unlogged = set(items) - set(downloaded)
    assert set(downloaded) <= set(items)
    states = host_states(postgres_server, database)
    counted_downloads = sum(states[host.name]["downloaded_total"] for host in hosts)
    assert counted_downloads == len(items), f"downloads counted {counted_downloads}, {len(items)} videos"
    assert len(unlogged) <= kills, f"no line for {sorted(unlogged)}, {kills} kills"
    files = sorted(path for path in downloads.rglob("*") if path.is_file())
    assert [path for path in files if path.suffix != ".mp4"] == [], "no partial file in the shared folder"
    for guid, served in items.items():
        [path] = [path for path in files if f"[{guid}]" in path.name]
        assert path.read_bytes() == served.content, guid
    assert len(files) == len(items)
    archive = sql(postgres_server, database, "SELECT extractor, video_id FROM playlist_cron_archive")
    assert sorted(archive) == sorted(("generic", guid) for guid in items)
    counted = {host.name: assert_counters_match_the_log(host, states[host.name], killed_at) for host in hosts}
    assert sql(postgres_server, database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]
    held = "SELECT count(*) FROM playlist_cron_playlists WHERE holder_host IS NOT NULL"
    assert sql(postgres_server, database, held) == [(0,)]
    per_host = ", ".join(f"{host.name} {len(host.events('video_downloaded'))}" for host in hosts)
    checks = ", ".join(
        f"{name}: {c['checks_total']} checks, {c['interrupted']} interrupted" for name, c in counted.items()
    )
    during = sum(in_storm.values())
    assert kills_mid_download and during, "the storm killed checks mid-download, and downloaded between kills"
    reliability(
        f"fleet storm: {len(hosts)} hosts started {started} checks over {STORM_S:.0f} s on {PLAYLISTS} playlists "
        f"({len(items)} videos, {SHARED} listed twice, {new_items} added during the storm), {kills} kill -9 "
        f"({kills_mid_download} with a partial file) -> every video downloaded exactly once, counted once "
        f"({len(unlogged)} without its log line, its check killed before it: {sorted(unlogged)}; {during} during the "
        f"storm; in all {per_host}), files byte-identical, archive rows = items, counters = final events "
        f"({checks}), no advisory lock left; exit codes {dict(codes)}"
    )
    assert stderr == [], stderr


def test_a_second_check_of_one_host_is_skipped_and_leaves_the_first_alone(tmp_path: Path, database: str) -> None:
    """One check at a time on a host, as with files: its `running` record is one per host (before: the second
    check settled the first as killed while it ran, and the first logged a second final event)."""
    with (
        FeedServer(make_items(1, size_bytes=300_000, prefix="slow"), bytes_per_second=100_000) as slow,
        FeedServer(make_items(1, size_bytes=10_000, prefix="fast")) as fast,
    ):
        host = Host(tmp_path, "a", database, tmp_path / "downloads", playlists=[slow.feed_url, fast.feed_url])
        migrate(host)
        first = host.start("check")
        wait_for(lambda: slow.requests_for("/media/"), what="the first check downloading")
        second = host.run("check")
        assert (second.returncode, second.stderr) == (0, "")
        _, stderr = first.communicate(timeout=60)
        assert (first.returncode, stderr) == (0, "")
    finals = [(e["check"], e["event"]) for e in host.events() if e["event"] in FINAL_EVENTS]
    assert sorted(finals) == [(1, "check_completed"), (2, "check_skipped")], finals
    [skipped] = host.events("check_skipped")
    assert skipped["holder_pid"] == first.pid
    [completed] = host.events("check_completed")
    assert completed["downloaded"] == 2, "the first check did both playlists"


def test_a_claim_under_way_locks_one_row_and_another_host_claims_the_next(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    """While one host is between its SELECT ... FOR UPDATE and its commit (held there 2 s by a trigger on its UPDATE),
    another host must find the other due playlists: the first locks the row it claims, not every due row."""
    import psycopg

    from playlist_cron.storage.claims import Fleet

    host = Host(tmp_path, "a", database, tmp_path / "downloads", playlists=["http://127.0.0.1:9/a"])
    migrate(host)
    keys = ["one", "two", "three"]
    connections = [psycopg.connect(database, autocommit=True) for _ in range(4)]
    try:
        first = Fleet(connections[0], connections[1], "c", "a", 1)
        second = Fleet(connections[2], connections[3], "c", "b", 2)
        first.add_playlists(keys)
        second.add_playlists(keys)
        sql(
            postgres_server,
            database,
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.holder_host = 'a' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$",
        )
        sql(
            postgres_server,
            database,
            "CREATE TRIGGER slow BEFORE UPDATE ON playlist_cron_playlists FOR EACH ROW EXECUTE FUNCTION slow()",
        )
        claims: list[Any] = []
        claiming = threading.Thread(target=lambda: claims.append(first.claim_next()))
        claiming.start()
        wait_for(
            lambda: (
                sql(
                    postgres_server,
                    database,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event = 'PgSleep'",  # the trigger's sleep: the claim's UPDATE is under way
                )
                == [(1,)]
            ),
            what="the first host inside its claim",
        )
        claimed = second.claim_next()
        claiming.join()
    finally:
        for connection in connections:
            connection.close()
    assert claims[0] is not None
    assert claimed is not None, "the second host found no playlist while the first claimed one of three"
    assert claimed.url_key != claims[0].url_key


def test_a_check_goes_through_each_playlist_once_even_when_it_is_due_again_before_the_check_ends(
    tmp_path: Path, database: str
) -> None:
    """A pass over thousands of playlists may take longer than check_interval_seconds: the check must not claim
    the first ones again, or it would only end at max_runtime_seconds."""
    import psycopg

    from playlist_cron.storage.claims import Fleet

    host = Host(tmp_path, "a", database, tmp_path / "downloads", playlists=["http://127.0.0.1:9/a"])
    migrate(host)
    keys = ["one", "two"]
    work, lock = (psycopg.connect(database, autocommit=True) for _ in range(2))
    try:
        fleet = Fleet(work, lock, "c", "a", 1)
        fleet.add_playlists(keys)
        first = fleet.claim_next()
        assert first is not None
        fleet.release(first, 0)  # due again at once
        second = fleet.claim_next()
        assert second is not None and second.url_key != first.url_key
        fleet.release(second, 0)
        assert fleet.claim_next() is None, "both done: the check ends"
        other_check = Fleet(work, lock, "c", "a", 1)
        other_check.add_playlists(keys)
        assert other_check.claim_next() is not None, "the next check finds them due"
    finally:
        work.close()
        lock.close()


def test_a_check_killed_between_a_videos_count_and_its_log_line_never_downloads_it_again(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    """The moment the storm above may hit: a video's archive row and its count are committed, and its
    `video_downloaded` line is not yet written (here: stdout is a pipe nobody reads, with room for the check's first
    lines, not for that long line). A kill -9 there leaves the video archived and counted without its line; the next
    check settles the killed one, never downloads that video again, and downloads the rest."""
    from test_blocked_stdout import unread_pipe

    # 22 kB: more than the pipe's room, which the check's first lines leave (on Python 3.10 yt-dlp warns, a line a
    # client, of its end of support: 4 kB was too little room for them, and the check blocked before the count)
    long_title = "long title " * 2000
    with FeedServer([FeedItem(guid=f"v{n}", title=f"{n} {long_title}", size_bytes=20_000) for n in (1, 2)]) as feed:
        host = Host(
            tmp_path, "a", database, tmp_path / "downloads", playlist_url=feed.feed_url, stall_timeout_seconds=600
        )
        migrate(host)
        values = json.loads(host.config_path.read_text())
        host.config_path.write_text(json.dumps({**values, "log_file": "-"}))
        counted = "SELECT (state->>'downloaded_total')::int FROM playlist_cron_state WHERE host = 'a'"
        with unread_pipe(room_bytes=12_288) as stdout:
            process = subprocess.Popen(
                host.command("check"), stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, cwd="/"
            )
            wait_for(lambda: sql(postgres_server, database, counted) == [(1,)], what="the first video counted")
            archived = sql(postgres_server, database, "SELECT video_id FROM playlist_cron_archive")
            # yt-dlp's requests for it: its look at the link, and the download
            fetched = len(feed.requests_for(f"/media/{archived[0][0]}.mp4"))
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        assert len(archived) == 1, "one video archived, with its count, when the check was killed"
        [(first,)] = archived
        assert first in ("v1", "v2")

        host.config_path.write_text(json.dumps(values))  # the next check logs to its file
        result = host.run("check", "--now")
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        [settled] = host.events("check_failed")
        assert settled["reason"] == "interrupted", settled
        [completed] = host.events("check_completed")
        assert [e["video_id"] for e in host.events("video_downloaded")] == [n for n in ("v1", "v2") if n != first]
        assert completed["downloaded"] == 1 and completed["already_archived"] == 1, completed
        assert len(feed.requests_for(f"/media/{first}.mp4")) == fetched, "never fetched again"
        assert sql(postgres_server, database, counted) == [(2,)], "counted once each"
        assert len(list((tmp_path / "downloads").rglob("*.mp4"))) == 2
