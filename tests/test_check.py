"""End to end: the installed `playlist-cron check` in real processes, real yt-dlp, a real lock, a loopback feed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import FlockHolder, Project, flock_busy, run_on_terminal, wait_for, yt_dlp_python_notice
from playlist_cron import clock


@pytest.mark.compat
@pytest.mark.smoke
def test_first_check_downloads_every_item_and_second_downloads_nothing(project: Project) -> None:
    first = project.run("check")
    assert first.returncode == 0, first.stderr
    assert (first.stdout, first.stderr) == ("", "")
    guids = [item.guid for item in project.feed.settings.items]
    for guid in guids:
        assert project.file_for(guid).read_bytes() == project.feed.item(guid).content
    assert sorted(project.archive_lines()) == sorted(f"generic {guid}" for guid in guids)

    second = project.run("check", "--now")
    assert second.returncode == 0, second.stderr
    completed = project.events("check_completed")
    assert [event["downloaded"] for event in completed] == [3, 0]
    assert completed[-1]["playlists"][0]["feed_status"] == 304, "the feed is unchanged: nothing to look at"
    project.feed.settings.feed_validators = False  # a server that never answers 304: every entry is looked at
    third = project.run("check", "--now")
    assert third.returncode == 0, third.stderr
    completed = project.events("check_completed")
    assert [event["downloaded"] for event in completed] == [3, 0, 0]
    assert completed[-1]["already_archived"] == 3
    assert completed[-1]["failed"] == 0
    assert len(project.archive_lines()) == 3 == len(set(project.archive_lines()))
    assert len(project.downloaded_files()) == 3


def test_downloaded_videos_are_logged_with_their_details(project: Project) -> None:
    project.run_here("check")
    downloaded = project.events("video_downloaded")
    assert sorted(event["video_id"] for event in downloaded) == sorted(i.guid for i in project.feed.settings.items)
    for event in downloaded:
        assert event["bytes"] == 200_000
        assert event["title"].startswith("Video ")
        assert os.path.isfile(event["filename"])
        assert event["duration_s"] >= 0
        assert event["check"] == 1


def test_every_line_is_json_with_a_utc_timestamp_and_a_check_number(project: Project) -> None:
    project.run_here("check")
    project.run_here("check", "--now")
    lines = project.log_file.read_text().splitlines()
    # started, 3 downloaded, completed; started, completed
    assert len([line for line in lines if not yt_dlp_python_notice(json.loads(line))]) == 7
    for line in lines:
        event = json.loads(line)
        moment = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        assert moment.utcoffset() == timedelta(0)
        assert abs(datetime.now(timezone.utc) - moment) < timedelta(minutes=5)
        assert event["level"] in ("debug", "info", "warning", "error")
        assert isinstance(event["check"], int)
        assert isinstance(event["event"], str)


def test_every_due_check_ends_with_exactly_one_final_event(project: Project) -> None:
    project.feed.settings.bytes_per_second = 300_000
    first = project.start("check")
    wait_for(lambda: project.events("check_started"), what="the first check to start")
    assert project.run("check", "--now").returncode == 0
    assert first.wait(60) == 0
    project.run("check", "--now")
    finals = [
        e
        for e in project.events()
        if e["event"] in ("check_completed", "check_skipped", "check_failed", "check_deferred")
    ]
    assert sorted(event["check"] for event in finals) == [1, 2, 3]
    assert [e["outcome"] for e in sorted(finals, key=lambda e: e["check"])] == ["COMPLETED", "SKIPPED", "COMPLETED"]
    for event in finals:
        if event["outcome"] == "COMPLETED":
            assert event["duration_s"] > 0
    assert project.events("check_completed")[0]["message"].startswith("Check completed in ")


@pytest.mark.smoke
def test_second_check_is_skipped_while_first_holds_lock(project: Project) -> None:
    # Three 200 kB videos at 60 kB/s: about 10 s, long enough for the second check to start and end on a busy
    # machine. That the first still runs when the second has ended shows the skip did not wait for the lock.
    project.feed.settings.bytes_per_second = 60_000
    first = project.start("check")
    wait_for(lambda: project.events("check_started"), what="the first check to start")
    second = project.run("check", "--now")
    assert first.poll() is None, "the first check should still be downloading"
    assert second.returncode == 0
    assert (second.stdout, second.stderr) == ("", "")
    assert first.wait(60) == 0
    assert (first.stdout.read(), first.stderr.read()) == ("", "")  # type: ignore[union-attr]

    [skipped] = project.events("check_skipped")
    assert skipped["outcome"] == "SKIPPED"
    assert skipped["level"] == "warning"
    assert skipped["reason"] == "previous download still in progress"
    assert skipped["holder_pid"] == first.pid
    assert skipped["skipped_total"] == 1
    assert skipped["consecutive_skipped"] == 1
    assert 0 < skipped["lock_held_s"] < 60
    lines = [line for line in project.log_file.read_text().splitlines() if not yt_dlp_python_notice(json.loads(line))]
    assert "SKIPPED" in lines[1]
    status = project.status()
    assert status["skipped_total"] == 1
    assert status["checks_total"] == 2
    assert status["completed_total"] == 1
    assert len(project.downloaded_files()) == 3
    assert len(project.archive_lines()) == len(set(project.archive_lines())) == 3


def test_consecutive_skips_count_up_and_reset_after_a_check_runs(project: Project) -> None:
    with FlockHolder(project.lock_file):
        for _ in range(3):
            assert project.run_here("check", "--now").returncode == 0
    assert [e["consecutive_skipped"] for e in project.events("check_skipped")] == [1, 2, 3]
    assert [e["skipped_total"] for e in project.events("check_skipped")] == [1, 2, 3]
    assert project.run_here("check", "--now").returncode == 0
    assert project.status()["consecutive_skipped"] == 0
    assert project.status()["skipped_total"] == 3


def _flock_busy(project: Project) -> bool:
    return flock_busy(project.lock_file)


def test_flock_sees_the_lock_while_a_check_runs(project: Project) -> None:
    project.feed.settings.bytes_per_second = 150_000
    check = project.start("check")
    wait_for(lambda: project.events("check_started"), what="the check to start")
    assert _flock_busy(project)
    assert check.wait(60) == 0
    assert not _flock_busy(project)


def test_check_is_skipped_while_flock_holds_the_lock(project: Project) -> None:
    with FlockHolder(project.lock_file) as holder:
        result = project.run("check")
    assert result.returncode == 0
    [skipped] = project.events("check_skipped")
    assert skipped["holder_pid"] == holder.pid
    assert skipped["lock_held_s"] is not None and skipped["lock_held_s"] < 30
    assert project.downloaded_files() == []
    assert project.feed.requests == []


def test_lock_file_is_private_and_names_its_holder(project: Project) -> None:
    project.feed.settings.bytes_per_second = 150_000
    check = project.start("check")
    wait_for(lambda: project.events("check_started"), what="the check to start")
    record = json.loads(project.lock_file.read_text())
    assert record["pid"] == check.pid
    assert abs(clock.parse_iso(record["started_at"]) - time.time()) < 30  # type: ignore[operator]
    assert project.lock_file.stat().st_mode & 0o777 == 0o600
    holder = project.status()["lock_holder"]
    assert holder["pid"] == check.pid
    assert holder["held_s"] >= 0
    assert check.wait(60) == 0
    assert project.lock_file.exists(), "the lock file is never deleted"
    assert project.status()["lock_holder"] is None


def test_kill_9_frees_the_lock_and_the_next_check_resumes_the_partial_file(project: Project) -> None:
    item = project.only_item(2_000_000)
    project.feed.settings.bytes_per_second = 400_000
    check = project.start("check")
    part_files = lambda: [p for p in project.download_dir.rglob("*.part") if p.stat().st_size > 300_000]  # noqa: E731
    wait_for(part_files, what="a partial file of some size")
    check.send_signal(signal.SIGKILL)
    check.wait()
    assert not _flock_busy(project), "the OS frees the lock at once"
    partial_size = part_files()[0].stat().st_size
    assert partial_size < item.size_bytes

    project.assert_next_check_resumes(item)
    assert project.archive_lines() == [f"generic {item.guid}"]
    [orphan] = project.events("check_failed")
    assert orphan["check"] == 1
    assert orphan["reason"] == "interrupted"
    assert project.events("check_completed")[0]["check"] == 2
    status = project.status()
    assert status["checks_total"] == 2
    assert status["failed_total"] == 1
    assert status["completed_total"] == 1


@pytest.mark.smoke
def test_run_that_is_not_due_exits_silently_and_counts_nothing(project: Project) -> None:
    assert project.run("check").returncode == 0
    log_before = project.log_file.read_text()
    state_before = project.state_file.read_text()
    requests_before = len(project.feed.requests)
    result = project.run("check")
    assert result.returncode == 0
    assert (result.stdout, result.stderr) == ("", "")
    assert project.log_file.read_text() == log_before
    assert project.state_file.read_text() == state_before
    assert len(project.feed.requests) == requests_before


def _set_last_check(project: Project, seconds_ago: float) -> None:
    state = project.state()
    state["last_check_at"] = clock.iso(time.time() - seconds_ago)
    project.state_file.write_text(json.dumps(state))


def test_check_a_second_early_is_due_despite_cron_jitter(project: Project) -> None:
    assert project.run_here("check").returncode == 0
    _set_last_check(project, 59)  # cron started this one a second before the full minute
    assert project.run_here("check").returncode == 0
    assert len(project.events("check_completed")) == 2
    _set_last_check(project, 40)  # but twenty seconds early is not due
    assert project.run_here("check").returncode == 0
    assert len(project.events("check_completed")) == 2
    assert project.status()["checks_total"] == 2


def test_longer_interval_waits_for_its_time(project: Project) -> None:
    project.write_config(check_interval_seconds=300)
    assert project.run_here("check").returncode == 0
    _set_last_check(project, 120)
    assert project.run_here("check").returncode == 0
    assert project.status()["checks_total"] == 1
    _set_last_check(project, 299)
    assert project.run_here("check").returncode == 0
    assert project.status()["checks_total"] == 2


def test_not_due_on_a_terminal_says_when_the_next_check_is(project: Project) -> None:
    assert project.run("check").returncode == 0
    code, output = run_on_terminal(project.command("check"))
    assert code == 0
    assert output.startswith("Not due yet: the next check is due at "), output
    assert "--now" in output
    assert project.status()["checks_total"] == 1


def test_relative_paths_resolve_against_the_config_folder(project: Project) -> None:
    project.write_config(
        download_dir="media", archive_file="data/archive.txt", log_file="l/events.log", state_dir="data/state"
    )
    result = project.run("check", cwd=str(project.root.parent))
    assert result.returncode == 0, result.stderr
    assert len(list((project.root / "media").rglob("*.mp4"))) == 3
    assert (project.root / "data" / "archive.txt").read_text().count("generic ") == 3
    assert (project.root / "data" / "archive.txt.lock").exists()
    assert (project.root / "data" / "state" / "config.state.json").exists()
    assert read_lines(project.root / "l" / "events.log")
    assert not (project.root.parent / "media").exists()


def read_lines(path: os.PathLike[str]) -> list[str]:
    with open(path) as file:
        return file.read().splitlines()


@pytest.mark.compat
def test_output_template_and_yt_dlp_args_are_applied(project: Project) -> None:
    project.write_config(output_template="%(id)s-%(title)s.%(ext)s", yt_dlp_args=["--restrict-filenames"])
    assert project.run_here("check").returncode == 0
    names = sorted(path.name for path in project.downloaded_files())
    assert names == ["video-00001-Video_1.mp4", "video-00002-Video_2.mp4", "video-00003-Video_3.mp4"]


@pytest.mark.compat
def test_yt_dlp_args_that_yt_dlp_refuses_are_a_config_error(project: Project) -> None:
    project.write_config(yt_dlp_args=["--no-such-option"])
    result = project.run_here("check")
    assert result.returncode == 78
    assert str(project.config_path) in result.stderr
    assert "yt_dlp_args" in result.stderr
    assert "yt-dlp says: no such option: --no-such-option" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    [failed] = project.events("check_failed")
    assert failed["reason"] == "error"
    assert project.feed.requests == []


def test_config_in_environment_variable_is_used(project: Project) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "playlist_cron", "check"],
        env={**os.environ, "PLAYLIST_CRON_CONFIG": str(project.config_path)},
        cwd="/",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert len(project.events("check_completed")) == 1


def test_config_json_in_the_current_folder_is_the_default(project: Project) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PLAYLIST_CRON_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "playlist_cron", "check"], env=env, cwd=project.root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert len(project.events("check_completed")) == 1


def test_a_feed_that_answers_404_fails_with_one_line_on_stderr_and_exit_1(project: Project) -> None:
    project.feed.settings.feed_status = 404
    result = project.run("check")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "FAILED (playlist_error)" in line
    [failed] = project.events("check_failed")
    assert failed["reason"] == "playlist_error"
    assert failed["level"] == "error"
    assert failed["duration_s"] >= 0
    assert failed["error"].startswith(f"{project.feed.feed_url}: ") and "404" in failed["error"]
    status = project.status()
    assert status["failed_total"] == 1
    assert status["healthy"] is False


def test_skip_exit_code_is_used_for_skipped_checks(project: Project) -> None:
    project.write_config(skip_exit_code=75)
    with FlockHolder(project.lock_file):
        result = project.run("check")
    assert result.returncode == 75
    assert (result.stdout, result.stderr) == ("", "")


def test_usage_error_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "playlist_cron", "check", "--bogus"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    result = subprocess.run([sys.executable, "-m", "playlist_cron"], capture_output=True, text=True)
    assert result.returncode == 2


def test_sigterm_during_a_download_fails_interrupted_and_exits_143(project: Project) -> None:
    # The first video stops coming after 50 kB (the connection stays open): however slow the machine, the signal
    # meets a download under way, not one that has just ended.
    project.feed.settings.stall_after_bytes = 50_000
    check = project.start("check")
    wait_for(lambda: list(project.download_dir.rglob("*.part")), what="a download to start")
    check.send_signal(signal.SIGTERM)
    assert check.wait(30) == 128 + signal.SIGTERM
    [failed] = project.events("check_failed")
    assert failed["reason"] == "interrupted"
    assert "SIGTERM" in failed["error"]
    assert failed["duration_s"] > 0
    assert project.status()["failed_total"] == 1
    assert project.state()["running"] is None
