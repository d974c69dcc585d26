"""The metrics each alert reads, as real checks write them: never as never, SKIPPED checks resetting nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conftest import FlockHolder, Project, wait_for
from test_monitoring import read_metrics

NEVER = "playlist_cron_last_success_timestamp_seconds"


def test_skipped_checks_during_a_first_sync_give_no_last_success_and_never_reset_it(project: Project) -> None:
    """A first sync under cron: checks SKIPPED behind it said the last success was 0 (1970), and
    PlaylistCronNoSuccessfulCheck fired 5 minutes in. Now "never" has no sample; the first check's time has one."""
    metrics_file = project.root / "textfile" / "playlist_cron.prom"
    project.write_config(metrics_file=str(metrics_file))
    with FlockHolder(project.lock_file):
        for _ in range(2):
            assert project.run("check", "--now").returncode == 0
    metrics = read_metrics(metrics_file)
    assert (NEVER, ()) not in metrics, "never completed: no sample, not 0"
    first_check_s = metrics[("playlist_cron_first_check_timestamp_seconds", ())]
    assert abs(first_check_s - time.time()) < 60

    assert project.run("check", "--now").returncode == 0  # COMPLETED
    last_success_s = read_metrics(metrics_file)[(NEVER, ())]
    assert abs(last_success_s - time.time()) < 60
    with FlockHolder(project.lock_file):
        assert project.run("check", "--now").returncode == 0  # SKIPPED
    metrics = read_metrics(metrics_file)
    assert metrics[(NEVER, ())] == last_success_s, "a SKIPPED check keeps the last success"
    assert metrics[("playlist_cron_first_check_timestamp_seconds", ())] == first_check_s


def test_failed_checks_in_a_row_are_counted_until_a_completed_one(project: Project) -> None:
    metrics_file = project.root / "textfile" / "playlist_cron.prom"
    project.write_config(metrics_file=str(metrics_file), min_free_bytes=1)
    project.feed.settings.feed_status = 404
    for number in (1, 2):
        assert project.run_here("check", "--now").returncode == 1
        assert read_metrics(metrics_file)[("playlist_cron_consecutive_failed_checks", ())] == number
    with FlockHolder(project.lock_file):
        assert project.run("check", "--now").returncode == 0  # SKIPPED: neither adds nor resets
    metrics = read_metrics(metrics_file)
    assert metrics[("playlist_cron_consecutive_failed_checks", ())] == 2
    assert metrics[("playlist_cron_checks_total", (("outcome", "SKIPPED"),))] == 1
    project.feed.settings.feed_status = 200
    assert project.run_here("check", "--now").returncode == 0
    metrics = read_metrics(metrics_file)
    assert metrics[("playlist_cron_consecutive_failed_checks", ())] == 0
    assert metrics[("playlist_cron_min_free_bytes", ())] == 1
    usage = os.statvfs(project.download_dir)
    free_bytes = usage.f_bavail * usage.f_frsize
    assert abs(metrics[("playlist_cron_download_dir_free_bytes", ())] - free_bytes) < 100_000_000


def test_a_log_that_cannot_be_written_shows_in_the_metrics_of_that_check(project: Project) -> None:
    metrics_file = project.root / "textfile" / "playlist_cron.prom"
    project.write_config(metrics_file=str(metrics_file), log_file="/dev/full")  # every write fails: ENOSPC
    with FlockHolder(project.lock_file):
        assert project.run("check", "--now").returncode == 0  # SKIPPED: its lost lines counted before its metrics
    metrics = read_metrics(metrics_file)
    assert metrics[("playlist_cron_log_write_failures_total", ())] >= 1
    failed_at_s = metrics[("playlist_cron_last_log_write_failure_timestamp_seconds", ())]
    assert failed_at_s >= metrics[("playlist_cron_last_check_timestamp_seconds", ())], "what the alert compares"
    project.write_config(metrics_file=str(metrics_file))
    assert project.run("check", "--now").returncode == 0
    metrics = read_metrics(metrics_file)
    assert metrics[("playlist_cron_last_log_write_failure_timestamp_seconds", ())] == failed_at_s
    assert metrics[("playlist_cron_last_check_timestamp_seconds", ())] > failed_at_s


def test_the_lock_stays_held_in_the_metrics_while_a_flock_child_holds_it_after_flock_exited(project: Project) -> None:
    """`flock FILE command` killed, its command still running: /proc/locks names the dead flock(1); the lock's age
    read 0, and PlaylistCronLockHeldTooLong resolved while the lock was still held."""
    metrics_file = project.root / "textfile" / "playlist_cron.prom"
    project.write_config(metrics_file=str(metrics_file))
    holder = FlockHolder(project.lock_file)
    try:
        holder.wait_held_longer_than(0.5)
        child = wait_for(lambda: _children(holder.pid), timeout=10, what="flock's child")[0]
        os.kill(holder.pid, signal.SIGKILL)
        holder.process.wait()
        assert project.run("check", "--now").returncode == 0
        assert project.events()[-1]["event"] == "check_skipped"
        assert project.events()[-1]["holder_pid"] == child
        assert read_metrics(metrics_file)[("playlist_cron_lock_held_seconds", ())] >= 0.5
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # the child, in flock's session
        holder.release()


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
