"""`status` and `status --json`: the contract's fields, the seed's summary lines, and the health verdict."""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import FlockHolder, Project
from playlist_cron import clock

CONTRACT_FIELDS = {
    "checks_total",
    "skipped_total",
    "consecutive_skipped",
    "completed_total",
    "failed_total",
    "deferred_total",
    "downloaded_total",
    "last_check_at",
    "last_outcome",
    "last_duration_s",
    "last_completed_at",
    "lock_file",
    "lock_holder",
    "cooldown_until",
    "failed_videos",
    "healthy",
    "problems",
}


def test_status_before_any_check_is_unhealthy_and_says_why(project: Project) -> None:
    result = project.run_here("status", "--json")
    assert result.returncode == 1
    status = json.loads(result.stdout)
    assert set(status) >= CONTRACT_FIELDS
    assert status["checks_total"] == 0
    assert status["healthy"] is False
    assert status["problems"] == ["no check has run yet: is the crontab entry (or the systemd timer) installed?"]


@pytest.mark.smoke
def test_status_after_checks_has_every_contract_field(project: Project) -> None:
    assert project.run_here("check").returncode == 0
    with FlockHolder(project.lock_file) as holder:
        assert project.run_here("check", "--now").returncode == 0
        during = project.status()
    result = project.run_here("status", "--json")
    assert result.returncode == 0
    status = json.loads(result.stdout)
    assert set(status) >= CONTRACT_FIELDS
    assert (status["checks_total"], status["skipped_total"], status["completed_total"]) == (2, 1, 1)
    assert (status["failed_total"], status["deferred_total"], status["downloaded_total"]) == (0, 0, 3)
    assert status["consecutive_skipped"] == 1
    assert status["last_outcome"] == "SKIPPED"
    assert status["last_duration_s"] > 0
    assert clock.parse_iso(status["last_completed_at"]) <= time.time()  # type: ignore[operator]
    assert status["lock_file"] == str(project.lock_file)
    assert status["lock_holder"] is None
    assert status["cooldown_until"] is None
    assert status["failed_videos"] == []
    assert (status["healthy"], status["problems"]) == (True, [])
    assert during["lock_holder"]["pid"] == holder.pid
    assert during["lock_holder"]["held_s"] >= 0


def test_plain_status_prints_the_seed_summary_lines(project: Project) -> None:
    assert project.run_here("check").returncode == 0
    with FlockHolder(project.lock_file):
        project.run_here("check", "--now")
        project.run_here("check", "--now")
    result = project.run_here("status")
    assert result.returncode == 0
    assert "Total checks performed: 3\n" in result.stdout
    assert "Checks skipped due to long downloads: 2\n" in result.stdout
    assert "Health: OK" in result.stdout


def test_status_is_unhealthy_when_the_last_check_failed(project: Project) -> None:
    project.feed.settings.feed_status = 404
    assert project.run_here("check").returncode == 1
    result = project.run_here("status")
    assert result.returncode == 1
    assert "Health: UNHEALTHY" in result.stdout
    assert "the last check failed (playlist_error)" in result.stdout


def test_status_is_unhealthy_when_the_last_check_is_older_than_three_intervals(project: Project) -> None:
    assert project.run_here("check").returncode == 0
    state = project.state()
    state["last_check_at"] = clock.iso(time.time() - 181)
    project.state_file.write_text(json.dumps(state))
    status = project.status()
    assert status["healthy"] is False
    said = re.match(r"the last check started (\d+) s ago, more than three intervals \(180 s\)", status["problems"][0])
    assert said is not None and int(said.group(1)) >= 181, status["problems"]  # more on a loaded machine
    state["last_check_at"] = clock.iso(time.time() - 120)  # a minute of margin for a slow start of `status`
    project.state_file.write_text(json.dumps(state))
    assert project.status()["healthy"] is True


def test_status_is_unhealthy_when_the_lock_is_held_past_max_runtime(project: Project) -> None:
    assert project.run_here("check").returncode == 0
    project.write_config(max_runtime_seconds=1)
    with FlockHolder(project.lock_file) as holder:
        holder.wait_held_longer_than(2.2)  # flock(1)'s start time is when it took the lock: past max_runtime_seconds
        status = project.status()
    assert status["healthy"] is False
    assert any("longer than max_runtime_seconds (1)" in problem for problem in status["problems"])


def test_a_long_check_holding_the_lock_is_not_mistaken_for_a_stale_one(project: Project) -> None:
    # Under a systemd timer no check starts beside a running one, so last_check_at ages while a download runs.
    assert project.run_here("check").returncode == 0
    state = project.state()
    state["last_check_at"] = clock.iso(time.time() - 600)
    project.state_file.write_text(json.dumps(state))
    with FlockHolder(project.lock_file):
        assert project.status()["healthy"] is True
    status = project.status()
    assert status["healthy"] is False
    assert "more than three intervals" in status["problems"][0]


@pytest.mark.parametrize(
    "playlists",
    [
        [],
        [{}],
        [
            {
                "url": 'https://example.com/"quoted"\\ \u00e9\u2028\n',
                "feed_url": None,
                "feed_reads": True,
                "full_read_due": False,
                "full_scan_interval_seconds": 21600,
                "feed_repairs": ["html_entity", "truncated"],
                "empty": [],
                "holder": {"host": "b", "pid": 12, "since": None, "held_s": 2.5, "nested": {"a": [1, {}]}},
                "none_held": {},
                "ratio": 0.1,
                "huge": 10**30,
            },
            {"url": "https://example.com/2", "holder": None, "feed_repairs": []},
        ],
    ],
)
def test_status_json_written_a_playlist_at_a_time_is_what_json_dumps_writes(playlists: list[object]) -> None:
    from playlist_cron.status import json_pieces

    status = {"config": "c.json", "failed_videos": [{"video_id": "x"}], "playlists": playlists, "notes": ["n\u00e9"]}
    pieces = json_pieces(status, iter(playlists))  # type: ignore[arg-type]  # any object, not only a Status
    assert "".join(pieces) == json.dumps(status, indent=2)


def test_a_time_is_shown_as_short_as_today_allows_whether_written_by_the_clock_or_not() -> None:
    from datetime import datetime, timezone

    from playlist_cron.status.text import _short_time

    now = datetime.fromtimestamp(clock.now_s(), tz=timezone.utc)
    today = now.replace(hour=1, minute=2, second=3, microsecond=456_000)
    other_day = today.replace(day=1 if today.day != 1 else 2, month=1 if today.month != 1 else 2)
    other_year = today.replace(year=today.year - 3)
    for moment, shown in (
        (today, "01:02"),
        (other_day, other_day.strftime("%m-%d 01:02")),
        (other_year, other_year.strftime("%Y-%m-%d 01:02")),
    ):
        written = clock.iso(moment.timestamp())
        assert _short_time(written) == shown, written
        assert _short_time(written.replace("Z", "+00:00")) == shown, "not as the clock writes it: parsed"
        assert _short_time(moment.astimezone(timezone.utc).isoformat()) == shown
    assert _short_time(None) == _short_time("") == "never"
