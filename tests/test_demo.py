"""The offline demo, run as a user would run it from the README, and `demo --serve`, the loopback site that the
quick start and docs/demo.md point a config at."""

from __future__ import annotations

import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import COMMAND, clean_env, read_events, wait_for
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


class Lines:
    """A process's stdout, read line by line by a thread of its own, so that a test can wait for a line with a
    deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.said: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.queue.put(line)
        self.queue.put(None)

    def until(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Return the match of the first line from here on that matches `pattern`; fail, showing what the process
        said, when it exits or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out after {timeout} s for {pattern!r}; it said: {self.said}") from None
            assert line is not None, f"it exited ({self.process.wait()}) having said: {self.said}"
            self.said.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def rest(self) -> list[str]:
        """The lines said from here on until the process closed its stdout."""
        self.thread.join(30)
        lines = []
        while (line := self.queue.get_nowait()) is not None:
            lines.append(line.rstrip("\n"))
        return lines


def start_serving(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COMMAND, "demo", "--serve", "--dir", str(folder)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd="/",
    )


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_demo_serve_keeps_a_loopback_site_that_a_check_downloads_from_until_sigterm(tmp_path: Path) -> None:
    site = start_serving(tmp_path / "site")
    lines = Lines(site)
    try:
        feed_url = lines.until(r"^  feed +(http://127\.0\.0\.1:\d+/\S+)$").group(1)
        config = Path(lines.until(r"^  config +(/.+)$").group(1))
        lines.until(r"^Serving until")
        assert config == tmp_path / "site" / "config.json"
        port = urlsplit(feed_url).port
        assert port is not None and port_open(port)

        check = subprocess.run(
            [COMMAND, "check", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(),
            cwd="/",
        )
        assert (check.returncode, check.stderr) == (0, ""), check.stdout
        [completed] = read_events(config.parent / "logs" / "downloader.log", "check_completed")
        assert completed["downloaded"] >= 1, completed
        assert completed["playlists"][0]["url"] == feed_url
        assert site.poll() is None, "it keeps serving after the check"

        site.send_signal(signal.SIGTERM)
        assert site.wait(30) == 0
        assert lines.rest() == [f"Stopped serving (SIGTERM); the files stay in {tmp_path / 'site'}"]
        assert site.stderr.read() == ""  # type: ignore[union-attr]
        assert not port_open(port), "the port is closed once it has exited"
    finally:
        if site.poll() is None:
            site.kill()
            site.wait()


def test_demo_serve_stops_on_ctrl_c_with_exit_0(tmp_path: Path) -> None:
    site = start_serving(tmp_path)
    lines = Lines(site)
    try:
        port = urlsplit(lines.until(r"^  feed +(\S+)$").group(1)).port
        lines.until(r"^Serving until")
        assert port is not None
        site.send_signal(signal.SIGINT)
        assert site.wait(30) == 0
        assert lines.rest() == [f"Stopped serving (SIGINT); the files stay in {tmp_path}"]
        assert "Traceback" not in site.stderr.read()  # type: ignore[union-attr]
        wait_for(lambda: not port_open(port), timeout=5, what="the port to close")
    finally:
        if site.poll() is None:
            site.kill()
            site.wait()
