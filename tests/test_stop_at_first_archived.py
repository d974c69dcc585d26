"""`stop_at_first_archived`: a newest-first playlist costs a request or two, and failed videos are still retried."""

from __future__ import annotations

import json
import time

import pytest

from conftest import Project
from playlist_cron import clock
from playlist_cron.demo.feed import make_items


def media_requests(project: Project) -> list[str]:
    return [record.path for record in project.feed.requests_for("/media/")]


@pytest.mark.compat
def test_a_newest_first_feed_that_is_all_archived_costs_one_request(project: Project) -> None:
    project.feed.settings.items = make_items(30, size_bytes=2_000)
    assert project.run_here("check").returncode == 0
    assert len(project.archive_lines()) == 30
    project.write_config(stop_at_first_archived=True)
    project.feed.requests.clear()
    project.feed.settings.feed_validators = False  # no ETag nor Last-Modified: every entry is read
    assert project.run_here("check", "--now").returncode == 0
    assert [record.path for record in project.feed.requests] == ["/feed.xml"]
    completed = project.events("check_completed")[-1]
    assert (completed["downloaded"], completed["already_archived"]) == (0, 1), "it stopped at the first one"


@pytest.mark.compat
def test_new_videos_above_the_first_archived_one_are_downloaded(project: Project) -> None:
    project.feed.settings.items = make_items(10, size_bytes=2_000)
    assert project.run_here("check").returncode == 0
    project.write_config(stop_at_first_archived=True)
    project.feed.settings.items[:0] = make_items(2, size_bytes=2_000, prefix="fresh")
    project.feed.requests.clear()
    assert project.run_here("check", "--now").returncode == 0
    completed = project.events("check_completed")[-1]
    assert (completed["downloaded"], completed["already_archived"]) == (2, 1)
    assert sorted(set(media_requests(project))) == ["/media/fresh-00001.mp4", "/media/fresh-00002.mp4"]


@pytest.mark.compat
def test_a_failed_video_behind_the_first_archived_one_is_still_retried_on_its_schedule(project: Project) -> None:
    items = make_items(8, size_bytes=2_000)
    broken = items[5]
    broken.media_status = 404
    project.feed.settings.items = items
    assert project.run_here("check").returncode == 0
    key = f"generic {broken.guid}"
    assert project.state()["failed_videos"][key]["attempts"] == 1
    project.write_config(stop_at_first_archived=True)

    project.feed.requests.clear()
    assert project.run_here("check", "--now").returncode == 0
    assert media_requests(project) == [], "not due yet: no request"

    state = project.state()
    state["failed_videos"][key]["next_retry_at"] = clock.iso(time.time() - 1)
    project.state_file.write_text(json.dumps(state))
    broken.media_status = 200
    project.feed.requests.clear()
    assert project.run_here("check", "--now").returncode == 0
    assert set(media_requests(project)) == {f"/media/{broken.guid}.mp4"}
    assert project.file_for(broken.guid).read_bytes() == broken.content
    assert key not in project.state()["failed_videos"]
    assert f"generic {broken.guid}" in project.archive_lines()
    assert project.file_for(broken.guid).parent.name == "Loopback Channel", "the playlist's folder, as before"
