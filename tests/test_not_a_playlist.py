"""What is not a playlist is never counted wrong (a URL that leads to one video); what is one is read (Atom, odd ids)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import Project
from playlist_cron.demo.feed import FeedItem

SPACED_FAILING_GUID = "\n    1234\n"  # as real feeds write it: the XML's line breaks and indentation kept
SPACED_GOOD_GUID = "\n\t  5678  \n"


def assert_nothing_downloaded(project: Project) -> None:
    assert project.downloaded_files() == []
    assert project.archive_lines() == []
    assert project.events("video_downloaded") == []


@pytest.mark.compat
def test_a_url_that_redirects_to_one_video_is_a_playlist_error_before_any_download(
    project: Project, reliability: Callable[[str], None]
) -> None:
    guid = project.feed.settings.items[0].guid
    project.write_config(playlist_url=project.feed.redirect_url(guid))
    result = project.run("check", "--now")
    assert result.returncode == 1, result.stderr
    [failed] = project.events("check_failed")
    assert failed["reason"] == "playlist_error"
    assert "not a playlist" in failed["error"]
    assert "not a playlist" in result.stderr
    assert failed["downloaded"] == 0
    assert project.events("check_completed") == []
    assert_nothing_downloaded(project)
    status = project.status()
    assert (status["failed_total"], status["completed_total"], status["downloaded_total"]) == (1, 0, 0)
    reliability(
        "not a playlist: a playlist_url answering 302 to one media file -> FAILED playlist_error "
        f"({failed['error']!r}), 0 files written, 0 archive lines (before: COMPLETED, downloaded 0, 1 file written)"
    )


@pytest.mark.compat
@pytest.mark.parametrize("entries", ["enclosure links", "one entry embeds its video"])
def test_an_atom_feed_as_playlist_url_downloads_its_entries_as_an_rss_feed_would(
    project: Project, entries: str
) -> None:
    """yt-dlp reads no Atom feed (it took the document for one video, or for none); the feed parser reads it."""
    feed = project.feed
    feed.settings.feed_format = "atom"
    if entries == "one entry embeds its video":  # what made yt-dlp read the document as that one video
        video = f'<video xmlns="http://www.w3.org/1999/xhtml" src="{feed.media_url(feed.settings.items[0].guid)}"/>'
        feed.settings.feed_body = feed.atom_xml().replace(
            b"</entry>", f"<content>{video}</content></entry>".encode(), 1
        )
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    [completed] = project.events("check_completed")
    assert (completed["downloaded"], completed["failed"]) == (3, 0)
    assert completed["playlists"][0]["read"] == "feed"
    assert completed["playlists"][0]["feed_url"] == feed.feed_url
    # The same archive lines as yt-dlp writes for the items of an RSS feed: `generic <guid>`.
    assert sorted(project.archive_lines()) == sorted(f"generic {item.guid}" for item in feed.settings.items)
    assert len(feed.requests_for("/feed.xml")) == 1
    assert project.reads()[feed.feed_url]["is_feed"] is True


def test_a_real_playlist_still_downloads_after_these_checks(project: Project) -> None:
    project.write_config(playlist_url=project.feed.redirect_url(project.feed.settings.items[0].guid))
    assert project.run("check", "--now").returncode == 1
    project.write_config()
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    assert project.events("check_completed")[-1]["downloaded"] == 3


def spaced_feed(project: Project) -> None:
    project.feed.settings.items = [
        FeedItem(guid=SPACED_FAILING_GUID, title="Removed episode", media_status=404),
        FeedItem(guid=SPACED_GOOD_GUID, title="Good episode"),
    ]


def failed_video_lines(status_text: str) -> list[str]:
    lines = status_text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("Failed videos:"))
    return lines[start + 1 : next(index for index, line in enumerate(lines) if line.startswith("Log:"))]


def test_ids_with_line_breaks_are_archived_shown_and_retried_on_one_line(
    project: Project, reliability: Callable[[str], None]
) -> None:
    spaced_feed(project)
    first = project.run("check", "--now")
    assert first.returncode == 0, first.stderr
    [completed] = project.events("check_completed")
    assert (completed["downloaded"], completed["failed"]) == (1, 1)
    assert project.archive_lines() == ["generic 5678"]
    assert project.file_for("5678").read_bytes() == project.feed.item(SPACED_GOOD_GUID).content
    assert [event["video_id"] for event in project.events("video_failed")] == ["1234"]

    project.feed.settings.feed_validators = False  # no ETag nor Last-Modified: every entry is read
    second = project.run("check", "--now")
    assert (second.returncode, second.stderr) == (0, "")
    assert project.events("check_completed")[-1]["already_archived"] == 1
    assert project.events("check_completed")[-1]["downloaded"] == 0
    assert project.events("archive_garbage") == []

    text = project.run_here("status")
    [line] = failed_video_lines(text.stdout)
    assert line.startswith("  1234: 1 attempts, next try at ")
    status: dict[str, Any] = project.status()
    [video] = status["failed_videos"]
    assert video["video_id"] == "1234"
    assert "\n" not in video["archive_id"]

    retried = project.run_here("retry", line.split(":")[0].strip())
    assert (retried.returncode, retried.stderr) == (0, "")
    assert project.status()["failed_videos"] == []
    project.feed.requests.clear()
    third = project.run("check", "--now")
    assert third.returncode == 0, third.stderr
    assert [r.status for r in project.feed.requests_for("/media/")] == [404], "due again at once"
    reliability(
        "feed guids with line breaks ('\\n    1234\\n'): archive line 'generic 5678' (before: split over 3 lines, "
        "the video downloaded again at every check), status shows '1234' on one line, `retry 1234` makes it due"
    )


def test_failures_recorded_under_an_id_with_line_breaks_are_shown_and_retried_on_one_line() -> None:
    from playlist_cron import failures

    # What an earlier version recorded for such a guid: the key and the id with the XML's whitespace.
    failed = {
        "generic \n    1234\n": {"video_id": "\n    1234\n", "attempts": 2, "next_retry_at": None, "given_up": True},
        "generic 99": {"video_id": "99", "attempts": 1, "next_retry_at": None},
    }
    assert failures.matching_keys(failed, "1234") == ["generic \n    1234\n"]
    assert failures.matching_keys(failed, "generic 1234") == ["generic \n    1234\n"]
    assert failures.matching_keys(failed, "  99 ") == ["generic 99"]
    assert failures.printed_id("\n    1234\n") == "1234"
    assert failures.printed_id("a\n b") == "a b"
