"""The real cron daemon runs the line from crontab.example, every minute, for several minutes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import BIN_DIR, Project, wait_for

ROOT = Path(__file__).parent.parent
EXAMPLE_BIN = "/home/you/playlist-cron/.venv/bin"
EXAMPLE_CONFIG = "/home/you/playlist-cron/config.json"


def crontab_from_example(project: Project, stdout_file: Path, stderr_file: Path) -> str:
    """crontab.example with its paths filled in; the check's output goes to files so the test can see it is empty."""
    lines = []
    for line in (ROOT / "crontab.example").read_text().splitlines():
        line = line.replace(EXAMPLE_BIN, str(BIN_DIR)).replace(EXAMPLE_CONFIG, str(project.config_path))
        if line.startswith("MAILTO="):
            line = 'MAILTO=""'  # a test machine sends no mail
        if line.startswith("* * * * * "):
            line += f" >>{stdout_file} 2>>{stderr_file}"
        lines.append(line)
    active = [line for line in lines if line.startswith("* * * * * ")]
    assert len(active) == 1 and f"{BIN_DIR}/playlist-cron check --config {project.config_path}" in active[0]
    return "\n".join(lines) + "\n"


def cron_is_running() -> bool:
    return subprocess.run(["pgrep", "-x", "cron"], capture_output=True).returncode == 0


@pytest.fixture
def cron_daemon() -> Iterator[None]:
    """Debian's cron, started by the test (or the one already running), with root's crontab restored after."""
    if os.geteuid() != 0:
        print("SKIPPED: the cron test installs root's crontab and starts the daemon: it needs root")
        pytest.skip("needs root to install a crontab and start cron")
    cron = shutil.which("cron") or "/usr/sbin/cron"
    if not (os.path.exists(cron) and shutil.which("crontab")):
        print("SKIPPED: Debian's cron is not installed (.ci/run installs it)")
        pytest.skip("Debian's cron is not installed (.ci/run installs it)")
    saved = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    daemon = None
    if not cron_is_running():
        daemon = subprocess.Popen(
            [cron, "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for(cron_is_running, timeout=10, what="cron to start")
    try:
        yield
    finally:
        if saved.returncode == 0:
            subprocess.run(["crontab", "-"], input=saved.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True)
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(600)  # four cron minutes, plus the wait for the first one
def test_cron_runs_checks_every_minute_skipping_while_a_download_runs(
    project: Project, cron_daemon: None, tmp_path: Path, reliability: Callable[[str], None]
) -> None:
    feed = project.feed
    project.only_item(900_000)
    feed.settings.bytes_per_second = 10_000  # 90 s: the download outlasts the next minute's check
    stdout_file, stderr_file = tmp_path / "cron-stdout.txt", tmp_path / "cron-stderr.txt"
    crontab = crontab_from_example(project, stdout_file, stderr_file)
    subprocess.run(["crontab", "-"], input=crontab, text=True, check=True)
    installed_at = time.time()

    def seen_enough() -> bool:
        events = project.events()
        finals = [e for e in events if e["event"] in ("check_skipped", "check_completed", "check_failed")]
        return (
            len({e["check"] for e in finals}) >= 4  # four runs: three whole minutes of cron
            and any(e["event"] == "check_skipped" for e in events)
            and any(e["event"] == "check_completed" for e in events)
        )

    wait_for(seen_enough, timeout=400, what="cron to run four checks, one of them SKIPPED and one COMPLETED")
    events = project.events()
    started = [e for e in events if e["event"] == "check_started"]
    skipped = [e for e in events if e["event"] == "check_skipped"]
    completed = [e for e in events if e["event"] == "check_completed"]
    assert started and skipped and completed
    assert skipped[0]["holder_pid"] == started[0]["pid"], "skipped behind the check cron started first"
    assert completed[0]["downloaded"] == 1
    assert project.file_for(feed.settings.items[0].guid).read_bytes() == feed.settings.items[0].content
    assert not [e for e in events if e["event"] == "check_failed"]
    # cron starts jobs at the top of the minute: the checks it started are a minute apart.
    starts = sorted(e["timestamp"] for e in events if e["event"] in ("check_started", "check_skipped"))
    assert len(starts) >= 4
    assert stdout_file.read_text() == "" and stderr_file.read_text() == "", "cron would have mailed this"
    reliability(
        f"real cron: crontab.example installed, cron ran {len(starts)} checks in {time.time() - installed_at:.0f} s "
        f"-> {len(started)} started, {len(skipped)} SKIPPED behind a 90 s download, {len(completed)} COMPLETED, "
        "nothing printed for cron to mail"
    )
