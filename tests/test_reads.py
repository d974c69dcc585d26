"""Unit: which read a playlist gets (feed or full), and what the state keeps of it for the next check."""

from __future__ import annotations

from typing import Any

from playlist_cron import clock, config, reads
from playlist_cron.playlist_result import PlaylistResult
from playlist_cron.records import PlaylistReadRecord

CHANNEL_ID = "UCq3Ci-h945sbEYXpVlw7rJg"
CHANNEL_FEED = f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL_ID}"
NOW_S = 1_800_000_000.0


def playlist(url: str, **options: Any) -> config.Playlist:
    values: dict[str, Any] = {
        "output_template": config.DEFAULT_OUTPUT_TEMPLATE,
        "yt_dlp_args": (),
        "stop_at_first_archived": False,
        "max_downloads_per_check": None,
        "date_after": None,
    }
    return config.Playlist(url=url, **{**values, **options})


def full_read(ago_s: float) -> PlaylistReadRecord:
    return {"last_full_read_at": clock.iso(NOW_S - ago_s)}


def test_a_youtube_channel_is_read_whole_first_then_from_its_feed_until_the_interval_has_passed() -> None:
    channel = playlist(f"https://www.youtube.com/channel/{CHANNEL_ID}", full_scan_interval_seconds=3600)
    first = reads.plan(channel, None, NOW_S)
    assert (first.kind, first.why, first.feed_url) == ("full", "first read", CHANNEL_FEED)
    assert reads.plan(channel, full_read(3599), NOW_S).kind == "feed"
    assert reads.plan(channel, full_read(3600), NOW_S)[:2] == ("full", "full read due")
    assert reads.next_full_read_s(channel, full_read(600)) == NOW_S - 600 + 3600


def test_zero_means_the_feed_alone_even_at_the_first_check() -> None:
    channel = playlist(f"https://www.youtube.com/channel/{CHANNEL_ID}", full_scan_interval_seconds=0)
    assert reads.plan(channel, None, NOW_S).kind == "feed"
    assert reads.next_full_read_s(channel, full_read(10**8)) is None


def test_no_feed_means_a_full_read_at_every_check() -> None:
    off = playlist(f"https://www.youtube.com/channel/{CHANNEL_ID}", feed_url=False)
    assert reads.plan(off, full_read(1), NOW_S)[:2] == ("full", "the playlist has no feed")
    assert reads.next_full_read_s(off, full_read(1)) == 0.0, "due at every check"
    video_site = playlist("https://vimeo.com/channels/staffpicks")
    assert reads.plan(video_site, None, NOW_S).probe, "looked at once: it may be a feed"
    assert not reads.plan(video_site, {"is_feed": False}, NOW_S).probe, "and never again"
    assert not reads.plan(playlist("https://www.youtube.com/watch?v=x&list=RDx"), None, NOW_S).probe


def test_a_handle_is_read_whole_until_its_channel_id_is_known() -> None:
    handle = playlist("https://www.youtube.com/@LoopbackChannel/videos")
    assert reads.plan(handle, None, NOW_S)[:2] == ("full", "the channel's id is not known yet: a full read learns it")
    known = reads.plan(handle, {**full_read(60), "channel_id": CHANNEL_ID}, NOW_S)
    assert (known.kind, known.feed_url) == (
        "feed",
        f"https://www.youtube.com/feeds/videos.xml?playlist_id=UULF{CHANNEL_ID[2:]}",
    )
    damaged = reads.plan(handle, {**full_read(60), "channel_id": "not an id"}, NOW_S)
    assert damaged.kind == "full", "an id that is not one is not used"


def test_validators_are_sent_only_to_the_feed_they_came_from() -> None:
    channel = playlist(f"https://www.youtube.com/channel/{CHANNEL_ID}")
    record: PlaylistReadRecord = {**full_read(60), "feed_url": CHANNEL_FEED, "etag": '"v1"', "last_modified": "x"}
    assert reads.plan(channel, record, NOW_S)[3:5] == ('"v1"', "x")
    moved = channel._replace(feed_url="https://example.org/other.xml")
    assert reads.plan(moved, record, NOW_S)[3:5] == (None, None)


def test_a_playlist_url_that_is_a_feed_is_read_as_a_feed_at_every_check() -> None:
    podcast = playlist("https://example.org/podcast.rss")
    plan = reads.plan(podcast, {"is_feed": True, "feed_url": podcast.url, "etag": '"e"'}, NOW_S)
    assert (plan.kind, plan.feed_url, plan.playlist_is_feed, plan.etag) == ("feed", podcast.url, True, '"e"')
    assert reads.next_full_read_s(podcast, {"is_feed": True}) is None


def test_the_record_keeps_what_the_next_check_needs_and_no_password() -> None:
    url = "https://user:secret@example.org/feed.xml?token=abc"
    assert "secret" not in reads.record_key(url) and "abc" not in reads.record_key(url)
    result = PlaylistResult(url=url, read="feed", feed_url=url, feed_status=200, etag='"v2"', last_modified="Mon")
    record = reads.record_after(full_read(60), result, "2026-12-01T00:00:00.000Z", "2026-12-01T00:00:05.000Z")
    assert record["etag"] == '"v2"' and record["last_feed_read_at"] == "2026-12-01T00:00:05.000Z"
    assert "secret" not in str(record["feed_url"])
    assert record["last_full_read_at"] == full_read(60)["last_full_read_at"], "a feed read is no full read"

    failed = PlaylistResult(url=url, feed_url=url, feed_error="not_xml: ...", full_read_complete=True)
    after_fallback = reads.record_after(record, failed, "2026-12-01T01:00:00.000Z", "2026-12-01T01:00:09.000Z")
    assert after_fallback["last_feed_error"] == "not_xml: ..."
    assert after_fallback["etag"] == '"v2"', "the validators of the last good read are kept"
    assert after_fallback["last_full_read_at"] == "2026-12-01T01:00:00.000Z", "when the full read began"

    cut_short = PlaylistResult(url=url, full_read_complete=False, stopped="max_downloads_per_check")
    assert reads.record_after(after_fallback, cut_short, "2026-12-01T02:00:00.000Z", "x")["last_full_read_at"] == (
        "2026-12-01T01:00:00.000Z"
    ), "a full read cut short by max_downloads_per_check is due again at the next check"
