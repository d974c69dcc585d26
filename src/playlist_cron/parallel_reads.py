"""A check's playlist reads, at most `parallel_reads` at once; a site that says to slow down loses its remaining ones.

The readers are daemon threads: a read that hangs cannot keep the process alive once the check has ended. Each
reader asks the held run lock for its next playlist and tells it when it is done, under the check's one writer lock
(`writer`), which also guards every state change, log event and counter the reads report. With `parallel_reads`
1 the playlists are read in the calling thread, one after another, as they always were.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from playlist_cron.errors import CheckStopped
from playlist_cron.failure_kinds import RateLimited

if TYPE_CHECKING:
    from playlist_cron.config import Playlist
    from playlist_cron.playlist_result import PlaylistResult
    from playlist_cron.storage import HeldRunLock

JOIN_TICK_S = 0.1  # how often the waiting main thread wakes up, so that the watchdog's signals reach it
STOP_WAIT_S = 5.0  # after a stop, how long the check waits for its readers to notice before it ends without them


class SiteDeferred(CheckStopped):
    """Raised in a reader whose site said to slow down to another reader: this read stops too."""

    reason = "rate_limited"


def site_of(url: str) -> str:
    """The site a playlist is read from: its URL's host name (without port, user or password), lower case."""
    return (urllib.parse.urlsplit(url).hostname or url).lower()


class Reads:
    """The reads of one check's playlists: `read_one` is called for each playlist the held lock hands out, from
    up to `parallel` threads at once; `run` returns the results in the config's order.

    A read that raises RateLimited marks its site as rate limited: the site's reads still running stop at their
    next step (`go_on`), and its playlists not read yet are not read in this check; other sites' go on.
    """

    def __init__(
        self,
        held: HeldRunLock,
        playlists: Sequence[Playlist],
        read_one: Callable[[Playlist], PlaylistResult],
        *,
        parallel: int,
        writer: threading.RLock,
        done: Callable[[Playlist], None] | None = None,
    ) -> None:
        self.held = held
        self.read_one = read_one
        self.done = done or held.done  # told, under the writer lock, when a playlist's read is over
        self.parallel = max(1, min(parallel, len(playlists)))
        self.writer = writer
        self.rate_limited: dict[str, str] = {}  # site -> what it said, the first time it said it
        self.stopping = threading.Event()
        self._positions = {playlist.url: position for position, playlist in reversed(list(enumerate(playlists)))}
        self._results: dict[int, PlaylistResult] = {}
        self._local = threading.local()
        self._failure: BaseException | None = None

    def go_on(self) -> None:
        """Raise in a read that must stop now: the check is stopping, or the read's site said to slow down."""
        if self.stopping.is_set():
            raise CheckStopped("the check is stopping")
        site = getattr(self._local, "site", None)
        if site is not None and site in self.rate_limited:
            raise SiteDeferred(self.rate_limited[site])

    def run(self) -> list[PlaylistResult]:
        """Read every playlist the held lock hands out; return what each read produced, in the config's order.

        Raise what ended a read that ends the whole check (DiskFull, ConfigError, any bug), or what stopped the
        calling thread (a signal, the watchdog).
        """
        if self.parallel == 1:
            self._read_in_turn()
        else:
            self._read_in_threads()
        return [self._results[position] for position in sorted(self._results)]

    def _read_in_threads(self) -> None:
        readers = [
            threading.Thread(target=self._reader, name=f"playlist-cron-reader-{number}", daemon=True)
            for number in range(1, self.parallel + 1)
        ]
        for reader in readers:
            reader.start()
        try:
            for reader in readers:
                while reader.is_alive():
                    reader.join(JOIN_TICK_S)
        except BaseException:
            self.stopping.set()
            deadline_s = time.monotonic() + STOP_WAIT_S
            for reader in readers:
                reader.join(max(0.0, deadline_s - time.monotonic()))
            raise
        if self._failure is not None:
            raise self._failure

    def _reader(self) -> None:
        try:
            self._read_in_turn()
        except BaseException as failure:
            with self.writer:
                if self._failure is None:
                    self._failure = failure
            self.stopping.set()

    def _read_in_turn(self) -> None:
        """Read playlists one after another, as long as the held lock hands them out and nothing stops the check."""
        while not self.stopping.is_set():
            with self.writer:
                playlist = self.held.next_playlist()
            if playlist is None:
                return
            site = site_of(playlist.url)
            if site not in self.rate_limited:  # else none of the site's playlists is read again in this check
                self._local.site = site
                try:
                    result = self.read_one(playlist)
                    with self.writer:
                        self._results[self._positions.get(playlist.url, len(self._positions))] = result
                except (RateLimited, SiteDeferred) as limited:
                    with self.writer:
                        self.rate_limited.setdefault(site, str(limited))
                finally:
                    self._local.site = None
            # Not after a read that ended the check: its claim (a fleet's) ends with the lock's connection, the
            # playlist due as it was, for the next check or another host to read.
            with self.writer:
                self.done(playlist)
