"""The log is never a single point of failure: a full or read-only log filesystem, tried on real mounts."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FlockHolder, Project, tmpfs, yt_dlp_python_notice

FILL_CHUNK_BYTES = 64 * 1024


@pytest.fixture
def log_fs() -> Iterator[Path]:
    with tmpfs("256k") as mount_point:
        yield mount_point


def _fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte with one file; return it (delete it to make room)."""
    filler = folder / "filler"
    chunk = b"\0" * FILL_CHUNK_BYTES
    with open(filler, "wb", buffering=0) as file:
        while chunk:
            try:
                file.write(chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                chunk = chunk[: len(chunk) // 2]  # the tail end: fill the last partial chunk too
    return filler


def _log_lines(project: Project, log_file: Path) -> list[str]:
    return log_file.read_text(errors="replace").splitlines() if log_file.exists() else []


def _events(lines: list[str]) -> list[dict[str, Any]]:
    """The lines that parse; a fragment cut short by a full disk is left out (and counted by the caller)."""
    events = []
    for line in lines:
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


def _one_log_alert(result: subprocess.CompletedProcess[str], log_file: Path, why: str) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line about the log, got {lines!r}"
    [line] = lines
    assert str(log_file) in line and why in line, line
    return line


def test_checks_download_and_skip_while_the_log_disk_is_full(
    project: Project, log_fs: Path, reliability: Callable[[str], None]
) -> None:
    log_file = log_fs / "downloader.log"
    project.write_config(log_file=str(log_file))
    filler = _fill(log_fs)

    completed = project.run("check")
    assert completed.returncode == 0, completed.stderr
    alert = _one_log_alert(completed, log_file, "No space left on device")
    assert len(project.archive_lines()) == 3
    for item in project.feed.settings.items:
        assert project.file_for(item.guid).read_bytes() == item.content
    state = project.state()
    assert state["running"] is None, "no running record is left to be settled as interrupted"
    assert (state["checks_total"], state["completed_total"]) == (1, 1)
    lost_by_completed = state["log_write_failures_total"]
    assert lost_by_completed >= 5, "check_started, three video_downloaded and check_completed were not recorded"
    status = project.status()
    assert status["healthy"] is False
    assert status["log_write_failures_total"] == lost_by_completed
    assert any(str(log_file) in problem for problem in status["problems"]), status["problems"]

    with FlockHolder(project.lock_file):
        skipped = project.run("check", "--now")
    assert skipped.returncode == 0, f"a SKIPPED check exits 0: {skipped.stderr}"
    _one_log_alert(skipped, log_file, "No space left on device")
    state = project.state()
    assert (state["checks_total"], state["skipped_total"], state["last_outcome"]) == (2, 1, "SKIPPED")
    assert state["log_write_failures_total"] == lost_by_completed + 1

    filler.unlink()
    after = project.run("check", "--now")
    assert (after.returncode, after.stderr) == (0, ""), after.stderr
    events = [event for event in _events(_log_lines(project, log_file)) if not yt_dlp_python_notice(event)]
    assert [event["event"] for event in events] == ["check_started", "check_completed"], events
    assert all(event["check"] == 3 for event in events)
    state = project.state()
    assert (state["completed_total"], state["failed_total"], state["skipped_total"]) == (2, 0, 1), "nothing interrupted"
    assert state["log_write_failures_total"] == lost_by_completed + 1, "the total stays, as a record"
    assert project.status()["healthy"] is True, "a log that works again is healthy again"
    reliability(
        f"log disk full (256 kB tmpfs filled to the last byte) -> a check downloaded 3 videos and exited 0, a SKIPPED "
        f"check exited 0, one stderr line each ({alert.replace(str(log_file), 'LOG')[:80]}...), "
        f"log_write_failures_total {lost_by_completed + 1}, status unhealthy until a check wrote its log again, "
        "no running record left, nothing settled as interrupted"
    )


def test_a_log_that_fills_mid_line_loses_only_that_line(
    project: Project, log_fs: Path, reliability: Callable[[str], None]
) -> None:
    log_file = log_fs / "downloader.log"
    project.write_config(log_file=str(log_file))
    with FlockHolder(project.lock_file):
        assert project.run("check").returncode == 0  # the log now has a line and room left in its last page
        filler = _fill(log_fs)
        runs = []
        # The log's last page fills up: a line that fits, then one cut short, then none at all.
        while not runs or runs[-1].stderr == "":
            assert len(runs) < 40, "the log never filled up"
            runs.append(project.run("check", "--now"))
            assert runs[-1].returncode == 0, f"a SKIPPED check exits 0: {runs[-1].stderr}"
        _one_log_alert(runs[-1], log_file, "No space left on device")
        filler.unlink()
        after = project.run("check", "--now")
    assert (after.returncode, after.stderr) == (0, ""), after.stderr
    lines = _log_lines(project, log_file)
    events = _events(lines)
    fragments = len(lines) - len(events)
    assert fragments <= 1, f"at most the one line cut short does not parse: {lines}"
    assert events[-1]["event"] == "check_skipped" and events[-1]["check"] == len(runs) + 2, events[-1]
    state = project.state()
    assert state["skipped_total"] == len(runs) + 2
    lost = state["log_write_failures_total"]
    assert lost >= 1
    assert len(events) + lost == state["checks_total"], "every check is in the log or counted as lost"
    reliability(
        f"log disk fills while skipping ({len(runs)} SKIPPED checks after the fill) -> each exited 0, "
        f"{fragments} line cut short, {lost} lost lines counted, the next line after making room parses"
    )


def _make_read_only(folder: Path) -> Callable[[], None]:
    """Make `folder` unwritable for this process for real; return how to undo it."""
    if os.geteuid() == 0:  # root ignores file modes: remount the tmpfs read-only
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return lambda: subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
    folder.chmod(0o500)
    return lambda: folder.chmod(0o700)


@pytest.fixture
def log_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder for the log: a tmpfs of our own as root (to remount it read-only), else a plain folder."""
    if os.geteuid() == 0:
        with tmpfs("1m") as mount_point:
            yield mount_point
    else:
        folder = tmp_path / "log-folder"
        folder.mkdir()
        yield folder


def test_checks_download_and_skip_while_the_log_is_read_only(
    project: Project, log_folder: Path, reliability: Callable[[str], None]
) -> None:
    log_file = log_folder / "downloader.log"
    project.write_config(log_file=str(log_file))
    undo = _make_read_only(log_folder)
    why = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    try:
        completed = project.run("check")
        assert completed.returncode == 0, completed.stderr
        alert = _one_log_alert(completed, log_file, why)
        assert len(project.archive_lines()) == 3
        with FlockHolder(project.lock_file):
            skipped = project.run("check", "--now")
        assert skipped.returncode == 0, skipped.stderr
        _one_log_alert(skipped, log_file, why)
    finally:
        undo()
    state = project.state()
    assert state["running"] is None
    assert (state["completed_total"], state["skipped_total"]) == (1, 1)
    assert state["log_write_failures_total"] >= 6
    after = project.run("check", "--now")
    assert (after.returncode, after.stderr) == (0, "")
    events = [event for event in _events(_log_lines(project, log_file)) if not yt_dlp_python_notice(event)]
    assert [event["event"] for event in events] == ["check_started", "check_completed"]
    reliability(
        f"log unwritable ({why.lower()}) -> a check downloaded 3 videos and exited 0, a SKIPPED check exited 0, "
        f"one stderr line each ({alert.replace(str(log_file), 'LOG')[:80]}...), "
        f"{state['log_write_failures_total']} lost lines counted, nothing settled as interrupted once the log worked "
        "again"
    )


def test_a_line_that_each_write_takes_only_a_few_bytes_of_is_still_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # write(2) may take part of its buffer and the rest on the next call: only a write that fails loses the line.
    from playlist_cron import log

    alerts: list[str] = []
    log_file = log.open_log_file(tmp_path / "downloader.log", tmp_path / "config.json", alerts.append)
    line = json.dumps({"event": "check_started", "check": 1}).encode() + b"\n"
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:5])))
    written = log_file.write(line)
    monkeypatch.undo()
    assert (tmp_path / "downloader.log").read_bytes() == line
    assert (written, log_file.lost_lines, alerts) == (len(line), 0, [])
