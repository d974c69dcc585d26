"""The run lock: an exclusive, non-blocking flock(2) on `<archive_file>.lock`, held for a whole check."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

import portalocker

from playlist_cron import clock
from playlist_cron.errors import NotARegularFile, StateError

if TYPE_CHECKING:
    from playlist_cron.records import HolderRecord

LOCK_FILE_MODE = 0o600
# /proc tells a process's start to the clock tick, counted from a boot time given in whole seconds.
PROCESS_START_SLACK_S = 2.0


class Holder(NamedTuple):
    """Who holds the run lock, as far as the lock file and the kernel tell."""

    pid: int | None
    started_at: float | None
    host: str | None = None  # the host, for a holder in a fleet (the database backend)

    def held_s(self, now_s: float) -> float | None:
        return None if self.started_at is None else round(max(0.0, now_s - self.started_at), 3)

    def as_dict(self, now_s: float) -> HolderRecord:
        return {"pid": self.pid, "started_at": clock.iso(self.started_at), "held_s": self.held_s(now_s)}


class HeldLock:
    """A run lock this process holds; the OS frees it when the process exits, however it exits."""

    def __init__(self, path: Path, file: BinaryIO, started_at: float) -> None:
        self.path = path
        self._file = file
        self.started_at = started_at

    def release(self) -> None:
        portalocker.unlock(self._file)
        self._file.close()


_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def _refuse_odd_file(path: Path, mode: int) -> None:
    """Raise NotARegularFile unless `mode` is a regular file's (or a link's: O_NOFOLLOW refuses those on its own)."""
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    raise NotARegularFile(
        str(path), f"the lock file {path} is {kind}, not a regular file; remove it (a check creates the lock file)"
    )


def _open_lock_file(path: Path) -> int:
    """Open (creating, mode 0600) the lock file without following a symlink and without truncating it.

    Raise NotARegularFile for a FIFO, socket or device there: opening a FIFO for reading waits for a writer
    forever, and opening a device can do things. It is looked at before opening, and what was opened is looked
    at again (O_NONBLOCK: a FIFO put there in between cannot make the open wait).
    """
    with contextlib.suppress(FileNotFoundError):
        _refuse_odd_file(path, os.lstat(path).st_mode)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, LOCK_FILE_MODE)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StateError(f"playlist-cron: refusing the lock file {path}: it is a symbolic link") from None
        with contextlib.suppress(OSError):
            _refuse_odd_file(path, os.lstat(path).st_mode)  # a socket put there in between: ENXIO
        raise StateError(f"playlist-cron: cannot open the lock file {path}: {error.strerror}") from None
    try:
        _refuse_odd_file(path, os.fstat(fd).st_mode)
    except NotARegularFile:
        os.close(fd)
        raise
    return fd  # O_NONBLOCK changes nothing for a regular file: flock(2) is asked not to wait anyway


def try_lock(path: Path) -> HeldLock | None:
    """Given the lock file's path, return a held lock, or None at once when another process holds it."""
    fd = _open_lock_file(path)
    file = os.fdopen(fd, "r+b", buffering=0)
    try:
        portalocker.lock(file, portalocker.LOCK_EX | portalocker.LOCK_NB)
    except portalocker.exceptions.LockException:
        file.close()
        return None
    started_at = clock.now_s()
    # Only the holder writes, and only after it holds the lock: a contender never truncates the file.
    record = json.dumps({"pid": os.getpid(), "started_at": clock.iso(started_at)}).encode() + b"\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, record, 0)
    return HeldLock(path, file, started_at)


@contextlib.contextmanager
def hold(path: Path, wait_s: float) -> Iterator[bool]:
    """Hold a short-lived exclusive lock on `path`, waiting up to `wait_s`; yield whether it was had."""
    fd = _open_lock_file(path)
    with os.fdopen(fd, "r+b", buffering=0) as file:
        deadline = time.monotonic() + wait_s
        pause_s = 0.0005
        while True:
            try:
                portalocker.lock(file, portalocker.LOCK_EX | portalocker.LOCK_NB)
                break
            except portalocker.exceptions.LockException:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, 0.01)
        try:
            yield True
        finally:
            portalocker.unlock(file)


def holder(path: Path) -> Holder | None:
    """Given the lock file's path, return who holds the lock, or None when nobody does.

    The file's own record (pid, start time) is believed only when the kernel says that process holds the lock
    (its /proc/PID/fdinfo, cheap); otherwise /proc/locks names the real holder, so a foreign `flock(1)` is seen
    for what it is. /proc/locks is the slow way: its first read in a process waits for an RCU grace period.
    """
    try:
        file_stat = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    _refuse_odd_file(path, file_stat.st_mode)
    recorded_pid, recorded_start = _read_record(path)
    wanted = _lock_id(file_stat.st_dev, file_stat.st_ino)
    if recorded_pid is not None and _process_holds(recorded_pid, wanted):
        return Holder(recorded_pid, recorded_start)
    kernel_pids = _kernel_holders(wanted)
    if kernel_pids is None:
        return _probe(path, recorded_pid, recorded_start)
    if not kernel_pids:
        return None
    if recorded_pid in kernel_pids:
        return Holder(recorded_pid, recorded_start)
    pid = kernel_pids[0]
    started = _process_start(pid)
    if started is None:
        # /proc/locks keeps naming the process that took the lock after it exited, while a child that inherited the
        # open file (`flock FILE command` killed, its command still running) holds on: find who holds it now.
        return _inheritor(wanted) or Holder(pid, None)
    return Holder(pid, started)


def _inheritor(wanted: str) -> Holder | None:
    """The longest-running live process whose open files carry the FLOCK `wanted`, or None where none is seen."""
    found: list[Holder] = []
    for name in os.listdir("/proc"):
        if name.isdigit() and _process_holds(int(name), wanted):
            found.append(Holder(int(name), _process_start(int(name))))
    started = [holder for holder in found if holder.started_at is not None]
    return min(started, key=lambda holder: holder.started_at or 0.0) if started else None


def _read_record(path: Path) -> tuple[int | None, float | None]:
    try:
        # O_NONBLOCK: should a FIFO have been put there since the caller looked, the open does not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None, None
    try:
        data = os.read(fd, 4096) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        data = b""
    finally:
        os.close(fd)
    try:
        record = json.loads(data)
        return int(record["pid"]), clock.parse_iso(record["started_at"])
    except (ValueError, KeyError, TypeError):
        return None, None


def _lock_id(device: int, inode: int) -> str:
    """The file as /proc names it in lock lines: major:minor:inode."""
    return f"{os.major(device):02x}:{os.minor(device):02x}:{inode}"


def runs_a_check(pid: int | None, started_at: float | None) -> bool:
    """Whether process `pid` still runs the check that a running record (its pid, its start) names.

    It must be alive, have started no later than `started_at` (not a later process given the same pid), and hold a
    flock: a check holds its run lock for its whole life, and a process killed but not yet reaped holds none. False
    where /proc cannot tell.
    """
    if pid is None or pid == os.getpid():
        return False
    process_start = _process_start(pid)
    if process_start is None:
        return False
    if started_at is not None and process_start > started_at + PROCESS_START_SLACK_S:
        return False
    return _process_holds(pid, None)


def _process_holds(pid: int, wanted: str | None) -> bool:
    """Whether one of the process's open files carries a FLOCK on the file `wanted`, or on any file when None (per
    /proc/PID/fdinfo)."""
    folder = f"/proc/{pid}/fdinfo"
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    for name in names:
        try:
            with open(f"{folder}/{name}", "rb") as fdinfo:
                text = fdinfo.read()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(b"lock:") and b" FLOCK " in line and (wanted is None or wanted.encode() in line.split()):
                return True
    return False


def _kernel_holders(wanted: str) -> list[int] | None:
    """Return the pids holding a FLOCK on this file per /proc/locks, or None when /proc/locks is missing."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.readlines()
    except OSError:
        return None
    pids = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; a blocked waiter's line reads "1: -> FLOCK ..."
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            try:
                pids.append(int(fields[4]))
            except ValueError:
                continue
    return pids


def _process_start(pid: int) -> float | None:
    """Return when a process started, in seconds since the epoch, from /proc (None where that is unknown)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat_file:
            stat_fields = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/stat", encoding="ascii") as system_stat:
            boot_s = next(int(line.split()[1]) for line in system_stat if line.startswith("btime "))
        return boot_s + int(stat_fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def _probe(path: Path, recorded_pid: int | None, recorded_start: float | None) -> Holder | None:
    """Where /proc/locks is missing, test the lock briefly (a check starting in that instant may skip)."""
    probe = try_lock(path)
    if probe is None:
        return Holder(recorded_pid, recorded_start)
    probe.release()
    return None
