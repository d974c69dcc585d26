"""YouTube channels and playlists polled through their feeds, against a stand-in for www.youtube.com on loopback.

The check's requests go through yt-dlp's own `--proxy` to the stand-in (tests/youtube_stand_in.py), which records
every one: what a check asks of YouTube is seen, not assumed. Watch pages cannot be served offline: a new video is
handed to yt-dlp's YouTube extractor, whose request for its watch page (answered 404) proves the hand-off.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from conftest import Project
from playlist_cron import state
from youtube_stand_in import Upload, YouTubeStandIn

CHANNEL_ID = "UCq3Ci-h945sbEYXpVlw7rJg"
PLAYLIST_ID = "PLq3Ci-h945sbEYXpVlw7rJgAbCdEf0123"
CHANNEL_URL = f"https://www.youtube.com/channel/{CHANNEL_ID}"
FEED_PATH = f"/feeds/videos.xml?channel_id={CHANNEL_ID}"


def uploads(count: int, prefix: str = "V") -> list[Upload]:
    """`count` uploads, newest first, an hour apart, with ids shaped like YouTube's (11 characters)."""
    newest = datetime(2026, 11, 28, 17, 0, tzinfo=timezone.utc)
    return [
        Upload(f"{prefix}{number:02d}-xQ_7tYz"[:11], f"Episode {number}", newest - timedelta(hours=count - number))
        for number in range(count, 0, -1)
    ]


def youtube_config(project: Project, youtube: YouTubeStandIn, url: str = CHANNEL_URL, **options: Any) -> None:
    project.write_config(playlist_url=url, yt_dlp_args=youtube.yt_dlp_args(), **options)


def archive(project: Project, video_ids: list[str]) -> None:
    project.archive_file.write_text("".join(f"youtube {video_id}\n" for video_id in video_ids))


def write_state(project: Project, playlists: dict[str, Any]) -> None:
    """A state as a check leaves it, with these playlist records (reads that cannot be made offline)."""
    project.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    project.state_file.write_text(json.dumps(state.empty()))
    project.write_reads(playlists)


def final_event(project: Project) -> dict[str, Any]:
    event: dict[str, Any] = [e for e in project.events() if e["event"].startswith("check_")][-1]
    return event


@pytest.mark.compat
def test_a_feed_only_check_of_a_channel_whose_15_entries_are_archived_makes_one_request_and_no_other(
    project: Project, youtube: YouTubeStandIn
) -> None:
    channel = uploads(15)
    youtube.set_channel_feed(CHANNEL_ID, channel)
    archive(project, [upload.video_id for upload in channel])
    youtube_config(project, youtube, full_scan_interval_seconds=0)

    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    final = final_event(project)
    assert (final["outcome"], final["downloaded"], final["already_archived"]) == ("COMPLETED", 0, 15)
    [summary] = final["playlists"]
    assert (summary["read"], summary["feed_status"], summary["feed_entries"]) == ("feed", 200, 15)
    assert summary["feed_url"] == f"https://www.youtube.com{FEED_PATH}", "derived from the channel's URL"
    assert [(r.method, r.host, r.path) for r in youtube.requests] == [("GET", "www.youtube.com", FEED_PATH)]
    assert youtube.tunnels == ["www.youtube.com:443"]

    # The next minute: the feed is unchanged, one request again, answered 304.
    youtube.clear_requests()
    assert project.run("check", "--now").returncode == 0
    [conditional] = youtube.requests
    assert (conditional.path, conditional.status) == (FEED_PATH, 304)
    assert conditional.header("If-None-Match") and conditional.header("If-Modified-Since")
    assert final_event(project)["playlists"][0]["feed_status"] == 304


@pytest.mark.compat
def test_new_entries_are_handed_to_yt_dlp_as_their_watch_page_and_no_archived_one_is_touched(
    project: Project, youtube: YouTubeStandIn
) -> None:
    channel = uploads(15)
    youtube.set_channel_feed(CHANNEL_ID, channel)
    new_ids = [upload.video_id for upload in channel[:3]]
    archive(project, [upload.video_id for upload in channel[3:]])
    youtube_config(project, youtube, full_scan_interval_seconds=0)

    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    final = final_event(project)
    assert (final["already_archived"], final["failed"], final["downloaded"]) == (12, 3, 0)
    # yt-dlp's YouTube extractor asked for the new videos' pages, and for nothing of the archived ones.
    assert set(youtube.watched_video_ids()) == set(new_ids)
    assert youtube.requests_to("/watch?")[0].path.startswith(f"/watch?v={new_ids[0]}&")
    archived_ids = {upload.video_id for upload in channel[3:]}
    assert not [r for r in youtube.requests if any(video_id in r.path for video_id in archived_ids)]
    # Each is remembered under the archive line yt-dlp writes for it, `youtube <id>`, with its page.
    failed = project.state()["failed_videos"]
    assert set(failed) == {f"youtube {video_id}" for video_id in new_ids}
    assert {record["url"] for record in failed.values()} == {f"https://www.youtube.com/watch?v={v}" for v in new_ids}
    # Their retries are not due yet: the next check asks for the feed alone, and it is unchanged.
    youtube.clear_requests()
    assert project.run("check", "--now").returncode == 0
    assert [(r.path, r.status) for r in youtube.requests] == [(FEED_PATH, 304)]


@pytest.mark.compat
def test_mark_archived_from_a_youtube_feed_writes_the_lines_yt_dlp_writes_without_a_request_per_video(
    project: Project, youtube: YouTubeStandIn
) -> None:
    channel = uploads(15)
    youtube.set_playlist_feed(PLAYLIST_ID, channel)
    youtube_config(
        project, youtube, url=f"https://www.youtube.com/playlist?list={PLAYLIST_ID}", full_scan_interval_seconds=0
    )
    result = project.run("check", "--mark-archived")
    assert result.returncode == 0, result.stderr
    assert final_event(project)["marked_archived"] == 15
    assert project.archive_lines() == [f"youtube {upload.video_id}" for upload in channel]
    assert [r.path for r in youtube.requests] == [f"/feeds/videos.xml?playlist_id={PLAYLIST_ID}"]


def test_a_new_upload_is_found_from_the_feed_between_full_reads(project: Project, youtube: YouTubeStandIn) -> None:
    """The first full read cannot be served offline: the state says it happened half a minute ago, as it would have
    (the next full read is then at least a minute after it: reads.MIN_FULL_READ_GAP_S)."""
    channel = uploads(15)
    youtube.set_channel_feed(CHANNEL_ID, channel)
    archive(project, [upload.video_id for upload in channel])
    youtube_config(project, youtube)
    moments_ago = (datetime.now(timezone.utc) - timedelta(seconds=30)).isoformat(timespec="milliseconds")
    write_state(project, {CHANNEL_URL: {"last_full_read_at": moments_ago.replace("+00:00", "Z")}})
    assert project.run("check", "--now").returncode == 0
    assert final_event(project)["playlists"][0]["read"] == "feed"
    assert [r.path for r in youtube.requests] == [FEED_PATH]

    upload = Upload("NEW-xQ_7tYz", "A new upload", channel[0].published + timedelta(hours=1))
    youtube.set_channel_feed(CHANNEL_ID, [upload, *channel])
    youtube.clear_requests()
    assert project.run("check", "--now").returncode == 0
    final = final_event(project)
    assert (final["playlists"][0]["read"], final["playlists"][0]["feed_status"]) == ("feed", 200)
    assert set(youtube.watched_video_ids()) == {upload.video_id}, "the new upload, and nothing else"
    assert youtube.requests[0].path == FEED_PATH and youtube.requests[0].status == 200


def test_a_handle_whose_channel_id_is_remembered_is_polled_through_its_tab_feed(
    project: Project, youtube: YouTubeStandIn
) -> None:
    videos_list = f"UULF{CHANNEL_ID[2:]}"
    youtube.set_playlist_feed(videos_list, uploads(15))
    archive(project, [upload.video_id for upload in uploads(15)])
    youtube_config(project, youtube, url="https://www.youtube.com/@LoopbackChannel/videos")
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    write_state(
        project,
        {"https://www.youtube.com/@LoopbackChannel/videos": {"last_full_read_at": now, "channel_id": CHANNEL_ID}},
    )
    assert project.run("check", "--now").returncode == 0
    assert [r.path for r in youtube.requests] == [f"/feeds/videos.xml?playlist_id={videos_list}"]
    assert final_event(project)["already_archived"] == 15


def test_a_youtube_feed_that_answers_429_defers_the_check(project: Project, youtube: YouTubeStandIn) -> None:
    youtube.set_channel_feed(CHANNEL_ID, uploads(3))
    youtube.feed_status[("channel_id", CHANNEL_ID)] = 429
    youtube_config(project, youtube, full_scan_interval_seconds=0)
    result = project.run("check", "--now")
    assert (result.returncode, result.stderr) == (0, "")
    final = final_event(project)
    assert (final["outcome"], final["reason"]) == ("DEFERRED", "rate_limited")
    assert [r.path for r in youtube.requests] == [FEED_PATH], "nothing more was asked"
