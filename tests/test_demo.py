"""The offline demo, run as a user would run it from the README."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import COMMAND, clean_env, read_events
from playlist_cron.demo import run


@pytest.mark.slow
def test_demo_shows_overlapping_checks_skipped_and_ends_healthy(tmp_path: Path) -> None:
    result = subprocess.run(
        [COMMAND, "demo", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"Check #2 tries -> lock HELD by pid \d+ for [\d.]+ s -> SKIPPED \(total skipped: 1\)", out)
    assert "Check #1 starts -> lock acquired" in out
    assert "Check #1 COMPLETED" in out
    assert "Total checks performed: 5" in out
    assert re.search(r"Checks skipped due to long downloads: [1-9]", out)
    assert "Health: OK" in out
    assert str(tmp_path / "logs" / "downloader.log") in out
    events = read_events(tmp_path / "logs" / "downloader.log")
    assert len([e for e in events if e["event"] == "video_downloaded"]) == 4
    assert len(list((tmp_path / "downloads").rglob("*.mp4"))) == 4
    skipped = [e for e in events if e["event"] == "check_skipped"]
    assert skipped and all(e["holder_pid"] for e in skipped)
    # The closing hint works as printed from a shell whose PATH lacks the venv (the usual case after the README's
    # `.venv/bin/playlist-cron demo`).
    # The demo draws the report of its run: every check that ran, each SKIPPED one on its holder's bar.
    page_path = tmp_path / "logs" / "report.html"
    assert f"  report    {page_path}" in out
    page = page_path.read_text()
    finals = [e for e in events if e["event"] in ("check_completed", "check_skipped")]
    assert len(re.findall(r'class="check outcome-COMPLETED"', page)) == len(finals) - len(skipped)
    assert len(re.findall(r'class="skip-tick" data-check="\d+" data-holder-check="\d+"', page)) == len(skipped)
    [hint] = re.findall(r"^  status    (.+)$", out, re.MULTILINE)
    hint_result = run_without_venv_on_path(hint)
    assert hint_result.returncode == 0, hint_result.stderr
    assert "Total checks performed: 5" in hint_result.stdout


def run_without_venv_on_path(command_line: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(PATH="/usr/bin:/bin")
    assert shutil.which("playlist-cron", path=env["PATH"]) is None, "a playlist-cron on the system PATH would hide it"
    return subprocess.run(["bash", "-c", command_line], capture_output=True, text=True, env=env, cwd="/", timeout=60)


def test_hint_runs_the_same_program_when_started_as_a_module() -> None:
    command = run.shell_command(str(Path(run.__file__).parent.parent / "__main__.py"), sys.executable)
    assert command == f"{shlex.quote(sys.executable)} -m playlist_cron"
    result = run_without_venv_on_path(f"{command} --version")
    assert result.returncode == 0 and result.stdout.startswith("playlist-cron "), result.stderr
    assert run.shell_command(COMMAND, sys.executable) == shlex.quote(COMMAND)
