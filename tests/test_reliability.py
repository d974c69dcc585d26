"""Reliability, tried for real: storms of checks, kill -9 at random moments, stalls, timeouts, signals, full disks."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import COMMAND, FlockHolder, Project, clean_env, flock_busy, read_events, tmpfs, wait_for
from playlist_cron.demo.feed import FeedItem

FINAL_EVENTS = ("check_skipped", "check_deferred", "check_completed", "check_failed")
ARCHIVE_LINE = re.compile(r"generic video-\d{5}|generic new-\d{3}")


def assert_log_is_whole(project: Project) -> list[dict[str, Any]]:
    """Every line parses as one JSON object, and no check has two final events."""
    events = [json.loads(line) for line in project.log_file.read_text().splitlines()]
    finals = Counter(event["check"] for event in events if event["event"] in FINAL_EVENTS)
    assert [number for number, count in finals.items() if count > 1] == []
    return events


def assert_archive_and_files_are_whole(project: Project) -> None:
    lines = project.archive_lines()
    assert all(ARCHIVE_LINE.fullmatch(line) for line in lines), lines
    assert len(lines) == len(set(lines))
    served = {item.guid: item for item in project.feed.settings.items}
    for line in lines:
        guid = line.split(" ", 1)[1]
        assert project.file_for(guid).read_bytes() == served[guid].content
    mp4s = [path for path in project.downloaded_files() if path.suffix == ".mp4"]
    assert len(mp4s) == len(lines)


def waiting_at_fifo(pid: int) -> bool:
    """Whether process `pid` is blocked opening a FIFO until a writer comes (the kernel's wait_for_partner)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner"
    except FileNotFoundError:  # it has exited: it cannot be waiting any more (its exit code will say why)
        return True


def new_items(prefix: str, first: int, count: int, size_bytes: int) -> list[FeedItem]:
    return [
        FeedItem(guid=f"{prefix}-{number:03d}", title=f"New {number}", size_bytes=size_bytes)
        for number in range(first, first + count)
    ]


@pytest.mark.slow
def test_storm_of_fifty_simultaneous_checks_downloads_once_and_loses_no_count(
    project: Project, tmp_path: Path, reliability: Callable[[str], None]
) -> None:
    feed = project.feed
    feed.settings.items = []
    feed.settings.bytes_per_second = 100_000  # two 400 kB videos: 8 s, far longer than 50 processes take to start
    rounds, processes_per_round = 5, 50
    barrier = tmp_path / "barrier"
    totals = {"ran": 0, "skipped": 0, "other": 0}
    for round_number in range(rounds):
        feed.settings.items[:0] = new_items("new", 2 * round_number, 2, 400_000)
        before = project.state() if project.state_file.exists() else {"checks_total": 0, "skipped_total": 0}
        log_lines_before = len(project.events())
        os.mkfifo(barrier)
        # Each shell waits opening the FIFO; opening it for writing releases all fifty at the same instant.
        script = f': <"{barrier}"; exec "{COMMAND}" check --now --config "{project.config_path}"'
        processes = [
            subprocess.Popen(
                ["sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=clean_env(),
                cwd="/",
            )
            for _ in range(processes_per_round)
        ]
        # All fifty must be waiting before the release: one that opened the FIFO after it would wait for ever.
        wait_for(
            lambda processes=processes: all(waiting_at_fifo(p.pid) for p in processes),  # type: ignore[misc]
            timeout=60,
            what="fifty shells at the FIFO",
        )
        with open(barrier, "w"):
            pass
        outputs = [process.communicate(timeout=120) for process in processes]
        barrier.unlink()
        assert [process.returncode for process in processes] == [0] * processes_per_round
        assert all(out == (b"", b"") for out in outputs)
        events = project.events()[log_lines_before:]
        finals = Counter(event["event"] for event in events if event["event"] in FINAL_EVENTS)
        assert finals == {"check_completed": 1, "check_skipped": processes_per_round - 1}, finals
        [completed] = [event for event in events if event["event"] == "check_completed"]
        assert completed["downloaded"] == 2
        after = project.state()
        assert after["checks_total"] - before["checks_total"] == processes_per_round
        assert after["skipped_total"] - before["skipped_total"] == processes_per_round - 1
        totals["ran"] += finals["check_completed"]
        totals["skipped"] += finals["check_skipped"]
    assert_log_is_whole(project)
    assert_archive_and_files_are_whole(project)
    assert len(project.archive_lines()) == 2 * rounds
    status = project.status()
    assert status["checks_total"] == rounds * processes_per_round
    assert status["skipped_total"] == totals["skipped"] == rounds * (processes_per_round - 1)
    reliability(
        f"storm: {rounds} rounds x {processes_per_round} simultaneous checks -> {totals['ran']} downloaded "
        f"(one per round), {totals['skipped']} SKIPPED, checks_total {status['checks_total']} "
        f"(no lost increment), {len(project.events())} log lines all JSON, {len(project.archive_lines())} archive "
        "lines unique, files byte-identical"
    )


@pytest.mark.slow
@pytest.mark.timeout(900)  # 36 rounds of real processes: 190 s on a machine with a load average of 20
def test_kill_9_at_random_moments_loses_nothing(project: Project, reliability: Callable[[str], None]) -> None:
    feed = project.feed
    feed.settings.items = []
    feed.settings.bytes_per_second = 400_000
    rng = random.Random(20261129)
    kills = {"downloading": 0, "skipping": 0}
    counters_seen: dict[str, int] = {}
    recovered = 0
    iterations = 36
    for iteration in range(iterations):
        feed.settings.items[:0] = new_items("new", iteration, 1, rng.choice([100_000, 300_000, 600_000]))
        if iteration % 3 == 2:
            # Kill checks on the skip path, which does little but write the state file and the log.
            with FlockHolder(project.lock_file):
                victims = [project.start("check", "--now") for _ in range(4)]
                for victim in victims:
                    time.sleep(rng.uniform(0.0, 0.12))  # the random moment to kill at: what the test is about
                    victim.send_signal(signal.SIGKILL)
                for victim in victims:
                    victim.wait()
            kills["skipping"] += len(victims)
        else:
            victim = project.start("check", "--now")
            time.sleep(rng.uniform(0.05, 1.2))  # the random moment to kill at: what the test is about
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills["downloading"] += 1
        assert not flock_busy(project.lock_file), "the lock is free the moment the holder dies"
        if project.state_file.exists():
            state = json.loads(project.state_file.read_text())  # parses: never half-written
            for name in ("checks_total", "skipped_total", "completed_total", "failed_total", "downloaded_total"):
                assert state[name] >= counters_seen.get(name, 0), f"{name} went backwards"
                counters_seen[name] = state[name]
        # The next check only needs the files the killed ones left: it runs in-process (same code, no start-up).
        result = project.run_here("check", "--now")
        assert result.returncode == 0, result.stderr
        recovered += "was damaged" in result.stderr
        assert project.events()[-1]["event"] == "check_completed"
        assert not list(project.download_dir.rglob("*.part")), "the completed check finished every partial file"
    events = assert_log_is_whole(project)
    assert_archive_and_files_are_whole(project)
    assert len(project.archive_lines()) == iterations
    started = {event["check"] for event in events if event["event"] == "check_started"}
    finished = {event["check"] for event in events if event["event"] in FINAL_EVENTS}
    assert started <= finished, f"checks that started but never got a final event: {sorted(started - finished)}"
    interrupted = [e for e in events if e["event"] == "check_failed" and e["reason"] == "interrupted"]
    status = project.status()
    assert status["completed_total"] >= iterations
    reliability(
        f"kill -9: {kills['downloading']} downloading checks and {kills['skipping']} skipping checks killed at random "
        f"moments -> lock free every time, state parsed every time ({recovered} recoveries), no counter went "
        f"backwards, {len(interrupted)} killed checks given their check_failed(interrupted) by the next check, "
        f"{iterations} next checks COMPLETED, {len(project.archive_lines())} archive lines whole and unique, "
        "files byte-identical"
    )


def test_server_that_stops_sending_fails_stalled_and_the_file_resumes(
    project: Project, reliability: Callable[[str], None]
) -> None:
    feed = project.feed
    item = project.only_item(1_000_000)
    feed.settings.stall_after_bytes = 300_000
    # The stall clock starts with the check: on a loaded machine a 3 s limit ended it before its first byte was
    # written (the next check found no partial file to resume), so the limit leaves room for a slow start.
    stall_s = 10
    project.write_config(stall_timeout_seconds=stall_s)
    started = time.monotonic()
    result = project.run("check")
    elapsed_s = time.monotonic() - started
    assert result.returncode == 1
    assert "FAILED (stalled)" in result.stderr
    [failed] = project.events("check_failed")
    assert failed["reason"] == "stalled"
    assert failed["duration_s"] >= stall_s
    # The server never sends the rest: without stall detection the check would run until the subprocess timeout.
    assert elapsed_s < stall_s + 30, f"a stall of {stall_s} s took {elapsed_s:.1f} s to end"
    assert not flock_busy(project.lock_file)
    feed.release_stalls()
    project.assert_next_check_resumes(item)
    reliability(
        f"stall: server stopped after 300 kB of 1 MB, stall_timeout_seconds {stall_s} -> FAILED stalled after "
        f"{failed['duration_s']:.1f} s, lock free, next check resumed with a Range request (206), file byte-identical"
    )


def test_check_longer_than_max_runtime_fails_timeout(project: Project, reliability: Callable[[str], None]) -> None:
    project.feed.settings.bytes_per_second = 10_000  # 600 kB: 60 s, far past the limit and the margin below
    project.write_config(max_runtime_seconds=2)
    result = project.run("check")
    assert result.returncode == 1
    assert "FAILED (timeout)" in result.stderr
    [failed] = project.events("check_failed")
    assert failed["reason"] == "timeout"
    assert 2 <= failed["duration_s"] < 2 + 20  # a margin for a loaded machine, still far below the 60 s download
    assert not flock_busy(project.lock_file)
    project.feed.settings.bytes_per_second = None
    project.write_config()  # the next check, with no limit to hit on a loaded machine, finishes the download
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    assert_archive_and_files_are_whole(project)
    reliability(
        f"timeout: max_runtime_seconds 2 on a 60 s download -> FAILED timeout after {failed['duration_s']:.1f} s"
    )


def test_foreign_lock_held_past_max_runtime_is_an_error_and_unhealthy(
    project: Project, reliability: Callable[[str], None]
) -> None:
    assert project.run("check").returncode == 0
    project.write_config(max_runtime_seconds=1)
    with FlockHolder(project.lock_file) as holder:
        holder.wait_held_longer_than(1.5)
        results = [project.run("check", "--now") for _ in range(2)]
        status_result = project.run("status")
    for result in results:
        assert result.returncode == 0
        [line] = result.stderr.splitlines()
        assert f"held by pid {holder.pid}" in line and "longer than max_runtime_seconds (1)" in line
    skipped = project.events("check_skipped")
    assert [event["level"] for event in skipped] == ["error", "error"]
    assert status_result.returncode == 1
    assert "longer than max_runtime_seconds" in status_result.stdout
    reliability(
        "foreign flock(1) holding the lock past max_runtime_seconds -> each skip logged at error level, "
        "one stderr line each, status exits 1"
    )


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_a_download_fails_interrupted_and_resumes(
    project: Project, signal_number: int, reliability: Callable[[str], None]
) -> None:
    feed = project.feed
    item = project.only_item(1_000_000)
    feed.settings.bytes_per_second = 200_000
    check = project.start("check")
    # yt-dlp writes in growing blocks: wait for the first one, so there is something to resume.
    wait_for(lambda: [p for p in project.download_dir.rglob("*.part") if p.stat().st_size > 0], what="a partial file")
    check.send_signal(signal_number)
    assert check.wait(30) == 128 + signal_number
    [failed] = project.events("check_failed")
    assert failed["reason"] == "interrupted"
    assert signal.Signals(signal_number).name in failed["error"]
    assert failed["duration_s"] > 0
    state = project.state()
    assert (state["checks_total"], state["failed_total"], state["running"]) == (1, 1, None)
    project.assert_next_check_resumes(item)
    reliability(
        f"{signal.Signals(signal_number).name} during a download -> FAILED interrupted, exit "
        f"{128 + signal_number}, counters saved, partial file resumed"
    )


def test_too_little_free_space_fails_before_any_request(project: Project) -> None:
    project.write_config(min_free_bytes=10**18)
    result = project.run("check")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "FAILED (disk_space)" in line and "below min_free_bytes" in line
    [failed] = project.events("check_failed")
    assert failed["reason"] == "disk_space"
    assert project.feed.requests == []


@pytest.fixture
def small_filesystem() -> Iterator[Path]:
    """A 1.5 MB tmpfs, when this machine lets the test mount one (root with CAP_SYS_ADMIN)."""
    with tmpfs("1500k") as mount_point:
        yield mount_point


@pytest.mark.compat
def test_disk_that_fills_during_a_download_fails_cleanly_and_completes_later(
    project: Project, small_filesystem: Path, reliability: Callable[[str], None]
) -> None:
    feed = project.feed
    feed.settings.items = feed.settings.items[:2]
    for item in feed.settings.items:
        item.size_bytes = 1_000_000  # two 1 MB videos on a 1.5 MB disk: the second cannot fit
    project.write_config(download_dir=str(small_filesystem))
    result = project.run("check")
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    assert "FAILED (disk_space)" in line
    [failed] = project.events("check_failed")
    assert failed["reason"] == "disk_space"
    assert "No space left on device" in failed["error"] or "below min_free_bytes" in failed["error"]
    first, second = feed.settings.items
    assert project.archive_lines() == [f"generic {first.guid}"], "no archive line for the partial video"
    assert project.state()["failed_videos"] == {}, "a full disk is not the video's fault"
    # Make room: the user moves the finished video elsewhere.
    moved = project.root / "moved.mp4"
    finished = next(small_filesystem.rglob(f"*{first.guid}*.mp4"))
    moved.write_bytes(finished.read_bytes())
    finished.unlink()
    assert project.run("check", "--now").returncode == 0
    assert next(small_filesystem.rglob(f"*{second.guid}*.mp4")).read_bytes() == second.content
    assert project.archive_lines() == [f"generic {first.guid}", f"generic {second.guid}"]
    reliability(
        "disk full during a download (1.5 MB tmpfs, two 1 MB videos) -> FAILED disk_space, no archive "
        "line for the partial video, no retry step spent, clean completion once there was room"
    )


def test_log_lines_from_many_writers_never_interleave(project: Project) -> None:
    # A smaller storm without a download: every process writes its line while another holds the lock.
    with FlockHolder(project.lock_file):
        processes = [project.start("check", "--now") for _ in range(30)]
        for process in processes:
            assert process.wait(60) == 0
    events = read_events(project.log_file)
    assert len(events) == 30
    assert sorted(event["skipped_total"] for event in events) == list(range(1, 31))


# Each pass opens the log as a check does, writes one line of `size` bytes and closes it (a check's process closes
# it by exiting). Lines of some kilobytes span pages: another writer sees the log end mid-line while one is written.
# The writers say "ready" once they have imported, and start together when their stdin closes.
APPEND_TO_THE_LOG = """
import json, os, sys
from pathlib import Path
from playlist_cron import log
path, writer, passes, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
line = json.dumps({"event": "padding", "writer": writer, "padding": "." * size}).encode() + b"\\n"
print("ready", flush=True)
sys.stdin.read()
for _ in range(passes):
    log_file = log.open_log_file(path, path, print)
    log_file.write(line)
    os.close(log_file._fd)
"""


def test_writers_opening_the_log_while_others_write_leave_no_blank_line(tmp_path: Path) -> None:
    log_file = tmp_path / "downloader.log"
    writers, passes = 4, 500
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND_TO_THE_LOG, str(log_file), str(writer), str(passes), "4000"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for writer in range(writers)
    ]
    assert [process.stdout.readline() for process in processes] == ["ready\n"] * writers  # type: ignore[union-attr]
    for process in processes:
        process.stdin.close()  # type: ignore[union-attr]
    assert [process.wait(120) for process in processes] == [0] * writers
    lines = log_file.read_bytes().split(b"\n")
    assert lines.pop() == b"", "the log ends with a line break"
    blank = lines.count(b"")
    assert blank == 0, f"{blank} blank lines among {len(lines)}: a writer took a line being written for one cut short"
    assert Counter(json.loads(line)["writer"] for line in lines) == {str(w): passes for w in range(writers)}
