"""What a check calls for each playlist: its reads in turn (probe, feed, full read) within the check's one Session."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from playlist_cron import feeds
from playlist_cron.archive_view import LookedUpLines
from playlist_cron.config import Config, Playlist
from playlist_cron.failure_kinds import NETWORK as NETWORK
from playlist_cron.failure_kinds import RateLimited as RateLimited
from playlist_cron.feed_read import (
    UNEXPECTED_NOT_MODIFIED,
    FeedAnswer,
    ask_feed,
    go_through_feed,
    probe,
    record_playlist_failure,
    settled_by_feed,
    tell_feed_failed,
)
from playlist_cron.full_read import go_through_playlist
from playlist_cron.playlist_result import COMPLETE_READ_STOPS, PlaylistResult, Reporter
from playlist_cron.reads import ReadPlan
from playlist_cron.ytdl import Downloader, Fetcher, Logger, yt_dlp_params

if TYPE_CHECKING:
    from playlist_cron.storage import Archive, VideoLocks


class Session:
    """What the playlists of one check share: what it learnt of the archive; one yt-dlp client per network setting
    and reader thread for feed reads; the lock that keeps downloads one at a time; the check's writer lock, under
    which the archive in a database is asked and added to. Close it at the end of the check.

    A yt-dlp client is made under the writer lock: reading the user's `yt_dlp_args` swaps sys.stdout and
    sys.stderr for a moment (`yt_dlp_options`), process-wide, so that another reader's log line would be lost then,
    and a YoutubeDL made meanwhile fails looking its streams up. Made once per reader thread and set of options, it
    costs the other readers a short wait a few times a check.
    """

    def __init__(
        self,
        config: Config,
        store: Archive,
        *,
        video_locks: VideoLocks | None = None,
        partial_dir: Path | None = None,
        writer: threading.RLock | None = None,
    ) -> None:
        self.config = config
        self.store = store  # the storage's archive: a file yt-dlp appends to, or rows the check adds (a database)
        self.video_locks = video_locks  # a fleet's: each video is locked while it downloads, fleet-wide
        self.partial_dir = partial_dir  # where yt-dlp keeps partial downloads, when not beside the files
        self.writer = writer or threading.RLock()
        self.one_download = threading.Lock()  # held by each video's download, from its first byte to its archive line
        self._archive = LookedUpLines(store, self.writer)
        self._fetchers: dict[tuple[int, tuple[str, ...]], Fetcher] = {}
        self._downloaders: dict[tuple[object, ...], Downloader] = {}

    def archive(self) -> LookedUpLines:
        """The archive's lines, as yt-dlp asks them (looked up as the reads list them); kept up to date by every
        download of the check."""
        return self._archive

    def fetcher(self, playlist: Playlist, reporter: Reporter) -> Fetcher:
        """A yt-dlp client with the playlist's network options (proxy, cookies, headers), shared by the playlists
        that have the same `yt_dlp_args` and are read in the same thread (a YoutubeDL is not thread-safe); what
        yt-dlp warns about goes to the log, never to cron's mail."""
        key = (threading.get_ident(), playlist.yt_dlp_args)
        with self.writer:  # made under it: see the class's docstring
            fetcher = self._fetchers.get(key)
            if fetcher is None:
                params = yt_dlp_params(self.config, playlist, mark_archived=False, partial_dir=self.partial_dir)
                params.pop("download_archive")
                params["logger"] = Logger(reporter, lambda: None)
                fetcher = self._fetchers[key] = Fetcher(params, auto_init=False)
        fetcher.failed_host = None
        fetcher.rate_limited = None
        return fetcher

    def downloader(
        self, playlist: Playlist, result: PlaylistResult, reporter: Reporter, *, mark_archived: bool
    ) -> Downloader:
        """A Downloader to read `playlist` into `result`: one per set of options that change yt-dlp's params and per
        reader thread (a YoutubeDL is not thread-safe), made once (its 1,800 extractors, its HTTP connections) and
        reset for each playlist. Raise ConfigError when yt-dlp refuses the playlist's `yt_dlp_args`."""
        key = (
            threading.get_ident(),
            playlist.yt_dlp_args,
            playlist.yt_dlp_args_key,
            playlist.output_template,
            playlist.date_after,
            playlist.stop_at_first_archived,
            mark_archived,
        )
        with self.writer:  # made under it: see the class's docstring
            made = self._downloaders.get(key)
            if made is not None:
                return made.reuse_for(playlist, result)
            params = yt_dlp_params(self.config, playlist, mark_archived=mark_archived, partial_dir=self.partial_dir)
            made = Downloader(params, playlist, result, reporter, mark_archived=mark_archived, session=self)
            self._downloaders[key] = made
            return made

    def close(self) -> None:
        with self.writer:
            clients: list[Fetcher] = [*self._fetchers.values(), *self._downloaders.values()]
            self._fetchers.clear()
            self._downloaders.clear()
        for client in clients:
            with contextlib.suppress(Exception):  # a client a stopped read still holds: the process ends anyway
                client.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def download_playlist(
    config: Config,
    playlist: Playlist,
    reporter: Reporter,
    *,
    read: ReadPlan | None = None,
    mark_archived: bool = False,
    session: Session,
) -> PlaylistResult:
    """Given a playlist and what to read of it (a full read when not told), download what is new in it and return
    what happened.

    A feed read whose entries are all settled by the feed alone (archived, too old, waiting for a retry), and a
    304, need no more of yt-dlp than its networking. Raise ConfigError when yt-dlp refuses the playlist's
    `yt_dlp_args`, RateLimited when the site says to slow down, and DiskFull when the disk is full; every other
    problem is recorded in the result (a video's, the feed's `feed_error`, or the playlist's `error` with its
    `error_kind`).
    """
    read = read or ReadPlan("full", "every check")
    result = PlaylistResult(url=playlist.url, read=read.kind)
    answer = None
    if read.kind == "feed" and read.feed_url and not mark_archived:
        answer = ask_feed(session.fetcher(playlist, reporter), read.feed_url, read)
        if settled_by_feed(session.archive(), playlist, read, answer, result, reporter):
            _tell_repairs(reporter, playlist, result)
            return result
    ydl = session.downloader(playlist, result, reporter, mark_archived=mark_archived)
    ydl.watch_disk(str(config.download_dir), config.min_free_bytes)
    _follow(ydl, playlist, read, result, answer)
    _tell_repairs(reporter, playlist, result)
    return result


def _tell_repairs(reporter: Reporter, playlist: Playlist, result: PlaylistResult) -> None:
    """Once a check for each playlist: the feed it read needed repairs to be read (`feed_repaired`)."""
    if result.feed_repairs and result.feed_url:
        reporter.feed_repaired(playlist.url, result.feed_url, result.feed_repairs)


def _follow(
    ydl: Downloader, playlist: Playlist, read: ReadPlan, result: PlaylistResult, answer: FeedAnswer | None
) -> None:
    """Read the playlist as planned: its feed, falling back to a full read when the feed fails; or a full read,
    then its feed when the full read failed, so that what the feed lists is not missed."""
    if read.probe and probe(ydl, playlist, result):
        return
    if read.kind == "feed" and read.feed_url:
        failure = go_through_feed(ydl, playlist, read.feed_url, read, result, answer)
        if failure is None:
            return
        if read.playlist_is_feed and not isinstance(failure, feeds.FeedError):
            record_playlist_failure(failure, result)  # the feed is the playlist: there is nothing fuller to read
            return
        unexpected_304 = isinstance(failure, feeds.FeedError) and failure.reason == UNEXPECTED_NOT_MODIFIED
        if read.playlist_is_feed and not unexpected_304:
            result.is_feed = False  # no longer a feed: yt-dlp reads it from now on
        reporter_then = "reading the playlist whole instead"
        tell_feed_failed(ydl, playlist, read.feed_url, failure, result, reporter_then)
    result.read = "full"
    ydl.capture_playlist_fields = True
    go_through_playlist(ydl, playlist, result)
    ydl.capture_playlist_fields = False
    result.full_read_complete = result.error is None and result.stopped in COMPLETE_READ_STOPS
    if result.error is not None and read.feed_url and result.feed_error is None and not read.playlist_is_feed:
        # The full read failed: what the feed lists still downloads, and the playlist's error still stands.
        failure = go_through_feed(ydl, playlist, read.feed_url, read, result)
        if failure is not None:
            tell_feed_failed(ydl, playlist, read.feed_url, failure, result, "nothing more was read")
