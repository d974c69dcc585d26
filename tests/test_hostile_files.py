"""Files nobody else can turn against the user: a planted metrics link, odd files at the lock, a shared config."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import FlockHolder, Project, clean_env

VICTIM_TEXT = "root's own file: must never change\n"
NO_HANG_S = 30  # a refused lock answers in milliseconds; this only bounds a hang


# -- the metrics file -----------------------------------------------------------------------------------------------


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of the user running the check (root's, when the suite runs as root), that no one else may change."""
    path = tmp_path / "victim" / "important.conf"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    path.chmod(0o600)
    return path


def _assert_untouched(victim: Path) -> None:
    assert victim.read_text() == VICTIM_TEXT, "the planted link made the check overwrite another file"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600, f"its mode became {oct(victim.stat().st_mode)}"


def _check_with_pid_known_in_advance(project: Project, before_start: Callable[[int], None]) -> int:
    """Run `check` in a shell that says its pid, waits, then execs the command (keeping that pid); return the exit."""
    shell = subprocess.Popen(
        ["sh", "-c", 'echo $$; read go; exec "$@"', "sh", *project.command("check")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd="/",
    )
    assert shell.stdout is not None and shell.stdin is not None
    pid = int(shell.stdout.readline())
    before_start(pid)
    shell.stdin.write("go\n")
    shell.stdin.close()
    shell.wait(120)
    return shell.returncode


def test_a_link_planted_at_the_metrics_temporary_name_changes_nothing(
    project: Project, victim: Path, reliability: Callable[[str], None]
) -> None:
    textfile = project.root / "textfile"  # a collector folder others can write to, as /var/lib/node_exporter can be
    textfile.mkdir()
    textfile.chmod(0o1777)
    metrics_file = textfile / "playlist_cron.prom"
    project.write_config(metrics_file=str(metrics_file))
    planted: list[Path] = []

    def plant(pid: int) -> None:
        # The name the check would use with this pid, and those of the next pids too, in case it ever forks.
        for candidate in range(pid, pid + 64):
            link = textfile / f".{metrics_file.name}.{candidate}.tmp"
            link.symlink_to(victim)
            planted.append(link)

    code = _check_with_pid_known_in_advance(project, plant)
    assert code == 0
    _assert_untouched(victim)
    assert stat.S_ISREG(metrics_file.lstat().st_mode)
    families = {family.name for family in text_string_to_metric_families(metrics_file.read_text())}
    assert "playlist_cron_checks" in families, families
    assert all(link.is_symlink() and link.readlink() == victim for link in planted), "another user's files stay"
    left = sorted(path.name for path in textfile.iterdir() if path not in planted)
    assert left == [metrics_file.name], f"no temporary file left behind: {left}"
    reliability(
        f"metrics: {len(planted)} links planted at the temporary names the check's pid would give, in a 1777 "
        "textfile folder, pointing at a 0600 file -> the file kept its content and mode, the metrics file was written"
    )


def test_a_link_planted_at_the_metrics_file_is_replaced_not_followed(project: Project, victim: Path) -> None:
    metrics_file = project.root / "textfile" / "playlist_cron.prom"
    metrics_file.parent.mkdir()
    metrics_file.symlink_to(victim)
    project.write_config(metrics_file=str(metrics_file))
    assert project.run("check").returncode == 0
    _assert_untouched(victim)
    assert stat.S_ISREG(metrics_file.lstat().st_mode), "the link itself was replaced by the metrics file"


# -- odd files at the lock ------------------------------------------------------------------------------------------


def _fifo(path: Path) -> Callable[[], None]:
    os.mkfifo(path, 0o600)
    return lambda: None


def _socket(path: Path) -> Callable[[], None]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    return server.close


def _device(path: Path) -> Callable[[], None]:
    _needs_root("making a device node")
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # what /dev/null is
    return lambda: None


ODD_FILES: dict[str, Callable[[Path], Callable[[], None]]] = {
    "FIFO": _fifo,
    "socket": _socket,
    "character device": _device,
}


@pytest.fixture(params=sorted(ODD_FILES))
def odd_lock_file(request: pytest.FixtureRequest, project: Project) -> Iterator[str]:
    close = ODD_FILES[request.param](project.lock_file)
    try:
        yield request.param
    finally:
        close()


def test_a_fifo_socket_or_device_at_the_lock_is_refused_at_once(
    project: Project, odd_lock_file: str, reliability: Callable[[str], None]
) -> None:
    kind = stat.S_IFMT(project.lock_file.lstat().st_mode)
    lines = {}
    for arguments in (("check",), ("check", "--now"), ("status",), ("status", "--json")):
        try:
            result = project.run(*arguments, timeout=NO_HANG_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`{' '.join(arguments)}` hung on a {odd_lock_file} at the lock") from None
        name = " ".join(arguments)
        assert result.returncode == 78, f"`{name}`: exit {result.returncode}: {result.stderr!r}"
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith(f"playlist-cron: {project.config_path}: At 'archive_file': "), f"`{name}`: {line}"
        assert str(project.lock_file) in line and odd_lock_file in line, f"`{name}`: {line}"
        lines[name] = line
    assert stat.S_IFMT(project.lock_file.lstat().st_mode) == kind, "left as it was"
    assert project.feed.requests == []
    assert not project.state_file.exists(), "no check was counted"
    reliability(
        f"lock: a {odd_lock_file} at archive.txt.lock -> check, check --now, status, status --json each exit 78 at "
        f"once with one line ({lines['status'].split(': ', 2)[-1].replace(str(project.root), '...')})"
    )


def test_a_lock_file_swapped_for_a_fifo_during_a_check_does_not_hang_status(project: Project) -> None:
    with FlockHolder(project.lock_file):  # a check's lock, then someone replaces the file under it
        replacement = project.root / "fifo"
        os.mkfifo(replacement, 0o600)
        os.replace(replacement, project.lock_file)
        results = [project.run(*arguments, timeout=NO_HANG_S) for arguments in (("status",), ("check", "--now"))]
    assert [result.returncode for result in results] == [78, 78], [result.stderr for result in results]


def test_a_fifo_at_the_state_lock_is_a_config_error_naming_state_dir(project: Project) -> None:
    project.state_file.parent.mkdir()
    os.mkfifo(project.state_file.parent / (project.state_file.name + ".lock"), 0o600)
    result = project.run("check", timeout=NO_HANG_S)
    assert result.returncode == 78, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"playlist-cron: {project.config_path}: At 'state_dir': "), line
    assert "FIFO" in line, line


# -- a config others can write --------------------------------------------------------------------------------------


def _config_warnings(project: Project) -> list[dict[str, object]]:
    return project.events("config_file_writable")


def test_a_config_others_can_write_is_warned_about_once_on_stderr(
    project: Project, reliability: Callable[[str], None]
) -> None:
    project.config_path.chmod(0o666)
    first = project.run("check")
    assert first.returncode == 0, first.stderr
    [line] = first.stderr.splitlines()
    assert str(project.config_path) in line and "0666" in line and "chmod go-w" in line, line
    [warning] = _config_warnings(project)
    assert warning["level"] == "warning" and warning["mode"] == "0666", warning
    assert "chmod go-w" in str(warning["message"])

    again = project.run("check", "--now")
    assert (again.returncode, again.stderr) == (0, ""), "told once: no mail every minute"
    assert len(_config_warnings(project)) == 2, "the log says it at every check"

    with FlockHolder(project.lock_file):
        skipped = project.run("check", "--now")
    assert (skipped.returncode, skipped.stderr) == (0, "")
    assert len(_config_warnings(project)) == 2, "the skip path does not look at the config"

    project.config_path.chmod(0o644)
    fixed = project.run("check", "--now")
    assert (fixed.returncode, fixed.stderr) == (0, "")
    assert len(_config_warnings(project)) == 2

    project.config_path.chmod(0o646)
    regressed = project.run("check", "--now")
    assert regressed.returncode == 0
    [line] = regressed.stderr.splitlines()
    assert "0646" in line, "writable again after a fix: told again"
    reliability(
        "config writable by others (0666, then 0646 after a fix) -> config_file_writable warning at every check, "
        "one stderr line the first time and again after the fix was undone, none on the skip path"
    )


def _needs_root(what: str) -> None:
    if os.geteuid() != 0:
        reason = f"{what} needs root"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)


def test_a_config_its_group_can_write_is_warned_about_unless_the_group_is_the_owners_own(project: Project) -> None:
    _needs_root("giving a file to another group")
    project.config_path.chmod(0o664)
    os.chown(project.config_path, 0, 0)  # root's own group, no other member: nobody else can write
    own_group = project.run("check")
    assert (own_group.returncode, own_group.stderr) == (0, "")
    os.chown(project.config_path, 0, 65534)  # a group other users can be in
    shared_group = project.run("check", "--now")
    assert shared_group.returncode == 0
    [line] = shared_group.stderr.splitlines()
    assert "0664" in line and "chmod go-w" in line, line
    assert len(_config_warnings(project)) == 1


def test_a_config_owned_by_another_user_is_warned_about(project: Project) -> None:
    _needs_root("making a file owned by another user")
    os.chown(project.config_path, 65534, 65534)  # nobody: it can chmod the file, so it can write it
    project.config_path.chmod(0o644)
    result = project.run("check")
    assert result.returncode == 0
    [line] = result.stderr.splitlines()
    assert "65534" in line, line
    [warning] = _config_warnings(project)
    assert warning["owner_uid"] == 65534, warning


def test_a_config_only_its_owner_can_write_is_not_warned_about(project: Project) -> None:
    project.config_path.chmod(0o644)
    result = project.run("check")
    assert (result.returncode, result.stderr) == (0, "")
    assert _config_warnings(project) == []
