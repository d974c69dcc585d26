"""Retry times set under a wrong clock: a `next_retry_at` further ahead than its retry step allows is cut back to now
plus that step when it is read, as a cooldown is (`cooldown_capped`). End to end, with the installed command."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from conftest import Project, wait_for
from playlist_cron import clock
from test_network import edit_state

YEAR_S = 365 * 86400
SLACK_S = 30  # however slow the machine, a check and a status take less


def test_a_retry_time_a_year_ahead_is_cut_to_its_step_and_the_video_is_tried_again(
    project: Project, reliability: Callable[[str], None]
) -> None:
    project.write_config(retry_backoff_seconds=[2, 3600, 86400])
    broken = project.feed.settings.items[1]
    broken.media_status = 404
    first = project.run("check")
    assert first.returncode == 0, first.stderr
    [failed] = project.events("video_failed")
    assert (failed["video_id"], failed["attempts"]) == (broken.guid, 1)

    # The video failed while the clock was a year ahead: its next try is a year away.
    key = next(iter(project.state()["failed_videos"]))
    record = project.state()["failed_videos"][key]
    a_year_ahead = clock.iso(clock.now_s() + YEAR_S)
    edit_state(project, failed_videos={key: {**record, "next_retry_at": a_year_ahead}})

    # `status` shows it cut to its step (2 s, the step of a first failure), and says so.
    asked_s = clock.now_s()
    shown = project.run("status", "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    report = json.loads(shown.stdout)
    [video] = report["failed_videos"]
    shown_s = clock.parse_iso(video["next_retry_at"])
    assert shown_s is not None and asked_s < shown_s <= asked_s + 2 + SLACK_S, video
    assert any(a_year_ahead in note and broken.guid in note for note in report["notes"]), report["notes"]

    # A check cuts it in the state and logs it; once its step has passed, a check tries it again.
    broken.media_status = 200
    checked_s = clock.now_s()
    assert project.run("check", "--now").returncode == 0
    [capped] = project.events("retry_capped")
    assert (capped["video_id"], capped["next_retry_at_was"], capped["level"]) == (broken.guid, a_year_ahead, "warning")
    capped_s = clock.parse_iso(capped["next_retry_at"])
    assert capped_s is not None and checked_s < capped_s <= checked_s + 2 + SLACK_S, capped
    stored = project.state()["failed_videos"].get(key)
    assert stored is None or stored["next_retry_at"] == capped["next_retry_at"], stored

    def downloaded() -> bool:
        if project.state()["failed_videos"]:
            assert project.run("check", "--now").returncode == 0
        return not project.state()["failed_videos"]

    wait_for(downloaded, timeout=60, what="the video to be tried again and downloaded")
    assert [event["video_id"] for event in project.events("video_downloaded")][-1] == broken.guid
    assert len(project.events("retry_capped")) == 1, "cut once: the stored time is within its step since"
    reliability(
        f"next_retry_at a year ahead ({datetime.fromisoformat(a_year_ahead.replace('Z', '+00:00')).year}) with a "
        "first step of 2 s -> status shows now + 2 s with a note; the next check logs retry_capped and the video "
        "is downloaded within seconds (before: not tried for a year)"
    )


def test_a_retry_time_within_its_step_is_left_alone(project: Project) -> None:
    project.write_config(retry_backoff_seconds=[3600])
    project.feed.settings.items[0].media_status = 404
    assert project.run("check").returncode == 0
    before = project.state()["failed_videos"]
    assert project.run("check", "--now").returncode == 0
    assert project.events("retry_capped") == []
    assert project.state()["failed_videos"] == before
