"""`playlist-cron db ...`: set up a fleet's database, and move a yt-dlp archive file into it or out of it."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from playlist_cron import atomic
from playlist_cron.errors import PlaylistCronError
from playlist_cron.storage import connection as connections
from playlist_cron.storage import postgres, schema

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playlist_cron.config import Config

STANDARD_STREAM = "-"
EXPORT_MODE = 0o666  # what yt-dlp's own archive file gets: the umask decides
WRITE_BUFFER_BYTES = 1 << 16


def migrate(config: Config) -> str:
    """Create or upgrade the schema of the config's database; return what was done, in one line."""
    with connections.connect(config, autocommit=True) as connection, connections.reachable(config):
        found, now = schema.migrate(connection)
    where = connections.describe(config)
    if found == 0:
        return f"created the playlist-cron tables in {where} (schema version {now})"
    if found == now:
        return f"the playlist-cron tables in {where} are at schema version {now} already: nothing to do"
    return f"upgraded the playlist-cron tables in {where} from schema version {found} to {now}"


def import_archive(config: Config, file: str) -> str:
    """Add the archive lines of `file` (`-`: stdin) to the database's archive; return the counts in one line."""
    with connections.Database(config) as database:
        archive = postgres.PostgresArchive(database)
        archive.ensure_ready()  # the database's problems before the file's
        with _reading(file) as lines:
            counts = archive.import_lines(lines)
    return f"imported {counts.added} lines, {counts.already} already there, {counts.bad} not archive lines"


def export_archive(config: Config, file: str) -> str | None:
    """Write the database's archive to `file`, a new file (`-`: stdout); return what was done, None for stdout."""
    with connections.Database(config) as database:
        archive = postgres.PostgresArchive(database)
        archive.ensure_ready()  # before the file is made: an unreachable database leaves no empty file behind
        if file == STANDARD_STREAM:
            _write(archive.export_lines(), sys.stdout.buffer)
            return None
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, EXPORT_MODE)
        except FileExistsError:
            raise PlaylistCronError(
                f"playlist-cron: {file} exists: export-archive writes a new file only (move the old one away, or "
                "give another name)"
            ) from None
        except OSError as error:
            raise PlaylistCronError(f"playlist-cron: cannot create {file}: {error.strerror}") from None
        try:
            with os.fdopen(fd, "wb", buffering=WRITE_BUFFER_BYTES) as output:
                count = _write(archive.export_lines(), output)
                os.fsync(output.fileno())  # on disk before the command says it is done
            atomic.fsync_directory(Path(file).absolute().parent)  # and its name in the folder
        except BaseException as error:  # a half-written archive would pass for a whole one
            with contextlib.suppress(OSError):
                os.unlink(file)
            if isinstance(error, OSError):
                raise PlaylistCronError(f"playlist-cron: cannot write {file}: {error.strerror}") from None
            raise
    return f"exported {count} lines to {file}"


def _write(lines: Iterator[str], output: BinaryIO) -> int:
    count = 0
    for line in lines:
        output.write(line.encode() + b"\n")
        count += 1
    output.flush()
    return count


@contextlib.contextmanager
def _reading(file: str) -> Iterator[BinaryIO]:
    if file == STANDARD_STREAM:
        yield sys.stdin.buffer
        return
    try:
        stream = open(file, "rb")  # noqa: SIM115 (closed below, after the caller's block)
    except OSError as error:
        raise PlaylistCronError(f"playlist-cron: cannot read {file}: {error.strerror}") from None
    with stream:
        yield stream
