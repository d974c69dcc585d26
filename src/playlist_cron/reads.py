"""Which read each playlist gets in a check: its feed (one small request) or the whole playlist; no yt-dlp."""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any, NamedTuple

from playlist_cron import clock, feeds
from playlist_cron.playlist_result import ReadKind
from playlist_cron.redaction import redact, redact_value

if TYPE_CHECKING:
    from playlist_cron.config import Playlist
    from playlist_cron.playlist_result import PlaylistResult
    from playlist_cron.records import PlaylistReadRecord

# A full read is never due again this soon after the last one (cron's minute, the default check interval): the next
# check does not read a playlist whole that the last one just did. At most an eighth of a shorter interval.
MIN_FULL_READ_GAP_S = 60


class ReadPlan(NamedTuple):
    """What a check reads of one playlist, and why.

    `kind` "feed": read `feed_url` (sending `etag` and `last_modified`), and fall back to a full read when it fails.
    `kind` "full": read the playlist whole with yt-dlp; when that fails, `feed_url` (if any) is read after it, so
    that its new videos are not missed. `probe`: the playlist's own URL may be a feed (a site yt-dlp reads with its
    generic extractor, not yet looked at): it is fetched once as a feed, and read with yt-dlp only when it is none.
    """

    kind: ReadKind
    why: str
    feed_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    playlist_is_feed: bool = False  # the feed is the playlist's own URL: there is no other, fuller read
    probe: bool = False
    playlist_fields: dict[str, str | None] | None = None  # yt-dlp's playlist fields at the last full read


def record_key(url: str) -> str:
    """The key of a playlist's record in the state: its URL without a password or token (the state file is not
    a place for secrets)."""
    return redact(url)


def feed_url_for(playlist: Playlist, record: PlaylistReadRecord | None) -> str | None:
    """Given a playlist and its record, return the feed read between its full reads, or None when it has none."""
    if playlist.feed_url is False:
        return None
    if playlist.feed_url:
        return playlist.feed_url
    if record and record.get("is_feed"):
        return playlist.url
    channel_id = record.get("channel_id") if record else None
    return feeds.derive_feed_url(playlist.url, channel_id if feeds.is_channel_id(channel_id) else None)


def full_read_offset_s(key: str, interval_s: int) -> int:
    """Given a playlist's record key and its `full_scan_interval_seconds` (> 0), return its moment in the interval:
    whole seconds from 0 to the interval less one, from a hash of the key (SHA-256: Python's own `hash` of a string
    changes with every process), so the same after a restart and on every host of a fleet."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % interval_s


def full_read_slot_s(key: str, interval_s: int, after_s: float) -> int:
    """Given a playlist's record key, its interval (> 0) and a moment, return its first slot after that moment: its
    slots are its offset (`full_read_offset_s`) plus whole intervals, counted from the epoch."""
    offset_s = full_read_offset_s(key, interval_s)
    return offset_s + (math.floor((after_s - offset_s) / interval_s) + 1) * interval_s


def next_full_read_s(playlist: Playlist, record: PlaylistReadRecord | None) -> float | None:
    """When the playlist is next read whole: epoch seconds (due now when in the past), or None for never.

    A playlist without a feed is read whole at every check; one whose own URL is a feed has no fuller read. One never
    read whole is read whole at once (a full read learns a handle's channel id, and what the feed's 15 entries miss).
    After that, at its next slot (`full_read_slot_s`), so that the full reads of playlists added together, read at one
    moment, fall due at their own moments over the interval, a few at each check, and so stay: a full read at a slot
    makes the next one due a whole interval later. A slot within `MIN_FULL_READ_GAP_S` (or an eighth of the interval)
    of the last full read would have the next check read it whole again: then it is due one interval after that full
    read, as it was before slots, which is within that gap before its following slot.

    Slots rather than a cap on full reads per check: a playlist's due time depends on its own record alone, so
    `status` can say it, no playlist waits behind others past its interval (two full reads are never more than one
    interval apart, plus the wait for a check), and every host of a fleet agrees on it.
    """
    return full_read_s_given(playlist, record, record_key(playlist.url), feed_url_for(playlist, record))


def full_read_s_given(
    playlist: Playlist, record: PlaylistReadRecord | None, key: str, feed_url: str | None
) -> float | None:
    """`next_full_read_s`, given what a caller that has them has already made of the playlist: its record's key
    (`record_key`) and its feed (`feed_url_for`)."""
    record = record or {}
    if feed_url is None:
        return 0.0
    if feed_url == playlist.url and playlist.feed_url is None:
        return None
    interval_s = playlist.full_scan_interval_seconds
    if interval_s == 0:
        return None
    last_s = clock.parse_iso(record.get("last_full_read_at"))
    if last_s is None:
        return 0.0
    slot_s = full_read_slot_s(key, interval_s, last_s)
    if slot_s - last_s > min(MIN_FULL_READ_GAP_S, interval_s / 8):
        return float(slot_s)
    return last_s + interval_s


def plan(playlist: Playlist, record: PlaylistReadRecord | None, now_s: float) -> ReadPlan:
    """Given a playlist, its record in the state and now, return what this check reads of it."""
    record = record or {}
    feed_url = feed_url_for(playlist, record)
    if feed_url is None:
        if playlist.feed_url is None and feeds.needs_channel_id(playlist.url):
            return ReadPlan("full", "the channel's id is not known yet: a full read learns it")
        probe = playlist.feed_url is None and record.get("is_feed") is None and not feeds.is_youtube_url(playlist.url)
        return ReadPlan("full", "the playlist has no feed", probe=probe)
    same_feed = record.get("feed_url") == redact(feed_url)
    validators: dict[str, Any] = {
        "etag": record.get("etag") if same_feed else None,
        "last_modified": record.get("last_modified") if same_feed else None,
        "playlist_fields": record.get("playlist_fields"),
    }
    if feed_url == playlist.url and playlist.feed_url is None:
        return ReadPlan("feed", "the playlist's URL is a feed", feed_url, playlist_is_feed=True, **validators)
    full_at_s = next_full_read_s(playlist, record)
    if full_at_s is not None and now_s >= full_at_s:
        why = "first read" if not record.get("last_full_read_at") else "full read due"
        return ReadPlan("full", why, feed_url, **validators)
    return ReadPlan("feed", "between full reads", feed_url, **validators)


def record_after(
    record: PlaylistReadRecord | None, result: PlaylistResult, read_started_at: str, now_at: str
) -> PlaylistReadRecord:
    """Given a playlist's record and what this check's read of it did, return its record for the next check."""
    updated: PlaylistReadRecord = dict(record or {})  # type: ignore[assignment]
    if result.is_feed is not None:
        updated["is_feed"] = result.is_feed
    if result.full_read_complete:
        updated["last_full_read_at"] = read_started_at
    # A full read's playlist fields name the folders; until there is one, a feed read's (its title) do.
    if result.playlist_fields and (result.full_read_complete or not updated.get("playlist_fields")):
        updated["playlist_fields"] = redact_value(result.playlist_fields)
    if result.channel_id is not None:
        updated["channel_id"] = result.channel_id
    if result.feed_url is not None:
        if result.feed_error is not None:
            updated["last_feed_error"] = result.feed_error
        elif result.feed_status in (200, 304):
            # A 304 says only that the feed is as it was: its validators are kept only when this read left no
            # entry behind, else the next read must get the whole feed to find them again.
            settled = not result.left_work
            updated.update(
                {
                    "feed_url": redact(result.feed_url),
                    "etag": result.etag if settled else None,
                    "last_modified": result.last_modified if settled else None,
                    "last_feed_read_at": now_at,
                    "last_feed_error": None,
                }
            )
            if result.feed_repairs:  # a 304 (None) says the feed is as it was: so is what it needed
                updated["feed_repairs"] = list(result.feed_repairs)
            elif result.feed_repairs is not None:
                updated.pop("feed_repairs", None)
    return updated
