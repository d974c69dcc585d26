"""The offline demo, run as a user would run it from the README."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import COMMAND, read_events


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
