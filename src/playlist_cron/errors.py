"""The few exceptions a user can meet; `cli` turns each into an exit code and a one-line message."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class PlaylistCronError(Exception):
    """Base of the errors that end a command with a message instead of a traceback."""


class ConfigError(PlaylistCronError):
    """The config file is missing, unreadable or wrong; the message names the file and each key."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"playlist-cron: config error in {self.path}: " + "; ".join(self.problems)


class StateError(PlaylistCronError):
    """The state folder or file cannot be read or written, and could not be recovered."""

    def __init__(self, message: str, *, detail: str | None = None, unusable_folder: bool = False) -> None:
        super().__init__(message)
        self.detail = detail or message
        self.unusable_folder = unusable_folder  # the folder itself is the problem: a config error


class NotARegularFile(PlaylistCronError):
    """A lock's place (`<archive_file>.lock`, the download folder's) holds a FIFO, socket, device or folder: `cli` says
    so, naming the config's `key` that places it, exit 78."""

    def __init__(self, path: str, detail: str, key: str = "archive_file") -> None:
        super().__init__(f"playlist-cron: {detail}")
        self.path = path
        self.detail = detail
        self.key = key


class CheckStopped(BaseException):
    """Raised in the main thread to end a running check early: its `reason` is the check_failed reason.

    A BaseException so that yt-dlp's `except Exception` blocks do not swallow it.
    """

    reason = "stopped"

    def __init__(self, detail: str, signal_number: int | None = None) -> None:
        self.detail = detail
        self.signal_number = signal_number
        super().__init__(detail)


class DiskFull(CheckStopped):
    """Free space in the download folder is below `min_free_bytes`, or a write found the disk full."""

    reason = "disk_space"


class Interrupted(CheckStopped):
    """A signal (SIGTERM, SIGINT, SIGHUP) asked the check to stop; `signal_number` says which."""

    reason = "interrupted"

    def __init__(self, detail: str, signal_number: int) -> None:
        super().__init__(detail, signal_number)


class WatchdogFired(CheckStopped):
    """The watchdog ended the check: it ran past `max_runtime_seconds` (`timeout`) or made no progress (`stalled`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class DatabaseError(PlaylistCronError):
    """The database named by `database_url` cannot be used; the message is one line and never holds the password."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached (refused, timed out, restarted): a temporary failure, exit 75."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message  # the driver's words alone, for a message that names the database itself


class SchemaMissing(DatabaseError):
    """The database has no playlist-cron schema, or an older one: `playlist-cron db migrate` makes it current."""


class SchemaNewer(DatabaseError):
    """The database's schema was made by a newer playlist-cron: this one must neither use nor change it."""

    def __init__(self, message: str, *, found: int, known: int) -> None:
        super().__init__(message)
        self.found = found
        self.known = known


class DatabaseLost(CheckStopped):
    """The database was lost while a check read its playlists: the check stops, FAILED with reason `database` (exit
    75), whatever yt-dlp was doing when it asked (a CheckStopped: yt-dlp's `except Exception` does not swallow it,
    and count it as a video's failure or the playlist's)."""

    reason = "database"


@contextlib.contextmanager
def stopping_when_database_lost() -> Iterator[None]:
    """Around what a check's read asks of its storage: DatabaseUnavailable becomes DatabaseLost."""
    try:
        yield
    except DatabaseUnavailable as lost:
        raise DatabaseLost(str(lost).removeprefix("playlist-cron: ")) from None
