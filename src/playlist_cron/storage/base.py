"""The storage's records: what its calls return (`Note`, `ArchiveHealth`), at the foot of the storage package."""

from __future__ import annotations

from typing import NamedTuple

# The records below are NamedTuples, not dataclasses: the skip path uses them, and a dataclass costs it ~0.1 ms each.


class Note(NamedTuple):
    """Something the state storage had to do on its own (adopt an old file, recover a damaged one), to be logged."""

    event: str  # the log event: state_migrated or state_recovered
    message: str
    alert: bool  # a human should look (stderr), not only the log
    fields: dict[str, str] | None = None  # more fields for the log event


class ArchiveHealth(NamedTuple):
    """What tending the archive found."""

    repaired: bool = False  # a last line cut short by a crash was ended, so the next id is not glued to it
    bad_line_numbers: tuple[int, ...] = ()  # lines that are not "extractor id" lines: yt-dlp ignores them
