"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary folder, pg_ctl on a free loopback port.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (Debian's package makes it) from
a folder under the system's temporary folder, which that user can reach (a checkout or pytest's `tmp_path` may sit in
folders only root can enter). As anybody else it runs as the current user. psycopg is imported only by the methods
that connect, so that loading this module costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

SUPERUSER = "playlist_cron"
# Where Debian's `postgresql-<major>` package puts the server programs (only its client wrappers are on PATH).
DEBIAN_BIN_DIRS = "/usr/lib/postgresql/*/bin"
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
# What a throwaway cluster does not need: surviving a crash of the machine (fsync, full pages), and much memory (four
# workers run one each). It does need to survive its own kill -9 with what it committed, which the operating system's
# cache keeps: synchronous_commit stays on (off, a commit returns before its WAL is written, and `kill()` loses it).
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "200",
    "log_min_messages": "warning",
}
START_ATTEMPTS = 5  # another process may take the free port between our probe and the server's bind


class PostgresUnavailable(Exception):
    """The server programs, or a user to run them as, are missing here: a reason to skip, not a failure."""


def find_bin_dir(search_path: str | None = None, debian_root: Path = Path("/usr/lib/postgresql")) -> Path:
    """Return the folder holding initdb, pg_ctl and postgres: the one on PATH (or `search_path`), else that of Debian's
    newest major version. Raise PostgresUnavailable when there is none.
    """
    initdb = shutil.which("initdb", path=search_path)
    candidates = [Path(os.path.realpath(initdb)).parent] if initdb else []
    debian = debian_root.glob("*/bin")
    candidates += sorted(debian, key=lambda path: _major_version(path.parent.name), reverse=True)
    for folder in candidates:
        if all(os.access(folder / program, os.X_OK) for program in SERVER_PROGRAMS):
            return folder
    raise PostgresUnavailable(
        f"the PostgreSQL server programs ({', '.join(SERVER_PROGRAMS)}) are neither on PATH nor in {DEBIAN_BIN_DIRS} "
        "(Debian: apt-get install postgresql; .ci/run installs it)"
    )


def _major_version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (-1,)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """A PostgreSQL cluster of its own, on 127.0.0.1, superuser `playlist_cron` trusted without a password.

    `with PostgresServer() as server:` starts it (initdb and start; about a second) and removes it after;
    `server.url("name")` is a database's URL, `server.create_database()` makes a fresh one and returns its URL.
    """

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self._run_as = _server_account()
        self.root = Path(tempfile.mkdtemp(prefix="playlist-cron-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_file = self.root / "server.log"
        self.port = 0
        if self._run_as is not None:
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
        self.socket_dir.mkdir()
        if self._run_as is not None:
            os.chown(self.socket_dir, self._run_as.pw_uid, self._run_as.pw_gid)

    # -- the cluster's life ---------------------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create the cluster (the first time) and start the server on a free port; return once it takes connections."""
        if not self.data_dir.exists():
            self._server_command(
                [
                    str(self.bin_dir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    SUPERUSER,
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",  # a throwaway cluster: no need to wait for the disk
                ]
            )
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            started = self._pg_ctl("start", "--wait", "--timeout", "60", "--log", str(self.log_file), check=False)
            if started.returncode == 0:
                return self
            in_use = "could not bind" in self._log_text() or "Address already in use" in self._log_text()
            if not in_use or attempt == START_ATTEMPTS:
                raise RuntimeError(f"pg_ctl start failed (exit {started.returncode}):\n{self._diagnostics(started)}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server (its clients are disconnected); the cluster stays, for `start` or `restart`."""
        pid = self._postmaster_pid()
        if pid is not None:
            processes = [pid, *_children(pid)]
            self._pg_ctl("stop", "--wait", "--mode", "fast", "--timeout", "60")
            self._wait_until_gone(processes)

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, as a crash of the database's host would: every connection drops
        at once, with nothing said to the client (a backend left alone would see the postmaster gone and say so)."""
        pid = self._postmaster_pid()
        assert pid is not None, "the server is not running"
        os.kill(pid, signal.SIGSTOP)  # so that it neither starts a backend while we list them nor sees them die
        backends = _children(pid)
        for backend in backends:  # before the postmaster: a backend that saw it die would tell its client so
            with contextlib.suppress(ProcessLookupError):
                os.kill(backend, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        self._wait_until_gone([pid, *backends])

    def restart(self) -> None:
        """Start again after `stop` or `kill` (or stop and start a running server), on the same port.

        After `kill`, the server recovers from its write-ahead log: what was committed is there.
        """
        if self._postmaster_pid() is not None:
            self.stop()
        self._remove_stale_lock_files()
        started = self._pg_ctl("start", "--wait", "--timeout", "60", "--log", str(self.log_file), check=False)
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed (exit {started.returncode}):\n{self._diagnostics(started)}")

    def remove(self) -> None:
        """Stop the server and delete the cluster."""
        try:
            if self.data_dir.exists():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    @property
    def running(self) -> bool:
        return self._postmaster_pid() is not None

    # -- databases and SQL ----------------------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """The URL of the `postgres` database, where the superuser runs what concerns the whole server."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, parameters: Any = None, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser, in autocommit; return its rows (none for a statement without)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=10) as connection:
            cursor = connection.execute(sql, parameters)
            return cursor.fetchall() if cursor.description is not None else []

    def create_database(self, name: str | None = None) -> str:
        """Create a database (named at random unless `name` is given) and return its URL."""
        from psycopg import sql

        name = name or f"test_{secrets.token_hex(6)}"
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string())
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        from psycopg import sql

        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)).as_string())

    def databases(self) -> set[str]:
        return {row[0] for row in self.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")}

    # -- underneath -----------------------------------------------------------------------------------------------

    def _pg_ctl(self, action: str, *options: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        settings = " ".join(f"-c {key}={value}" for key, value in SERVER_SETTINGS.items())
        server_options = f"-p {self.port} -k {self.socket_dir} {settings}"
        return self._server_command(
            [str(self.bin_dir / "pg_ctl"), action, "--pgdata", str(self.data_dir), "-o", server_options, *options],
            check=check,
        )

    def _server_command(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run initdb or pg_ctl as the server's account, in the cluster's folder (the caller's may be closed to it)."""
        account: dict[str, Any] = {}
        if self._run_as is not None:
            account = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}
        environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        if self._run_as is not None:
            environment.update(HOME=self._run_as.pw_dir, USER=self._run_as.pw_name, LOGNAME=self._run_as.pw_name)
        result = subprocess.run(
            argv,
            cwd=self.root,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            **account,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed (exit {result.returncode}):\n{self._diagnostics(result)}")
        return result

    def _postmaster_pid(self) -> int | None:
        """The running postmaster's pid from its lock file, or None when it is not running."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _wait_until_gone(self, processes: list[int]) -> None:
        """Return once none of the server's `processes` is left: a new postmaster refuses to start while its
        predecessor's backends still hold the shared memory."""
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in processes):
            assert time.monotonic() < deadline, f"the server's processes outlived 60 s: {self._log_text()[-2000:]}"
            time.sleep(0.01)  # the poll interval

    def _remove_stale_lock_files(self) -> None:
        """Remove the lock files a killed postmaster leaves: if a zombie of it is never reaped (a container whose
        init does not reap), its pid still answers kill(pid, 0) and the new postmaster would refuse to start."""
        for lock_file in (self.data_dir / "postmaster.pid", *self.socket_dir.glob(".s.PGSQL.*.lock")):
            with contextlib.suppress(FileNotFoundError):
                lock_file.unlink()

    def _log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _diagnostics(self, result: subprocess.CompletedProcess[str]) -> str:
        return f"{result.stdout}{result.stderr}\n--- server log ---\n{self._log_text()[-4000:]}"


def _server_account() -> pwd.struct_passwd | None:
    """The account to run the server as: `postgres` when we are root (PostgreSQL refuses root), else None (us)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root, and PostgreSQL refuses to: it needs a `postgres` user to run the test server as "
            "(Debian's postgresql package creates it)"
        ) from None


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not: it answers kill(pid, 0), yet holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(parent: int) -> list[int]:
    """The live processes whose parent is `parent` (each backend of a postmaster leads a session of its own, so its
    process group does not find them)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        if fields[0] != "Z" and int(fields[1]) == parent:
            children.append(int(entry.name))
    return children
