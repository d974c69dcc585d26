"""Shared fixtures: the loopback feed server, a config in a temporary folder, and the installed command."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import structlog

from playlist_cron import cli
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items
from postgres_server import PostgresServer, PostgresUnavailable
from youtube_stand_in import YouTubeStandIn

BIN_DIR = Path(sys.executable).parent
COMMAND = str(BIN_DIR / "playlist-cron")


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    """Three 200 kB videos on 127.0.0.1, unthrottled."""
    with FeedServer(make_items(3)) as server:
        yield server


@pytest.fixture
def youtube() -> Iterator[YouTubeStandIn]:
    """A stand-in for www.youtube.com behind an HTTP proxy on 127.0.0.1 (`youtube.yt_dlp_args()`); skipped, saying
    why, when the openssl command cannot make its certificate."""
    with YouTubeStandIn() as stand_in:
        yield stand_in


def skip_or_fail(reason: str, in_ci: str) -> NoReturn:
    """Skip the test, printing `reason`; but fail it in CI (`CI` set), saying `in_ci` (what CI must run): a skip in
    CI's output would hide a program or package it forgot to install."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; {in_ci}", pytrace=False)
    print(f"SKIPPED: {reason}")
    pytest.skip(reason)


def unstarted_postgres_server() -> PostgresServer:
    """A `PostgresServer` to start; skips the test, saying why, where the server programs are missing, but fails it in
    CI (`CI` set): CI must run the PostgreSQL tests."""
    try:
        return PostgresServer()
    except PostgresUnavailable as unavailable:
        skip_or_fail(f"no PostgreSQL to test against: {unavailable}", "CI must run the PostgreSQL tests")


def required_program(name: str, purpose: str) -> str:
    """The path of the program `name`; skips the test, saying why (`purpose`: what goes unproven without it), where it
    is missing, but fails it in CI (`CI` set): CI must run every test."""
    program = shutil.which(name)
    if program is None:
        skip_or_fail(f"{name} is not installed: {purpose}", "CI must run this test")
    return program


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this pytest-xdist worker's own, started on first use (see tests/postgres_server.py),
    skipped where the server programs are missing (never in CI). Tests that stop or kill a server take
    `own_postgres_server` instead."""
    with unstarted_postgres_server() as server:
        yield server


@pytest.fixture
def own_postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (about a second to start), for a test that stops or kills it."""
    with unstarted_postgres_server() as server:
        yield server


@pytest.fixture
def database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database of this test's own on the worker's server, dropped after the test."""
    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    name = f"test_{name}_{os.urandom(4).hex()}"
    url = postgres_server.create_database(name)
    yield url
    if not postgres_server.running:  # a test stopped it: the next test needs it
        postgres_server.restart()
    postgres_server.drop_database(name)


class Project:
    """A config folder as a user would have it, and ways to run the installed command against it."""

    def __init__(self, root: Path, feed: FeedServer) -> None:
        self.root = root
        self.feed = feed
        self.config_path = root / "config.json"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "downloader.log"

    @property
    def archive_file(self) -> Path:
        return self.root / "archive.txt"

    @property
    def lock_file(self) -> Path:
        return self.root / "archive.txt.lock"

    @property
    def state_file(self) -> Path:
        return self.root / "state" / "config.state.json"

    @property
    def download_dir(self) -> Path:
        return self.root / "downloads"

    def write_config(self, **overrides: Any) -> Path:
        values: dict[str, Any] = {"playlist_url": self.feed.feed_url, "min_free_bytes": 0}
        values.update(overrides)
        for key in [key for key, value in values.items() if value is None]:
            del values[key]
        self.config_path.write_text(json.dumps(values, indent=2))
        return self.config_path

    def command(self, *arguments: str, config: bool = True) -> list[str]:
        extra = ["--config", str(self.config_path)] if config and arguments[0] not in ("demo",) else []
        return [COMMAND, *arguments, *extra]

    def run(self, *arguments: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run the installed command as cron would: no terminal, no stdin, started in another folder."""
        kwargs.setdefault("cwd", "/")
        return subprocess.run(
            self.command(*arguments),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
            **kwargs,
        )

    def run_here(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run the command in this process through `cli.main`, as `run` would in a new one: same code, no start-up.

        For logic that needs no process of its own (no lock held across processes, no signal, no kill): stdout and
        stderr are captured as `run` captures them (not terminals, so the check is as silent as under cron), and
        `in_process` puts back what a check changes in its process (signal handlers, logging, cwd, environment).
        """
        command = self.command(*arguments)[1:]
        stdout, stderr = io.StringIO(), io.StringIO()
        with in_process(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(command)
        return subprocess.CompletedProcess([COMMAND, *command], code, stdout.getvalue(), stderr.getvalue())

    def start(self, *arguments: str, **kwargs: Any) -> subprocess.Popen[str]:
        kwargs.setdefault("cwd", "/")
        return subprocess.Popen(
            self.command(*arguments),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
            **kwargs,
        )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return read_events(self.log_file, name)

    def status(self) -> dict[str, Any]:
        result = self.run_here("status", "--json")
        assert result.returncode in (0, 1), result.stderr
        status: dict[str, Any] = json.loads(result.stdout)
        return status

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state_file.read_text())
        return state

    @property
    def reads_file(self) -> Path:
        return self.root / "state" / "config.reads.json"

    def reads(self) -> dict[str, Any]:
        """Each playlist's read record, by its key, as the last check wrote them."""
        records: dict[str, Any] = json.loads(self.reads_file.read_text())["playlists"]
        return records

    def write_reads(self, records: dict[str, Any]) -> None:
        self.reads_file.write_text(json.dumps({"version": 1, "playlists": records}))

    def archive_lines(self) -> list[str]:
        return self.archive_file.read_text().splitlines() if self.archive_file.exists() else []

    def downloaded_files(self) -> list[Path]:
        """The files in the download folder but its lock (`.playlist-cron.lock`)."""
        return sorted(
            path for path in self.download_dir.rglob("*") if path.is_file() and path.name != ".playlist-cron.lock"
        )

    def only_item(self, size_bytes: int) -> FeedItem:
        """Leave one video of `size_bytes` in the feed, and return it."""
        item = self.feed.settings.items[0]
        item.size_bytes = size_bytes
        self.feed.settings.items = [item]
        return item

    def assert_next_check_resumes(self, item: FeedItem) -> None:
        """The next check, unthrottled, resumes `item` where it stopped (a Range request answered 206): whole file."""
        self.feed.settings.bytes_per_second = None
        self.feed.requests.clear()
        result = self.run("check", "--now")
        assert result.returncode == 0, result.stderr
        media = self.feed.requests_for("/media/")
        resumed = [r for r in media if r.status == 206 and re.fullmatch(r"bytes=[1-9]\d*-\d*", r.range_header or "")]
        assert resumed, [(r.range_header, r.status) for r in media]
        assert self.file_for(item.guid).read_bytes() == item.content

    def file_for(self, guid: str) -> Path:
        matches = [path for path in self.downloaded_files() if f"[{guid}]" in path.name and path.suffix == ".mp4"]
        assert len(matches) == 1, f"expected one file for {guid}, found {matches}"
        return matches[0]


class FlockHolder:
    """`flock -n FILE sleep N`, the way a user's own cron wrapper would hold our lock."""

    def __init__(self, path: Path, seconds: int = 120) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # It says "locked" once it holds the lock: probing with a second flock(1) would race with it.
        self.process = subprocess.Popen(
            ["flock", "-n", str(path), "sh", "-c", f"echo locked; exec sleep {seconds}"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.path = path
        said = self.process.stdout.readline()  # type: ignore[union-attr]
        assert said == "locked\n", f"flock(1) could not take {path}: exit {self.process.wait()}"
        self.locked_at_s = time.monotonic()  # at the latest: it said "locked" after taking the lock
        # The file it locked, held open: `release` asks this one, even if a test has put something else at `path`.
        self.locked_file = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_held_longer_than(self, seconds: float) -> None:
        """Return once the lock has been held more than `seconds` (a test of max_runtime_seconds needs that age)."""
        wait_for(lambda: time.monotonic() - self.locked_at_s > seconds, timeout=seconds + 5, what=f"{seconds} s held")

    def release(self) -> None:
        """Kill flock(1) and its `sleep`, and return once the lock is free again.

        The `sleep` child holds the lock too (it inherited the descriptor); waiting for flock(1) alone returned
        while the child, killed but not yet gone, still held it.
        """
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.locked_file < 0:
            return
        deadline = time.monotonic() + 30
        while True:
            try:
                fcntl.flock(self.locked_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{self.path} still locked 30 s after its flock(1) holder died"
                time.sleep(0.01)  # the poll interval
        os.close(self.locked_file)  # closing also drops the probe's own lock
        self.locked_file = -1

    def __enter__(self) -> FlockHolder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def flock_busy(path: Path) -> bool:
    """Whether `flock -n FILE true` fails, i.e. somebody holds the lock."""
    return subprocess.run(["flock", "-n", str(path), "true"]).returncode != 0


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLAYLIST_CRON")}
    env.update(extra)
    return env


# yt-dlp's last release for Python 3.10 warns, with each client it makes, that this Python is deprecated. The check
# logs it as `yt_dlp_warning`, as it logs every warning of yt-dlp's, but no test is about it: the events a test
# expects of a check are the same on every Python.
YT_DLP_PYTHON_NOTICE = "Deprecated Feature: Support for Python version "


def yt_dlp_python_notice(event: dict[str, Any]) -> bool:
    """Whether a logged `event` is yt-dlp's notice that this Python is deprecated."""
    return event.get("event") == "yt_dlp_warning" and str(event.get("message")).startswith(YT_DLP_PYTHON_NOTICE)


def read_events(log_file: Path, name: str | None = None) -> list[dict[str, Any]]:
    """The events of `log_file` (all, or those named `name`), without yt-dlp's notice that this Python is deprecated."""
    if not log_file.exists():
        return []
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    return [event for event in events if (name is None or event["event"] == name) and not yt_dlp_python_notice(event)]


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)  # the poll interval
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


SIGNALS_A_CHECK_HANDLES = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGPIPE)


@contextlib.contextmanager
def in_process() -> Iterator[None]:
    """Run a command in this process, then put back what a process of its own would have taken with it.

    A check installs signal handlers, starts a watchdog thread (and ping threads), points structlog at its log file
    and leaves that file open, as a process that is about to exit may. Threads must end by themselves: one left
    running would act on the next test, so that fails the test.
    """
    handlers = {number: signal.getsignal(number) for number in SIGNALS_A_CHECK_HANDLES}
    threads = set(threading.enumerate())
    cwd, environment = os.getcwd(), dict(os.environ)
    structlog_config = structlog.get_config()
    open_before = set(os.listdir("/proc/self/fd"))
    for name in [name for name in os.environ if name.startswith("PLAYLIST_CRON")]:
        del os.environ[name]  # as clean_env does for a process
    os.chdir("/")  # as `run` starts the command in another folder
    try:
        yield
    finally:
        # The sockets the command left to the garbage collector, which its own process would close by exiting: with
        # requests installed, yt-dlp's connections are urllib3's, whose pools keep an idle keep-alive connection open
        # until collected, and the loopback feed server's thread that serves it waits on it.
        gc.collect()
        left = [thread for thread in threading.enumerate() if thread not in threads]
        for thread in left:
            thread.join(30)  # a ping gives up after 5 s; the watchdog stops when the check ends
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environment)
        structlog.configure(**structlog_config)
        for number, handler in handlers.items():
            signal.signal(number, handler)
        for name in set(os.listdir("/proc/self/fd")) - open_before:
            with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
                if os.readlink(f"/proc/self/fd/{name}").startswith("/"):  # a file (not a socket or pipe)
                    os.close(int(name))  # the log file, which the command's process would close by exiting
    running = [thread.name for thread in left if thread.is_alive()]
    assert not running, f"threads the command left running: {running}"


@pytest.fixture
def project(tmp_path: Path, feed: FeedServer) -> Project:
    project = Project(tmp_path / "project", feed)
    project.root.mkdir()
    project.write_config()
    return project


RELIABILITY_FILE = pytest.StashKey[str]()


# Modules whose tests share an expensive module-scoped fixture (the jq recipes; the sdist and wheel, built in the
# checkout, where two builds at once would collide; the container image): one worker runs each, so it is made once.
ONE_WORKER_MODULES = frozenset({"tests/test_jq_recipes.py", "tests/test_packaging.py", "tests/test_image.py"})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: Any, log: Any) -> Any:
    """Hand tests out one by one, but each of ONE_WORKER_MODULES whole (what `--dist loadgroup` would do, but its
    xdist_group marks are lost under pytest 9, which no longer reads the node id xdist rewrites)."""
    from xdist.scheduler import LoadScopeScheduling

    class OneByOne(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    return OneByOne(config, log)


def pytest_report_header(config: Any) -> str:
    """Say which playlist-cron the run tests: nox's installed wheel, or the checkout (editable or PYTHONPATH)."""
    import playlist_cron

    dist = os.environ.get("PLAYLIST_CRON_TEST_DIST")
    source = f"the wheel in {dist}" if dist else "not under nox"
    return f"playlist-cron {playlist_cron.__version__} from {Path(playlist_cron.__file__).parent} ({source})"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slow tests first: each takes a pytest-xdist worker of its own from the start (the cron test waits
    minutes), while the other workers share the many short tests; started last, one would end the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # a stable sort: the order is otherwise kept


# nox's `notify` session installs Apprise (the `notify` extra) and runs the tests marked `notify`; the suite's
# sessions leave it out (it brings requests) and run the test of a config that names notify_urls without it.
NOTIFY_SESSION_VARIABLE = "PLAYLIST_CRON_TEST_NOTIFY"


def apprise_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("apprise") is not None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked `notify` where Apprise is not installed (but fail it in the notify session, which installed
    it), and one marked `without_apprise` where it is."""
    if item.get_closest_marker("notify") is not None and not apprise_installed():
        reason = "Apprise is not installed here (the `notify` extra): `nox -s notify` runs the tests marked notify"
        if os.environ.get(NOTIFY_SESSION_VARIABLE):
            pytest.fail(f"{reason}, yet this is that session", pytrace=False)
        pytest.skip(reason)
    if item.get_closest_marker("without_apprise") is not None and apprise_installed():
        pytest.skip("Apprise is installed here: the suite's sessions, which leave it out, run this test")


def pytest_configure(config: Any) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller named the file
        config.stash[RELIABILITY_FILE] = config.workerinput["reliability_file"]
        return
    handle, path = tempfile.mkstemp(prefix="playlist-cron-reliability-", suffix=".txt")
    os.close(handle)
    config.stash[RELIABILITY_FILE] = path


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each pytest-xdist worker where the summary lines go."""
    node.workerinput["reliability_file"] = node.config.stash[RELIABILITY_FILE]


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record one line for the end-of-run "Reliability" summary (what was tried, and what happened)."""
    path = request.config.stash[RELIABILITY_FILE]

    def record(line: str) -> None:
        with open(path, "a") as summary:
            summary.write(line.replace("\n", " ") + "\n")

    return record


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    if hasattr(config, "workerinput"):  # only the controller prints (and removes) the summary
        return
    path = config.stash.get(RELIABILITY_FILE, None)
    if not path or not os.path.exists(path):
        return
    with open(path) as summary:
        lines = sorted(summary.read().splitlines())
    os.unlink(path)
    if lines:
        terminalreporter.section("Reliability")
        for line in lines:
            terminalreporter.write_line(line)


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of `size` of our own (mounting needs root with CAP_SYS_ADMIN; else the test is skipped)."""
    if os.geteuid() != 0:
        reason = "mounting a tmpfs needs root"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    mount_point = Path(tempfile.mkdtemp(prefix="playlist-cron-log-fs-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        mount_point.rmdir()
        reason = f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'})"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


def run_on_terminal(argv: list[str], *, stdin_is_terminal: bool = False, timeout_s: float = 60) -> tuple[int, str]:
    """Run a command with stdout and stderr on a pseudo-terminal, as a person at a shell; return (exit, output)."""
    import pty
    import select

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        argv,
        stdin=terminal if stdin_is_terminal else subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env=clean_env(TERM="xterm"),
        cwd="/",
    )
    os.close(terminal)
    output = b""
    while select.select([controller], [], [], timeout_s)[0]:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the command has exited
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return process.wait(timeout_s), output.decode()
