"""The persisted counters and state: versioned JSON, changed under its own short lock, replaced atomically."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playlist_cron import clock, lock, outage
from playlist_cron.errors import NotARegularFile, StateError

STATE_VERSION = 1
STATE_FILE_NAME = "state.json"
LOCK_WAIT_S = 10.0  # a state change takes milliseconds; waiting longer means something is wrong
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600

COUNTERS = (
    "checks_total",
    "skipped_total",
    "consecutive_skipped",
    "completed_total",
    "failed_total",
    "deferred_total",
    "downloaded_total",
)
MONOTONIC_COUNTERS = tuple(name for name in COUNTERS if name != "consecutive_skipped")


def empty() -> dict[str, Any]:
    """Return the state of a config that has never run a check."""
    return {
        "version": STATE_VERSION,
        **{name: 0 for name in COUNTERS},
        "last_check_at": None,  # when the last due check started (any outcome): the due clock
        "last_outcome": None,
        "last_outcome_check": None,  # the number of the check whose final event set last_outcome
        "last_duration_s": None,
        "last_completed_at": None,
        "last_failure_reason": None,
        "last_error": None,
        "cooldown_until": None,
        "cooldown_level": 0,
        "running": None,  # {"check", "pid", "started_at"} while a check holds the run lock
        "failed_videos": {},  # archive id -> {"video_id", "attempts", "next_retry_at", "given_up", "error", ...}
        **outage.NO_STREAK,  # a streak of network failures, while one lasts
    }


def validate(state: Any) -> list[str]:
    """Given a parsed state, return what is wrong with it (nothing when it is sound)."""
    if not isinstance(state, dict):
        return ["not a JSON object"]
    problems = []
    if state.get("version") != STATE_VERSION:
        problems.append(f"version {state.get('version')!r}, expected {STATE_VERSION}")
    for name in COUNTERS:
        value = state.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"{name} is {value!r}, expected a whole number >= 0")
    if not isinstance(state.get("failed_videos"), dict):
        problems.append("failed_videos is not an object")
    running = state.get("running")
    if running is not None and not (isinstance(running, dict) and isinstance(running.get("check"), int)):
        problems.append("running is not null or an object with a check number")
    problems += outage.validate(state)
    return problems


class StateStore:
    """The state file of one config's `state_dir`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE_NAME
        self.previous_path = state_dir / (STATE_FILE_NAME + ".prev")
        self.lock_path = state_dir / (STATE_FILE_NAME + ".lock")
        self.recovery_notes: list[str] = []  # what a read had to repair, for the caller to log
        self._file_is_sound = True  # whether the last read found state.json whole (else it is not kept as .prev)

    def ensure_directory(self) -> None:
        try:
            self.state_dir.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        except OSError as error:
            detail = f"cannot create the folder {self.state_dir}: {error.strerror}"
            raise StateError(f"playlist-cron: {detail}", detail=detail, unusable_folder=True) from None
        if not os.access(self.state_dir, os.W_OK | os.X_OK):
            detail = f"the folder {self.state_dir} is not writable"
            raise StateError(f"playlist-cron: {detail}", detail=detail, unusable_folder=True)

    def read(self) -> dict[str, Any]:
        """Return the current state (no lock needed: the file is only ever replaced whole)."""
        text = _read_text(self.path)
        self._file_is_sound = True
        if text is None:
            return empty()
        state, problems = _parse(text)
        if not problems:
            return state
        self._file_is_sound = False
        return self._recover(problems)

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Read the state under the state lock, let the caller change it, then write it back atomically."""
        self.ensure_directory()
        with _state_lock(self.lock_path) as held:
            if not held:
                raise StateError(
                    f"playlist-cron: the state lock {self.lock_path} was busy for {LOCK_WAIT_S:.0f} s; "
                    "is a process stuck?"
                )
            before = self.read()
            state = json.loads(json.dumps(before))
            yield state
            problems = validate(state)
            problems += [
                f"{name} would go down from {before[name]} to {state[name]}"
                for name in MONOTONIC_COUNTERS
                if state[name] < before[name]
            ]
            if problems:
                raise StateError(f"playlist-cron: refusing to write a bad state to {self.path}: " + "; ".join(problems))
            self._write(state)

    def _write(self, state: dict[str, Any]) -> None:
        data = json.dumps(state, indent=1, sort_keys=True).encode() + b"\n"
        temporary = self.state_dir / f".{STATE_FILE_NAME}.{os.getpid()}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            # Keep the last good state beside the new one: the way back if the file is ever damaged.
            if self._file_is_sound and _is_regular_file(self.path):
                previous_temporary = self.state_dir / f".{STATE_FILE_NAME}.{os.getpid()}.prev"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(previous_temporary)
                os.link(self.path, previous_temporary)
                os.replace(previous_temporary, self.previous_path)
            os.replace(temporary, self.path)
            _fsync_directory(self.state_dir)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise StateError(f"playlist-cron: cannot write the state file {self.path}: {error.strerror}") from None

    def _recover(self, problems: list[str]) -> dict[str, Any]:
        """The state file is damaged: keep a copy, fall back to the previous good state, say so."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = self.state_dir / f"{STATE_FILE_NAME}.damaged-{stamp}"
        with contextlib.suppress(OSError):
            if not kept.exists():
                os.link(self.path, kept)
        previous_text = _read_text(self.previous_path)
        previous, previous_problems = _parse(previous_text) if previous_text is not None else ({}, ["missing"])
        if previous_problems:
            raise StateError(
                f"playlist-cron: the state file {self.path} is damaged ({'; '.join(problems)}) and so is its previous "
                f"copy {self.previous_path}; a copy was kept at {kept}; fix or remove the file to go on"
            )
        self.recovery_notes.append(
            f"the state file {self.path} was damaged ({'; '.join(problems)}); a copy was kept at {kept} and the "
            f"previous good state ({previous['checks_total']} checks) was used"
        )
        return previous


@contextlib.contextmanager
def _state_lock(path: Path) -> Iterator[bool]:
    """Hold the state lock; a FIFO, socket or device at its place is the state folder's problem, a config error."""
    with contextlib.ExitStack() as stack:
        try:
            held = stack.enter_context(lock.hold(path, LOCK_WAIT_S))
        except NotARegularFile as error:
            raise StateError(f"playlist-cron: {error.detail}", detail=error.detail, unusable_folder=True) from None
        yield held


def _parse(text: str) -> tuple[dict[str, Any], list[str]]:
    try:
        state = json.loads(text)
    except ValueError as error:
        return {}, [f"invalid JSON: {error}"]
    problems = validate(state)
    if not problems:
        for key, value in empty().items():
            state.setdefault(key, value)
    return state, problems


def _read_text(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StateError(f"playlist-cron: refusing the state file {path}: it is a symbolic link") from None
        if error.errno in (errno.ENOTDIR, errno.EACCES):
            detail = f"cannot read {path}: {error.strerror}"
            raise StateError(f"playlist-cron: {detail}", detail=detail, unusable_folder=True) from None
        raise StateError(f"playlist-cron: cannot read the state file {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as file:
            return file.read().decode("utf-8", errors="replace")
    except OSError as error:
        raise StateError(f"playlist-cron: cannot read the state file {path}: {error.strerror}") from None


def _is_regular_file(path: Path) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_mode & 0o170000 == 0o100000
    except FileNotFoundError:
        return False


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_due(state: dict[str, Any], interval_s: int, now_s: float) -> tuple[bool, float]:
    """Given the state, the interval and now, return (due?, when the next check is due).

    A start up to a tenth of the interval (10 s at most) early still counts as due: cron starts jobs a little
    before or after the minute, and a check that started late must not push the next one a whole interval on.
    """
    last = clock.parse_iso(state.get("last_check_at"))
    if last is None or last > now_s + interval_s:  # never checked, or the clock was set back
        return True, now_s
    due_at = last + interval_s
    tolerance_s = min(interval_s * 0.1, 10.0)
    return now_s >= due_at - tolerance_s, due_at
