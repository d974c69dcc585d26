"""`status` of a fleet: a database config's status reads the database, every host's counters and each playlist's
holder, with real hosts (processes) checking against one real PostgreSQL database and real loopback feeds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_for
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items
from postgres_server import SUPERUSER, PostgresServer
from test_fleet import Host, migrate

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

PASSWORD = "Pw-" + "s3cr3tF1eetStatus"  # trust authentication takes any password: none may be shown
REMOVED = "removed-video"
HOST_COUNTERS = (
    "checks_total",
    "skipped_total",
    "completed_total",
    "failed_total",
    "deferred_total",
    "downloaded_total",
)


def with_password(url: str) -> str:
    return url.replace(f"://{SUPERUSER}@", f"://{SUPERUSER}:{PASSWORD}@", 1)


def status(host: Host, *arguments: str) -> tuple[int, dict[str, Any]]:
    """`status --json` of a host: its exit code and its object; nothing on stderr, no password anywhere."""
    result = host.run("status", "--json", *arguments)
    assert result.stderr == "", result.stderr
    assert PASSWORD not in result.stdout
    return result.returncode, json.loads(result.stdout)


def status_text(host: Host) -> subprocess.CompletedProcess[str]:
    result = host.run("status")
    assert "Traceback" not in result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    return result


def test_status_of_each_host_shows_its_own_counters_the_fleets_totals_and_the_holder(
    tmp_path: Path, database: str
) -> None:
    items = [*make_items(2, size_bytes=100_000), FeedItem(REMOVED, "Removed video", media_status=404)]
    with FeedServer(items) as feed:
        # The first host's download stops half-way until the test lets it go: it holds the playlist for as long as
        # the test looks, however busy the machine (stall_timeout_seconds is far off).
        feed.settings.stall_after_bytes = 50_000
        url = with_password(database)
        downloads = tmp_path / "downloads"
        first, second, idle = (Host(tmp_path, name, url, downloads, playlist_url=feed.feed_url) for name in "abc")
        migrate(first)
        holder = first.start("check")
        wait_for(lambda: feed.requests_for("/media/"), what="the first host downloading")
        assert second.run("check").returncode == 0  # SKIPPED: the only playlist is held by the first host

        code, during = status(second)
        [playlist] = during["playlists"]
        assert playlist["holder"]["host"] == "a" and playlist["holder"]["pid"] == holder.pid
        assert playlist["holder"]["held_s"] >= 0 and playlist["holder"]["since"]
        assert playlist["due_at"] is None and playlist["last_checked_at"] is None, "never checked before"
        assert (during["skipped_total"], during["last_outcome"]) == (1, "SKIPPED")
        assert (during["lock_file"], during["lock_holder"]) == (None, None)
        assert code == 0, during["problems"]
        text = status_text(second)
        assert f"held by a (pid {holder.pid}" in text.stdout

        feed.release_stalls()  # the stalled response ends; yt-dlp resumes it with a Range request
        holder.communicate(timeout=120)
        assert holder.returncode == 0

    reports = {host.name: status(host) for host in (first, second, idle)}
    assert {name: code for name, (code, _) in reports.items()} == {"a": 0, "b": 0, "c": 0}
    a, b, c = (report for _, report in reports.values())
    assert (a["checks_total"], a["completed_total"], a["downloaded_total"], a["skipped_total"]) == (1, 1, 2, 0)
    assert (b["checks_total"], b["completed_total"], b["downloaded_total"], b["skipped_total"]) == (1, 0, 0, 1)
    assert (c["checks_total"], c["last_check_at"]) == (0, None), "a host that never checked is healthy in a fleet"
    for report in (a, b, c):
        fleet = report["fleet"]
        assert fleet["collection"] == str(downloads)
        assert fleet["database"] == database, "described without the password"
        by_host = {row["host"]: row for row in fleet["hosts"]}
        assert sorted(by_host) == ["a", "b"], "the hosts that have a row"
        for counter in HOST_COUNTERS:
            assert by_host["a"][counter] == a[counter] and by_host["b"][counter] == b[counter]
            assert fleet["totals"][counter] == a[counter] + b[counter]
        assert by_host["a"]["last_outcome"] == "COMPLETED" and by_host["b"]["last_outcome"] == "SKIPPED"
        assert [video["video_id"] for video in report["failed_videos"]] == [REMOVED], "failed videos are the fleet's"
        [playlist] = report["playlists"]
        assert playlist["holder"] is None
        assert playlist["last_checked_at"] is not None and playlist["due_at"] > playlist["last_checked_at"]
    text = status_text(idle)
    assert text.returncode == 0
    assert "Fleet: collection" in text.stdout
    assert "  a: 1 checks, 0 skipped, 2 downloaded" in text.stdout
    assert "  b: 1 checks, 1 skipped, 0 downloaded" in text.stdout
    assert "Health: OK" in text.stdout


def hold_claim_key(session: Any, row_id: int) -> None:
    """Take the advisory lock a check's claim of the row takes (`lock_keys`), from another session."""
    from playlist_cron.storage import lock_keys

    session.execute("SELECT pg_advisory_lock(%s, %s)", (lock_keys.LOCK_CLASS_PLAYLISTS, lock_keys.playlist_key(row_id)))


def test_a_playlist_held_past_max_runtime_makes_every_host_unhealthy(tmp_path: Path, database: str) -> None:
    import psycopg

    host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url="https://example.com/p")
    migrate(host)
    with psycopg.connect(database, autocommit=True) as stuck:  # a holder that hangs: its session keeps the lock
        [(row_id,)] = stuck.execute(
            "INSERT INTO playlist_cron_playlists (collection, url, holder_host, holder_pid, held_since) "
            "VALUES (%s, 'https://example.com/p', 'gone', 4242, now() - interval '5 hours') RETURNING id",
            (str(tmp_path / "downloads"),),
        ).fetchall()
        hold_claim_key(stuck, row_id)  # a claim's lock, as a check takes it
        code, report = status(host)
    assert code == 1
    [problem] = [problem for problem in report["problems"] if problem.startswith("the playlist ")]
    assert problem.startswith("the playlist https://example.com/p has been held by gone (pid 4242) for 180"), problem
    assert problem.endswith(" s, longer than max_runtime_seconds (14400)")
    assert report["playlists"][0]["holder"]["host"] == "gone"
    code, report = status(host)
    assert report["playlists"][0]["holder"] is None, "a holder whose session has ended holds nothing"
    assert report["problems"] == [
        "no host has checked yet: is the crontab entry (or the systemd timer) installed on the hosts?"
    ]


def test_status_with_the_database_down_says_so_in_one_problem_and_exits_1(
    tmp_path: Path, own_postgres_server: PostgresServer
) -> None:
    url = with_password(own_postgres_server.create_database("fleet"))
    host = Host(tmp_path, "a", url, tmp_path / "downloads", playlist_url="https://example.com/p")
    migrate(host)
    own_postgres_server.stop()
    code, report = status(host)
    assert code == 1
    described = url.replace(f":{PASSWORD}", "")
    assert report["problems"][0].startswith(f"the database {described} cannot be reached: ")
    assert report["fleet"] is None and report["checks_total"] is None
    assert report["config"] == str(host.config_path)
    text = status_text(host)
    assert text.returncode == 1 and text.stderr == ""
    assert f"  - the database {described} cannot be reached: " in text.stdout


def test_status_before_db_migrate_says_what_to_run(tmp_path: Path, database: str) -> None:
    host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url="https://example.com/p")
    result = host.run("status", "--json")
    assert (result.returncode, result.stdout) == (78, "")
    assert result.stderr.splitlines() == [
        "playlist-cron: the database has no playlist-cron tables: run `playlist-cron db migrate` first"
    ]


def test_status_of_a_file_config_does_not_load_psycopg(tmp_path: Path) -> None:
    from test_imports import run_in_fresh_process

    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"playlist_url": "https://example.com/p"}))
    code, packages = run_in_fresh_process(["status", "--json", "--config", str(config_path)])
    assert code == 1, "no check has run yet"
    assert "psycopg" not in packages
