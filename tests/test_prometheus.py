"""The shipped alert rules, proven by Prometheus's own tools: promtool, and a real server scraping node_exporter."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FlockHolder, Project, skip_or_fail, wait_for
from playlist_cron import config, metrics, state

RULES_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULES = RULES_DIR / "playlist-cron.rules.yml"
RULE_TESTS = RULES_DIR / "playlist-cron.rules.test.yml"
ALERTS = [
    "PlaylistCronNoSuccessfulCheck",
    "PlaylistCronMetricsStale",
    "PlaylistCronSkipsPilingUp",
    "PlaylistCronLockHeldTooLong",
    "PlaylistCronNetworkOutage",
    "PlaylistCronVideosGivenUp",
    "PlaylistCronCooldownActive",
    "PlaylistCronChecksFailing",
    "PlaylistCronMetricsAbsent",
    "PlaylistCronLogWriteFailing",
    "PlaylistCronDiskSpaceLow",
]


def program(*names: str) -> str:
    """The path of the first of `names` on PATH; skips the test, saying why, where none is, but fails it in CI."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    packages = "prometheus prometheus-node-exporter prometheus-pushgateway"
    skip_or_fail(
        f"{' or '.join(names)} not installed (Debian: apt-get install {packages})", "CI must test the alert rules"
    )


def test_the_shipped_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        [program("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_the_shipped_rules_pass_their_promtool_unit_tests() -> None:
    result = subprocess.run(
        [program("promtool"), "test", "rules", RULE_TESTS.name],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_unit_tests_showing_it_firing_and_not_firing() -> None:
    assert re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), re.MULTILINE) == ALERTS
    cases = re.findall(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", RULE_TESTS.read_text())
    for alert in ALERTS:
        assert (alert, " []") in cases, f"no test shows {alert} not firing"
        assert (alert, "") in cases, f"no test shows {alert} firing"


def test_the_rules_use_only_metrics_the_check_writes() -> None:
    """A metric renamed in metrics.py, and not in the rules, would leave its alert silent for good."""
    where = Path("/srv")
    settings = config.Config(where / "config.json", (), where / "downloads", where / "archive.txt", where, where)
    written = metrics.render(settings, state.empty(), None)
    names = set(re.findall(r"^# TYPE (\w+) ", written, re.MULTILINE))
    assert "playlist_cron_last_success_timestamp_seconds{" not in written, "never: no sample, no 1970"
    used = set(re.findall(r"\bplaylist_cron_\w+", RULES.read_text()))
    assert used, "the rules name no metric"
    assert used <= names, f"not in the metrics file: {sorted(used - names)}"
    assert {f"playlist_cron_{key}" for key in ("check_interval_seconds", "max_runtime_seconds")} <= used


# -- end to end: node_exporter's textfile collector, a Prometheus server with the rules, real checks ----------------


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


class Server:
    """A program listening on a free loopback port, started and stopped by the test; its output kept in a file."""

    def __init__(self, command: list[str], ready_path: str, output: Path) -> None:
        self.output = output
        for _ in range(3):  # another process may take the free port before the program binds it: try another
            self.port = free_port()
            with output.open("w") as log:
                self.process = subprocess.Popen(
                    [part.replace("{port}", str(self.port)) for part in command],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            url = f"{self.url}{ready_path}"
            wait_for(
                lambda url=url: self.process.poll() is not None or http_get(url)[0] == 200,
                timeout=20,
                what=f"{command[0]} to answer {url}",
            )
            if self.process.poll() is None:
                return
        raise AssertionError(f"{command[0]} did not start: {output.read_text()[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in reversed(started):
        server.stop()


@pytest.mark.slow
def test_a_real_prometheus_fires_lock_held_too_long_from_the_metrics_of_skipped_checks(
    project: Project, tmp_path: Path, servers: list[Server]
) -> None:
    """node_exporter reads the metrics file that real SKIPPED checks write, Prometheus scrapes it every second and
    evaluates the shipped rules, and its API reports the alert firing.

    The rules are loaded from a copy whose `for:` durations are all 0s: the shipped 2 minutes of grace would make
    the test wait 2 minutes, and promtool's unit tests already show each `for:` at work.
    """
    node_exporter = program("prometheus-node-exporter", "node_exporter")
    prometheus = program("prometheus")
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    metrics_file = textfile_dir / "playlist_cron.prom"
    project.write_config(metrics_file=str(metrics_file), max_runtime_seconds=1)

    rules = tmp_path / "playlist-cron.rules.yml"
    rules.write_text(re.sub(r"^(\s+)for: \S+$", r"\1for: 0s", RULES.read_text(), flags=re.MULTILINE))
    servers.append(
        Server(
            [
                node_exporter,
                "--web.listen-address=127.0.0.1:{port}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={textfile_dir}",
            ],
            "/metrics",
            tmp_path / "node_exporter.out",
        )
    )
    scrape_config = tmp_path / "prometheus.yml"
    scrape_config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{servers[0].port}"]}]}
                ],
            }
        )
    )
    servers.append(
        Server(
            [
                prometheus,
                f"--config.file={scrape_config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                "--web.listen-address=127.0.0.1:{port}",
            ],
            "/-/ready",
            tmp_path / "prometheus.out",
        )
    )

    with FlockHolder(project.lock_file) as holder:
        holder.wait_held_longer_than(1.2)
        for _ in range(2):
            result = project.run("check", "--now")
            assert result.returncode == 0, result.stderr
            assert "longer than max_runtime_seconds (1)" in result.stderr
    assert 'playlist_cron_consecutive_skipped{config="' in http_get(f"{servers[0].url}/metrics")[1].decode()

    def firing() -> list[dict[str, Any]]:
        status, body = http_get(f"{servers[1].url}/api/v1/alerts")
        alerts: list[dict[str, Any]] = json.loads(body)["data"]["alerts"] if status == 200 else []
        return [alert for alert in alerts if alert["state"] == "firing"]

    def lock_alert() -> dict[str, Any] | None:
        alerts = [alert for alert in firing() if alert["labels"]["alertname"] == "PlaylistCronLockHeldTooLong"]
        return alerts[0] if alerts else None

    alert = wait_for(lock_alert, timeout=20, what="PlaylistCronLockHeldTooLong firing")
    assert alert["labels"]["config"] == str(project.config_path)
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"] == (
        f"playlist-cron: the lock is held past max_runtime_seconds for {project.config_path} "
        f"on 127.0.0.1:{servers[0].port}"
    )
    assert float(alert["value"]) > 1
    names = {alert["labels"]["alertname"] for alert in firing()}
    assert "PlaylistCronSkipsPilingUp" in names, "2 skips of a 60 s interval span more than max_runtime (1 s)"
    assert names.isdisjoint({"PlaylistCronNetworkOutage", "PlaylistCronVideosGivenUp", "PlaylistCronCooldownActive"})
