"""Unit: which read a playlist gets (feed or full), and what the state keeps of it for the next check."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
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


def test_a_youtube_channel_is_read_whole_first_then_from_its_feed_until_its_slot_in_the_interval() -> None:
    channel = playlist(f"https://www.youtube.com/channel/{CHANNEL_ID}", full_scan_interval_seconds=3600)
    first = reads.plan(channel, None, NOW_S)
    assert (first.kind, first.why, first.feed_url) == ("full", "first read", CHANNEL_FEED)
    slot_s = reads.full_read_slot_s(reads.record_key(channel.url), 3600, NOW_S)
    assert NOW_S < slot_s <= NOW_S + 3600 and slot_s % 3600 == reads.full_read_offset_s(channel.url, 3600)
    at_last_slot: PlaylistReadRecord = {"last_full_read_at": clock.iso(slot_s - 3600)}
    assert reads.next_full_read_s(channel, at_last_slot) == slot_s
    assert reads.plan(channel, at_last_slot, slot_s - 0.001).kind == "feed"
    assert reads.plan(channel, at_last_slot, slot_s)[:2] == ("full", "full read due")
    # Read whole half a minute before its slot: not again at the next check, but an interval after that read.
    just_before: PlaylistReadRecord = {"last_full_read_at": clock.iso(slot_s - 30)}
    assert reads.next_full_read_s(channel, just_before) == slot_s - 30 + 3600


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


# -- full reads spread over the interval ------------------------------------------------------------------------

SIX_HOURS_S = 21600
HOUR_S = 3600
CHECK_S = 60  # cron's minute


def channels(count: int, **options: Any) -> list[config.Playlist]:
    return [playlist(f"https://www.youtube.com/channel/UC{number:022d}", **options) for number in range(count)]


def run_checks(
    playlists: list[config.Playlist], records: dict[str, PlaylistReadRecord], first_s: float, last_s: float
) -> dict[float, list[str]]:
    """Plan a check every minute from `first_s` to `last_s`, keeping each full read in `records` as a check would;
    return the playlists read whole by each check that read any."""
    full_reads: dict[float, list[str]] = {}
    now_s = first_s
    while now_s <= last_s:
        for each in playlists:
            if reads.plan(each, records.get(each.url), now_s).kind == "full":
                records[each.url] = {**records.get(each.url, {}), "last_full_read_at": clock.iso(now_s)}
                full_reads.setdefault(now_s, []).append(each.url)
        now_s += CHECK_S
    return full_reads


def test_the_full_reads_of_playlists_added_together_fall_in_many_different_checks() -> None:
    playlists = channels(200, full_scan_interval_seconds=HOUR_S)
    # Their first checks, all at once, read them all whole.
    assert {reads.plan(each, None, NOW_S).why for each in playlists} == {"first read"}
    records: dict[str, PlaylistReadRecord] = {each.url: full_read(0) for each in playlists}

    full_reads = run_checks(playlists, records, NOW_S + CHECK_S, NOW_S + HOUR_S + CHECK_S)
    per_check = sorted(len(urls) for urls in full_reads.values())
    assert sum(per_check) == 200, "each read whole once within its interval (and a check)"
    # 200 over the hour's 60 checks: 3.3 a check on average, and not all in one (nor in a few).
    assert len(per_check) >= 45, f"in many checks, not all in one: {per_check}"
    assert per_check[-1] <= 10, f"a few full reads per check at most: {per_check}"


def test_no_playlist_goes_longer_than_its_interval_without_a_full_read_nor_is_read_whole_twice_in_a_row() -> None:
    for interval_s, count in ((SIX_HOURS_S, 20), (HOUR_S, 100), (600, 100)):
        playlists = channels(count, full_scan_interval_seconds=interval_s)
        records: dict[str, PlaylistReadRecord] = {each.url: full_read(0) for each in playlists}
        full_reads = run_checks(playlists, records, NOW_S + CHECK_S, NOW_S + 3 * interval_s)
        read_at: dict[str, list[float]] = {each.url: [NOW_S] for each in playlists}
        for now_s, urls in sorted(full_reads.items()):
            for url in urls:
                read_at[url].append(now_s)
        for url, moments in read_at.items():
            gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
            assert len(gaps) >= 2, (interval_s, url, gaps)
            assert max(gaps) <= interval_s + CHECK_S, (interval_s, url, gaps)
            assert min(gaps) > CHECK_S, f"never at the very next check: {(interval_s, url, gaps)}"
            # After the first interval, each settles into one full read per interval.
            assert gaps[1:] == [interval_s] * len(gaps[1:]), (interval_s, url, gaps)


def test_a_playlists_moment_in_the_interval_is_the_same_in_every_process() -> None:
    channel = playlist(f"https://www.youtube.com/channel/{CHANNEL_ID}", full_scan_interval_seconds=SIX_HOURS_S)
    here = reads.next_full_read_s(channel, full_read(0))
    probe = (
        "from playlist_cron import clock, config, reads; "
        f"p = config.Playlist({channel.url!r}, '', (), False, None, None, full_scan_interval_seconds={SIX_HOURS_S}); "
        f"print(repr(reads.next_full_read_s(p, {{'last_full_read_at': clock.iso({NOW_S!r})}})))"
    )
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}
        )
        assert result.returncode == 0, result.stderr
        assert float(result.stdout) == here, "a restart, or another host of a fleet, finds the same moment"
    others = {reads.next_full_read_s(each, full_read(0)) for each in channels(20, full_scan_interval_seconds=3600)}
    assert len(others) > 10, "and each playlist has its own"
