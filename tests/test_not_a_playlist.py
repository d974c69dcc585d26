"""What is not a playlist is never counted wrong: a URL that leads to one video, an Atom feed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conftest import Project


def assert_nothing_downloaded(project: Project) -> None:
    assert project.downloaded_files() == []
    assert project.archive_lines() == []
    assert project.events("video_downloaded") == []


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


@pytest.mark.parametrize("entries", ["enclosure links", "one entry embeds its video"])
def test_an_atom_feed_is_a_playlist_error_that_says_so(project: Project, entries: str) -> None:
    feed = project.feed
    feed.settings.feed_format = "atom"
    if entries == "one entry embeds its video":  # yt-dlp reads the document as that one video
        video = f'<video xmlns="http://www.w3.org/1999/xhtml" src="{feed.media_url(feed.settings.items[0].guid)}"/>'
        feed.settings.feed_body = feed.atom_xml().replace(
            b"</entry>", f"<content>{video}</content></entry>".encode(), 1
        )
    result = project.run("check", "--now")
    assert result.returncode == 1, result.stderr
    [failed] = project.events("check_failed")
    assert failed["reason"] == "playlist_error"
    assert "Atom feed" in failed["error"]
    assert "RSS" in failed["error"]
    assert_nothing_downloaded(project)


def test_a_real_playlist_still_downloads_after_these_checks(project: Project) -> None:
    project.write_config(playlist_url=project.feed.redirect_url(project.feed.settings.items[0].guid))
    assert project.run("check", "--now").returncode == 1
    project.write_config()
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    assert project.events("check_completed")[-1]["downloaded"] == 3
