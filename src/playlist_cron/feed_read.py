"""Reading a playlist by its feed: one conditional request, settled by the feed alone or run as yt-dlp would."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import DateRange, DownloadCancelled

from playlist_cron import feeds, yt_dlp_private
from playlist_cron.archive_view import ArchiveLines, extractors_of, look_up
from playlist_cron.config import Playlist
from playlist_cron.errors import DiskFull
from playlist_cron.failure_kinds import Failure, RateLimited, host_of, raise_when_check_must_stop
from playlist_cron.playlist_result import (
    PLAYLIST_FIELDS,
    STOPPED_AT_ARCHIVED,
    STOPPED_AT_MAX_DOWNLOADS,
    PlaylistResult,
    Reporter,
)
from playlist_cron.reads import ReadPlan
from playlist_cron.ytdl import Downloader, Fetcher, StopPlaylist

FEED_ACCEPT = "application/atom+xml, application/rss+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
FEED_SNIFF_BYTES = 512  # enough of an answer to tell XML from an HTML page or a media file, before reading it all
# A 304 to a request that carried no validator: a broken server, whose feed cannot be read (feeds.FeedError's reason).
UNEXPECTED_NOT_MODIFIED: Final = "unexpected_not_modified"


class FeedAnswer(NamedTuple):
    """A feed request's outcome: what came (a 304 has no feed) or why nothing usable did."""

    fetched: feeds.FetchResult | None
    feed: feeds.Feed | None
    failure: feeds.FeedError | Failure | None


def ask_feed(fetcher: Fetcher, feed_url: str, read: ReadPlan) -> FeedAnswer:
    """Fetch and parse a feed; raise RateLimited when the site says to slow down, DiskFull when the disk is full."""
    try:
        fetched = _fetch_feed(fetcher, feed_url, read.etag, read.last_modified)
        feed = None if fetched.body is None else feeds.parse_feed(fetched.body, feed_url, fetched.content_type)
    except feeds.FeedError as error:
        if fetcher.rate_limited:  # a bot-check page where the feed should be
            raise RateLimited(fetcher.rate_limited) from None
        return FeedAnswer(None, None, error)
    except (RateLimited, DiskFull):
        raise
    except Exception as error:  # no answer, or an error status
        failure = fetcher.failure_of(error, host_of(feed_url))
        raise_when_check_must_stop(failure)
        return FeedAnswer(None, None, failure)
    return FeedAnswer(fetched, feed, None)


def settled_by_feed(
    archive: ArchiveLines,
    playlist: Playlist,
    read: ReadPlan,
    answer: FeedAnswer,
    result: PlaylistResult,
    reporter: Reporter,
) -> bool:
    """Count a feed read whose every entry the feed alone settles, as the downloader would, and return True; return
    False, leaving `result` as it was, when yt-dlp has something to run (a new entry, a retry that is due) or the
    feed failed."""
    if answer.fetched is None or reporter.due_retries(playlist.url):
        return False
    # Unchanged, the feed is not looked at: its failed videos are those the state says wait for a retry.
    counts = {
        "already_archived": 0,
        "filtered": 0,
        "waiting_retry": 0 if answer.feed else reporter.waiting_retries(playlist.url),
    }
    stopped = None
    date_range = DateRange(playlist.date_after) if playlist.date_after else None
    entries = answer.feed.entries if answer.feed is not None else []
    look_up(archive, _feed_candidates(archive, entries))  # one batch for the feed's entries
    for entry in entries:
        archive_id = _feed_archive_id(archive, entry)
        if archive_id is None:
            return False  # no id without yt-dlp's extractors: a new entry, most likely
        if archive_id in archive:
            counts["already_archived"] += 1
            if playlist.stop_at_first_archived:
                stopped = STOPPED_AT_ARCHIVED
                break
        elif date_range is not None and entry.published_s is not None and _day_of(entry.published_s) not in date_range:
            counts["filtered"] += 1
        elif not reporter.retry_is_due(archive_id):
            counts["waiting_retry"] += 1
        else:
            return False
    _note_feed_read(result, read, answer)
    if answer.feed is not None:
        result.playlist_fields = _feed_playlist_fields(answer.feed, playlist, read.playlist_fields)
    result.already_archived = counts["already_archived"]
    result.filtered = counts["filtered"]
    result.waiting_retry = counts["waiting_retry"]
    result.stopped = stopped
    return True


def _feed_candidates(archive: ArchiveLines, entries: Sequence[feeds.FeedEntry]) -> list[str]:
    """The archive lines that `_feed_archive_id` asks about for `entries`."""
    keys = extractors_of(archive) if any(not entry.video_id and entry.own_id for entry in entries) else set()
    lines = []
    for entry in entries:
        if entry.video_id:
            lines.append(f"youtube {entry.video_id}")
        elif entry.own_id:
            lines += [f"{key} {entry.id}" for key in keys]
    return lines


def _feed_archive_id(archive: ArchiveLines, entry: feeds.FeedEntry) -> str | None:
    """The archive line a feed entry would have, when the archive alone tells (see `ArchiveIds.of`), else None."""
    if entry.video_id:
        return f"youtube {entry.video_id}"
    if not entry.own_id:
        return None
    keys = extractors_of(archive)
    found = [key for key in keys if f"{key} {entry.id}" in archive]
    return f"{found[0]} {entry.id}" if len(found) == 1 else None


def _day_of(epoch_s: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(epoch_s))


def _note_feed_read(result: PlaylistResult, read: ReadPlan, answer: FeedAnswer) -> None:
    """Record in `result` a feed read that got an answer."""
    assert answer.fetched is not None
    result.read = "feed"
    result.feed_url = read.feed_url
    result.feed_status = answer.fetched.status
    result.feed_error = None
    result.etag, result.last_modified = answer.fetched.etag, answer.fetched.last_modified
    stored_title = (read.playlist_fields or {}).get("playlist_title")
    if answer.feed is not None:
        result.feed_entries = len(answer.feed.entries)
        result.feed_repairs = answer.feed.repairs
    if result.title is None:
        result.title = stored_title or (answer.feed.title if answer.feed is not None else None)


def probe(ydl: Downloader, playlist: Playlist, result: PlaylistResult) -> bool:
    """The playlist's URL has not been looked at yet: when yt-dlp would give it to its generic extractor, fetch it
    as a feed. Return True when that settled the playlist's part of the check (it was a feed, or the site could not
    be read); False when yt-dlp must read it.

    A URL that yt-dlp has an extractor of its own for is no feed, and costs no request here.
    """
    if yt_dlp_private.first_suitable_extractor(ydl, playlist.url) != "Generic":
        result.is_feed = False
        return False
    failure = go_through_feed(ydl, playlist, playlist.url, ReadPlan("feed", "probe"), result)
    if failure is None:
        result.is_feed = True
        return True
    result.feed_url = result.feed_status = None
    if isinstance(failure, feeds.FeedError) and failure.reason == UNEXPECTED_NOT_MODIFIED:
        tell_feed_failed(ydl, playlist, playlist.url, failure, result, "reading the playlist whole instead")
        return False  # whether it is a feed is asked again next time
    if isinstance(failure, feeds.FeedError):
        result.is_feed = False  # a page for yt-dlp to read: looked at once, never again
        return False
    record_playlist_failure(failure, result)  # the same request through yt-dlp would fail the same way
    return True


def go_through_feed(
    ydl: Downloader,
    playlist: Playlist,
    feed_url: str,
    read: ReadPlan,
    result: PlaylistResult,
    answer: FeedAnswer | None = None,
) -> feeds.FeedError | Failure | None:
    """Read a feed (unless `answer` has it already) and run its entries as yt-dlp would run the playlist's; return
    why it failed, or None.

    A 304 (unchanged) runs nothing but the failed videos that are due. Raise RateLimited when the site says to
    slow down, and DiskFull when the disk is full.
    """
    result.feed_url = feed_url
    answer = answer or ask_feed(ydl, feed_url, read._replace(feed_url=feed_url))
    if answer.failure is not None:
        return answer.failure
    _note_feed_read(result, read._replace(feed_url=feed_url), answer)
    if answer.feed is None:
        result.waiting_retry += ydl.reporter.waiting_retries(playlist.url)  # counted before the due ones run
    else:
        info = _feed_playlist(answer.feed, playlist, feed_url, read.playlist_fields)
        result.playlist_fields = _feed_playlist_fields(answer.feed, playlist, read.playlist_fields)
        try:
            ydl.process_ie_result(info, download=True)
        except StopPlaylist:
            pass
        except DownloadCancelled as cancelled:
            result.stopped = type(cancelled).__name__
            return None
    if result.stopped != STOPPED_AT_MAX_DOWNLOADS and not ydl.marking_archived:
        with contextlib.suppress(StopPlaylist):
            ydl.run_due_retries()
    return None


def tell_feed_failed(
    ydl: Downloader,
    playlist: Playlist,
    feed_url: str,
    failure: feeds.FeedError | Failure,
    result: PlaylistResult,
    then: str,
) -> None:
    reason: str
    if isinstance(failure, feeds.FeedError):
        reason, error = failure.reason, failure.detail
    else:
        reason, error = failure.kind, failure.message
    result.feed_error = f"{reason}: {error}"
    result.feed_status = failure.status if isinstance(failure, Failure) else result.feed_status
    ydl.reporter.feed_failed(playlist.url, feed_url, reason, error, then)


def record_playlist_failure(failure: feeds.FeedError | Failure, result: PlaylistResult) -> None:
    if isinstance(failure, feeds.FeedError):
        result.error = f"not a feed ({failure.reason}): {failure.detail}"
        return
    result.error = failure.message
    result.error_kind = failure.kind


def _fetch_feed(ydl: Downloader, url: str, etag: str | None, last_modified: str | None) -> feeds.FetchResult:
    """Fetch a feed through yt-dlp (its proxy, cookies and headers apply), sending the last read's validators.

    Raise FeedError when the answer is not XML or too big to be a feed, or a 304 to a request without validators
    (nothing was asked to be unchanged), and yt-dlp's errors for the rest (an HTTPError for a status other than 200
    and 304).
    """
    from yt_dlp.networking import Request

    conditions = feeds.conditional_headers(etag, last_modified)
    try:
        response = ydl.urlopen(Request(url, headers={"Accept": FEED_ACCEPT, **conditions}))
    except HTTPError as error:
        if error.status != 304:
            raise
        if not conditions:
            detail = "the server answered 304 Not Modified to a request that sent no ETag or date to compare"
            raise feeds.FeedError(UNEXPECTED_NOT_MODIFIED, detail) from None
        answered = error.response.headers
        return feeds.FetchResult(
            304, None, answered.get("ETag") or etag, answered.get("Last-Modified") or last_modified
        )
    with response:
        head = b""
        while len(head) < FEED_SNIFF_BYTES:
            chunk = response.read(FEED_SNIFF_BYTES - len(head))
            if not chunk:
                break
            head += chunk
        feeds.check_looks_like_xml(head, response.headers.get("Content-Type"))
        body = head + response.read(feeds.MAX_FEED_BYTES + 1 - len(head))
    if len(body) > feeds.MAX_FEED_BYTES:
        raise feeds.FeedError("too_large", f"the answer is larger than {feeds.MAX_FEED_BYTES} bytes")
    return feeds.FetchResult(
        int(response.status),
        body,
        response.headers.get("ETag"),
        response.headers.get("Last-Modified"),
        response.headers.get("Content-Type"),
    )


def _feed_playlist(
    feed: feeds.Feed, playlist: Playlist, feed_url: str, stored_fields: dict[str, str | None] | None
) -> dict[str, Any]:
    """Given a parsed feed, return it as yt-dlp's playlist info, its entries as a full read would give them.

    A YouTube entry is the video's page with its extractor named (archived as `youtube <videoId>`); any other
    entry is its enclosure (else its link) carrying its id, as yt-dlp's generic extractor hands on an RSS item.
    The playlist's own fields are those of the last full read, so that output templates name the same folders.
    """
    from yt_dlp.utils import smuggle_url

    entries: list[dict[str, Any]] = []
    for entry in feed.entries:
        if entry.video_id:
            entries.append(
                {
                    "_type": "url",
                    "ie_key": "Youtube",
                    "id": entry.video_id,
                    "url": f"https://www.youtube.com/watch?v={entry.video_id}",
                    "title": entry.title,
                    "timestamp": entry.published_s,
                }
            )
            continue
        url = entry.media_url or entry.page_url
        if not url:
            continue
        entries.append(
            {
                "_type": "url_transparent",
                "url": smuggle_url(url, {"force_videoid": entry.id}) if entry.own_id else url,
                "title": entry.title,
                "timestamp": entry.published_s,
            }
        )
    is_youtube = feed.kind == "youtube"
    fields = _feed_playlist_fields(feed, playlist, stored_fields)
    return {
        "_type": "playlist",
        **{name[len("playlist_") :]: value for name, value in fields.items() if name.startswith("playlist_")},
        "entries": entries,
        "original_url": playlist.url,
        "extractor": "youtube:tab" if is_youtube else "generic",
        "extractor_key": "YoutubeTab" if is_youtube else "Generic",
        "feed_url": feed_url,
    }


def _feed_playlist_fields(
    feed: feeds.Feed, playlist: Playlist, stored_fields: dict[str, str | None] | None
) -> dict[str, str | None]:
    """yt-dlp's playlist fields for a feed read's entries: those of the last full read where there was one, else
    what the feed says (its title), as yt-dlp's generic extractor gives them for an RSS feed."""
    fields: dict[str, str | None] = dict.fromkeys(PLAYLIST_FIELDS)
    fields.update(
        {
            "playlist": feed.title or playlist.url,
            "playlist_id": playlist.url,
            "playlist_title": feed.title,
            "playlist_webpage_url": playlist.url,
        }
    )
    fields.update({name: value for name, value in (stored_fields or {}).items() if value is not None})
    return fields
