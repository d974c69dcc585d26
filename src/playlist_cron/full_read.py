"""Reading a playlist whole with yt-dlp, and saying so when its URL turns out to be no playlist."""

from __future__ import annotations

from typing import Any

from yt_dlp.utils import DownloadCancelled, DownloadError, UnsupportedError

from playlist_cron.config import Playlist
from playlist_cron.failure_kinds import RateLimited, host_of, raise_when_check_must_stop
from playlist_cron.playlist_result import STOPPED_AT_ARCHIVED, PlaylistResult
from playlist_cron.ytdl import Downloader, NotAPlaylist, StopPlaylist

FEED_CONTENT_TYPES = ("application/atom+xml", "application/rss+xml", "application/xml", "text/xml")


def _not_a_playlist(content_type: str | None, what: str) -> str:
    """The playlist error for a URL that gave `what` (one video, or nothing yt-dlp can read) instead of a playlist."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type in FEED_CONTENT_TYPES:
        return (
            f"this URL is not a playlist yt-dlp can read: it answered with an XML document ({media_type}) that is not "
            f"an RSS feed ({what}); give the site's RSS feed or its playlist page instead"
        )
    return f"this URL is not a playlist: {what}; give a playlist, channel or feed URL instead"


def go_through_playlist(ydl: Downloader, playlist: Playlist, result: PlaylistResult) -> None:
    """Read the playlist and run its entries; record in `result` why reading stopped, or why the playlist failed.

    Raise RateLimited, or DiskFull, when the whole check must stop.
    """
    try:
        _read_and_run(ydl, playlist, result)
    except StopPlaylist:
        if result.stopped == STOPPED_AT_ARCHIVED:
            ydl.run_due_retries()
    except DownloadCancelled as cancelled:  # yt-dlp's own --break-* and max-downloads stops end a check normally
        result.stopped = type(cancelled).__name__
    except RateLimited:
        raise
    except NotAPlaylist as refusal:
        result.error = _not_a_playlist(ydl.first_content_type, str(refusal))
    except Exception as error:  # the playlist itself could not be read: the other playlists still are
        failure = ydl.failure_of(error, host_of(playlist.url))
        raise_when_check_must_stop(failure)
        result.error = failure.message
        result.error_kind = failure.kind


def _read_and_run(ydl: Downloader, playlist: Playlist, result: PlaylistResult) -> None:
    """Read the playlist, then let yt-dlp run its entries (stopping at the first archived one, when told to)."""
    info = _read_playlist(ydl, playlist.url)
    if ydl.rate_limited:
        raise RateLimited(ydl.rate_limited)
    if info is None or info.get("_type", "video") == "video":
        # Not a playlist: for a feed, what came back did not parse as RSS. Nothing is downloaded.
        result.error = _not_a_playlist(ydl.first_content_type, "yt-dlp read it as one video")
    else:
        ydl.process_ie_result(info, download=True)
    if result.stopped == STOPPED_AT_ARCHIVED:
        ydl.run_due_retries()


def _read_playlist(ydl: Downloader, url: str) -> Any:
    """Return what yt-dlp reads at `url`, its entries not yet processed.

    Raise NotAPlaylist when yt-dlp has no extractor for a document that is a feed (an Atom feed, say), so that the
    check says what it is rather than yt-dlp's "Unsupported URL".
    """
    try:
        return ydl.extract_info(url, download=False, process=False)
    except DownloadError as error:
        media_type = (ydl.first_content_type or "").partition(";")[0].strip().lower()
        exc_info = getattr(error, "exc_info", None) or (None, None, None)
        if isinstance(exc_info[1], UnsupportedError) and media_type in FEED_CONTENT_TYPES:
            raise NotAPlaylist("yt-dlp found no videos in it") from None
        raise
