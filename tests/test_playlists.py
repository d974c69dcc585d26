"""End to end: several playlists, failed videos on a retry schedule, and the per-check limits and filters.

Every test runs the installed `playlist-cron` command against loopback feeds, with the real yt-dlp.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import Project
from playlist_cron import clock
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items

FINAL_EVENTS = ("check_completed", "check_failed", "check_skipped", "check_deferred")
UNREACHABLE_URL = "http://127.0.0.1:9/feed.xml"
SCHEDULE_SLACK_S = 10  # how far next_retry_at may drift from "when the failure was logged + the backoff step"


# -- helpers -----------------------------------------------------------------------------------------------------------


def check(
    project: Project, *arguments: str, exit_code: int = 0, here: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `check --now` (plus `arguments`) as cron would (or in this process: `here`), and assert its exit code."""
    result = (project.run_here if here else project.run)("check", "--now", *arguments)
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    return result


def events_of(project: Project, number: int, name: str | None = None) -> list[dict[str, Any]]:
    """The events that check #`number` logged (all of them, or those called `name`)."""
    return [event for event in project.events(name) if event.get("check") == number]


def final_event(project: Project, number: int | None = None) -> dict[str, Any]:
    """The one final event of check #`number` (default: the last check)."""
    finals = [event for event in project.events() if event["event"] in FINAL_EVENTS]
    number = finals[-1]["check"] if number is None else number
    [final] = [event for event in finals if event["check"] == number]
    return final


def media_requests(feed: FeedServer, guid: str = "") -> list[Any]:
    """The requests `feed` saw for the media of `guid` (of any item, when no guid is named)."""
    return feed.requests_for(f"/media/{guid}")


def use_items(project: Project, items: list[FeedItem]) -> None:
    project.feed.settings.items = items
    project.feed.requests.clear()


def failed_record(project: Project, guid: str) -> dict[str, Any]:
    record: dict[str, Any] = project.state()["failed_videos"][f"generic {guid}"]
    return record


def make_retry_due(project: Project, guid: str) -> None:
    """Move a failed video's next_retry_at into the past, as time passing would; the state stays valid JSON."""
    state = project.state()
    state["failed_videos"][f"generic {guid}"]["next_retry_at"] = clock.iso(clock.now_s() - 5)
    scratch = project.state_file.with_name(project.state_file.name + ".edit")
    scratch.write_text(json.dumps(state, indent=2))
    os.chmod(scratch, 0o600)
    os.replace(scratch, project.state_file)


def assert_scheduled(event: dict[str, Any], delay_s: int) -> None:
    """`event` (a video_failed line) schedules the next try about `delay_s` after it was logged."""
    ahead_s = clock.parse_iso(event["next_retry_at"]) - clock.parse_iso(event["timestamp"])  # type: ignore[operator]
    assert abs(ahead_s - delay_s) < SCHEDULE_SLACK_S, (event, delay_s)


def downloaded_names(project: Project) -> list[str]:
    return sorted(str(path.relative_to(project.download_dir)) for path in project.downloaded_files())


def summaries(final: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-playlist lines of a final event, cut to the counters the contract names."""
    keys = ("url", "downloaded", "failed", "already_archived")
    return [{key: playlist[key] for key in keys} for playlist in final["playlists"]]


def summary(url: str, downloaded: int = 0, failed: int = 0, already_archived: int = 0) -> dict[str, Any]:
    return {"url": url, "downloaded": downloaded, "failed": failed, "already_archived": already_archived}


# -- 1. several playlists ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("broken", ["unreachable", "feed_404"])
def test_a_broken_playlist_fails_the_check_but_the_others_are_downloaded(project: Project, broken: str) -> None:
    with (
        FeedServer(make_items(3, prefix="other"), title="Other Channel") as other,
        FeedServer(make_items(1, prefix="gone"), feed_status=404) as gone_feed,
    ):
        broken_url = UNREACHABLE_URL if broken == "unreachable" else gone_feed.feed_url
        template = "%(id)s-%(title)s.%(ext)s"
        project.write_config(
            playlist_url=None,
            playlists=[
                project.feed.feed_url,
                {"url": broken_url, "output_template": "%(id)s.%(ext)s"},
                {
                    "url": other.feed_url,
                    "output_template": template,
                    "yt_dlp_args": ["--restrict-filenames"],
                    "max_downloads_per_check": 2,
                },
            ],
        )
        # An unreachable playlist is a network failure (exit 75), quiet until network_alert_after_seconds once a
        # check has completed; this config's first check has one line for it (tests/test_first_check.py).
        network = broken == "unreachable"
        reason, exit_code = ("network", 75) if network else ("playlist_error", 1)
        result = check(project, exit_code=exit_code)

        assert result.stdout == ""
        if network:
            [line] = result.stderr.strip().splitlines()
            assert "FAILED (network)" in line and "no check has completed yet" in line, line
        else:
            [line] = result.stderr.strip().splitlines()
            assert "FAILED (playlist_error)" in line
        assert [event["check"] for event in project.events("check_started")] == [1]
        assert project.events("check_started")[0]["playlists"] == [project.feed.feed_url, broken_url, other.feed_url]
        assert {event["check"] for event in project.events()} == {1}
        final = final_event(project, 1)
        assert [event["event"] for event in project.events() if event["event"] in FINAL_EVENTS] == ["check_failed"]
        assert final["reason"] == reason
        if network:
            assert final["error"] == "cannot reach 127.0.0.1:9: connection refused"
        else:
            assert final["error"].startswith(f"{broken_url}: ")
        assert ";" not in final["error"]
        assert project.feed.feed_url not in final["error"]
        assert other.feed_url not in final["error"]
        assert summaries(final) == [
            summary(project.feed.feed_url, downloaded=3),
            summary(broken_url),
            summary(other.feed_url, downloaded=2),
        ]
        assert final["playlists"][1]["error"]
        assert final["playlists"][0]["error"] is None is final["playlists"][2]["error"]
        assert (final["downloaded"], final["failed"], final["already_archived"]) == (5, 0, 0)

        # Each playlist's files follow its own template (and the other's yt-dlp args, --restrict-filenames).
        for guid in ("video-00001", "video-00002", "video-00003"):
            assert project.file_for(guid).read_bytes() == project.feed.item(guid).content
            assert project.file_for(guid).parent.name == "Loopback Channel"
        assert downloaded_names(project) == [
            "Loopback Channel/Video 1 [video-00001].mp4",
            "Loopback Channel/Video 2 [video-00002].mp4",
            "Loopback Channel/Video 3 [video-00003].mp4",
            "other-00002-Video_2.mp4",
            "other-00003-Video_3.mp4",
        ]
        assert (project.download_dir / "other-00003-Video_3.mp4").read_bytes() == other.item("other-00003").content
        status = project.status()
        assert (status["checks_total"], status["failed_total"], status["completed_total"]) == (1, 1, 0)

        # The next check carries on where the limit stopped the third playlist.
        project.feed.settings.feed_validators = False  # no ETag nor Last-Modified: every entry is read
        check(project, exit_code=exit_code)
        assert summaries(final_event(project, 2)) == [
            summary(project.feed.feed_url, already_archived=3),
            summary(broken_url),
            summary(other.feed_url, downloaded=1, already_archived=2),
        ]
        assert len(project.archive_lines()) == 6 == len(set(project.archive_lines()))


@pytest.mark.compat
def test_three_good_playlists_with_a_removed_video_complete(project: Project) -> None:
    second_items = make_items(2, prefix="second")
    second_items[0].media_status = 404  # second-00002 has been removed
    with FeedServer(second_items, title="Second") as second, FeedServer(make_items(2, prefix="third")) as third:
        project.write_config(
            playlist_url=None,
            playlists=[
                project.feed.feed_url,
                {"url": second.feed_url, "output_template": "%(id)s.%(ext)s"},
                third.feed_url,
            ],
        )
        result = check(project)

        assert (result.stdout, result.stderr) == ("", "")
        final = final_event(project, 1)
        assert final["event"] == "check_completed"
        assert final["outcome"] == "COMPLETED"
        assert (final["downloaded"], final["failed"], final["already_archived"]) == (6, 1, 0)
        assert summaries(final) == [
            summary(project.feed.feed_url, downloaded=3),
            summary(second.feed_url, downloaded=1, failed=1),
            summary(third.feed_url, downloaded=2),
        ]
        [failed] = project.events("video_failed")
        assert failed["video_id"] == "second-00002"
        assert (project.download_dir / "second-00001.mp4").read_bytes() == second.item("second-00001").content
        assert project.file_for("third-00002").read_bytes() == third.item("third-00002").content
        status = project.status()
        assert status["healthy"] is True, status["problems"]
        assert [video["video_id"] for video in status["failed_videos"]] == ["second-00002"]


# -- 2. failed videos on a schedule ------------------------------------------------------------------------------------


def test_a_failed_video_is_retried_on_the_backoff_schedule_then_given_up(project: Project) -> None:
    guid = "video-00002"
    project.feed.settings.feed_validators = False  # no ETag nor Last-Modified: every entry is read
    project.feed.item(guid).media_status = 404
    project.write_config(retry_backoff_seconds=[60, 120])

    # Check 1: it fails once, the others download; the check completes.
    check(project, here=True)
    [failed] = events_of(project, 1, "video_failed")
    assert failed["video_id"] == guid
    assert failed["error"]
    assert failed["attempts"] == 1
    assert failed["level"] == "warning"
    assert_scheduled(failed, 60)
    record = failed_record(project, guid)
    assert (record["attempts"], record["given_up"], record["next_retry_at"]) == (1, False, failed["next_retry_at"])
    assert final_event(project, 1)["outcome"] == "COMPLETED"

    # Check 2, at once: not due, so no request for it at all.
    project.feed.requests.clear()
    check(project, here=True)
    assert media_requests(project.feed, guid) == []
    assert events_of(project, 2, "video_failed") == []
    final = final_event(project, 2)
    assert (final["outcome"], final["waiting_retry"], final["failed"], final["already_archived"]) == (
        "COMPLETED",
        1,
        0,
        2,
    )

    # Check 3: due now, tried again, the next step of the backoff.
    make_retry_due(project, guid)
    project.feed.requests.clear()
    check(project, here=True)
    assert media_requests(project.feed, guid)
    [failed] = events_of(project, 3, "video_failed")
    assert (failed["video_id"], failed["attempts"]) == (guid, 2)
    assert_scheduled(failed, 120)
    assert failed_record(project, guid)["attempts"] == 2

    # Check 4: the failure after the last step gives it up.
    make_retry_due(project, guid)
    project.feed.requests.clear()
    check(project, here=True)
    assert media_requests(project.feed, guid)
    [failed] = events_of(project, 4, "video_failed")
    assert failed["attempts"] == 3
    [given_up] = events_of(project, 4, "video_given_up")
    assert given_up["level"] == "error"
    assert given_up["video_id"] == guid
    assert final_event(project, 4)["outcome"] == "COMPLETED"
    status = project.status()
    [video] = status["failed_videos"]
    assert (video["video_id"], video["attempts"], video["given_up"]) == (guid, 3, True)
    text = project.run_here("status")
    assert guid in text.stdout
    assert "given up" in text.stdout

    # Check 5: a given-up video is never requested again by itself.
    project.feed.requests.clear()
    check(project, here=True)
    assert media_requests(project.feed, guid) == []
    assert events_of(project, 5, "video_failed") == []
    assert final_event(project, 5)["waiting_retry"] == 1

    # `retry` with an id it does not know: exit 1, one line on stderr, nothing forgotten.
    unknown = project.run_here("retry", "no-such-video")
    assert unknown.returncode == 1
    [line] = unknown.stderr.strip().splitlines()
    assert "no-such-video" in line
    assert len(project.status()["failed_videos"]) == 1

    # `retry <id>`: due again; the site serves it now, so it is downloaded and forgotten.
    retried = project.run_here("retry", guid)
    assert retried.returncode == 0, retried.stderr
    project.feed.item(guid).media_status = 200
    project.feed.requests.clear()
    check(project, here=True)
    assert media_requests(project.feed, guid)
    [downloaded] = events_of(project, 6, "video_downloaded")
    assert downloaded["video_id"] == guid
    assert project.file_for(guid).read_bytes() == project.feed.item(guid).content
    assert project.state()["failed_videos"] == {}
    assert project.status()["failed_videos"] == []
    assert sorted(project.archive_lines()) == [f"generic video-0000{n}" for n in (1, 2, 3)]


def test_plain_status_lists_failed_videos_and_retry_without_ids_clears_them_all(project: Project) -> None:
    for guid in ("video-00001", "video-00003"):
        project.feed.item(guid).media_status = 403
    check(project, here=True)
    status = project.status()
    assert sorted(video["video_id"] for video in status["failed_videos"]) == ["video-00001", "video-00003"]
    assert all(video["given_up"] is False and video["attempts"] == 1 for video in status["failed_videos"])
    text = project.run_here("status")
    assert text.returncode == 0, text.stdout
    assert "video-00001" in text.stdout
    assert "video-00003" in text.stdout
    assert "next try at" in text.stdout

    cleared = project.run_here("retry")
    assert cleared.returncode == 0, cleared.stderr
    assert project.state()["failed_videos"] == {}
    assert project.status()["failed_videos"] == []

    project.feed.requests.clear()
    check(project, here=True)
    assert media_requests(project.feed, "video-00001")
    assert media_requests(project.feed, "video-00003")
    assert sorted(event["video_id"] for event in events_of(project, 2, "video_failed")) == [
        "video-00001",
        "video-00003",
    ]


# -- 3. max_downloads_per_check ----------------------------------------------------------------------------------------


def test_max_downloads_per_check_spreads_a_first_sync_over_checks(project: Project) -> None:
    use_items(project, make_items(5))
    project.feed.settings.feed_validators = False  # no ETag nor Last-Modified: every entry is read
    project.write_config(max_downloads_per_check=2)
    expected = [(2, 0), (2, 2), (1, 4), (0, 5)]  # (downloaded, already_archived) per check
    for number, (downloaded, already_archived) in enumerate(expected, start=1):
        result = check(project)
        assert (result.stdout, result.stderr) == ("", "")
        final = final_event(project, number)
        assert final["event"] == "check_completed"
        assert (final["downloaded"], final["failed"], final["already_archived"]) == (downloaded, 0, already_archived)
        assert len(events_of(project, number, "video_downloaded")) == downloaded
        assert len(project.downloaded_files()) == sum(step[0] for step in expected[:number])
    lines = project.archive_lines()
    assert len(lines) == 5 == len(set(lines))
    assert sorted(lines) == [f"generic video-0000{n}" for n in range(1, 6)]
    for item in project.feed.settings.items:
        assert project.file_for(item.guid).read_bytes() == item.content
    assert project.status()["healthy"] is True


# -- 4. date_after -----------------------------------------------------------------------------------------------------


@pytest.mark.compat
def test_date_after_downloads_only_newer_videos_without_requesting_older_ones(project: Project) -> None:
    use_items(project, make_items(6))  # published 2026-10-27 .. 2026-11-01
    project.write_config(date_after="20261030")
    check(project, here=True)
    newer = {"video-00004", "video-00005", "video-00006"}
    for item in project.feed.settings.items:
        assert item.published is not None
        assert (item.published.date() >= datetime(2026, 10, 30, tzinfo=timezone.utc).date()) == (item.guid in newer)
    assert {event["video_id"] for event in project.events("video_downloaded")} == newer
    for guid in ("video-00001", "video-00002", "video-00003"):
        assert media_requests(project.feed, guid) == [], guid
    assert sorted(project.archive_lines()) == sorted(f"generic {guid}" for guid in newer)
    final = final_event(project, 1)
    assert (final["outcome"], final["downloaded"], final["failed"]) == ("COMPLETED", 3, 0)


def test_relative_date_after_reaching_back_far_downloads_everything(project: Project) -> None:
    use_items(project, make_items(6))
    project.write_config(date_after="now-3650days")
    check(project, here=True)
    assert len(project.events("video_downloaded")) == 6
    assert len(project.archive_lines()) == 6
    assert final_event(project, 1)["downloaded"] == 6


# -- 5. cookies_file ---------------------------------------------------------------------------------------------------


def write_cookies(path: Path, mode: int) -> str:
    cookie_value = "s3cr3t-cookie-value"
    path.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{cookie_value}\n")
    os.chmod(path, mode)
    return cookie_value


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o600, False)], ids=["0644", "0600"])
def test_cookies_file_readable_by_others_is_warned_about(project: Project, mode: int, warned: bool) -> None:
    cookie_value = write_cookies(project.root / "cookies.txt", mode)
    project.write_config(cookies_file="cookies.txt")
    check(project)
    warnings = project.events("cookies_file_readable")
    if warned:
        [warning] = warnings
        assert warning["level"] == "warning"
        assert warning["check"] == 1
    else:
        assert warnings == []
    assert len(project.events("video_downloaded")) == 3
    assert cookie_value not in project.log_file.read_text()


def test_missing_cookies_file_is_a_config_error(project: Project) -> None:
    project.write_config(cookies_file="no-such-cookies.txt")
    result = check(project, exit_code=78)
    [line] = result.stderr.strip().splitlines()
    assert str(project.config_path) in line
    assert "cookies_file" in line
    assert media_requests(project.feed) == []
    assert project.downloaded_files() == []


# -- 6. check --mark-archived ------------------------------------------------------------------------------------------


@pytest.mark.compat
def test_mark_archived_records_the_playlist_without_downloading_then_only_new_videos_come(project: Project) -> None:
    use_items(project, make_items(4))
    result = project.run_here("check", "--mark-archived")
    assert result.returncode == 0, result.stderr
    assert sorted(project.archive_lines()) == [f"generic video-0000{n}" for n in range(1, 5)]
    assert project.downloaded_files() == []
    assert media_requests(project.feed) == []
    final = final_event(project, 1)
    assert (final["outcome"], final["marked_archived"], final["downloaded"]) == ("COMPLETED", 4, 0)

    project.feed.settings.feed_validators = False  # no ETag nor Last-Modified: every entry is read
    check(project, here=True)
    final = final_event(project, 2)
    assert (final["downloaded"], final["already_archived"], final["failed"]) == (0, 4, 0)
    assert project.downloaded_files() == []
    assert media_requests(project.feed) == []

    newest = FeedItem(guid="video-00005", title="Video 5", published=datetime(2026, 11, 2, 12, tzinfo=timezone.utc))
    project.feed.settings.items.insert(0, newest)
    check(project, here=True)
    assert [event["video_id"] for event in events_of(project, 3, "video_downloaded")] == ["video-00005"]
    assert {record.path for record in media_requests(project.feed)} == {"/media/video-00005.mp4"}
    assert project.file_for("video-00005").read_bytes() == newest.content
    assert len(project.downloaded_files()) == 1
    final = final_event(project, 3)
    assert (final["downloaded"], final["already_archived"]) == (1, 4)
    assert len(project.archive_lines()) == 5 == len(set(project.archive_lines()))
