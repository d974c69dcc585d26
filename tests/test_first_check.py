"""A config that has never completed a check: any failure is the user's business at once, told once.

The quiet-outage rule (`network_alert_after_seconds`) is for outages of something that worked. End to end, with the
installed command against a loopback port with nothing listening.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Project
from playlist_cron.demo.feed import FeedServer, make_items
from test_monitoring import PingReceiver
from test_network import TEMPFAIL, closed_port, ping_kinds


@pytest.fixture
def pings() -> Iterator[PingReceiver]:
    receiver = PingReceiver()
    yield receiver
    receiver.close()


def status(project: Project, exit_code: int) -> dict[str, Any]:
    result = project.run("status", "--json")
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr == ""
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_a_fresh_config_whose_site_refuses_is_unhealthy_pings_fail_and_says_so_once(
    project: Project, pings: PingReceiver
) -> None:
    port = closed_port()
    project.write_config(playlist_url=f"http://127.0.0.1:{port}/feed.xml", healthcheck_url=pings.url)
    refused = f"cannot reach 127.0.0.1:{port}: connection refused"

    first = project.run("check")
    assert first.returncode == TEMPFAIL, (first.stdout, first.stderr)
    assert first.stdout == ""
    [line] = first.stderr.splitlines()
    assert "FAILED (network)" in line and refused in line and "no check has completed yet" in line, line
    report = status(project, 1)
    assert report["healthy"] is False and report["last_completed_at"] is None
    [problem] = report["problems"]
    assert problem.startswith("no check has completed yet") and refused in problem, problem
    text = project.run("status")
    assert text.returncode == 1
    assert "Last completed: never" in text.stdout and "Health: UNHEALTHY" in text.stdout, text.stdout
    assert "Health: OK" not in text.stdout
    assert ping_kinds(pings) == ["start", "fail"]

    # Told once: the next checks say nothing more, and stay unhealthy with /fail pings.
    for _ in range(2):
        again = project.run("check", "--now")
        assert (again.returncode, again.stdout, again.stderr) == (TEMPFAIL, "", "")
        assert status(project, 1)["healthy"] is False
    assert ping_kinds(pings)[-4:] == ["start", "fail"] * 2

    # The site answers: one line saying so (a human was told of the failure), healthy.
    with FeedServer(make_items(1), port=port):
        recovered = project.run("check", "--now")
        assert recovered.returncode == 0, recovered.stderr
        [said] = recovered.stderr.splitlines()
        assert "reached again" in said, said
    assert status(project, 0)["healthy"] is True

    # It has worked once now: the next outage is quiet until network_alert_after_seconds, as for any outage.
    quiet = project.run("check", "--now")
    assert (quiet.returncode, quiet.stderr) == (TEMPFAIL, "")
    report = status(project, 0)
    assert report["network_outage"]["failed_checks"] == 1 and report["problems"] == []
    assert ping_kinds(pings)[-2:] == ["start", "success"]


def test_a_fresh_config_says_why_on_the_terminal_text_of_status(project: Project) -> None:
    port = closed_port()
    project.write_config(playlist_url=f"http://127.0.0.1:{port}/feed.xml")
    assert project.run("check").returncode == TEMPFAIL
    text = project.run("status")
    assert text.returncode == 1
    network = [line for line in text.stdout.splitlines() if line.startswith("Network: ")]
    assert len(network) == 1 and "quiet until" not in network[0], network
