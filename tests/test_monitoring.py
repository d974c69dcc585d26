"""Monitoring as users wire it: healthchecks-style pings, a Prometheus textfile, and progress on a terminal."""

from __future__ import annotations

import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import COMMAND, FlockHolder, Project, run_on_terminal


class PingReceiver:
    """A loopback stand-in for healthchecks.io that records every ping; it can also hang without answering."""

    def __init__(self, *, hang: bool = False) -> None:
        self.pings: list[tuple[str, str, str]] = []
        self.hang = hang
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _answer(self, body: bytes) -> None:
                receiver.pings.append((self.command, self.path, body.decode()))
                if receiver.hang:
                    receiver.release.wait(30)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ping/abc-123"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[PingReceiver]:
    ping_receiver = PingReceiver()
    yield ping_receiver
    ping_receiver.close()


def test_a_completed_check_pings_start_then_success_with_one_run_id(project: Project, receiver: PingReceiver) -> None:
    project.write_config(healthcheck_url=receiver.url)
    assert project.run("check").returncode == 0
    (start_method, start_path, _), (end_method, end_path, body) = receiver.pings
    start_id = re.fullmatch(r"/ping/abc-123/start\?rid=([0-9a-f-]{36})", start_path)
    end_id = re.fullmatch(r"/ping/abc-123\?rid=([0-9a-f-]{36})", end_path)
    assert start_id and end_id and start_id.group(1) == end_id.group(1)
    assert {event.get("run_id") for event in project.events()} == {start_id.group(1)}, "the log's run id too"
    assert project.state()["running"] is None
    assert (start_method, end_method) == ("GET", "POST")
    assert body.startswith("Check completed in ")
    assert project.run("check", "--now").returncode == 0
    assert len(receiver.pings) == 4
    assert receiver.pings[2][1] != start_path, "each check has its own run id"


def test_a_failed_check_pings_fail(project: Project, receiver: PingReceiver) -> None:
    project.write_config(healthcheck_url=receiver.url)
    project.feed.settings.feed_status = 404
    assert project.run("check").returncode == 1
    paths = [path for _, path, _ in receiver.pings]
    assert paths[0].startswith("/ping/abc-123/start?rid=")
    assert paths[1] == "/ping/abc-123/fail?rid=" + paths[0].split("rid=")[1]
    assert "playlist_error" in receiver.pings[1][2]


def test_skipped_not_due_and_cooldown_checks_send_no_ping(project: Project, receiver: PingReceiver) -> None:
    project.write_config(healthcheck_url=receiver.url)
    assert project.run("check").returncode == 0
    receiver.pings.clear()
    assert project.run("check").returncode == 0  # not due
    with FlockHolder(project.lock_file):
        assert project.run("check", "--now").returncode == 0  # SKIPPED
    assert project.events()[-1]["event"] == "check_skipped"
    assert receiver.pings == []


def test_a_ping_endpoint_that_is_down_or_hangs_never_changes_the_outcome(project: Project) -> None:
    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))
    down_url = f"http://127.0.0.1:{closed_port.getsockname()[1]}/ping"
    closed_port.close()
    project.write_config(healthcheck_url=down_url)
    result = project.run("check")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert [e["ping"] for e in project.events("ping_failed")] == ["start", "success"]

    hanging = PingReceiver(hang=True)
    try:
        project.write_config(healthcheck_url=hanging.url)
        started = time.monotonic()
        result = project.run("check", "--now")
        elapsed_s = time.monotonic() - started
    finally:
        hanging.close()
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    failures = project.events("ping_failed")[2:]
    assert [(e["ping"], e["error"]) for e in failures] == [
        ("start", "no answer within 5 s"),
        ("success", "no answer within 5 s"),
    ]
    # Two pings of at most 5 s each, plus the check itself: a bound, not a benchmark. Without the ping timeout the
    # check would hang until the subprocess timeout (120 s); the margin is for a loaded machine.
    assert elapsed_s < 2 * 5 + 30, f"a hanging endpoint cost {elapsed_s:.1f} s"
    assert project.events("check_completed")[-1]["check"] == 2


def read_metrics(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "config"))
            samples[(sample.name, labels)] = sample.value
    return samples


def test_metrics_file_is_replaced_after_every_check_and_parses(project: Project) -> None:
    metrics_file = project.root / "textfile" / "playlist_cron.prom"
    project.write_config(metrics_file=str(metrics_file))
    assert project.run("check").returncode == 0
    metrics = read_metrics(metrics_file)
    assert metrics[("playlist_cron_checks_total", (("outcome", "COMPLETED"),))] == 1
    assert metrics[("playlist_cron_checks_total", (("outcome", "SKIPPED"),))] == 0
    assert metrics[("playlist_cron_videos_downloaded_total", ())] == 3
    assert abs(metrics[("playlist_cron_last_success_timestamp_seconds", ())] - time.time()) < 60
    assert metrics[("playlist_cron_last_duration_seconds", ())] > 0
    assert metrics[("playlist_cron_consecutive_skipped", ())] == 0
    assert metrics[("playlist_cron_lock_held_seconds", ())] == 0
    assert metrics[("playlist_cron_last_outcome", (("outcome", "COMPLETED"),))] == 1
    first_inode = metrics_file.stat().st_ino

    # Held open, the first file keeps its inode number, so no later file can be given it again after a rename.
    with open(metrics_file, "rb"), FlockHolder(project.lock_file) as holder:
        holder.wait_held_longer_than(0.3)
        assert project.run("check", "--now").returncode == 0
        assert project.run("check", "--now").returncode == 0
    metrics = read_metrics(metrics_file)
    assert metrics[("playlist_cron_checks_total", (("outcome", "SKIPPED"),))] == 2
    assert metrics[("playlist_cron_consecutive_skipped", ())] == 2
    assert metrics[("playlist_cron_lock_held_seconds", ())] >= 0.3
    assert metrics[("playlist_cron_last_outcome", (("outcome", "SKIPPED"),))] == 1
    assert metrics_file.stat().st_ino != first_inode, "replaced by a rename, not rewritten in place"
    assert [p.name for p in metrics_file.parent.iterdir()] == ["playlist_cron.prom"], "no temporary file left"
    assert str(project.config_path) in metrics_file.read_text(), "a config label tells several configs apart"

    project.feed.settings.feed_status = 404
    assert project.run("check", "--now").returncode == 1
    metrics = read_metrics(metrics_file)
    assert metrics[("playlist_cron_checks_total", (("outcome", "FAILED"),))] == 1
    assert metrics[("playlist_cron_checks_total", (("outcome", "COMPLETED"),))] == 1


@pytest.mark.compat
def test_a_check_by_hand_on_a_terminal_shows_progress_and_a_summary(project: Project) -> None:
    project.feed.settings.bytes_per_second = 300_000
    code, text = run_on_terminal([COMMAND, "check", "--config", str(project.config_path)], stdin_is_terminal=True)
    assert code == 0
    progress = re.findall(r"\d+\.\d% of [\d.]+ KiB at +[\d.]+ KiB/s ETA \d+:\d\d +Video \d", text)
    assert len(progress) >= 3, text
    assert "Downloading Video 3" in text
    assert re.search(r"Check #1 COMPLETED in [\d.]+ s: 3 downloaded, 0 failed, 0 already archived", text)


def test_metrics_file_gives_the_alert_thresholds_and_the_network_outage_streak(project: Project) -> None:
    metrics_file = project.root / "textfile" / "playlist_cron.prom"
    thresholds = {"check_interval_seconds": 120, "max_runtime_seconds": 600, "network_alert_after_seconds": 900}
    project.write_config(metrics_file=str(metrics_file), **thresholds)
    assert project.run_here("check").returncode == 0
    metrics = read_metrics(metrics_file)
    for key, value in thresholds.items():
        assert metrics[(f"playlist_cron_{key}", ())] == value, "rules compare with these, not with numbers of their own"
    assert metrics[("playlist_cron_network_failing_since_timestamp_seconds", ())] == 0
    assert metrics[("playlist_cron_network_failed_checks", ())] == 0

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    unreachable_url = f"http://127.0.0.1:{closed.getsockname()[1]}/feed.xml"
    closed.close()
    project.write_config(metrics_file=str(metrics_file), playlist_url=unreachable_url, **thresholds)
    for number in (1, 2):
        assert project.run_here("check", "--now").returncode == 75
        metrics = read_metrics(metrics_file)
        assert metrics[("playlist_cron_network_failed_checks", ())] == number
    since_s = metrics[("playlist_cron_network_failing_since_timestamp_seconds", ())]
    failing_since = datetime.fromisoformat(project.state()["network_failing_since"].replace("Z", "+00:00"))
    assert since_s == round(failing_since.timestamp(), 3)
    assert abs(since_s - time.time()) < 60

    project.write_config(metrics_file=str(metrics_file), **thresholds)
    assert project.run_here("check", "--now").returncode == 0
    metrics = read_metrics(metrics_file)
    assert metrics[("playlist_cron_network_failing_since_timestamp_seconds", ())] == 0, "the streak ended"
    assert metrics[("playlist_cron_network_failed_checks", ())] == 0


def test_a_metrics_file_that_cannot_be_written_never_changes_the_exit_code(project: Project) -> None:
    in_the_way = project.root / "not-a-folder"
    in_the_way.write_text("a file where the metrics folder should be\n")
    project.write_config(metrics_file=str(in_the_way / "playlist_cron.prom"))
    result = project.run("check")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    [failure] = project.events("metrics_failed")
    assert failure["metrics_file"] == str(in_the_way / "playlist_cron.prom")
    assert [event["outcome"] for event in project.events("check_completed")] == ["COMPLETED"]
