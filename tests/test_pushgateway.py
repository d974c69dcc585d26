"""`metrics_push_url`: every check pushes its metrics to a Pushgateway, and one that is down never changes a check."""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import COMMAND, FlockHolder, Project, clean_env, wait_for
from playlist_cron import config
from playlist_cron.errors import ConfigError
from test_prometheus import RULES, Server, http_get, program

PASSWORD = "s3cret-pass"  # noqa: S105 - a stand-in that must never reach the log


class GatewayStandIn:
    """A loopback stand-in for a Pushgateway that records each request; it can also hang without answering."""

    def __init__(self, *, hang: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        self.hang = hang
        self.release = threading.Event()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                stand_in.requests.append(
                    {"method": self.command, "path": self.path, "headers": self.headers, "body": body}
                )
                if stand_in.hang:
                    stand_in.release.wait(30)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[GatewayStandIn]:
    stand_in = GatewayStandIn()
    yield stand_in
    stand_in.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "config"))
            found[(sample.name, labels)] = sample.value
    return found


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def test_every_due_check_pushes_its_metrics_skipped_ones_included(project: Project, gateway: GatewayStandIn) -> None:
    project.write_config(
        metrics_push_url=f"http://cron:{PASSWORD}@127.0.0.1:{gateway.port}/gateway/", host_name="nas 1"
    )
    assert project.run("check").returncode == 0
    [pushed] = gateway.requests
    config_value = base64.urlsafe_b64encode(str(project.config_path).encode()).decode()
    group = f"/gateway/metrics/job/playlist-cron/instance/nas%201/config@base64/{config_value}"
    assert (pushed["method"], pushed["path"]) == ("PUT", group), "one group per config: a push replaces its group"
    assert pushed["headers"]["Authorization"] == "Basic " + base64.b64encode(f"cron:{PASSWORD}".encode()).decode()
    assert pushed["headers"]["Content-Type"].startswith("text/plain; version=0.0.4")
    metrics = samples(pushed["body"])
    assert metrics[("playlist_cron_checks_total", (("outcome", "COMPLETED"),))] == 1
    assert f'config="{project.config_path}"' in pushed["body"], "the group's config label, on every sample too"

    assert project.run("check").returncode == 0  # not due: nothing happened, nothing to push
    assert len(gateway.requests) == 1
    with FlockHolder(project.lock_file) as holder:
        holder.wait_held_longer_than(0.2)
        assert project.run("check", "--now").returncode == 0
    assert project.events()[-1]["event"] == "check_skipped"
    metrics = samples(gateway.requests[-1]["body"])
    assert metrics[("playlist_cron_checks_total", (("outcome", "SKIPPED"),))] == 1
    assert metrics[("playlist_cron_lock_held_seconds", ())] >= 0.2
    assert len(gateway.requests) == 2
    assert PASSWORD not in project.log_file.read_text()


def test_a_gateway_that_is_down_or_hangs_never_changes_a_check(project: Project) -> None:
    down = f"http://cron:{PASSWORD}@127.0.0.1:{closed_port()}"
    project.write_config(metrics_push_url=down, host_name="nas")
    result = project.run("check")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert len(project.archive_lines()) == 3, "the downloads went on"
    [failure] = project.events("metrics_push_failed")
    assert failure["level"] == "warning"
    assert PASSWORD not in json.dumps(failure)
    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+/metrics/job/playlist-cron/instance/nas/config@base64/[\w=-]+", failure["url"]
    )
    assert failure["error"] == "Connection refused"

    project.feed.settings.feed_status = 404
    failed = project.run("check", "--now")
    assert failed.returncode == 1, "FAILED stays FAILED: exit 1, whatever the push did"
    assert "FAILED (playlist_error)" in failed.stderr and "push" not in failed.stderr
    project.feed.settings.feed_status = 200

    hanging = GatewayStandIn(hang=True)
    try:
        project.write_config(metrics_push_url=f"http://127.0.0.1:{hanging.port}", host_name="nas")
        with FlockHolder(project.lock_file):
            started = time.monotonic()
            skipped = project.run("check", "--now")
            elapsed_s = time.monotonic() - started
    finally:
        hanging.close()
    assert (skipped.returncode, skipped.stdout, skipped.stderr) == (0, "", "")
    assert project.events("metrics_push_failed")[-1]["error"] == "no answer within 3 s"
    # A push of at most 3 s plus the SKIPPED check: a bound, not a benchmark; the margin is for a loaded machine.
    assert elapsed_s < 3 + 15, f"a hanging gateway cost a SKIPPED check {elapsed_s:.1f} s"
    assert PASSWORD not in project.log_file.read_text()


@pytest.mark.parametrize("value", [f"ftp://cron:{PASSWORD}@gateway.example", "gateway.example:9091", 9091, ""])
def test_metrics_push_url_must_be_an_http_url_and_is_never_shown_back(tmp_path: Path, value: object) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"playlist_url": "https://example.org/feed.xml", "metrics_push_url": value}))
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    [problem] = raised.value.problems
    assert problem.startswith("At 'metrics_push_url': expected the Pushgateway's http(s) URL")
    assert PASSWORD not in problem


# -- end to end: a real Pushgateway, scraped by a real Prometheus with the shipped rules, real checks ---------------


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in reversed(started):
        server.stop()


def alerts(prometheus: Server) -> dict[str, list[dict[str, Any]]]:
    """The firing alerts, by name."""
    status, body = http_get(f"{prometheus.url}/api/v1/alerts")
    found: dict[str, list[dict[str, Any]]] = {}
    for alert in json.loads(body)["data"]["alerts"] if status == 200 else []:
        if alert["state"] == "firing":
            found.setdefault(alert["labels"]["alertname"], []).append(alert)
    return found


@pytest.mark.slow
def test_a_real_prometheus_fires_and_resolves_each_new_alert_from_pushed_metrics(
    project: Project, tmp_path: Path, servers: list[Server]
) -> None:
    """Prometheus scrapes a real Pushgateway every second and evaluates the shipped rules every second (their `for:`
    durations set to 0s: promtool's unit tests show each at work); real checks push their metrics. Each new alert
    fires, then resolves once the checks say the trouble is over."""
    gateway_program = program("prometheus-pushgateway", "pushgateway")
    prometheus = program("prometheus")
    servers.append(
        Server(
            # Debian's build persists the metrics to a shared file by default: this one keeps them in memory.
            [gateway_program, "--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
            "/-/ready",
            tmp_path / "gw.out",
        )
    )
    gateway = servers[0]
    rules = tmp_path / "playlist-cron.rules.yml"
    rules.write_text(re.sub(r"^(\s+)for: \S+$", r"\1for: 0s", RULES.read_text(), flags=re.MULTILINE))
    scrape_config = tmp_path / "prometheus.yml"
    scrape_config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "pushgateway",
                        "honor_labels": True,  # job and instance are the pushed group's
                        "static_configs": [{"targets": [f"127.0.0.1:{gateway.port}"]}],
                    }
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
    server = servers[1]

    def firing(name: str) -> dict[str, Any] | None:
        found = alerts(server).get(name)
        return found[0] if found else None

    def resolved(name: str) -> bool:
        return firing(name) is None

    wait_for(lambda: firing("PlaylistCronMetricsAbsent"), timeout=20, what="PlaylistCronMetricsAbsent before any push")

    # Below twice min_free_bytes, still above it: downloads go on, with a warning.
    usage = os.statvfs(project.root)
    free_bytes = usage.f_bavail * usage.f_frsize
    settings: dict[str, Any] = {
        "metrics_push_url": gateway.url,
        "host_name": "e2e-host",
        "check_interval_seconds": 300,  # 900 s of failures: 3 checks
        "min_free_bytes": free_bytes * 2 // 3,
    }
    project.write_config(**settings)
    assert project.run("check").returncode == 0
    wait_for(lambda: resolved("PlaylistCronMetricsAbsent"), timeout=20, what="PlaylistCronMetricsAbsent resolved")
    low = wait_for(lambda: firing("PlaylistCronDiskSpaceLow"), timeout=20, what="PlaylistCronDiskSpaceLow firing")
    assert (low["labels"]["job"], low["labels"]["instance"]) == ("playlist-cron", "e2e-host")
    assert low["labels"]["config"] == str(project.config_path)
    assert "less than twice min_free_bytes" in low["annotations"]["description"]

    settings["min_free_bytes"] = 0
    project.write_config(**settings)
    project.feed.settings.feed_status = 404
    for _ in range(3):
        assert project.run("check", "--now").returncode == 1
    failing = wait_for(lambda: firing("PlaylistCronChecksFailing"), timeout=20, what="PlaylistCronChecksFailing firing")
    assert failing["annotations"]["description"].startswith("The last 3 checks all FAILED")
    assert resolved("PlaylistCronDiskSpaceLow")

    project.feed.settings.feed_status = 200
    project.write_config(**settings, log_file="/dev/full")  # opens, and every write fails: ENOSPC
    unlogged = project.run("check", "--now")
    assert unlogged.returncode == 0, unlogged.stderr
    wait_for(lambda: resolved("PlaylistCronChecksFailing"), timeout=20, what="PlaylistCronChecksFailing resolved")
    lost = wait_for(lambda: firing("PlaylistCronLogWriteFailing"), timeout=20, what="PlaylistCronLogWriteFailing")
    assert re.search(r"; \d+ lines have been lost in all\.", lost["annotations"]["description"])

    project.write_config(**settings)
    assert project.run("check", "--now").returncode == 0
    wait_for(lambda: resolved("PlaylistCronLogWriteFailing"), timeout=20, what="PlaylistCronLogWriteFailing resolved")
    assert set(alerts(server)).isdisjoint({"PlaylistCronNoSuccessfulCheck", "PlaylistCronMetricsAbsent"})

    # A second config of the same host pushes to a group of its own: neither push wipes out the other's metrics.
    second = project.root / "second.json"
    second.write_text(
        json.dumps(
            {
                "playlist_url": project.feed.feed_url,
                "archive_file": "second.txt",
                "state_dir": "second-state",
                "log_file": "second.log",
                "download_dir": "second",
                **settings,
            }
        )
    )
    checked = subprocess.run(
        [COMMAND, "check", "--config", str(second)], capture_output=True, text=True, env=clean_env()
    )
    assert checked.returncode == 0, checked.stderr
    pushed = http_get(f"{gateway.url}/metrics")[1].decode()
    configs = set(re.findall(r'^playlist_cron_checks_total\{config="([^"]+)"', pushed, re.MULTILINE))
    assert configs == {str(project.config_path), str(second)}
