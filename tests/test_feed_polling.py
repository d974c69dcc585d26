"""Feed polling: a playlist's feed read between its full reads, with real yt-dlp against loopback feeds and media."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import YT_DLP_PYTHON_NOTICE, Project
from playlist_cron import clock, config, reads
from playlist_cron.demo.feed import FeedItem, FeedServer

HOUR_S = 3600


@pytest.fixture
def atom_feed(feed: FeedServer) -> Iterator[FeedServer]:
    """The same channel's items as an Atom feed on a server of its own: the feed read between full reads."""
    with FeedServer(feed.settings.items, feed_format="atom") as server:
        yield server


def polling_config(project: Project, atom_feed: FeedServer, **playlist: Any) -> None:
    """One playlist: its page (the loopback RSS feed, read whole by yt-dlp) and its Atom feed."""
    project.write_config(
        playlist_url=None,
        playlists=[{"url": project.feed.feed_url, "feed_url": atom_feed.feed_url, **playlist}],
    )


def add_upload(guid: str, *servers: FeedServer) -> FeedItem:
    """A new video at the top of the channel, as every server of it lists it."""
    newest = max(item.published for server in servers for item in server.settings.items if item.published)
    item = FeedItem(guid=guid, title=f"New upload {guid}", size_bytes=50_000, published=newest + timedelta(hours=1))
    for server in servers:
        server.settings.items.insert(0, item)
    return item


def check(project: Project, *options: str, code: int = 0) -> dict[str, Any]:
    """Run one check as cron would (plus `options`); return its final event."""
    result = project.run("check", "--now", *options)
    assert result.returncode == code, result.stderr
    final: dict[str, Any] = [e for e in project.events() if e["event"].startswith("check_")][-1]
    return final


def set_last_full_read(project: Project, url: str, ago_s: float) -> None:
    """Move the playlist's last full read `ago_s` into the past, as if that much time had gone by since."""
    set_last_full_read_at(project, url, clock.now_s() - ago_s)


def set_last_full_read_at(project: Project, url: str, moment_s: float) -> None:
    records = project.reads()
    records[url]["last_full_read_at"] = clock.iso(moment_s)
    project.write_reads(records)


def requests_since(server: FeedServer, seen: int) -> list[str]:
    return [f"{record.method} {record.path}" for record in server.requests[seen:]]


@pytest.mark.compat
def test_the_first_check_reads_the_playlist_whole_and_the_next_ones_read_only_the_feed(
    project: Project, atom_feed: FeedServer
) -> None:
    page = project.feed
    polling_config(project, atom_feed, full_scan_interval_seconds=HOUR_S)

    first = check(project)
    assert first["outcome"] == "COMPLETED" and first["downloaded"] == 3
    assert first["playlists"][0]["read"] == "full"
    assert atom_feed.requests == [], "the first check reads the whole playlist, not the feed"
    archived_by_full_read = set(project.archive_lines())

    upload = add_upload("video-00004", page, atom_feed)
    page_seen, feed_seen = len(page.requests), len(atom_feed.requests)
    second = check(project)
    assert (second["outcome"], second["downloaded"], second["already_archived"]) == ("COMPLETED", 1, 3)
    [summary] = second["playlists"]
    assert (summary["read"], summary["feed_url"], summary["feed_status"]) == ("feed", atom_feed.feed_url, 200)
    asked = requests_since(atom_feed, feed_seen)
    assert asked[0] == "GET /feed.xml" and asked.count("GET /feed.xml") == 1, "one request for the feed"
    assert all(upload.guid in r for r in asked[1:]), f"only the new video's media, no archived one: {asked}"
    assert requests_since(page, page_seen) == [], "the playlist was not read whole"
    # The archive line is the one the full read writes for the same entry: the two reads are interchangeable.
    assert set(project.archive_lines()) == archived_by_full_read | {f"generic {upload.guid}"}
    assert project.file_for(upload.guid).read_bytes() == upload.content
    record = project.reads()[page.feed_url]
    assert record["feed_url"] == atom_feed.feed_url and record["last_feed_read_at"] is not None


@pytest.mark.compat
def test_an_unchanged_feed_costs_one_request_and_nothing_is_parsed(project: Project, atom_feed: FeedServer) -> None:
    polling_config(project, atom_feed, full_scan_interval_seconds=HOUR_S)
    check(project)
    check(project)  # the first feed read: 200, with the validators to send next time
    page_seen, feed_seen = len(project.feed.requests), len(atom_feed.requests)

    third = check(project)
    [summary] = third["playlists"]
    assert (summary["read"], summary["feed_status"], third["downloaded"]) == ("feed", 304, 0)
    assert "feed_entries" not in summary, "a 304 has no body: nothing was parsed"
    assert requests_since(atom_feed, feed_seen) == ["GET /feed.xml"]
    [conditional] = atom_feed.requests[feed_seen:]
    assert conditional.status == 304 and (conditional.if_none_match or conditional.if_modified_since)
    assert requests_since(project.feed, page_seen) == [], "nothing else was asked of the site"


def test_the_full_read_comes_back_on_schedule(project: Project, atom_feed: FeedServer) -> None:
    page = project.feed
    interval_s = 2 * HOUR_S
    polling_config(project, atom_feed, full_scan_interval_seconds=interval_s)
    check(project)
    # Read whole at a slot of its own in the two hours (reads.full_read_slot_s): due again at the next one.
    next_slot_s = reads.full_read_slot_s(page.feed_url, interval_s, clock.now_s() + 60)
    set_last_full_read_at(project, page.feed_url, next_slot_s - interval_s)
    assert check(project)["playlists"][0]["read"] == "feed", "a minute or more before it is due"
    last_slot_s = reads.full_read_slot_s(page.feed_url, interval_s, clock.now_s() - 1 - interval_s)
    set_last_full_read_at(project, page.feed_url, last_slot_s - interval_s)
    page_seen = len(page.requests)
    assert check(project)["playlists"][0]["read"] == "full", "its slot has passed"
    assert "GET /feed.xml" in requests_since(page, page_seen)
    assert check(project)["playlists"][0]["read"] == "feed", "and then feed reads again for two hours"


def test_the_full_reads_of_playlists_read_whole_at_one_moment_fall_in_different_checks_as_status_says(
    project: Project, atom_feed: FeedServer
) -> None:
    """Real checks and a short interval: 20 playlists whose full reads were all at one moment are read whole again
    over the interval, a few at each check, each by the first check after the moment `status` names for it."""
    interval_s, count = 10, 20
    urls = [f"{project.feed.feed_url}?channel={number}" for number in range(count)]
    project.write_config(
        playlist_url=None,
        playlists=[{"url": url, "feed_url": f"{atom_feed.feed_url}?channel={n}"} for n, url in enumerate(urls)],
        full_scan_interval_seconds=interval_s,
        check_interval_seconds=1,
    )
    assert [summary["read"] for summary in check(project)["playlists"]] == ["full"] * count, "each one's first read"
    read_whole_s = clock.now_s()
    records = project.reads()
    for url in urls:
        records[url]["last_full_read_at"] = clock.iso(read_whole_s)
    project.write_reads(records)

    first_due = {shown["next_full_read_at"] for shown in project.status()["playlists"]}
    assert len(first_due) >= 4, f"due at moments of their own in the interval: {sorted(first_due)}"

    read_whole_again_by: dict[str, int] = {}  # each playlist's first full read since then: the check's number
    number = 0
    while len(read_whole_again_by) < count:
        assert clock.now_s() < read_whole_s + interval_s + 60, f"not all read whole in time: {read_whole_again_by}"
        status = project.status()
        due_s = {shown["url"]: clock.parse_iso(shown["next_full_read_at"]) for shown in status["playlists"]}
        time.sleep(max(0.0, clock.parse_iso(status["next_check_due_at"]) - clock.now_s()))  # type: ignore[operator]
        started_s = clock.now_s()
        final = check(project)
        ended_s, number = clock.now_s(), number + 1
        for summary in final["playlists"]:
            url, read = summary["url"], summary["read"]
            assert read == ("full" if due_s[url] <= started_s else read), f"due at {due_s[url]}, check {started_s}"
            assert read == ("feed" if due_s[url] > ended_s else read), f"due at {due_s[url]}, check ended {ended_s}"
            if read == "full":
                read_whole_again_by.setdefault(url, number)
    # About 1.5 s a check against 10 s: 5 checks or so share them (2 or 3 when the machine is busy).
    full_reads_per_check = Counter(read_whole_again_by.values())
    assert len(full_reads_per_check) >= 2, f"spread over several checks: {full_reads_per_check}"
    assert max(full_reads_per_check.values()) <= count * 3 // 4, f"not all in one: {full_reads_per_check}"


def test_a_full_scan_interval_of_zero_reads_the_feed_alone_from_the_first_check(
    project: Project, atom_feed: FeedServer
) -> None:
    page = project.feed
    polling_config(project, atom_feed, full_scan_interval_seconds=0)
    first = check(project)
    assert (first["playlists"][0]["read"], first["downloaded"]) == ("feed", 3)
    add_upload("video-00004", page, atom_feed)
    set_last_full_read_never = project.reads()[page.feed_url]
    assert set_last_full_read_never.get("last_full_read_at") is None
    assert check(project)["downloaded"] == 1
    assert [r for r in page.requests if r.path.startswith("/feed.xml")] == [], "the playlist was never read whole"


@pytest.mark.compat
@pytest.mark.parametrize(
    "broken",
    ["404", "not XML", "an HTML page", "entity declaration"],
)
def test_a_feed_that_fails_falls_back_to_a_full_read_in_the_same_check(
    project: Project, atom_feed: FeedServer, broken: str
) -> None:
    page = project.feed
    polling_config(project, atom_feed, full_scan_interval_seconds=HOUR_S)
    check(project)
    upload = add_upload("video-00004", page, atom_feed)
    if broken == "404":
        atom_feed.settings.feed_status = 404
    elif broken == "not XML":
        atom_feed.settings.feed_body = b"this is not a feed"
    elif broken == "an HTML page":
        atom_feed.settings.feed_body = b"<!DOCTYPE html><html><body>Moved</body></html>"
    else:
        atom_feed.settings.feed_body = (
            b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY a "aaaaaaaaaa">]><feed xmlns="http://www.w3.org/2005/Atom">'
            b"<title>&a;</title></feed>"
        )
    final = check(project)
    assert (final["outcome"], final["downloaded"]) == ("COMPLETED", 1)
    [summary] = final["playlists"]
    assert summary["read"] == "full" and summary["feed_url"] == atom_feed.feed_url and summary["feed_error"]
    [failed] = project.events("feed_failed")
    assert failed["feed_url"] == atom_feed.feed_url and failed["playlist_url"] == page.feed_url
    assert (
        failed["reason"]
        == {
            "404": "other",
            "not XML": "not_xml",
            "an HTML page": "not_xml",
            "entity declaration": "entity_declaration",
        }[broken]
    )
    assert f"generic {upload.guid}" in project.archive_lines()
    assert project.reads()[page.feed_url]["last_feed_error"]


@pytest.mark.compat
def test_a_full_read_that_fails_still_downloads_what_the_feed_lists(project: Project, atom_feed: FeedServer) -> None:
    page = project.feed
    polling_config(project, atom_feed, full_scan_interval_seconds=HOUR_S)
    check(project)
    upload = add_upload("video-00004", page, atom_feed)
    set_last_full_read(project, page.feed_url, HOUR_S + 1)
    page.settings.feed_body = b'<?xml version="1.0"?><html><body>The playlist page changed</body></html>'
    final = check(project, code=1)
    assert (final["outcome"], final["reason"], final["downloaded"]) == ("FAILED", "playlist_error", 1)
    [summary] = final["playlists"]
    assert summary["read"] == "feed" and summary["error"]
    assert f"generic {upload.guid}" in project.archive_lines()
    assert project.reads()[page.feed_url]["last_full_read_at"] is not None
    # The full read is still due: the next check tries it again.
    page.settings.feed_body = None
    assert check(project)["playlists"][0]["read"] == "full"


def test_a_rate_limit_met_on_a_feed_read_defers_the_check(project: Project, atom_feed: FeedServer) -> None:
    polling_config(project, atom_feed, full_scan_interval_seconds=HOUR_S)
    check(project)
    add_upload("video-00004", project.feed, atom_feed)
    atom_feed.settings.feed_status = 429
    page_seen = len(project.feed.requests)
    final = check(project)
    assert (final["outcome"], final["reason"]) == ("DEFERRED", "rate_limited")
    assert final["cooldown_until"]
    assert requests_since(project.feed, page_seen) == [], "no full read, no download: the site said to slow down"


@pytest.mark.compat
def test_mark_archived_takes_its_ids_from_the_feed_without_a_request_per_video(
    project: Project, atom_feed: FeedServer
) -> None:
    polling_config(project, atom_feed, full_scan_interval_seconds=0)
    final = check(project, "--mark-archived")
    assert (final["outcome"], final["marked_archived"], final["downloaded"]) == ("COMPLETED", 3, 0)
    assert sorted(project.archive_lines()) == sorted(f"generic {i.guid}" for i in atom_feed.settings.items)
    assert project.feed.requests == [], "no request for any video, nor for the playlist page"
    assert [r.path for r in atom_feed.requests] == ["/feed.xml"]


def test_max_downloads_and_date_after_behave_the_same_on_feed_reads(project: Project, atom_feed: FeedServer) -> None:
    for number in (4, 5, 6):
        add_upload(f"video-{number:05d}", project.feed, atom_feed)  # six items, newest first
    oldest = atom_feed.settings.items[-1]
    assert oldest.published is not None
    polling_config(
        project,
        atom_feed,
        full_scan_interval_seconds=0,
        max_downloads_per_check=2,
        date_after=(oldest.published + timedelta(days=1)).strftime("%Y%m%d"),  # the day after the oldest
    )
    first = check(project)
    assert (first["downloaded"], first["playlists"][0]["stopped"]) == (2, "max_downloads_per_check")
    assert check(project)["downloaded"] == 2
    third = check(project)
    # Of the two left, the oldest is before date_after: known from the feed's date, with no request for it.
    assert (third["downloaded"], third["playlists"][0]["filtered"]) == (1, 1)
    assert not [r for r in atom_feed.requests if oldest.guid in r.path]
    assert {entry["read"] for event in project.events("check_completed") for entry in event["playlists"]} == {"feed"}


def test_stop_at_first_archived_stops_a_feed_read_at_its_first_archived_entry(
    project: Project, atom_feed: FeedServer
) -> None:
    polling_config(project, atom_feed, full_scan_interval_seconds=0, stop_at_first_archived=True)
    assert check(project)["downloaded"] == 3
    add_upload("video-00004", project.feed, atom_feed)
    final = check(project)
    [summary] = final["playlists"]
    assert (final["downloaded"], final["already_archived"]) == (1, 1), "it stopped at the first archived entry"
    assert (summary["read"], summary["stopped"]) == ("feed", "first archived video")


def _quirk(feed: FeedServer, quirk: str) -> bytes:
    """The loopback feed's RSS, changed the way some real feed is."""
    rss = feed.feed_xml().decode()
    first, second = feed.settings.items[0], feed.settings.items[1]
    if quirk == "blank line before <?xml":
        return b"\n\n" + rss.encode()
    if quirk == "default namespace on <rss>":
        return rss.replace(
            '<rss version="2.0">', '<rss version="2.0" xmlns="http://backend.userland.com/rss2">'
        ).encode()
    if quirk == "cp1251":
        rss = rss.replace('encoding="UTF-8"', 'encoding="windows-1251"').replace(first.title, "Выпуск первый")
        return rss.encode("cp1251")
    if quirk == "CDATA":
        return rss.replace(
            f"<title>{first.title}</title>", f"<title><![CDATA[{first.title} <b>&</b>]]></title>"
        ).encode()
    if quirk == "relative links":
        return rss.replace(feed.base_url, "").encode()  # enclosures as /media/…, resolved against the feed's URL
    if quirk == "whitespace around ids":
        return rss.replace(f">{first.guid}</guid>", f">\n      {first.guid}\n    </guid>").encode()
    if quirk == "duplicate ids":
        start = rss.index("<item>")
        return (rss[:start] + rss[start : rss.index("</item>") + len("</item>")] + rss[start:]).encode()
    if quirk == "several enclosures":
        image = f'<enclosure url="{feed.base_url}/cover.jpg" type="image/jpeg" length="100"/>'
        audio_first = rss.replace(
            f'<guid isPermaLink="false">{second.guid}</guid>', f'<guid isPermaLink="false">{second.guid}</guid>{image}'
        )
        return audio_first.replace(
            f'<guid isPermaLink="false">{first.guid}</guid>', f'<guid isPermaLink="false">{first.guid}</guid>{image}'
        ).encode()
    raise AssertionError(quirk)


QUIRKS = [
    "blank line before <?xml",
    "default namespace on <rss>",
    "cp1251",
    "CDATA",
    "relative links",
    "whitespace around ids",
    "duplicate ids",
    "several enclosures",
]


@pytest.mark.compat
@pytest.mark.parametrize("quirk", QUIRKS)
def test_a_playlist_url_that_is_a_feed_with_a_real_world_quirk_downloads_every_entry(
    project: Project, quirk: str
) -> None:
    feed = project.feed
    feed.settings.feed_body = _quirk(feed, quirk)
    final = check(project)
    assert (final["outcome"], final["downloaded"], final["failed"]) == ("COMPLETED", 3, 0), final
    assert final["playlists"][0]["read"] == "feed"
    assert sorted(project.archive_lines()) == sorted(f"generic {item.guid}" for item in feed.settings.items)
    for item in feed.settings.items:
        assert project.file_for(item.guid).read_bytes() == item.content
    assert not feed.requests_for("/cover.jpg"), "the first video or audio enclosure wins"
    # The next check asks for the feed once, and it is unchanged.
    again = check(project)
    assert (again["downloaded"], again["playlists"][0]["feed_status"]) == (0, 304)


def test_a_full_read_cut_short_by_max_downloads_per_check_is_read_whole_again_until_it_is_through(
    project: Project, atom_feed: FeedServer
) -> None:
    """A large first sync spread over many checks goes on with full reads: a feed lists only the newest entries."""
    polling_config(project, atom_feed, full_scan_interval_seconds=HOUR_S, max_downloads_per_check=2)
    first = check(project)
    assert (first["downloaded"], first["playlists"][0]["read"]) == (2, "full")
    second = check(project)
    assert (second["downloaded"], second["playlists"][0]["read"]) == (1, "full")
    assert check(project)["playlists"][0]["read"] == "feed", "through: feed reads until the next full read is due"


class _Heard:
    """What the downloader tells the check, kept for the test to read (the check's own `Reporter` needs a lock)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        if name == "retry_is_due":
            return lambda key: True
        if name == "due_retries":
            return lambda playlist_url: []
        return lambda *arguments: self.events.append((name, arguments))


def _youtube_tab(channel_id: str, url: str, video_ids: list[str]) -> dict[str, Any]:
    """What yt-dlp's YouTube tab extractor gives for a channel's `/videos` (its shape and fields), unprocessed."""
    return {
        "_type": "playlist",
        "id": channel_id,
        "title": "Loopback Channel - Videos",
        "channel": "Loopback Channel",
        "channel_id": channel_id,
        "uploader_id": "@LoopbackChannel",
        "webpage_url": url,
        "extractor": "youtube:tab",
        "extractor_key": "YoutubeTab",
        "entries": [
            {"_type": "url", "ie_key": "Youtube", "id": video_id, "url": f"https://www.youtube.com/watch?v={video_id}"}
            for video_id in video_ids
        ],
    }


def _read_whole(tmp_path: Path, tab: dict[str, Any], archived: list[str], **options: Any) -> Any:
    """Run a full read of `tab` through the real downloader (yt-dlp's YoutubeDL), the archive holding `archived`."""
    from playlist_cron import playlist_result, ytdl

    archive = tmp_path / "archive.txt"
    archive.write_text("".join(f"youtube {video_id}\n" for video_id in archived))
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"playlist_url": tab["webpage_url"], **options}))
    playlist = config.load(config_path).playlists[0]
    result = playlist_result.PlaylistResult(url=playlist.url)
    heard = _Heard()
    params = {"download_archive": str(archive), "quiet": True, "simulate": True}
    with ytdl.Downloader(params, playlist, result, heard) as ydl:
        ydl.capture_playlist_fields = True
        with contextlib.suppress(ytdl.StopPlaylist):
            ydl.process_ie_result(tab, download=True)
    return result, heard, playlist


@pytest.mark.compat
def test_stop_at_first_archived_stops_at_a_youtube_entry_that_yt_dlp_itself_skips_as_archived(
    tmp_path: Path,
) -> None:
    """yt-dlp skips an archived entry whose id the playlist gives before playlist-cron sees it: it must still count,
    and stop the read there (before: not counted, and the read went on to every older video)."""
    tab = _youtube_tab(
        "UCq3Ci-h945sbEYXpVlw7rJg", "https://www.youtube.com/@LoopbackChannel/videos", ["NEWER", "OLDER"]
    )
    result, heard, _ = _read_whole(tmp_path, tab, ["NEWER"], stop_at_first_archived=True)
    assert (result.already_archived, result.stopped) == (1, "first archived video")
    said = [
        (name, arguments)
        for name, arguments in heard.events
        if name != "activity" and not (name == "warning" and arguments[0].startswith(YT_DLP_PYTHON_NOTICE))
    ]
    assert not said, "OLDER was never run"


@pytest.mark.compat
def test_a_full_read_of_a_youtube_channel_keeps_its_channel_id_and_playlist_fields(tmp_path: Path) -> None:
    """A handle's channel read whole: its channel id is kept for the handle's feed, and the playlist fields for
    the feed reads' file names."""
    channel_id = "UCq3Ci-h945sbEYXpVlw7rJg"
    tab = _youtube_tab(channel_id, "https://www.youtube.com/@LoopbackChannel/videos", ["V15-xQ_7tYz"])
    result, _, playlist = _read_whole(tmp_path, tab, ["V15-xQ_7tYz"])
    assert result.already_archived == 1, "the archived entry was settled from the playlist alone"
    assert result.channel_id == channel_id
    assert result.playlist_fields is not None
    assert result.playlist_fields["playlist_title"] == "Loopback Channel - Videos"
    assert result.playlist_fields["playlist_channel_id"] == channel_id
    result.full_read_complete = True  # as _follow says of a full read that went through without an error
    record = reads.record_after(None, result, "2026-12-01T00:00:00.000Z", "x")
    assert record["channel_id"] == channel_id
    plan = reads.plan(playlist, record, clock.now_s())
    assert plan.feed_url == f"https://www.youtube.com/feeds/videos.xml?playlist_id=UULF{channel_id[2:]}"
    assert plan.playlist_fields and plan.playlist_fields["playlist_title"] == "Loopback Channel - Videos"
