"""The event log: structlog writing one JSON object per line, each line in a single write(2)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import sys
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, BinaryIO, cast

import structlog

from playlist_cron import atomic
from playlist_cron.errors import ConfigError
from playlist_cron.redaction import redact as redact  # the names callers of this module know
from playlist_cron.redaction import redact_value as redact_value

# The events users' scripts read; see the contract.
CHECK_STARTED = "check_started"
CHECK_SKIPPED = "check_skipped"
CHECK_DEFERRED = "check_deferred"
CHECK_COMPLETED = "check_completed"
CHECK_FAILED = "check_failed"
VIDEO_DOWNLOADED = "video_downloaded"
VIDEO_FAILED = "video_failed"
VIDEO_GIVEN_UP = "video_given_up"
FINAL_EVENTS = (CHECK_SKIPPED, CHECK_DEFERRED, CHECK_COMPLETED, CHECK_FAILED)

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
_FIRST_KEYS = ("timestamp", "level", "event", "check", "outcome")


def _redact_secrets(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """No password in a URL, and no token in a query string, ever reaches the log."""
    for key, value in event_dict.items():
        event_dict[key] = redact_value(value)
    return event_dict


def _in_reading_order(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """Put timestamp, level, event and check first, so a person reading the raw log sees them first."""
    ordered = {key: event_dict.pop(key) for key in _FIRST_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _dumps(event_dict: dict[str, Any], **kwargs: Any) -> bytes:
    return json.dumps(event_dict, ensure_ascii=False, default=str, separators=(",", ":")).encode("utf-8")


# The open() errors that say the log_file setting itself is wrong (a file where a folder should be, a folder or a
# link where the file should be): a config error. Any other (read-only, full, no permission) only costs the log.
_PATH_ERRORS = frozenset({errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG})


def describe(error: OSError) -> str:
    """Given an OSError, return why in words from its errno (`No space left on device (ENOSPC)`), never its text."""
    if error.errno is None:
        return type(error).__name__
    return f"{os.strerror(error.errno)} ({errno.errorcode.get(error.errno, error.errno)})"


class LogFile:
    """The log's file (or stdout: `path` None): one write(2) per line, and a line it cannot write is counted, never
    raised.

    A full or read-only log, or a stdout whose reader has gone (EPIPE), must not stop a check: the check still
    downloads or skips, `alert` tells a person once per process (one check) why the log is unwritable, and the caller
    counts `lost_lines` in the state.
    """

    def __init__(
        self, path: Path | None, fd: int | None, open_error: OSError | None, alert: Callable[[str], None]
    ) -> None:
        self.path = path
        self.name = "stdout" if path is None else str(path)
        self._fd = fd
        self._alert = alert
        self.error: OSError | None = open_error
        self.before_line: Callable[[], None] | None = None  # a stdout log: end the terminal's progress line first
        # A blocking pipe or socket (stdout) can hold a write for ever: it is waited for until `wait_until()` (a
        # time.monotonic() instant, None: for ever), then the line is lost and `on_blocked` told.
        self.waits = fd is not None and path is None and _may_block(fd)
        self.wait_until: Callable[[], float] | None = None
        self.on_blocked: Callable[[], None] | None = None
        self.lost_lines = 0
        self._counted_lines = 0
        self._line_open = False  # this process cut its last line short: what a log it cannot read back tells it

    def write(self, line: bytes) -> int:
        if self.before_line is not None:
            with contextlib.suppress(OSError, ValueError):  # a closed stderr costs the terminal's tidiness only
                self.before_line()
        if self._fd is None:
            self._lost(line, self.error or OSError(errno.EBADF, os.strerror(errno.EBADF)))
            return 0
        if self.waits:
            return self._append_waiting(self._fd, line)
        turn_taken = self.path is not None and _take_turn(self._fd)
        try:
            return self._append(self._fd, line)
        finally:
            if turn_taken:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _append(self, fd: int, line: bytes) -> int:
        # A line cut short by a full disk (ours or another process's) leaves the log without a final line break:
        # the next line then starts with one, so that it is not glued to the fragment and stays one JSON object.
        ends_mid_line = _ends_mid_line(fd)
        data = b"\n" + line if (self._line_open if ends_mid_line is None else ends_mid_line) else line
        try:
            written = os.write(fd, data)
        except OSError as error:
            self._lost(line, error)
            return 0
        if written < len(data):  # a full disk took part of the line: the rest either fits now or says why not
            try:
                atomic.write_all(fd, data[written:])
            except OSError as error:
                self._line_open = True
                self._lost(line, error)
                return written
        self._line_open = False
        return len(data)

    def _append_waiting(self, fd: int, line: bytes) -> int:
        """Write to a pipe or socket that blocks, PIPE_BUF bytes at a time, each only once poll(2) says it fits,
        waiting no longer than `wait_until`; a line that does not go out is lost (EAGAIN), and the rest of a line
        cut short is not sent (the next line starts with a line break)."""
        data = b"\n" + line if self._line_open else line
        written = 0
        try:
            while written < len(data):
                if not self._wait_writable(fd):
                    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
                written += os.write(fd, data[written : written + PIPE_BUF_BYTES])
        except OSError as error:
            self._line_open = self._line_open if written == 0 else True
            self._lost(line, error)
            if error.errno == errno.EAGAIN and self.on_blocked is not None:
                self.on_blocked()
            return written
        except BaseException:  # the watchdog's, raised in the main thread while it waited: the line is lost too
            self._line_open = self._line_open if written == 0 else True
            self.lost_lines += 1
            self.error = OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            raise
        self._line_open = False
        return written

    def _wait_writable(self, fd: int) -> bool:
        """Wait until `fd` takes PIPE_BUF bytes without blocking (or says it never will: an error); False when
        `wait_until` came first."""
        import select  # only a log on a blocking pipe or socket gets here: not the skip path's usual cost

        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        while True:
            deadline = self.wait_until() if self.wait_until is not None else None
            wait_s = WAIT_TICK_S if deadline is None else min(WAIT_TICK_S, deadline - time.monotonic())
            if poller.poll(max(0.0, wait_s) * 1000):
                return True
            if wait_s <= 0:
                return False

    @property
    def uncounted_lines(self) -> int:
        return self.lost_lines - self._counted_lines

    def take_uncounted(self) -> int:
        """Return how many lines were lost since the last call, for the caller to count once."""
        uncounted = self.lost_lines - self._counted_lines
        self._counted_lines = self.lost_lines
        return uncounted

    def flush(self) -> None:
        """Nothing to flush: every line went out in its own write(2)."""

    def _lost(self, line: bytes, error: OSError) -> None:
        self.lost_lines += 1
        self.error = error
        if self.lost_lines > 1:
            return
        try:
            event = json.loads(line)
            what = f"the event {event['event']}" + (f" of check #{event['check']}" if "check" in event else "")
        except (ValueError, KeyError, TypeError):
            what = "an event"
        with contextlib.suppress(OSError):  # a closed stderr must not turn a lost log line into a failed check
            self._alert(
                f"playlist-cron: the log {self.name} is unwritable ({describe(error)}): {what} was not recorded; "
                "the check goes on, and `playlist-cron status` counts the lines the log missed "
                "(log_write_failures_total)"
            )


# A log that ends mid-line holds a line cut short, or one another check is writing at that instant: a write(2) that
# spans pages is seen half done. The writers of a log file take turns, each holding its flock(2) for one line, so
# only a line cut short is seen. One that cannot have its turn within LOG_TURN_WAIT_S (a holder stopped mid-line)
# writes anyway: the log must never stop a check.
LOG_TURN_WAIT_S = 1.0


# A write of at most PIPE_BUF bytes to a pipe that poll(2) says is writable does not block (POSIX); how often a write
# that waits looks at its deadline again.
PIPE_BUF_BYTES = 4096
WAIT_TICK_S = 0.1


def _may_block(fd: int) -> bool:
    """Whether writes to `fd` can wait for a reader for ever: a pipe or a socket, opened blocking."""
    try:
        mode = os.fstat(fd).st_mode
        return (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) and os.get_blocking(fd)
    except OSError:
        return False


def _take_turn(fd: int) -> bool:
    """Given the log's descriptor, wait for its flock(2); return whether it is held (False: write without it)."""
    deadline = time.monotonic() + LOG_TURN_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)  # a turn lasts one write(2)
        except OSError:  # a filesystem without locks (ENOLCK)
            return False


def _ends_mid_line(fd: int) -> bool | None:
    """Whether the file ends without a line break; None where it cannot be read (opened write-only)."""
    try:
        size = os.fstat(fd).st_size
        return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
    except OSError:
        return None


def _open_for_appending(log_file: Path) -> int:
    flags = os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        # Read and write: the last byte says whether a line was cut short (O_APPEND still puts every write at the end).
        return os.open(log_file, os.O_RDWR | flags, FILE_MODE)
    except PermissionError:  # a log we may append to but not read: write-only does
        return os.open(log_file, os.O_WRONLY | flags, FILE_MODE)


def open_log_file(log_file: Path | None, config_path: Path, alert: Callable[[str], None]) -> LogFile:
    """Open the log for appending, creating it 0600 (and its folder 0700); None is stdout.

    Raise ConfigError when `log_file` names no place a file can be (a file in the way of its folder, a folder or a
    link at its name); any other failure gives a LogFile that counts every line as lost.
    """
    if log_file is None:
        return _open_stdout(alert)
    try:
        log_file.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        fd = _open_for_appending(log_file)
    except OSError as error:
        if error.errno in _PATH_ERRORS:
            raise ConfigError(
                str(config_path), [f"At 'log_file': cannot open {log_file} for writing: {error.strerror}"]
            ) from None
        return LogFile(log_file, None, error, alert)
    return LogFile(log_file, fd, None, alert)


def _open_stdout(alert: Callable[[str], None]) -> LogFile:
    """The log on stdout, through a descriptor of its own (a copy of 1), written as a file is: a line per write(2).

    Started with stdout closed, Python leaves `sys.stdout` None, and descriptor 1 may since have been given to a file
    this process opened (the state's lock, say): then no line may go to descriptor 1, and every one is lost.
    """
    try:
        if sys.stdout is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        fd = os.dup(sys.stdout.fileno())  # not inherited: yt-dlp's ffmpeg gets descriptor 1 alone
    except (OSError, ValueError) as error:  # ValueError: a stdout without a descriptor (io.UnsupportedOperation)
        if not isinstance(error, OSError) or error.errno is None:
            error = OSError(errno.EBADF, os.strerror(errno.EBADF))
        return LogFile(None, None, error, alert)
    return LogFile(None, fd, None, alert)


def configure(log_file: LogFile) -> structlog.typing.FilteringBoundLogger:
    """Send every event of this process to `log_file`, and return the logger to use."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            _redact_secrets,
            _in_reading_order,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(file=cast(BinaryIO, log_file)),
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=False,
    )
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger()
    return logger


def logger() -> structlog.typing.FilteringBoundLogger:
    """Return a logger that writes to the log `configure` was last given (after a check, for what follows it)."""
    found: structlog.typing.FilteringBoundLogger = structlog.get_logger()
    return found


def read_tail(log_file: Path | None, max_bytes: int = 256 * 1024) -> list[dict[str, Any]]:
    """Return the events in the last `max_bytes` of the log, oldest first; lines that do not parse are left out.

    A log on stdout (None) cannot be read back: it has no events to give.
    """
    if log_file is None:
        return []
    try:
        with open(log_file, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except OSError:
        return []
    events = []
    for line in data.splitlines()[1 if size > max_bytes else 0 :]:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
