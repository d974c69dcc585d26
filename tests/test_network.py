"""What the site answered, and whether it answered at all: rate limits from HTTP 429 only, outages that stay quiet.

End to end, with the installed command and the real yt-dlp: refused connections on a loopback port with nothing
listening, names under `.invalid` (RFC 6761: they never resolve), a loopback server that accepts and never answers,
and the loopback feed answering 404 or 503.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from subprocess import CompletedProcess
from typing import Any

import pytest

from conftest import Project
from playlist_cron import clock
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items

FINAL_EVENTS = ("check_skipped", "check_deferred", "check_completed", "check_failed")
TEMPFAIL = 75
DAY_S = 86400
SCHEDULE_SLACK_S = 10


# -- helpers --------------------------------------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port with nothing listening: bound, then closed, so connecting to it is refused."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections (the kernel's backlog does) and never answers: its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def final(project: Project) -> dict[str, Any]:
    finals = [event for event in project.events() if event["event"] in FINAL_EVENTS]
    assert finals, "the log has no final event"
    return finals[-1]


def check(project: Project, exit_code: int) -> CompletedProcess[str]:
    result = project.run("check", "--now")
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    return result


def edit_state(project: Project, **changes: Any) -> None:
    """Change fields of the state file as time passing would (the file stays valid, private JSON)."""
    state = project.state()
    state.update(changes)
    scratch = project.state_file.with_name("state.json.edit")
    scratch.write_text(json.dumps(state, indent=1))
    os.chmod(scratch, 0o600)
    os.replace(scratch, project.state_file)


def ago(seconds: float) -> str:
    return clock.iso(clock.now_s() - seconds)


# -- 1. rate limits from what the site answered ---------------------------------------------------------------------


def test_a_video_whose_id_says_rate_limit_and_answers_404_is_a_failed_video_not_a_ban(
    project: Project, reliability: Callable[[str], None]
) -> None:
    slug = "nginx-rate-limiting-guide-1"
    project.feed.settings.items.insert(
        0, FeedItem(guid=slug, title="Too Many Requests? Rate limiting", media_status=404)
    )
    project.write_config(cooldown_seconds=600)
    result = check(project, 0)
    assert result.stderr == ""
    completed = final(project)
    assert (completed["event"], completed["downloaded"], completed["failed"]) == ("check_completed", 3, 1), completed
    [failed] = project.events("video_failed")
    assert (failed["video_id"], failed["attempts"]) == (slug, 1)
    ahead_s = clock.parse_iso(failed["next_retry_at"]) - clock.parse_iso(failed["timestamp"])  # type: ignore[operator]
    assert abs(ahead_s - 900) < SCHEDULE_SLACK_S, failed
    assert "404" in failed["error"]
    state = project.state()
    assert (state["cooldown_until"], state["cooldown_level"]) == (None, 0)
    assert state["failed_videos"][f"generic {slug}"]["attempts"] == 1

    project.feed.requests.clear()
    check(project, 0)
    again = final(project)
    assert (again["event"], again["failed"], again["waiting_retry"]) == ("check_completed", 0, 1), again
    assert project.feed.requests_for(f"/media/{slug}") == [], "not tried again before its next_retry_at"
    reliability(
        f"a video whose id is '{slug}' and whose media answers 404 -> COMPLETED, 3 downloaded, video_failed "
        f"(attempts 1, next try in {ahead_s:.0f} s), no cooldown; next check COMPLETED without asking for it"
    )


# -- 3. network outages: exit 75, plain words, quiet until the threshold --------------------------------------------


def unreachable(kind: str, request: pytest.FixtureRequest) -> tuple[str, str, list[str]]:
    """Given a kind of outage, return (playlist URL, the words the user should read, extra yt_dlp_args)."""
    if kind == "refused":
        port = closed_port()
        return f"http://127.0.0.1:{port}/feed.xml", f"cannot reach 127.0.0.1:{port}: connection refused", []
    if kind == "dns":
        return (
            "http://feed.example.invalid/feed.xml",
            "cannot reach feed.example.invalid: the name does not resolve",
            [],
        )
    if kind == "timeout":
        base_url = request.getfixturevalue("silent_server")
        host = base_url.split("//")[1]
        return f"{base_url}/feed.xml", f"cannot reach {host}: timed out", ["--socket-timeout", "2"]
    server = FeedServer(make_items(1), feed_status=503).start()
    request.addfinalizer(server.stop)
    host = server.base_url.split("//")[1]
    return server.feed_url, f"cannot reach {host}: it answered HTTP 503 Service Unavailable", []


@pytest.mark.parametrize("kind", ["refused", "dns", "timeout", "http_503"])
def test_an_unreachable_site_fails_network_with_exit_75_and_plain_words(
    project: Project, request: pytest.FixtureRequest, kind: str, reliability: Callable[[str], None]
) -> None:
    url, words, yt_dlp_args = unreachable(kind, request)
    if kind == "dns":
        started = time.monotonic()
        with pytest.raises(socket.gaierror) as refused:
            socket.getaddrinfo("feed.example.invalid", 80)
        if time.monotonic() - started > 5:
            pytest.skip("this machine's resolver takes seconds to refuse a name under .invalid")
        if refused.value.errno == socket.EAI_AGAIN:  # no DNS server answered at all (no network here)
            words = "cannot reach feed.example.invalid: the name could not be looked up (no answer from DNS)"
    project.write_config(playlist_url=url, network_alert_after_seconds=0, yt_dlp_args=yt_dlp_args)
    started = time.monotonic()
    result = check(project, TEMPFAIL)
    elapsed_s = time.monotonic() - started
    [line] = result.stderr.splitlines()
    assert "FAILED (network)" in line and words in line, line
    failed = final(project)
    assert (failed["event"], failed["reason"]) == ("check_failed", "network"), failed
    assert failed["error"].startswith(words), failed["error"]
    raw = re.compile(r"Errno|caused by|\[generic\]|ERROR|Traceback|TransportError")
    assert not raw.search(failed["error"]) and not raw.search(line), "yt-dlp's raw text is not shown"
    if kind in ("refused", "dns"):
        assert elapsed_s < 15, f"{kind} took {elapsed_s:.1f} s: it should fail at once"
    reliability(f"playlist read, {kind} -> FAILED network, exit 75 in {elapsed_s:.1f} s: '{failed['error']}'")


@pytest.fixture
def pings() -> Iterator[Any]:
    from test_monitoring import PingReceiver

    receiver = PingReceiver()
    yield receiver
    receiver.close()


def ping_kinds(pings: Any) -> list[str]:
    """The pings received, as start / success / fail, in order."""
    kinds = []
    for _, path, _ in pings.pings:
        kinds.append("start" if "/start?" in path else "fail" if "/fail?" in path else "success")
    return kinds


def status(project: Project, healthy: bool) -> dict[str, Any]:
    result = project.run_here("status", "--json")
    assert result.returncode == (0 if healthy else 1), result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["healthy"] is healthy, report["problems"]
    return report


def test_an_outage_is_quiet_until_the_threshold_then_one_line_a_day_and_one_on_recovery(
    project: Project, pings: Any, reliability: Callable[[str], None]
) -> None:
    port = closed_port()
    project.write_config(playlist_url=f"http://127.0.0.1:{port}/feed.xml", healthcheck_url=pings.url)
    # The quiet rule is for outages of something that worked: a first check completes (tests/test_first_check.py
    # shows a config that never did).
    with FeedServer(make_items(1, prefix="first"), port=port):
        assert check(project, 0).stderr == ""
    pings.pings.clear()

    # Within the threshold (3600 s by default): exit 75, nothing on stderr, healthy, no /fail ping.
    for number in (1, 2):
        assert check(project, TEMPFAIL).stderr == ""
        assert final(project)["reason"] == "network"
        report = status(project, healthy=True)
        outage = report["network_outage"]
        assert outage["failed_checks"] == number and outage["alert_after_s"] == 3600, outage
        assert outage["error"] == f"cannot reach 127.0.0.1:{port}: connection refused"
        assert outage["alerted_at"] is None
    since = project.state()["network_failing_since"]
    assert ping_kinds(pings) == ["start", "success"] * 2
    assert "network" in pings.pings[1][2] and "network_alert_after_seconds" in pings.pings[1][2]
    text = project.run_here("status")
    assert text.returncode == 0 and "Network: failing since " in text.stdout, text.stdout
    assert project.state()["failed_videos"] == {}

    # The streak has lasted past the threshold: one line, unhealthy, /fail.
    edit_state(project, network_failing_since=ago(3700))
    backdated = time.monotonic()
    [line] = check(project, TEMPFAIL).stderr.splitlines()
    assert f"cannot reach 127.0.0.1:{port}: connection refused" in line, line
    failing = re.search(r"failing for (\d+) s since .* \(3 checks\)", line)
    assert failing, line
    assert 3700 <= int(failing.group(1)) <= 3700 + time.monotonic() - backdated + 1, line  # however slow the check
    failed = final(project)
    assert failed["network_failed_checks"] == 3 and failed["network_failing_s"] >= 3700, failed
    report = status(project, healthy=False)
    assert any("network" in problem and "3600" in problem for problem in report["problems"]), report["problems"]
    assert report["network_outage"]["failed_checks"] == 3
    assert report["network_outage"]["failing_s"] >= 3700
    assert "Health: UNHEALTHY" in project.run_here("status").stdout
    assert ping_kinds(pings)[-2:] == ["start", "fail"]

    # Still failing the same day: no second line, still /fail.
    assert check(project, TEMPFAIL).stderr == ""
    assert ping_kinds(pings)[-2:] == ["start", "fail"]
    # A day after the last line: one more.
    edit_state(project, network_alerted_at=ago(DAY_S + 60))
    [repeat] = check(project, TEMPFAIL).stderr.splitlines()
    assert "FAILED (network)" in repeat, repeat
    assert check(project, TEMPFAIL).stderr == ""

    # The site answers again: one line saying so, healthy, success ping, and the streak is gone.
    with FeedServer(make_items(2), port=port):
        [recovered] = check(project, 0).stderr.splitlines()
        assert f"127.0.0.1:{port}" in recovered and "reached again" in recovered, recovered
        assert final(project)["downloaded"] == 2
        assert check(project, 0).stderr == ""
    report = status(project, healthy=True)
    assert report["network_outage"] is None
    state = project.state()
    assert (state["network_failing_since"], state["network_alerted_at"], state["network_failed_checks"]) == (
        None,
        None,
        0,
    )
    assert ping_kinds(pings)[-4:] == ["start", "success", "start", "success"]
    [event] = project.events("network_recovered")
    assert event["failed_checks"] == 6 and event["failing_s"] >= 3700 and event["alerted"] is True
    names = [(e["check"], e["event"]) for e in project.events() if e["check"] == event["check"]]
    assert names[-2:] == [(event["check"], "network_recovered"), (event["check"], "check_completed")], names
    assert since != project.state()["network_failing_since"]
    reliability(
        "refused connection for 6 checks, network_alert_after_seconds 3600: 2 checks silent (exit 75, healthy, "
        "success pings), streak set 3700 s back -> 1 stderr line, unhealthy, /fail; same day silent; a day later "
        "1 line; site back -> 1 recovery line, then silent"
    )


def test_with_threshold_zero_the_first_failure_alerts_and_a_quiet_streak_recovers_silently(project: Project) -> None:
    port = closed_port()
    project.write_config(playlist_url=f"http://127.0.0.1:{port}/feed.xml", network_alert_after_seconds=0)
    assert len(check(project, TEMPFAIL).stderr.splitlines()) == 1
    status(project, healthy=False)
    assert check(project, TEMPFAIL).stderr == "", "one line a day at most"
    with FeedServer(make_items(1), port=port):
        assert len(check(project, 0).stderr.splitlines()) == 1

    # A large threshold: the streak never alerts, and its end is silent too.
    project.write_config(playlist_url=f"http://127.0.0.1:{port}/feed.xml", network_alert_after_seconds=10**6)
    edit_state(project, network_failing_since=None)
    assert check(project, TEMPFAIL).stderr == ""
    edit_state(project, network_failing_since=ago(DAY_S))
    assert check(project, TEMPFAIL).stderr == ""
    status(project, healthy=True)
    with FeedServer(make_items(1), port=port):
        assert check(project, 0).stderr == ""
    [quiet, loud] = sorted(project.events("network_recovered"), key=lambda event: event["alerted"])
    assert (quiet["alerted"], loud["alerted"]) == (False, True)


def test_every_video_failing_with_503_is_the_checks_network_failure_and_spends_no_retry_step(
    project: Project, reliability: Callable[[str], None]
) -> None:
    project.feed.settings.media_status_override = 503
    [line] = check(project, TEMPFAIL).stderr.splitlines()
    assert "no check has completed yet" in line, line  # a config that never worked is told of it at once
    failed = final(project)
    assert (failed["event"], failed["reason"], failed["downloaded"]) == ("check_failed", "network", 0), failed
    assert failed["error"].startswith("cannot reach 127.0.0.1:") and "HTTP 503" in failed["error"], failed
    assert project.events("video_failed") == []
    assert project.state()["failed_videos"] == {}, "no video spends a retry step on an outage"
    project.feed.settings.media_status_override = None
    [recovered] = check(project, 0).stderr.splitlines()
    assert "reached again" in recovered, recovered  # told of the failure, so told it is over
    assert final(project)["downloaded"] == 3
    reliability("every video's media answering 503 -> FAILED network, exit 75, no retry step spent; then 3 downloaded")


def test_one_video_failing_with_503_among_good_ones_keeps_its_retry_schedule(project: Project) -> None:
    project.feed.settings.items[1].media_status = 503
    guid = project.feed.settings.items[1].guid
    assert check(project, 0).stderr == ""
    completed = final(project)
    assert (completed["event"], completed["downloaded"], completed["failed"]) == ("check_completed", 2, 1)
    [failed] = project.events("video_failed")
    assert (failed["video_id"], failed["attempts"]) == (guid, 1)
    assert "HTTP 503" in failed["error"]
    assert project.state()["network_failing_since"] is None


def test_one_unreachable_playlist_beside_a_good_one_is_a_network_failure_that_keeps_the_downloads(
    project: Project,
) -> None:
    port = closed_port()
    unreachable_url = f"http://127.0.0.1:{port}/feed.xml"
    project.write_config(playlist_url=None, playlists=[unreachable_url, project.feed.feed_url])
    [line] = check(project, TEMPFAIL).stderr.splitlines()
    assert "no check has completed yet" in line, line  # a config that never worked is told of it at once
    failed = final(project)
    assert (failed["reason"], failed["downloaded"]) == ("network", 3), failed
    assert failed["error"] == f"cannot reach 127.0.0.1:{port}: connection refused", failed["error"]
    assert [playlist["error"] for playlist in failed["playlists"]] == [failed["error"], None]
    assert [playlist["url"] for playlist in failed["playlists"]] == [unreachable_url, project.feed.feed_url]
    assert len(project.downloaded_files()) == 3
