"""End to end: bans and cooldowns, bad input, and security, with the installed command, real yt-dlp and a loopback feed.

Each scenario group is one parametrized test: every case gets its own project folder and its own feed server, and
records one "Reliability" line saying what was tried and what was seen.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from conftest import Project
from playlist_cron import clock
from playlist_cron.demo.feed import FeedServer

COOLDOWN_S = 600  # long enough that no cooldown ends by itself during a test
FINAL_EVENTS = ("check_skipped", "check_deferred", "check_completed", "check_failed")
SRC_DIR = Path(__file__).parent.parent / "src"

Part = Callable[[Project], str]


# -- helpers --------------------------------------------------------------------------------------------------------


@pytest.fixture
def safety_project(project: Project) -> Project:
    """The `project` fixture (its own folder and feed server), with a cooldown that never ends by itself."""
    project.write_config(cooldown_seconds=COOLDOWN_S)
    return project


def _run_case(group: str, name: str, part: Part, project: Project, reliability: Callable[[str], None]) -> None:
    """Run one case; its Reliability line says what it saw, or that it failed."""
    try:
        said = part(project)
    except Exception as error:
        seen = (str(error).splitlines() or [type(error).__name__])[0].replace(str(project.root), "...")
        reliability(f"{group}: {name} -> FAILED ({seen[:120]})")
        raise
    reliability(f"{group}: {name} -> {said}")


def _assert_silent(result: CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert (result.stdout, result.stderr) == ("", ""), "nothing is printed under cron"


def _one_stderr_line(result: CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, f"expected exit {code}, got {result.returncode}: {result.stderr!r}"
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


def _final(project: Project) -> dict[str, Any]:
    finals = [event for event in project.events() if event["event"] in FINAL_EVENTS]
    assert finals, "the log has no final event"
    return finals[-1]


def _assert_final(project: Project, event: str, **fields: Any) -> dict[str, Any]:
    final = _final(project)
    assert final["event"] == event, final
    for key, value in fields.items():
        assert final[key] == value, f"{key}: expected {value!r} in {final}"
    return final


def _edit_state(project: Project, **changes: Any) -> None:
    state = project.state()
    state.update(changes)
    project.state_file.write_text(json.dumps(state, indent=1))


def _expire_cooldown(project: Project) -> None:
    _edit_state(project, cooldown_until=clock.iso(time.time() - 1))


def _guids(project: Project) -> list[str]:
    return [item.guid for item in project.feed.settings.items]


# -- A. bans --------------------------------------------------------------------------------------------------------


def _ban(project: Project, expected_s: int, **settings: Any) -> int:
    """Make the site ban us, run a check; it is DEFERRED, silent; return how far ahead its cooldown ends."""
    for key, value in settings.items():
        setattr(project.feed.settings, key, value)
    before = time.time()
    result = project.run("check", "--now")
    after = time.time()
    _assert_silent(result)
    final = _assert_final(project, "check_deferred", outcome="DEFERRED", reason="rate_limited", level="warning")
    until = clock.parse_iso(final["cooldown_until"])
    assert until is not None, final
    assert before + expected_s - 1 <= until <= after + expected_s + 1, (
        f"cooldown ends {until - before:.0f} s ahead, expected about {expected_s} s"
    )
    assert clock.parse_iso(project.state()["cooldown_until"]) == until
    return round(until - clock.parse_iso(final["timestamp"]))  # type: ignore[operator]


def _deferred_by_cooldown(project: Project) -> int:
    """Run a check during the cooldown: DEFERRED (cooldown), silent, and not one request; return the requests."""
    project.feed.requests.clear()
    until = project.state()["cooldown_until"]
    result = project.run("check", "--now")
    _assert_silent(result)
    _assert_final(project, "check_deferred", outcome="DEFERRED", reason="cooldown", cooldown_until=until)
    seen = [f"{request.method} {request.path}" for request in project.feed.requests]
    assert seen == [], f"requests during the cooldown: {seen}"
    assert project.status()["cooldown_until"] == until
    return len(seen)


def _ban_part(**settings: Any) -> Part:
    def part(project: Project) -> str:
        ahead_s = _ban(project, COOLDOWN_S, **settings)
        requests = _deferred_by_cooldown(project)
        deferred = len(project.events("check_deferred"))
        assert project.status()["deferred_total"] == deferred == 2
        assert project.downloaded_files() == []
        return f"{deferred} DEFERRED, {requests} requests during cooldown, cooldown {ahead_s}s"

    return part


def _repeat_then_recover(project: Project) -> str:
    first_s = _ban(project, COOLDOWN_S, feed_status=429)
    assert project.state()["cooldown_level"] == 1
    _expire_cooldown(project)
    second_s = _ban(project, 2 * COOLDOWN_S)  # the site still answers 429
    assert project.state()["cooldown_level"] == 2
    requests = _deferred_by_cooldown(project)

    _expire_cooldown(project)
    project.feed.settings.feed_status = 200
    _assert_silent(project.run("check", "--now"))
    _assert_final(project, "check_completed", outcome="COMPLETED", downloaded=3)
    assert project.state()["cooldown_level"] == 0
    status = project.status()
    assert status["cooldown_until"] is None
    deferred = len(project.events("check_deferred"))
    assert status["deferred_total"] == deferred == 3
    assert status["completed_total"] == 1
    return (
        f"cooldown {first_s}s then {second_s}s (level 2), {requests} requests during cooldown, "
        f"healthy -> COMPLETED, level 0, deferred_total {status['deferred_total']}"
    )


BANS: dict[str, Part] = {
    "feed 429": _ban_part(feed_status=429),
    "video 429": _ban_part(media_status_override=429),
    "bot page": _ban_part(bot_check=True),
    "429 twice, then healthy": _repeat_then_recover,
}


@pytest.mark.compat
@pytest.mark.parametrize("name", BANS)
def test_bans_defer_checks_with_a_growing_cooldown_that_makes_no_request(
    name: str, safety_project: Project, reliability: Callable[[str], None]
) -> None:
    _run_case("bans", name, BANS[name], safety_project, reliability)


# -- B. bad input ---------------------------------------------------------------------------------------------------


def _archive_garbage(project: Project) -> str:
    project.archive_file.write_bytes(b"generic video-00001\nhello world garbage\n\x00\x01\ngeneric video-00002\n")
    first = project.run("check")
    line = _one_stderr_line(first, 0)
    assert str(project.archive_file) in line, line
    _assert_final(project, "check_completed", downloaded=1)
    [warning] = project.events("archive_garbage")
    assert warning["level"] == "warning"
    assert warning["bad_lines"] == 2, warning
    project.feed.settings.feed_validators = False  # a server without ETag or Last-Modified: every entry is read
    second = project.run("check", "--now")
    _assert_silent(second)  # the same garbage is not reported twice
    _assert_final(project, "check_completed", downloaded=0, already_archived=3)
    return (
        f"COMPLETED x2, bad_lines {warning['bad_lines']}, "
        f"{len(first.stderr.splitlines())} then {len(second.stderr.splitlines())} stderr lines"
    )


def _archive_without_last_newline(project: Project) -> str:
    project.archive_file.write_bytes(b"generic video-00001\ngeneric video-00003")
    _assert_silent(project.run("check"))
    _assert_final(project, "check_completed", downloaded=1)
    [repaired] = project.events("archive_repaired")
    assert repaired["level"] == "warning"
    data = project.archive_file.read_bytes()
    assert data.endswith(b"\n"), data
    lines = data.decode().split("\n")[:-1]
    for line in lines:
        match = re.fullmatch(r"generic (\S+)", line)
        assert match and match.group(1) in _guids(project), f"not a whole archive line: {line!r}"
    assert sorted(lines) == sorted(f"generic {guid}" for guid in _guids(project))
    return f"archive_repaired, {len(lines)} whole lines"


def _feed_not_xml(project: Project) -> str:
    project.feed.settings.feed_body = b"this is not xml"
    result = project.run("check")
    outcome = _final(project)
    summary = f"{outcome['outcome']} ({outcome.get('reason')}), exit {result.returncode}"
    saved = [str(path.relative_to(project.download_dir)) for path in project.downloaded_files()]
    assert saved == [], f"{summary}; the feed itself was saved as {saved}, archive {project.archive_lines()}"
    assert project.archive_lines() == [], f"{summary}; archived: {project.archive_lines()}"
    line = _one_stderr_line(result, 1)
    assert "playlist_error" in line, line
    _assert_final(project, "check_failed", outcome="FAILED", reason="playlist_error")
    return summary


def _state_dir_is_a_file(project: Project) -> str:
    not_a_folder = project.root / "not-a-folder"
    not_a_folder.write_text("a regular file\n")
    project.write_config(state_dir="not-a-folder")
    results = {arguments: project.run(*arguments) for arguments in (("check",), ("check", "--now"))}
    for arguments, result in results.items():
        try:
            line = _one_stderr_line(result, 78)
        except AssertionError as error:
            raise AssertionError(f"`{' '.join(arguments)}`: {error}") from None
        assert str(project.config_path) in line and "state_dir" in line, f"`{' '.join(arguments)}`: {line}"
    assert not_a_folder.read_text() == "a regular file\n"
    assert project.feed.requests == []
    return "exit " + ", ".join(str(result.returncode) for result in results.values())


def _damaged_state(project: Project) -> str:
    for _ in range(3):
        _assert_silent(project.run("check", "--now"))
    before = project.state()["checks_total"]
    garbage = b"\x00\x01 not JSON {{{ garbage\n"
    project.state_file.write_bytes(garbage)

    result = project.run("check", "--now")
    line = _one_stderr_line(result, 0)
    assert "damaged" in line, line
    [recovered] = project.events("state_recovered")
    assert recovered["level"] == "warning"
    [kept] = project.state_file.parent.glob(f"{project.state_file.name}.damaged-*")
    assert kept.read_bytes() == garbage
    final = _assert_final(project, "check_completed", outcome="COMPLETED")
    assert before <= final["check"] <= before + 1, f"check #{final['check']} after {before} checks"
    assert project.status()["checks_total"] == final["check"]
    return f"recovered, checks_total {before} -> {final['check']}, 1 stderr line"


BAD_INPUT: dict[str, Part] = {
    "archive garbage": _archive_garbage,
    "archive without last newline": _archive_without_last_newline,
    "feed not XML": _feed_not_xml,
    "state_dir is a file": _state_dir_is_a_file,
    "damaged state file": _damaged_state,
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input_is_met_with_one_clear_line(
    name: str, safety_project: Project, reliability: Callable[[str], None]
) -> None:
    _run_case("bad input", name, BAD_INPUT[name], safety_project, reliability)


# -- C. security ----------------------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _private_modes(project: Project) -> str:
    _assert_silent(project.run("check"))
    state_dir, log_dir = project.state_file.parent, project.log_file.parent
    modes = {
        path: _mode(path)
        for path in (project.lock_file, project.state_file, project.log_file, *state_dir.iterdir(), state_dir, log_dir)
    }
    wrong = {str(path): oct(mode) for path, mode in modes.items() if mode != (0o700 if path.is_dir() else 0o600)}
    assert not wrong, f"not private: {wrong}"
    return f"{len(modes)} files and folders private"


def _refuses_symlink(project: Project, link: Path, *runs: tuple[str, ...]) -> str:
    target = project.root / "precious.txt"
    target.write_text("precious content\n")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    for arguments in runs:
        line = _one_stderr_line(project.run(*arguments), 1)
        assert "symbolic link" in line, f"`{' '.join(arguments)}`: {line}"
    assert target.read_text() == "precious content\n"
    assert link.is_symlink()
    assert project.feed.requests == []
    assert project.downloaded_files() == []
    return f"refused x{len(runs)}, target unchanged, 0 requests"


def _symlinked_lock(project: Project) -> str:
    return _refuses_symlink(project, project.lock_file, ("check",))


def _symlinked_state(project: Project) -> str:
    return _refuses_symlink(project, project.state_file, ("check",), ("check", "--now"))


def _password_in_url(project: Project) -> str:
    secret = "S3cretPass"  # noqa: S105 - a made-up password that must never show up
    project.write_config(playlist_url=f"http://alice:{secret}@127.0.0.1:{project.feed.port}/feed.xml")
    outputs: dict[str, str] = {}
    good = project.run("check")
    _assert_silent(good)
    _assert_final(project, "check_completed", downloaded=3)
    project.write_config(playlist_url=f"http://alice:{secret}@127.0.0.1:9/feed.xml", network_alert_after_seconds=0)
    bad = project.run("check", "--now")
    _one_stderr_line(bad, 75)
    _assert_final(project, "check_failed", reason="network", error="cannot reach 127.0.0.1:9: connection refused")
    for name, result in {"good check": good, "failed check": bad}.items():
        outputs[f"{name} stdout+stderr"] = result.stdout + result.stderr
    for arguments in (("status",), ("status", "--json")):
        result = project.run(*arguments)
        outputs[" ".join(arguments)] = result.stdout + result.stderr
    for path in (project.log_file, *project.state_file.parent.iterdir()):
        outputs[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    leaks = [name for name, text in outputs.items() if secret in text]
    assert not leaks, f"the password is in: {leaks}"
    return f"password in 0 of {len(outputs)} places"


def _record_cookie_headers(feed: FeedServer) -> list[str | None]:
    """Note the Cookie header of every request the feed server answers (its own records leave headers out)."""
    cookies: list[str | None] = []
    handler: Any = feed._server.RequestHandlerClass

    class Recording(handler):  # type: ignore[misc, valid-type]
        def send_response(self, code: int, message: str | None = None) -> None:
            cookies.append(self.headers.get("Cookie"))
            super().send_response(code, message)

    feed._server.RequestHandlerClass = Recording
    return cookies


def _cookies_file(project: Project) -> str:
    value = "COOKIEVALUE123"
    cookies_file = project.root / "cookies.txt"
    cookies_file.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{value}\n")
    cookies_file.chmod(0o600)
    project.write_config(cookies_file="cookies.txt")
    sent = _record_cookie_headers(project.feed)
    _assert_silent(project.run("check"))
    _assert_final(project, "check_completed", downloaded=3)
    with_cookie = [header for header in sent if header and f"session={value}" in header]
    assert with_cookie, f"no request carried the cookie: {sent}"
    assert value not in project.log_file.read_text()
    for path in project.state_file.parent.iterdir():
        assert value not in path.read_bytes().decode("utf-8", errors="replace"), path
    return f"cookie sent on {len(with_cookie)} of {len(sent)} requests, 0 times in the log"


SECURITY: dict[str, Part] = {
    "modes": _private_modes,
    "symlink at the lock": _symlinked_lock,
    "symlink at the state file": _symlinked_state,
    "password in playlist_url": _password_in_url,
    "cookies_file": _cookies_file,
}


@pytest.mark.parametrize("name", SECURITY)
def test_files_are_private_symlinks_refused_and_secrets_kept_out(
    name: str, safety_project: Project, reliability: Callable[[str], None]
) -> None:
    _run_case("security", name, SECURITY[name], safety_project, reliability)


FORBIDDEN_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput")}


def _shell_uses(source: str, name: str) -> list[str]:
    """Given Python source, return where it runs a shell: shell=True, os.system, os.popen, subprocess.getoutput."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    found.append(f"{name}:{node.lineno}: shell=")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_CALLS:
                found.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom):
            found += [
                f"{name}:{node.lineno}: from {node.module} import {alias.name}"
                for alias in node.names
                if (node.module, alias.name) in FORBIDDEN_CALLS
            ]
    return found


def test_no_source_file_runs_a_shell() -> None:
    sample = "import os, subprocess\nsubprocess.run('ls', shell=True)\nos.system('ls')\nfrom os import popen\n"
    assert len(_shell_uses(sample, "sample")) == 3, "the detector itself must work"
    files = sorted(SRC_DIR.rglob("*.py"))
    assert len(files) >= 10, files
    found = [use for path in files for use in _shell_uses(path.read_text(), str(path.relative_to(SRC_DIR)))]
    assert found == []
