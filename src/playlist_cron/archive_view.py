"""What a check knows of the archive: the lines it asked about (held or not), looked up in batches, never all of it.

A check asks the archive only about the entries its reads list: the entries of one playlist's read in one batch
(`look_up`), by key; an entry asked about on its own (a playlist whose entries yt-dlp pages through) costs one
look-up of its own. The answers are kept for the rest of the check, and every line the check adds is known as held.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, TypeAlias

from playlist_cron.errors import stopping_when_database_lost

if TYPE_CHECKING:
    from playlist_cron.storage import Archive


class LookedUpLines:
    """The archive's lines as yt-dlp asks them (`line in lines`, `lines.add(line)`), answered from the storage's
    archive by look-ups (`Archive.lookup`), shared by the check's reader threads; asked under `lock` (the check's
    writer: a database's connection serves one statement at a time)."""

    def __init__(self, store: Archive, lock: threading.RLock) -> None:
        self._store = store
        self._lock = lock
        self._held: set[str] = set()
        self._absent: set[str] = set()
        self._extractors: set[str] | None = None

    def __contains__(self, line: object) -> bool:
        if not isinstance(line, str):
            return False
        if line in self._held:
            return True
        if line not in self._absent:
            self.look_up([line])
        return line in self._held

    def __bool__(self) -> bool:
        return True  # yt-dlp asks nothing of an empty archive: this one has not said what it holds

    def add(self, line: str) -> None:
        """A line just archived (by this check)."""
        with self._lock:
            self._held.add(line)
            self._absent.discard(line)
            if self._extractors is not None:
                self._extractors.add(line.partition(" ")[0])

    def look_up(self, lines: Iterable[str]) -> None:
        """Ask the archive, in one look-up, about those of `lines` not asked about yet."""
        with self._lock:
            unknown = {line for line in lines if line not in self._held and line not in self._absent}
            if not unknown:
                return
            with stopping_when_database_lost():
                held = self._store.lookup(unknown)
            self._held |= held
            self._absent |= unknown - held

    def extractors(self) -> set[str]:
        """The extractor keys the archive's lines name (youtube, generic, ...): asked once."""
        with self._lock:
            if self._extractors is None:
                with stopping_when_database_lost():
                    named = self._store.extractors()
                self._extractors = named | {line.partition(" ")[0] for line in self._held}
            return set(self._extractors)


# What a read asks whether a line is archived: the check's looked-up lines, or a set of lines (a test's).
ArchiveLines: TypeAlias = "Collection[str] | LookedUpLines"


def look_up(archive: ArchiveLines, lines: Iterable[str]) -> None:
    """Ask `archive` about `lines` in one batch, when it is looked up (a set already knows every line)."""
    if isinstance(archive, LookedUpLines):
        archive.look_up(lines)


def extractors_of(archive: ArchiveLines) -> set[str]:
    """The extractor keys the lines of `archive` name."""
    if isinstance(archive, LookedUpLines):
        return archive.extractors()
    return {line.partition(" ")[0] for line in list(archive)}
