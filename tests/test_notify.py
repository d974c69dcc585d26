"""`notify_urls`: messages through Apprise's own `json://` service to a loopback receiver, from real checks of the
loopback feed; a receiver that is down or silent never changes a check; Apprise is loaded only by a check that holds
the lock; without Apprise installed, a config that names the key is a config error with the install line."""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import FlockHolder, Project
from test_imports import loaded_modules, module_level_importers
from test_network import ago, closed_port, edit_state
from test_playlists import make_retry_due

PASSWORD = "n0tify-s3cret"  # noqa: S105 - a stand-in that must never reach the log
TOKEN = "T0KEN-in-the-path"  # noqa: S105 - as a service's token is (Discord, Telegram, Slack)
FINAL_EVENTS = ("check_skipped", "check_deferred", "check_completed", "check_failed")


class Receiver:
    """A loopback HTTP server that takes Apprise's JSON POSTs and keeps each message (title, body, type, auth)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                receiver.messages.append({**body, "path": self.path, "authorization": self.headers["Authorization"]})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "hook") -> str:
        return f"json://playlist-cron:{PASSWORD}@127.0.0.1:{self.server.server_address[1]}/{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def final(project: Project) -> dict[str, Any]:
    return [event for event in project.events() if event["event"] in FINAL_EVENTS][-1]


def titles(receiver: Receiver) -> list[str]:
    return [message["title"] for message in receiver.messages]


@pytest.mark.notify
def test_a_check_that_downloads_sends_one_message_with_its_titles_and_counts(
    project: Project, receiver: Receiver
) -> None:
    project.write_config(notify_urls=[receiver.url()])
    result = project.run("check")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    [message] = receiver.messages
    assert message["title"] == "playlist-cron: 3 videos downloaded"
    assert message["type"] == "success"
    for item in project.feed.settings.items:
        assert f"- {item.title}\n" in message["message"]
    assert "Check #1: 3 videos downloaded (600.0 KB), 0 videos failed, 0 already archived." in message["message"]
    assert message["path"] == "/hook"
    assert message["authorization"] == "Basic " + base64.b64encode(f"playlist-cron:{PASSWORD}".encode()).decode()

    # Nothing new, not due, SKIPPED: no message for any of them.
    assert project.run("check", "--now").returncode == 0
    assert final(project)["downloaded"] == 0
    assert project.run("check").returncode == 0
    with FlockHolder(project.lock_file):
        assert project.run("check", "--now").returncode == 0
    assert final(project)["event"] == "check_skipped"
    assert len(receiver.messages) == 1
    assert PASSWORD not in project.log_file.read_text()
    assert project.events("notify_failed") == []


@pytest.mark.notify
def test_a_video_given_up_sends_one_message_naming_it_and_the_retry_command(
    project: Project, receiver: Receiver
) -> None:
    guid = "video-00002"
    project.feed.settings.feed_validators = False  # no ETag nor Last-Modified: every entry is read
    item = project.feed.item(guid)
    item.media_status = 404
    project.write_config(notify_urls=[receiver.url()], retry_backoff_seconds=[60])
    assert project.run("check").returncode == 0
    assert titles(receiver) == ["playlist-cron: 2 videos downloaded"], "a first failure waits for its retry: no message"
    assert "1 video failed" in receiver.messages[0]["message"]

    make_retry_due(project, guid)
    result = project.run("check", "--now")
    assert (result.returncode, result.stderr) == (0, "")
    [given_up_event] = project.events("video_given_up")
    assert titles(receiver)[1:] == [f"playlist-cron: gave up on {item.title}"], "nothing downloaded: no such message"
    message = receiver.messages[1]
    assert message["type"] == "warning"
    assert f"{item.title} [{guid}] failed 2 times; the last error: " in message["message"]
    assert given_up_event["error"] in message["message"]
    assert f"`playlist-cron retry {guid}`" in message["message"]


@pytest.mark.notify
def test_a_network_failure_is_told_once_past_the_quiet_threshold_and_its_end_too(
    project: Project, receiver: Receiver
) -> None:
    project.write_config(notify_urls=[receiver.url()])
    assert project.run("check").returncode == 0
    assert len(receiver.messages) == 1

    project.feed.settings.feed_status = 503  # the site is down: a network failure, quiet for an hour
    quiet = project.run("check", "--now")
    assert (quiet.returncode, quiet.stderr) == (75, "")
    assert final(project)["reason"] == "network"
    assert len(receiver.messages) == 1, "a transient failure sends nothing"

    edit_state(project, network_failing_since=ago(7200))  # as an hour and more of failures would
    alerted = project.run("check", "--now")
    assert alerted.returncode == 75
    [line] = alerted.stderr.splitlines()
    assert line.startswith("playlist-cron: check #3 FAILED (network): ")
    [message] = receiver.messages[1:]
    assert (message["title"], message["message"], message["type"]) == (
        "playlist-cron: check #3 FAILED (network)",
        line,
        "failure",
    )
    assert project.run("check", "--now").returncode == 75
    assert len(receiver.messages) == 2, "an outage already told is told again only a day later, as on stderr"

    project.feed.settings.feed_status = 200
    recovered = project.run("check", "--now")
    assert recovered.returncode == 0
    [line] = recovered.stderr.splitlines()
    [message] = receiver.messages[2:]
    assert (message["title"], message["message"], message["type"]) == (
        "playlist-cron: check #5: the site can be reached again",
        line,
        "success",
    )
    assert "the site can be reached again" in line


@pytest.mark.notify
def test_a_failure_that_alerts_at_once_sends_its_stderr_line(project: Project, receiver: Receiver) -> None:
    project.write_config(notify_urls=[receiver.url(), receiver.url("second")])
    project.feed.settings.feed_status = 404  # not an outage: the playlist is gone
    result = project.run("check")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("playlist-cron: check #1 FAILED (playlist_error): ")
    assert sorted((message["path"], message["message"]) for message in receiver.messages) == [
        ("/hook", line),
        ("/second", line),
    ], "one message to each service"


@pytest.mark.notify
def test_a_check_ended_by_max_runtime_still_sends_its_alert(project: Project, receiver: Receiver) -> None:
    project.feed.settings.bytes_per_second = 20_000  # 10 s a video: the check outlives its max_runtime_seconds
    project.write_config(notify_urls=[receiver.url()], max_runtime_seconds=1, stall_timeout_seconds=60)
    result = project.run("check")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("playlist-cron: check #1 FAILED (timeout): ")
    assert [(message["title"], message["message"]) for message in receiver.messages] == [
        ("playlist-cron: check #1 FAILED (timeout)", line)
    ], "sent though nothing was left of max_runtime_seconds: its least time"


@pytest.mark.notify
def test_apprise_is_loaded_only_by_a_check_that_holds_the_lock_and_has_something_to_tell(
    project: Project, receiver: Receiver
) -> None:
    project.write_config(notify_urls=[receiver.url()])
    arguments = ["check", "--config", str(project.config_path)]
    ran = loaded_modules(arguments)
    assert "apprise" in ran and "playlist_cron.monitoring.notify" in ran, "the probe sees what a check loads"
    assert len(receiver.messages) == 1
    not_due = loaded_modules(arguments)
    assert project.status()["checks_total"] == 1, "the probe really took the not-due path"
    unchanged = loaded_modules([*arguments, "--now"])
    assert (final(project)["event"], final(project)["downloaded"]) == ("check_completed", 0)
    assert "playlist_cron.monitoring.notify" in unchanged, "the probe really ran a check with notify_urls"
    with FlockHolder(project.lock_file):
        skipped = loaded_modules([*arguments, "--now"])
    assert final(project)["event"] == "check_skipped", "the probe really took the skip path"
    assert len(receiver.messages) == 1
    assert "apprise" not in unchanged, "a check with nothing to tell never loads Apprise"
    for path in (not_due, skipped):
        assert not {name for name in path if name.split(".")[0] in ("apprise", "requests")}
        assert "playlist_cron.monitoring.notify" not in path


@pytest.fixture
def silent_receiver() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog does) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.notify
def test_a_receiver_that_is_down_or_silent_never_changes_a_check(project: Project, silent_receiver: int) -> None:
    down = f"json://user:{PASSWORD}@127.0.0.1:{closed_port()}/{TOKEN}"
    project.write_config(notify_urls=[down])
    result = project.run("check")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), "nothing on stderr: cron mails nothing"
    completed = final(project)
    assert (completed["event"], completed["downloaded"]) == ("check_completed", 3)
    [failure] = project.events("notify_failed")
    assert failure["level"] == "warning"
    assert project.events()[-1] == failure, "logged after the final event, which it does not change"
    assert (failure["notify_url"], failure["service"], failure["messages"], failure["failed"]) == (
        "notify_urls[0]",
        "JSON",
        1,
        1,
    )
    assert failure["kinds"] == ["downloaded"]
    assert "Connection error" in failure["error"]
    log = project.log_file.read_text()
    assert PASSWORD not in log and TOKEN not in log

    # A failure, told to a service that never answers: the same exit code and final event as without notify_urls.
    project.feed.settings.feed_status = 404
    project.write_config()
    plain = project.run("check", "--now")
    plain_final = final(project)
    project.write_config(notify_urls=[f"json://127.0.0.1:{silent_receiver}/{TOKEN}"])
    told = project.run("check", "--now")
    told_final = final(project)
    assert (plain.returncode, told.returncode) == (1, 1)
    assert told.stderr == plain.stderr.replace("check #2 ", "check #3 ")
    same = ("event", "level", "outcome", "reason", "error", "downloaded", "failed")
    assert [told_final.get(name) for name in same] == [plain_final.get(name) for name in same]
    [_, silent] = project.events("notify_failed")
    assert (silent["kinds"], silent["failed"]) == (["alert"], 1)
    assert silent["error"]
    assert TOKEN not in project.log_file.read_text()


@pytest.mark.notify
def test_a_url_apprise_does_not_take_is_said_on_stderr_never_shown_and_the_others_are_sent_to(
    project: Project, receiver: Receiver
) -> None:
    project.write_config(notify_urls=[f"nosuchservice://{TOKEN}", receiver.url()])
    result = project.run("check")
    assert result.returncode == 0, "the check's outcome stands"
    assert result.stderr == (
        "playlist-cron: check #1: notify_urls[0]: Apprise does not take this URL (an unknown service, or a part it "
        f"needs is missing) (fix it in {project.config_path})\n"
    )
    assert len(project.archive_lines()) == 3
    assert titles(receiver) == ["playlist-cron: 3 videos downloaded"]
    [failure] = project.events("notify_failed")
    assert (failure["notify_url"], failure["service"], failure["failed"], failure["kinds"]) == (
        "notify_urls[0]",
        None,
        1,
        ["downloaded"],
    )
    assert TOKEN not in project.log_file.read_text()


@pytest.mark.without_apprise
def test_notify_urls_without_apprise_installed_is_a_config_error_with_the_install_line(project: Project) -> None:
    project.write_config(notify_urls=[f"json://127.0.0.1:9/{TOKEN}"])
    result = project.run("check")
    assert (result.returncode, result.stdout) == (78, "")
    assert result.stderr == (
        f"playlist-cron: {project.config_path}: At 'notify_urls': sending notifications needs "
        "Apprise, which is not installed: pip install 'playlist-cron[notify]'\n"
    )
    assert project.archive_lines() == [], "refused before anything is downloaded"
    assert final(project)["reason"] == "error"
    assert TOKEN not in project.log_file.read_text()


def test_a_download_message_lists_twenty_titles_and_counts_the_rest() -> None:
    from playlist_cron.monitoring import notify

    titles = [f"Episode {number}" for number in range(1, 24)]
    fields = {"downloaded": 23, "failed": 1, "already_archived": 7, "bytes": 4_321_000_000, "reason": "timeout"}
    message = notify.downloaded(9, "FAILED", titles, fields)
    assert message.title == "playlist-cron: 23 videos downloaded"
    assert message.body.splitlines() == [
        *(f"- Episode {number}" for number in range(1, 21)),
        "- and 3 more",
        "",
        "Check #9: 23 videos downloaded (4.3 GB), 1 video failed, 7 already archived; the check ended FAILED "
        "(timeout).",
    ]
    assert message.notify_type == "warning"
    # Ended by the watchdog or a signal: the final event has no counts, the titles are what is known.
    ended = notify.downloaded(9, "FAILED", ["Only one"], {"reason": "interrupted", "error": "received SIGTERM"})
    assert ended.body.splitlines()[-1] == "Check #9: 1 video downloaded; the check ended FAILED (interrupted)."
    assert [notify.size(size) for size in (999, 1000, 999_949, 12_345_678)] == [
        "999 bytes",
        "1.0 KB",
        "999.9 KB",
        "12.3 MB",
    ]


def test_only_the_notify_module_imports_apprise_and_only_inside_a_function() -> None:
    import ast
    from pathlib import Path

    import playlist_cron

    assert module_level_importers("apprise") == set()
    package = Path(playlist_cron.__file__).parent
    importers = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "apprise" for alias in node.names)
    }
    assert importers == {"monitoring/notify.py"}
