"""No silent 304: a server that answers 304 Not Modified to a request that carried no validator is broken; the
check says so once and reads the playlist whole, rather than completing with nothing, check after check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Project
from hostile_site import Answer, HostileSite


@pytest.fixture
def always_304() -> Iterator[str]:
    """A loopback URL that answers 304, with no ETag or Last-Modified, whatever it is asked: its URL."""
    with HostileSite() as site:
        yield site.serve("/feed.xml", Answer(304, {}, b""))


def run_check(project: Project, code: int) -> dict[str, Any]:
    result = project.run("check", "--now")
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    final: dict[str, Any] = [e for e in project.events() if e["event"].startswith("check_")][-1]
    return final


@pytest.mark.compat
def test_a_304_to_an_unconditional_feed_request_is_logged_once_and_the_playlist_is_read_whole(
    project: Project, always_304: str
) -> None:
    project.write_config(
        playlist_url=None,
        playlists=[{"url": project.feed.feed_url, "feed_url": always_304, "full_scan_interval_seconds": 0}],
    )
    for number in (1, 2):
        final = run_check(project, 0)
        [failed] = [event for event in project.events("feed_failed") if event["check"] == final["check"]]
        assert (failed["reason"], failed["feed_url"]) == ("unexpected_not_modified", always_304)
        assert "304" in failed["error"] and "reading the playlist whole instead" in failed["message"]
        [summary] = final["playlists"]
        assert (final["outcome"], summary["read"]) == ("COMPLETED", "full"), f"check {number}"
    assert len(project.archive_lines()) == 3, "the full read downloaded the playlist's videos"


@pytest.mark.compat
def test_a_playlist_url_that_answers_304_unasked_fails_the_check_instead_of_completing_with_nothing(
    project: Project, always_304: str
) -> None:
    project.write_config(playlist_url=always_304)
    final = run_check(project, 1)
    [failed] = project.events("feed_failed")
    assert failed["reason"] == "unexpected_not_modified"
    assert (final["outcome"], final["reason"]) == ("FAILED", "playlist_error")
