"""A stdout log whose reader never reads: the check waits as for a stalled download, then ends and frees the lock.

Real processes, a real pipe that the test never reads; the bounds come from the config's own limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator

from conftest import FlockHolder, Project, clean_env, flock_busy
from playlist_cron.demo.feed import FeedItem

STALL_S = 4
MAX_RUNTIME_S = 60


@contextlib.contextmanager
def unread_pipe(room_bytes: int = 0) -> Iterator[int]:
    """A blocking pipe, full but for `room_bytes` read back out of it; yield its write end. Nobody reads it again."""
    reader, writer = os.pipe()
    os.set_blocking(writer, False)  # to fill it without waiting; the check gets it blocking again
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(writer, b"x" * 4096)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(writer, b"x")
    os.set_blocking(writer, True)
    if room_bytes:
        os.read(reader, room_bytes)
    try:
        yield writer
    finally:
        os.close(writer)
        os.close(reader)


def start_check_into(project: Project, stdout: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        project.command("check", "--now"),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd="/",
    )


def wait_or_kill(process: subprocess.Popen[str], timeout_s: float) -> tuple[int | None, str, float]:
    """Wait for `process` at most `timeout_s`; return its exit code (None: still running, then killed), its stderr
    and how long it ran."""
    started = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        return None, stderr, time.monotonic() - started
    return process.returncode, stderr, time.monotonic() - started


def assert_next_check_runs(project: Project) -> list[dict[str, object]]:
    """The next check, its stdout read as it should be, takes the lock and completes: it is not SKIPPED."""
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "check_completed", events
    return events


def test_check_whose_stdout_is_never_read_ends_stalled_and_frees_the_lock(
    project: Project, reliability: Callable[[str], None]
) -> None:
    """The pipe is full before the check's first line: it blocked in write(1) before its watchdog thread existed."""
    project.write_config(log_file="-", stall_timeout_seconds=STALL_S, max_runtime_seconds=MAX_RUNTIME_S)
    with unread_pipe() as stdout:
        check = start_check_into(project, stdout)
        code, stderr, ran_s = wait_or_kill(check, 3 * MAX_RUNTIME_S)

    assert code == 1, f"exit {code} after {ran_s:.1f} s (None: still running, killed); stderr: {stderr}"
    assert ran_s < MAX_RUNTIME_S, f"{ran_s:.1f} s: a stall of {STALL_S} s ends a check before max_runtime_seconds"
    assert "FAILED (stalled)" in stderr, stderr
    assert not flock_busy(project.lock_file)
    state = project.state()
    assert (state["failed_total"], state["last_failure_reason"], state["running"]) == (1, "stalled", None)
    assert state["log_write_failures_total"] >= 2, "check_started and check_failed, lost and counted"
    assert_next_check_runs(project)
    reliability(
        f"stdout a full pipe nobody reads, stall_timeout_seconds {STALL_S}: FAILED stalled after {ran_s:.1f} s, "
        "exit 1, the lost lines counted, the lock free; the next check COMPLETED (before: still in write(1) at 60 s)"
    )


def test_stdout_that_fills_during_the_downloads_ends_the_check_stalled(project: Project) -> None:
    """Room for a few lines: the pipe fills while a reader thread logs a download, and nobody reads it again.

    Each `video_downloaded` line (a title of 6.6 kB) is longer than PIPE_BUF, so it fills the pipe to its last byte
    before it blocks: no shorter line, the final event included, finds room after it.
    """
    project.feed.settings.items = [
        FeedItem(guid=f"long-{number}", title=f"{number} " + "long title " * 600, size_bytes=20_000)
        for number in range(8)
    ]
    # The stall clock starts with the check: on a loaded machine STALL_S ended it before its first download was
    # archived (the pipe not yet full), so the limit here leaves room for a slow start.
    stall_s = 12
    project.write_config(log_file="-", stall_timeout_seconds=stall_s, max_runtime_seconds=MAX_RUNTIME_S)
    with unread_pipe(room_bytes=12_288) as stdout:
        check = start_check_into(project, stdout)
        code, stderr, ran_s = wait_or_kill(check, 3 * MAX_RUNTIME_S)

    assert code == 1, f"exit {code} after {ran_s:.1f} s (None: still running, killed); stderr: {stderr}"
    assert ran_s < MAX_RUNTIME_S
    assert "FAILED (stalled)" in stderr, stderr
    assert not flock_busy(project.lock_file)
    state = project.state()
    assert (state["last_failure_reason"], state["running"]) == ("stalled", None)
    archived = len(project.archive_lines())
    assert 0 < archived < 8, f"{archived} archived: the pipe was to fill among the downloads"
    events = assert_next_check_runs(project)
    assert events[-1]["downloaded"] == 8 - archived


def test_a_read_stdout_pipe_gets_every_line_whole_even_those_longer_than_pipe_buf(project: Project) -> None:
    """A pipe read to its end: every event arrives whole, one per line, the long ones (6 kB) too."""
    project.feed.settings.items = [
        FeedItem(guid=f"long-{number}", title=f"{number} " + "long title " * 600, size_bytes=20_000)
        for number in range(4)
    ]
    project.write_config(log_file="-")
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [event["event"] for event in events].count("video_downloaded") == 4
    assert events[-1]["event"] == "check_completed"
    assert project.state()["log_write_failures_total"] == 0


def test_skipped_check_whose_stdout_is_never_read_exits_after_a_stall(project: Project) -> None:
    """The skip path has no watchdog: its one line waits no longer than stall_timeout_seconds, and is counted."""
    project.write_config(log_file="-", stall_timeout_seconds=STALL_S, max_runtime_seconds=MAX_RUNTIME_S)
    with FlockHolder(project.lock_file), unread_pipe() as stdout:
        check = start_check_into(project, stdout)
        code, stderr, ran_s = wait_or_kill(check, 3 * MAX_RUNTIME_S)

    assert code == 0, f"exit {code} after {ran_s:.1f} s (None: still running, killed); stderr: {stderr}"
    assert ran_s < MAX_RUNTIME_S
    assert "the log stdout is unwritable" in stderr and "EAGAIN" in stderr, stderr
    state = project.state()
    assert (state["skipped_total"], state["log_write_failures_total"]) == (1, 1)
