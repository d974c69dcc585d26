"""`"log_file": "-"`: the JSON events on stdout, one per line and nothing else; tried in real processes."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any

from conftest import FlockHolder, Project, clean_env, run_on_terminal, wait_for, yt_dlp_python_notice
from playlist_cron import config as config_module


def _stdout_events(stdout: str) -> list[dict[str, Any]]:
    """Every line of `stdout` is one JSON object (else the test fails here), and `jq -c .` reads them all too."""
    assert stdout.endswith("\n"), repr(stdout[-200:])
    lines = stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert all(isinstance(event, dict) for event in events), lines
    jq = subprocess.run(["jq", "-c", "."], input=stdout, capture_output=True, text=True, timeout=30)
    assert jq.returncode == 0, jq.stderr
    assert len(jq.stdout.splitlines()) == len(lines)
    return events


def _check_in_shell(project: Project, shell: str, line: str) -> subprocess.CompletedProcess[str]:
    """Run `line` with `shell -c`, `{check}` in it standing for `check --now` of the project with a stdout log."""
    project.write_config(log_file="-")
    check = shlex.join(project.command("check", "--now"))
    return subprocess.run(
        [shell, "-c", line.format(check=check)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        cwd="/",
    )


def test_dash_is_stdout_and_a_dot_slash_dash_is_a_file(tmp_path: Path) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"playlist_url": "http://127.0.0.1:1/feed.xml", "log_file": "-"}))
    assert config_module.load(config_path).log_file is None
    config_path.write_text(json.dumps({"playlist_url": "http://127.0.0.1:1/feed.xml", "log_file": "./-"}))
    assert config_module.load(config_path).log_file == tmp_path / "-"


def test_check_with_stdout_log_prints_only_json_events_and_makes_no_log_folder(project: Project) -> None:
    project.write_config(log_file="-")

    result = project.run("check", "--now")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    events = _stdout_events(result.stdout)
    names = [event["event"] for event in events]
    assert names[0] == "check_started"
    assert names.count("video_downloaded") == 3
    assert names[-1] == "check_completed" and events[-1]["outcome"] == "COMPLETED"
    assert {event["check"] for event in events} == {1}
    assert not (project.root / "logs").exists()
    assert len(project.archive_lines()) == 3
    status = project.status()
    assert status["log_file"] == "-" and status["completed_total"] == 1 and status["healthy"], status
    text = project.run_here("status").stdout
    assert 'Log: stdout (log_file "-")' in text, text


def test_skipped_check_prints_its_check_skipped_on_stdout(project: Project) -> None:
    project.write_config(log_file="-")
    with FlockHolder(project.lock_file) as holder:
        result = project.run("check", "--now")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    [event] = _stdout_events(result.stdout)
    assert event["event"] == "check_skipped" and event["outcome"] == "SKIPPED"
    assert event["holder_pid"] == holder.pid
    assert not (project.root / "logs").exists()


def test_config_error_goes_to_stderr_with_exit_78_and_nothing_on_stdout(project: Project) -> None:
    project.write_config(log_file="-", check_interval_seconds=0)

    result = project.run("check", "--now")

    assert result.returncode == 78
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert str(project.config_path) in line and "check_interval_seconds" in line, line


def test_reader_of_stdout_gone_does_not_stop_the_check_nor_change_its_exit_code(project: Project) -> None:
    """The reader reads the first line and exits (`| head -n 1`): every later line meets EPIPE, and is counted."""
    project.write_config(log_file="-")
    process = project.start("check", "--now")
    assert process.stdout is not None and process.stderr is not None
    first = json.loads(process.stdout.readline())
    process.stdout.close()  # the reader is gone: the pipe has no reader left

    code = process.wait(120)
    stderr = process.stderr.read()

    assert first["event"] == "check_started"
    assert code == 0, stderr
    assert len(project.archive_lines()) == 3
    assert len([path for path in project.downloaded_files() if path.suffix == ".mp4"]) == 3
    [line] = stderr.splitlines()  # one line for a person, as for any unwritable log
    assert "the log stdout is unwritable" in line and "EPIPE" in line, line
    status = project.status()
    assert status["completed_total"] == 1 and status["downloaded_total"] == 3
    assert status["log_write_failures_total"] >= 4  # 3 video_downloaded and the check_completed, at least
    assert status["last_log_write_failure"]["error"] == "Broken pipe (EPIPE)"
    assert not (project.root / "logs").exists()


def test_pipeline_whose_reader_exits_at_once_keeps_the_check_exit_code(project: Project) -> None:
    """`playlist-cron check | head -c 0`, as a shell runs it: the check's own exit code is 0, its download done."""
    result = _check_in_shell(project, "bash", '{check} | head -c 0; echo "check exit ${{PIPESTATUS[0]}}" >&2')

    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == "check exit 0", result.stderr
    assert len(project.archive_lines()) == 3


def test_closed_stdout_costs_the_log_only(project: Project) -> None:
    """Started with stdout closed (`>&-`): no line lands in a file that took descriptor 1; the check downloads."""
    result = _check_in_shell(project, "sh", "exec {check} >&-")

    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert "the log stdout is unwritable" in line and "EBADF" in line, line
    assert len(project.archive_lines()) == 3
    assert all(len(line.split()) == 2 for line in project.archive_lines())  # `extractor id`, nothing glued on
    state = project.state()  # still whole JSON: no event was written into it
    assert state["completed_total"] == 1 and state["log_write_failures_total"] >= 5


def test_full_non_blocking_pipe_on_stdout_costs_the_lines_only(project: Project) -> None:
    """A stdout pipe that is full and non-blocking (its reader has stopped reading): each line meets EAGAIN and is
    counted as lost; the check neither waits for the reader nor fails."""
    project.write_config(log_file="-")
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(writer, b"x" * 65536)
    try:
        result = subprocess.run(
            project.command("check", "--now"),
            stdin=subprocess.DEVNULL,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env=clean_env(),
            cwd="/",
        )
    finally:
        os.close(writer)
        os.close(reader)

    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert "the log stdout is unwritable" in line and "EAGAIN" in line, line
    assert len(project.archive_lines()) == 3
    status = project.status()
    assert status["completed_total"] == 1 and status["log_write_failures_total"] >= 5


def test_killed_check_is_settled_as_interrupted_by_the_next_check(project: Project) -> None:
    """With no log file to read back, a check killed by kill -9 is settled as interrupted, on the next one's stdout."""
    project.write_config(log_file="-")
    project.feed.settings.bytes_per_second = 100_000  # 2 s a video: killed while it downloads
    victim = project.start("check", "--now")
    assert victim.stdout is not None
    started = json.loads(victim.stdout.readline())
    assert started["event"] == "check_started"
    wait_for(lambda: any(path.suffix == ".part" for path in project.downloaded_files()), what="a partial file")
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(30) == -signal.SIGKILL
    project.feed.settings.bytes_per_second = None

    result = project.run("check", "--now")

    assert result.returncode == 0, result.stderr
    events = _stdout_events(result.stdout)
    settled = [event for event in events if event["event"] == "check_failed"]
    assert len(settled) == 1, events
    assert settled[0]["check"] == started["check"] == 1
    assert settled[0]["run_id"] == started["run_id"]
    assert settled[0]["reason"] == "interrupted" and f"pid {victim.pid}" in settled[0]["error"]
    assert events[-1]["event"] == "check_completed" and events[-1]["check"] == 2
    status = project.status()
    assert status["failed_total"] == 1 and status["completed_total"] == 1 and status["lock_holder"] is None


def test_on_a_terminal_progress_goes_to_stderr_and_stdout_stays_json(project: Project, tmp_path: Path) -> None:
    """`check --now` by hand with stdout redirected: the person sees progress on the terminal, the file gets JSON."""
    project.write_config(log_file="-")
    captured = tmp_path / "stdout.jsonl"
    check = shlex.join(project.command("check", "--now"))

    code, terminal = run_on_terminal(["sh", "-c", f"exec {check} > {shlex.quote(str(captured))}"])

    assert code == 0, terminal
    assert "Check #1 COMPLETED" in terminal and "Downloaded" in terminal, terminal
    assert '"event"' not in terminal, terminal
    events = _stdout_events(captured.read_text())
    assert events[-1]["event"] == "check_completed"


def test_on_one_terminal_each_event_starts_a_line_of_its_own(project: Project) -> None:
    """stdout and stderr on the same terminal: no JSON line is glued to the end of a progress line."""
    project.write_config(log_file="-")
    project.only_item(400_000)
    project.feed.settings.bytes_per_second = 800_000  # half a second: progress lines are shown

    code, terminal = run_on_terminal(project.command("check", "--now"))

    assert code == 0, terminal
    assert "% of" in terminal, terminal
    rows = [row.rsplit("\r", 1)[-1] for row in terminal.split("\r\n")]  # a row as the terminal shows it
    glued = [row for row in terminal.split("\r\n") if '{"timestamp"' in row and not row.startswith('{"timestamp"')]
    assert not glued, glued
    events = [
        event for event in (json.loads(row) for row in rows if row.startswith("{")) if not yt_dlp_python_notice(event)
    ]
    assert [event["event"] for event in events] == ["check_started", "video_downloaded", "check_completed"]
