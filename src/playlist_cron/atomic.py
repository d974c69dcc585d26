"""Write a file whole or not at all: every byte of a write(2), and a file replaced atomically and durably."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path

NAME_TRIES = 8  # 64 random bits already taken this many times in a row: someone is planting names


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`, going on where a write(2) stopped short (a full disk, a signal).

    Raise the OSError of the write that failed, or ENOSPC for one that took nothing.
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def replace(path: Path, data: bytes, mode: int, *, before_replace: Callable[[], None] | None = None) -> None:
    """Replace `path` with a file of mode `mode` holding `data`: a reader finds the old file or the new one, never
    half of one, and after a crash the disk holds one of them.

    The new file is written beside `path` under a name nobody can guess, created exclusively and never through a
    link planted there (the folder may be writable by others), then fsync'ed, renamed over `path` and the folder
    fsync'ed. A link at `path` itself is replaced, its target left alone. `before_replace` runs once the new file
    is on disk, just before it takes `path`'s place. Raise OSError when any step fails; the new file is removed.
    """
    fd, temporary = _create_beside(path, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask narrows the mode that open(2) gives
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_replace is not None:
            before_replace()
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new name in `directory` durable: fsync(2) on a file does not cover its folder's entry."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_beside(path: Path, mode: int) -> tuple[int, Path]:
    """Create a new file beside `path` under an unpredictable name; return its descriptor and path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(NAME_TRIES):
        temporary = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
        try:
            return os.open(temporary, flags, mode), temporary
        except FileExistsError:  # taken already: someone is planting names; draw again
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {path}")
