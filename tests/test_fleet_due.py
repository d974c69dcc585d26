"""A fleet's host with nothing due: the cron minute answers from what the host last learned of its collection (kept
in its own state file), without the database driver; what it learned is trusted under the same config, for a while."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import COMMAND
from playlist_cron import clock, state
from playlist_cron.demo.feed import FeedServer, make_items
from postgres_server import PostgresServer
from test_fleet import Host, migrate, sql
from test_imports import HEAVY, run_in_fresh_process

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

DIGEST = "sha256:config"


def learned(next_due_s: float, learned_s: float, digest: str = DIGEST) -> state.State:
    return state.empty() | {  # type: ignore[return-value]  # a State with one more field set
        "collection_due": {
            "next_due_at": clock.iso(next_due_s),
            "learned_at": clock.iso(learned_s),
            "config_digest": digest,
        }
    }


def test_what_a_host_learned_of_its_collection_answers_due_or_not() -> None:
    now_s = 1_800_000_000.0
    assert state.collection_is_due(learned(now_s + 30, now_s - 5), DIGEST, 60, now_s) == (False, now_s + 30)
    assert state.collection_is_due(learned(now_s + 5, now_s - 5), DIGEST, 60, now_s) == (True, now_s + 5), "cron early"
    assert state.collection_is_due(learned(now_s - 1, now_s - 5), DIGEST, 60, now_s) == (True, now_s - 1)


def test_what_a_host_learned_is_not_trusted_under_another_config_stale_or_from_the_future() -> None:
    now_s = 1_800_000_000.0
    assert state.collection_is_due(state.empty(), DIGEST, 60, now_s) is None, "a file config: nothing learned"
    assert state.collection_is_due(learned(now_s + 30, now_s - 5, "other"), DIGEST, 60, now_s) is None
    assert state.collection_is_due(learned(now_s + 30, now_s - 61), DIGEST, 60, now_s) is None, "older than interval"
    stale_s = state.COLLECTION_DUE_TRUSTED_S + 1
    assert state.collection_is_due(learned(now_s + 3000, now_s - stale_s), DIGEST, 3600, now_s) is None
    assert state.collection_is_due(learned(now_s + 30, now_s + 5), DIGEST, 60, now_s) is None, "clock set back"


def test_a_damaged_collection_due_record_is_named_field_by_field() -> None:
    damaged = state.empty() | {"collection_due": {"next_due_at": "soon", "config_digest": 7}}
    problems = state.validate(damaged)
    assert any("collection_due" in problem and "next_due_at" in problem for problem in problems), problems
    assert any("collection_due" in problem and "learned_at" in problem for problem in problems), problems
    assert any("collection_due" in problem and "config_digest" in problem for problem in problems), problems


def test_a_fleet_hosts_minute_with_nothing_due_loads_no_database_driver_and_asks_nothing(
    tmp_path: Path, database: str
) -> None:
    with FeedServer(make_items(1, size_bytes=10_000)) as feed:
        host = Host(tmp_path, "a", database, tmp_path / "downloads", playlist_url=feed.feed_url)
        migrate(host)
        assert host.run("check").returncode == 0
        events = len(host.events())
        code, packages = run_in_fresh_process(["check", "--config", str(host.config_path)])
        assert code == 0
        assert "psycopg" not in packages
        assert packages & HEAVY == set()
        assert len(host.events()) == events, "nothing logged: not due"
    record = json.loads((host.folder / "state" / "config.state.json").read_text())["collection_due"]
    assert clock.parse_iso(record["next_due_at"]) > clock.parse_iso(record["learned_at"])


def test_a_changed_config_or_a_stale_record_asks_the_database(tmp_path: Path, database: str) -> None:
    with (
        FeedServer(make_items(1, size_bytes=10_000, prefix="one")) as first,
        FeedServer(make_items(1, size_bytes=10_000, prefix="two")) as second,
    ):
        host = Host(tmp_path, "a", database, tmp_path / "downloads", playlists=[first.feed_url])
        migrate(host)
        assert host.run("check").returncode == 0
        state_file = host.folder / "state" / "config.state.json"
        kept = json.loads(state_file.read_text())
        kept["collection_due"]["learned_at"] = clock.iso(clock.now_s() - 120)  # longer ago than the interval
        state_file.write_text(json.dumps(kept))
        result = host.run("check")
        assert (result.returncode, result.stderr) == (0, "")
        assert [e["outcome"] for e in host.events() if "outcome" in e] == ["COMPLETED"], "asked: nothing due"
        relearned = json.loads(state_file.read_text())["collection_due"]
        assert clock.parse_iso(relearned["learned_at"]) > clock.now_s() - 60, "learned again"

        settings = json.loads(host.config_path.read_text())
        host.config_path.write_text(json.dumps({**settings, "playlists": [first.feed_url, second.feed_url]}))
        result = host.run("check")
        assert (result.returncode, result.stderr) == (0, "")
        [_, completed] = host.events("check_completed")
        assert [playlist["url"] for playlist in completed["playlists"]] == [second.feed_url], "the new one, at once"
    assert COMMAND


def test_a_playlist_no_longer_listed_is_no_longer_claimed_and_its_row_kept(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    with (
        FeedServer(make_items(1, size_bytes=10_000, prefix="kept")) as kept,
        FeedServer(make_items(1, size_bytes=10_000, prefix="dropped")) as dropped,
    ):
        host = Host(tmp_path, "a", database, tmp_path / "downloads", playlists=[kept.feed_url, dropped.feed_url])
        migrate(host)
        assert host.run("check").returncode == 0
        settings = json.loads(host.config_path.read_text())
        host.config_path.write_text(json.dumps({**settings, "playlists": [kept.feed_url]}))
        dropped.requests.clear()
        result = host.run("check", "--now")
        assert (result.returncode, result.stderr) == (0, "")
        assert dropped.requests == [], "not read: no longer in the list"
    [_, completed] = host.events("check_completed")
    assert [playlist["url"] for playlist in completed["playlists"]] == [kept.feed_url]
    rows = dict(sql(postgres_server, database, "SELECT url, configured FROM playlist_cron_playlists"))
    assert rows == {kept.feed_url: True, dropped.feed_url: False}, "the row kept, unclaimed"
