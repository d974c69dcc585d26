"""The systemd units and the logrotate snippet shipped next to crontab.example: valid, and doing what they say."""

from __future__ import annotations

import grp
import gzip
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project, read_events, wait_for
from playlist_cron.config import Config
from playlist_cron.demo.feed import make_items

ROOT = Path(__file__).parent.parent
SERVICE = ROOT / "playlist-cron.service"
TIMER = ROOT / "playlist-cron.timer"
LOGROTATE = ROOT / "logrotate.example"
SYSTEMD_PAGE = ROOT / "docs" / "systemd.md"

PLACEHOLDER_FOLDER = "/home/you/playlist-cron"
COMMAND = Path(sys.executable).parent / "playlist-cron"
DEFAULT_MAX_RUNTIME_S = Config._field_defaults["max_runtime_seconds"]


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """Given a unit file, return {section: {key: [values, in order]}}; comment lines are left out."""
    sections: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] | None = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = sections.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"{path.name}: a setting before any [section]: {line}"
        key, equals, value = line.partition("=")
        assert equals, f"{path.name}: not a setting: {line}"
        section.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(settings: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = settings.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}= should be set exactly once, found {values}"
    return values[0]


def seconds(timespan: str) -> float:
    """Given a systemd time span (`infinity`, `5h`, `4h 30min`, `18000`), return it in seconds."""
    if timespan == "infinity":
        return float("inf")
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}
    parts = re.findall(r"(\d+)\s*([a-z]*)", timespan)
    assert parts and "".join(n + u for n, u in parts) == timespan.replace(" ", ""), f"cannot read {timespan!r}"
    return float(sum(int(number) * units[unit] for number, unit in parts))


def without_comments(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def find_tool(name: str) -> str | None:
    """Like `which`, but also in the sbin folders a normal user's PATH lacks on Debian (logrotate lives there)."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def skip_without(name: str, why: str, package: str) -> str:
    tool = find_tool(name)
    if tool is None:
        reason = f"`{name}` is not installed: {why} (Debian: apt-get install {package})"
        print(reason)
        pytest.skip(reason)
    return tool


# -- the unit files as shipped ------------------------------------------------------------------------------------


def test_service_runs_one_check_as_a_oneshot_without_a_time_limit_below_the_watchdog() -> None:
    settings = unit_settings(SERVICE)
    assert one(settings, "Service", "Type") == "oneshot"
    assert one(settings, "Service", "ExecStart") == (
        f"{PLACEHOLDER_FOLDER}/.venv/bin/playlist-cron check --config {PLACEHOLDER_FOLDER}/config.json"
    )
    # Works as a user unit as it is: User= only in a comment, for system units.
    assert "User" not in settings["Service"]
    assert re.search(r"^#\s*User=you$", SERVICE.read_text(), re.MULTILINE)
    # The tool's own watchdog ends a check after max_runtime_seconds; systemd must not kill it first.
    for key in ("TimeoutStartSec", "TimeoutSec", "RuntimeMaxSec"):
        for value in settings["Service"].get(key, []):
            assert seconds(value) > DEFAULT_MAX_RUNTIME_S, f"{key}={value} would kill a check the watchdog allows"
    assert "TimeoutStartSec" in settings["Service"], "the default (90 s) would kill every long download"
    assert one(settings, "Service", "NoNewPrivileges") == "yes"
    assert one(settings, "Service", "ProtectSystem") == "strict"
    assert settings["Service"]["ReadWritePaths"] == [PLACEHOLDER_FOLDER]


def test_timer_starts_the_service_every_minute_on_the_minute() -> None:
    settings = unit_settings(TIMER)
    assert one(settings, "Timer", "OnCalendar") == "minutely"
    assert one(settings, "Timer", "AccuracySec") == "1s"
    assert one(settings, "Timer", "Persistent") == "false"
    assert one(settings, "Timer", "Unit") == SERVICE.name
    assert one(settings, "Install", "WantedBy") == "timers.target"


# -- systemd-analyze verify ---------------------------------------------------------------------------------------


def installed_copies(folder: Path) -> tuple[Path, Path, Path]:
    """Copies of both units with the placeholders replaced by the installed command and a config in `folder`."""
    data = folder / "playlist-cron"
    data.mkdir()
    config = data / "config.json"
    config.write_text('{"playlist_url": "http://127.0.0.1:9/feed.xml"}\n')
    text = SERVICE.read_text()
    for placeholder, real in [
        (f"{PLACEHOLDER_FOLDER}/.venv/bin/playlist-cron", str(COMMAND)),
        (f"{PLACEHOLDER_FOLDER}/.venv/bin", str(COMMAND.parent)),
        (f"{PLACEHOLDER_FOLDER}/config.json", str(config)),
        (PLACEHOLDER_FOLDER, str(data)),
    ]:
        text = text.replace(placeholder, real)
    units = folder / "units"
    units.mkdir()
    service = units / SERVICE.name
    service.write_text(text)
    timer = units / TIMER.name
    shutil.copyfile(TIMER, timer)
    settings = unit_settings(service)
    assert one(settings, "Service", "ExecStart") == f"{COMMAND} check --config {config}"
    assert settings["Service"]["ReadWritePaths"] == [str(data)]
    assert not [line for line in without_comments(service) if "/home/you" in line], "a placeholder was left"
    return service, timer, data


def verify(tool: str, units: list[Path], folder: Path, *, user: bool) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` the units offline: no running systemd is needed, none is asked."""
    help_text = subprocess.run([tool, "verify", "--help"], capture_output=True, text=True).stdout
    command = [tool, "verify"]
    if "--man" in help_text:
        command.append("--man=no")  # the units name no man pages; don't depend on man-db being installed
    if user:
        command.append("--user")
    env = dict(os.environ)
    # Warnings are what we look for: make sure a developer's own SYSTEMD_LOG_LEVEL=err does not hide them.
    env.update(SYSTEMD_LOG_LEVEL="info", SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="cat")
    if user:
        # The user manager wants a runtime folder; outside a login session (CI, containers) there is none.
        runtime = folder / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    return subprocess.run(
        [*command, *map(str, units)], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60
    )


def about_our_units(output: str, units: list[Path]) -> list[str]:
    names = {unit.name for unit in units} | {str(unit.parent) for unit in units}
    return [line for line in output.splitlines() if any(name in line for name in names)]


@pytest.mark.parametrize("manager", ["system", "user"])
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path, manager: str) -> None:
    tool = skip_without("systemd-analyze", "cannot verify the systemd units", "systemd")
    service, timer, _ = installed_copies(tmp_path)
    result = verify(tool, [timer, service], tmp_path, user=manager == "user")
    output = result.stdout + result.stderr
    print(f"systemd-analyze verify ({manager}): exit {result.returncode}\n{output}")
    assert result.returncode == 0, output
    assert about_our_units(output, [timer, service]) == [], output

    # The same run does see a mistake in our files: the silence above is not verify missing them.
    broken = tmp_path / "broken"
    broken.mkdir()
    broken_service = broken / service.name
    broken_service.write_text(service.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictly"))
    shutil.copyfile(timer, broken / timer.name)
    result = verify(tool, [broken / timer.name, broken_service], tmp_path, user=manager == "user")
    assert "strictly" in result.stdout + result.stderr, result.stdout + result.stderr


# -- logrotate ----------------------------------------------------------------------------------------------------


def test_logrotate_snippet_renames_and_never_copies(tmp_path: Path) -> None:
    lines = without_comments(LOGROTATE)
    assert lines[0] == f"{PLACEHOLDER_FOLDER}/logs/downloader.log {{" and lines[-1] == "}"
    directives = [line.split()[0] for line in lines[1:-1]]
    assert "copytruncate" not in directives
    for needed in ("compress", "delaycompress", "missingok", "notifempty", "rotate", "create"):
        assert needed in directives, f"logrotate.example lacks `{needed}`"
    assert any(d in directives for d in ("daily", "weekly"))
    assert "create 0600 you you" in lines


def logrotate_copy(project: Project, folder: Path) -> Path:
    """logrotate.example with the project's log, and the current user and group in `create`."""
    try:
        owner = f" {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name}"
    except KeyError:  # a uid without a name (some containers): logrotate then keeps the creating user's
        owner = ""
    text = LOGROTATE.read_text().replace(f"{PLACEHOLDER_FOLDER}/logs/downloader.log", str(project.log_file))
    text = text.replace("create 0600 you you", f"create 0600{owner}")
    conf = folder / "logrotate.conf"
    conf.write_text(text)
    assert not [line for line in without_comments(conf) if "/home/you" in line or " you" in line], text
    return conf


def test_logrotate_rotates_the_log_under_a_running_check_without_losing_a_line(
    tmp_path: Path, project: Project
) -> None:
    tool = skip_without("logrotate", "cannot try logrotate.example", "logrotate")
    conf = logrotate_copy(project, tmp_path)
    rotate = [tool, "--state", str(tmp_path / "logrotate.state"), "-f", str(conf)]
    rotated = project.log_file.with_name("downloader.log.1")

    assert project.run("check").returncode == 0  # check 1: three videos
    first_lines = project.log_file.read_text().splitlines()

    # Check 2 downloads two new videos slowly; the log is rotated while it runs.
    project.feed.settings.items.extend(make_items(2, prefix="late"))
    project.feed.settings.bytes_per_second = 150_000  # two 200 kB videos: about 3 s
    running = project.start("check", "--now")
    wait_for(lambda: read_events(project.log_file, "check_started")[1:], what="check 2 to start")
    result = subprocess.run(rotate, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert running.poll() is None, "check 2 ended before the rotation: the test proves nothing"
    assert running.wait(timeout=60) == 0, running.stderr.read() if running.stderr else ""

    # Renamed, not copied: check 2 kept writing to the file it opened, now downloader.log.1, to the end.
    assert rotated.exists()
    old = read_events(rotated)
    assert rotated.read_text().splitlines()[: len(first_lines)] == first_lines
    check_2 = [event for event in old if event["check"] == 2]
    assert check_2[0]["event"] == "check_started"
    assert check_2[-1]["event"] == "check_completed" and check_2[-1]["downloaded"] == 2
    assert len([event for event in check_2 if event["event"] == "video_downloaded"]) == 2
    # logrotate made the new, empty log private, as playlist-cron would.
    assert project.log_file.read_bytes() == b""
    assert stat.S_IMODE(project.log_file.stat().st_mode) == 0o600

    # The next check opens the new log anew and appends there.
    assert project.run("check", "--now").returncode == 0
    new = read_events(project.log_file)
    assert [event["event"] for event in new] == ["check_started", "check_completed"]
    assert {event["check"] for event in new} == {3}
    assert stat.S_IMODE(project.log_file.stat().st_mode) == 0o600
    assert project.status()["checks_total"] == 3

    # delaycompress: downloader.log.1 stayed plain; the next rotation compresses it, whole.
    before = rotated.read_bytes()
    result = subprocess.run(rotate, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    with gzip.open(project.log_file.with_name("downloader.log.2.gz")) as file:
        assert file.read() == before
    assert [event["check"] for event in read_events(rotated)] == [3, 3]


# -- docs/systemd.md ----------------------------------------------------------------------------------------------


def test_the_systemd_page_names_the_three_files() -> None:
    text = SYSTEMD_PAGE.read_text()
    match = re.search(r"\A# systemd instead of cron\n(.*)", text, re.DOTALL)
    assert match, "docs/systemd.md does not open with `# systemd instead of cron`"
    section = match.group(1)
    for name in (SERVICE.name, TIMER.name, LOGROTATE.name):
        assert f"`{name}`" in section, f"docs/systemd.md does not name {name}"
    for command in ("systemctl --user enable --now playlist-cron.timer", "loginctl enable-linger"):
        assert command in section


MOST_EXPOSURE = 3.5  # systemd-analyze's scale: 0 safe, 10 exposed; below 4 it says "OK"


def test_systemd_analyze_security_rates_the_service_ok_and_sees_its_settings(tmp_path: Path) -> None:
    tool = skip_without("systemd-analyze", "cannot rate the service's exposure", "systemd")
    service, _, _ = installed_copies(tmp_path)

    def exposure(unit: Path) -> float:
        result = subprocess.run(
            [tool, "security", "--offline=true", "--no-pager", str(unit)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        print(result.stdout[-400:])
        [rating] = re.findall(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
        return float(rating)

    rated = exposure(service)
    assert rated <= MOST_EXPOSURE
    # The rating reads the file: without its hardening the same unit is exposed.
    bare = tmp_path / "bare" / service.name
    bare.parent.mkdir()
    text = service.read_text()
    bare.write_text(text[: text.index("NoNewPrivileges=yes")])
    assert exposure(bare) > 8.0, "the hardening lines are what makes it safe"


def test_the_service_treats_exit_75_as_success() -> None:
    service_text = (ROOT / "playlist-cron.service").read_text()
    assert re.search(r"^SuccessExitStatus=75$", service_text, re.M), "an outage (exit 75) is not a failed unit"
