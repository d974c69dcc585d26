"""What a check calls for each playlist: its reads in turn (probe, feed, full read) within the check's one Session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from playlist_cron import feeds
from playlist_cron.config import Config, Playlist
from playlist_cron.failure_kinds import NETWORK as NETWORK
from playlist_cron.failure_kinds import RateLimited as RateLimited
from playlist_cron.feed_read import (
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
    """What the playlists of one check share: the archive's lines, read once, and one yt-dlp client per network
    setting for feed reads. Close it at the end of the check."""

    def __init__(
        self,
        config: Config,
        store: Archive,
        *,
        video_locks: VideoLocks | None = None,
        partial_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.store = store  # the storage's archive: a file yt-dlp appends to, or rows the check adds (a database)
        self.video_locks = video_locks  # a fleet's: each video is locked while it downloads, fleet-wide
        self.partial_dir = partial_dir  # where yt-dlp keeps partial downloads, when not beside the files
        self._archive: set[str] | None = None
        self._fetchers: dict[tuple[str, ...], Fetcher] = {}

    def archive(self) -> set[str]:
        """The archive's lines, as yt-dlp reads them (stripped); kept up to date by every download of the check."""
        if self._archive is None:
            self._archive = self.store.lines()
        return self._archive

    def fetcher(self, playlist: Playlist, reporter: Reporter) -> Fetcher:
        """A yt-dlp client with the playlist's network options (proxy, cookies, headers), shared by the playlists
        that have the same `yt_dlp_args`; what yt-dlp warns about goes to the log, never to cron's mail."""
        key = playlist.yt_dlp_args
        if key not in self._fetchers:
            params = yt_dlp_params(self.config, playlist, mark_archived=False, partial_dir=self.partial_dir)
            params.pop("download_archive")
            params["logger"] = Logger(reporter, lambda: None)
            self._fetchers[key] = Fetcher(params, auto_init=False)
        fetcher = self._fetchers[key]
        fetcher.failed_host = None
        return fetcher

    def close(self) -> None:
        for fetcher in self._fetchers.values():
            fetcher.close()
        self._fetchers.clear()

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
            return result
    params = yt_dlp_params(config, playlist, mark_archived=mark_archived, partial_dir=session.partial_dir)
    with Downloader(params, playlist, result, reporter, mark_archived=mark_archived, session=session) as ydl:
        ydl.watch_disk(str(config.download_dir), config.min_free_bytes)
        _follow(ydl, playlist, read, result, answer)
    return result


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
        if read.playlist_is_feed:
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
