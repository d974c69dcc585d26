"""The real cron daemon runs the line from crontab.example, once at the start of each minute, for three minutes."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import BIN_DIR, Project, wait_for
from playlist_cron import clock

ROOT = Path(__file__).parent.parent
EXAMPLE_BIN = "/home/you/playlist-cron/.venv/bin"
EXAMPLE_CONFIG = "/home/you/playlist-cron/config.json"
# How late in its minute a cron-started check may log its first event: cron starts it at second 0, then Python starts
# and the command reads its config. Under a load average of 30 that took a few seconds; 15 s is the margin.
LATEST_START_SECOND_S = 15


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


def timestamp_s(event: dict[str, object]) -> float:
    value = clock.parse_iso(str(event["timestamp"]))
    assert value is not None, event
    return value


def cron_is_running() -> bool:
    return subprocess.run(["pgrep", "-x", "cron"], capture_output=True).returncode == 0


@contextlib.contextmanager
def roots_crontab_to_ourselves() -> Iterator[None]:
    """Hold a lock on root's crontab for the test's length: another run of this suite on the machine would replace it.

    Another run would also stop the cron daemon it started while this test still needs it.
    """
    with open(Path(tempfile.gettempdir()) / "playlist-cron-tests-crontab.lock", "a") as lock:
        deadline = time.monotonic() + 400  # another run's cron test takes about three minutes
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "another test run held root's crontab for 400 s"
                time.sleep(0.5)  # the poll interval
        yield


@pytest.fixture
def cron_daemon() -> Iterator[None]:
    """Debian's cron, started by the test (or the one already running), with root's crontab restored after."""
    cron = shutil.which("cron") or "/usr/sbin/cron"
    reason = None
    if os.geteuid() != 0:
        reason = "installing root's crontab and starting the cron daemon needs root"
    elif not (os.path.exists(cron) and shutil.which("crontab")):
        reason = "Debian's cron is not installed (.ci/run installs it)"
    if reason:
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    with roots_crontab_to_ourselves():
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
@pytest.mark.timeout(900)  # three cron minutes after the wait for the first, and maybe another run's cron test
def test_cron_runs_checks_every_minute_skipping_while_a_download_runs(
    project: Project, cron_daemon: None, tmp_path: Path, reliability: Callable[[str], None]
) -> None:
    """Three checks in three consecutive minutes: the first downloads for 90 s, the second is SKIPPED behind it, the
    third finds the lock free again and COMPLETES; each starts in the first seconds of its minute, as cron starts it.
    """
    feed = project.feed
    project.only_item(900_000)
    feed.settings.bytes_per_second = 10_000  # 90 s: past the next minute's check, over before the one after
    stdout_file, stderr_file = tmp_path / "cron-stdout.txt", tmp_path / "cron-stderr.txt"
    crontab = crontab_from_example(project, stdout_file, stderr_file)
    subprocess.run(["crontab", "-"], input=crontab, text=True, check=True)
    installed_at = time.time()

    def final_events() -> list[dict[str, object]]:
        return [e for e in project.events() if e["event"] in ("check_skipped", "check_completed", "check_failed")]

    wait_for(lambda: len(final_events()) >= 3, timeout=300, what="cron to run three checks to their end")
    events = project.events()
    first_three = sorted({e["check"] for e in final_events()})[:3]
    events = [e for e in events if e.get("check") in first_three]
    started = [e for e in events if e["event"] == "check_started"]
    skipped = [e for e in events if e["event"] == "check_skipped"]
    completed = [e for e in events if e["event"] == "check_completed"]
    assert not [e for e in events if e["event"] == "check_failed"]
    assert [e["check"] for e in started] == [first_three[0], first_three[2]], "the first and the third ran"
    assert [e["check"] for e in skipped] == [first_three[1]], "the second was SKIPPED"
    assert skipped[0]["holder_pid"] == started[0]["pid"], "skipped behind the check cron started first"
    assert [e["downloaded"] for e in completed] == [1, 0], "the first downloaded the video, the third found it"
    assert project.file_for(feed.settings.items[0].guid).read_bytes() == feed.settings.items[0].content
    # cron starts a job at the top of each minute: one check per minute, each in its minute's first seconds.
    starts_s = sorted(timestamp_s(e) for e in [*started, *skipped])
    seconds = [round(start_s % 60, 1) for start_s in starts_s]
    minutes = [int(start_s // 60) - int(starts_s[0] // 60) for start_s in starts_s]
    assert minutes == [0, 1, 2], f"checks started in minutes {minutes} (seconds {seconds}): one per minute"
    assert all(second < LATEST_START_SECOND_S for second in seconds), f"started at seconds {seconds} of their minutes"
    gaps_s = [later - earlier for earlier, later in itertools.pairwise(starts_s)]
    assert all(gap_s >= 60 - LATEST_START_SECOND_S for gap_s in gaps_s), f"{gaps_s} s apart"
    assert stdout_file.read_text() == "" and stderr_file.read_text() == "", "cron would have mailed this"
    reliability(
        f"real cron: crontab.example installed, cron ran 3 checks in {time.time() - installed_at:.0f} s, one per "
        f"minute at seconds {', '.join(f'{second:.1f}' for second in seconds)} -> started, SKIPPED behind the "
        "90 s download, COMPLETED once it had ended; nothing printed for cron to mail"
    )
