"""`status` per playlist, after real checks: the last feed read, the last full read, when the next full read is due."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Project
from playlist_cron import clock, config, reads, state
from playlist_cron.config import DEFAULT_FULL_SCAN_INTERVAL_SECONDS
from playlist_cron.demo.feed import FeedServer, make_items

HEADING = "Playlists (times UTC):"
# A file config has no claims in a database: the fields of a fleet's playlist are null.
FILE_CONFIG_CLAIMS = {"holder": None, "due_at": None, "last_checked_at": None}


@pytest.fixture
def channel() -> Iterator[FeedServer]:
    """A second site: its RSS feed is the playlist yt-dlp reads whole."""
    with FeedServer(make_items(2, prefix="channel")) as server:
        yield server


@pytest.fixture
def channel_feed() -> Iterator[FeedServer]:
    """The second site's Atom feed, read between its full reads (the same videos)."""
    with FeedServer(make_items(2, prefix="channel"), feed_format="atom") as server:
        yield server


def playlist_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(HEADING) + 1
    end = next(index for index in range(start, len(lines)) if not lines[index].startswith("  "))
    return lines[start:end]


def short(timestamp: str) -> str:
    """The time of day of an ISO timestamp, as the text form ends it (it may put the date before)."""
    return timestamp[11:16]


def next_full_read_at(project: Project, index: int, status: dict[str, Any]) -> str:
    """When the config's playlist `index` is next read whole, by its record in the state: at its moment in the
    interval (`reads.next_full_read_s`, whose rule test_reads.py proves), but no sooner than the next check."""
    playlist = config.load(project.config_path).playlists[index]
    record = project.reads().get(reads.record_key(playlist.url))
    due_s = reads.next_full_read_s(playlist, record)
    next_check_s = clock.parse_iso(status["next_check_due_at"])
    assert due_s is not None and next_check_s is not None
    return clock.iso(max(due_s, next_check_s))


def check(project: Project) -> dict[str, Any]:
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    final: dict[str, Any] = project.events()[-1]
    assert final["event"] == "check_completed", final
    return final


def test_status_shows_a_full_read_then_a_feed_read_and_when_the_next_full_read_is_due(
    project: Project, channel: FeedServer, channel_feed: FeedServer
) -> None:
    secret_feed_url = f"{channel_feed.feed_url}?token=s3cret"
    project.write_config(
        playlist_url=None,
        playlists=[
            {"url": project.feed.feed_url},  # its URL is itself a feed: read as one, never whole
            {"url": channel.feed_url, "feed_url": secret_feed_url, "full_scan_interval_seconds": 3600},
        ],
    )
    first = check(project)
    assert [playlist["read"] for playlist in first["playlists"]] == ["feed", "full"]
    status = project.status()
    assert (status["healthy"], status["problems"]) == (True, [])
    own_feed, channel_reads = status["playlists"]
    full_read_at = project.reads()[channel.feed_url]["last_full_read_at"]
    assert own_feed == {
        "url": project.feed.feed_url,
        "feed_url": project.feed.feed_url,
        "feed_reads": True,
        "last_feed_read_at": project.reads()[project.feed.feed_url]["last_feed_read_at"],
        "last_feed_error": None,
        "feed_repairs": [],
        "last_full_read_at": None,
        "next_full_read_at": None,
        "full_read_due": False,
        "channel_id": None,
        "full_scan_interval_seconds": DEFAULT_FULL_SCAN_INTERVAL_SECONDS,
        **FILE_CONFIG_CLAIMS,
    }
    assert channel_reads == {
        "url": channel.feed_url,
        "feed_url": f"{channel_feed.feed_url}?token=***",
        "feed_reads": True,
        "last_feed_read_at": None,
        "last_feed_error": None,
        "feed_repairs": [],
        "last_full_read_at": full_read_at,
        "next_full_read_at": next_full_read_at(project, 1, status),
        "full_read_due": False,
        "channel_id": None,
        "full_scan_interval_seconds": 3600,
        **FILE_CONFIG_CLAIMS,
    }

    second = check(project)
    assert [playlist["read"] for playlist in second["playlists"]] == ["feed", "feed"]
    status = project.status()
    assert (status["healthy"], status["problems"]) == (True, [])
    channel_reads = status["playlists"][1]
    feed_read_at = project.reads()[channel.feed_url]["last_feed_read_at"]
    assert clock.parse_iso(feed_read_at) > clock.parse_iso(full_read_at)  # type: ignore[operator]
    assert channel_reads["last_feed_read_at"] == feed_read_at
    assert channel_reads["last_full_read_at"] == full_read_at, "a feed read is no full read"
    assert channel_reads["next_full_read_at"] == next_full_read_at(project, 1, status)
    full_read_s, due_s = clock.parse_iso(full_read_at), clock.parse_iso(channel_reads["next_full_read_at"])
    assert full_read_s is not None and due_s is not None
    assert full_read_s + 60 < due_s <= full_read_s + 3600, "within the interval, not at the next check"
    assert "s3cret" not in json.dumps(status)

    text = project.run_here("status")
    assert text.returncode == 0, text.stderr
    assert "s3cret" not in text.stdout
    own_line, channel_line = playlist_lines(text.stdout)
    own_read_at = status["playlists"][0]["last_feed_read_at"]
    assert re.fullmatch(
        rf"  {re.escape(project.feed.feed_url)}: feed read (\S+ )?{short(own_read_at)}, full read never, "
        "next full read never",
        own_line,
    ), own_line
    assert re.fullmatch(
        rf"  {re.escape(channel.feed_url)}: feed read (\S+ )?{short(feed_read_at)}, "
        rf"full read (\S+ )?{short(full_read_at)}, next full read (\S+ )?{short(channel_reads['next_full_read_at'])}",
        channel_line,
    ), channel_line


def test_a_failed_feed_is_shown_but_is_no_problem_the_check_read_the_playlist_whole(
    project: Project, channel: FeedServer, channel_feed: FeedServer
) -> None:
    project.write_config(
        playlist_url=None,
        playlists=[{"url": channel.feed_url, "feed_url": channel_feed.feed_url, "full_scan_interval_seconds": 3600}],
    )
    check(project)
    first_full_read_at = project.reads()[channel.feed_url]["last_full_read_at"]
    channel_feed.settings.feed_status = 404
    second = check(project)
    assert second["playlists"][0]["read"] == "full", "the failed feed read fell back to a full read"
    status = project.status()
    assert (status["healthy"], status["problems"]) == (True, [])
    [reads] = status["playlists"]
    assert "404" in reads["last_feed_error"]
    assert reads["feed_reads"] is True, "the next check tries the feed again"
    assert reads["last_feed_read_at"] is None
    assert clock.parse_iso(reads["last_full_read_at"]) > clock.parse_iso(first_full_read_at)  # type: ignore[operator]
    assert reads["next_full_read_at"] == next_full_read_at(project, 0, status)

    text = project.run_here("status")
    assert text.returncode == 0, text.stderr
    [line] = playlist_lines(text.stdout)
    assert line.startswith(f"  {channel.feed_url}: feed read never (last try failed: "), line
    assert "404" in line
    assert "Health: OK" in text.stdout


def test_a_playlist_without_a_feed_is_read_whole_at_every_check(project: Project) -> None:
    project.write_config(playlist_url=None, playlists=[{"url": project.feed.feed_url, "feed_url": False}])
    before = project.status()
    [unread] = before["playlists"]
    assert (unread["feed_url"], unread["feed_reads"], unread["full_read_due"]) == (None, False, True)
    assert (unread["last_feed_read_at"], unread["last_full_read_at"]) == (None, None)
    assert unread["next_full_read_at"] is not None, "due at the next check, which is at once: none has run"

    first = check(project)
    assert first["playlists"][0]["read"] == "full"
    status = project.status()
    [reads] = status["playlists"]
    assert (reads["feed_url"], reads["feed_reads"], reads["full_read_due"]) == (None, False, True)
    assert reads["last_full_read_at"] == project.reads()[project.feed.feed_url]["last_full_read_at"]
    assert reads["next_full_read_at"] == status["next_check_due_at"]

    text = project.run_here("status")
    [line] = playlist_lines(text.stdout)
    assert re.fullmatch(
        rf"  {re.escape(project.feed.feed_url)}: full read (\S+ )?{short(reads['last_full_read_at'])}, "
        r"every check \(no feed\)",
        line,
    ), line


def test_a_full_read_that_falls_due_is_shown_due_at_the_next_check(
    project: Project, channel: FeedServer, channel_feed: FeedServer
) -> None:
    project.write_config(
        playlist_url=None,
        playlists=[{"url": channel.feed_url, "feed_url": channel_feed.feed_url, "full_scan_interval_seconds": 1}],
        check_interval_seconds=3600,
    )
    check(project)
    full_read_at = project.reads()[channel.feed_url]["last_full_read_at"]
    status = project.status()
    [reads] = status["playlists"]
    # One second after the full read it is due again, but no check runs before the next one is due.
    assert reads["full_read_due"] is True
    assert reads["next_full_read_at"] == status["next_check_due_at"]
    assert clock.parse_iso(reads["next_full_read_at"]) > clock.parse_iso(full_read_at) + 1  # type: ignore[operator]
    [line] = playlist_lines(project.run_here("status").stdout)
    assert line.endswith(", next full read at the next check"), line


def test_a_channel_has_its_feed_once_a_full_read_has_learnt_its_id(project: Project) -> None:
    handle_url = "https://www.youtube.com/@SomeHandle"
    channel_id = "UC" + "x" * 22
    project.write_config(playlist_url=None, playlists=[handle_url])
    [before] = project.status()["playlists"]
    assert (before["feed_url"], before["feed_reads"], before["channel_id"]) == (None, False, None)
    # What a check's full read of the channel leaves in the state (no check here: the site is not on loopback).
    full_read_at = clock.iso(clock.now_s() - 30)
    project.state_file.parent.mkdir(parents=True, exist_ok=True)
    record = {"channel_id": channel_id, "last_full_read_at": full_read_at}
    project.state_file.write_text(json.dumps(state.empty()))
    project.write_reads({handle_url: record})
    [after] = project.status()["playlists"]
    assert after["feed_url"] == f"https://www.youtube.com/feeds/videos.xml?channel_id={channel_id}"
    assert (after["feed_reads"], after["channel_id"], after["full_read_due"]) == (True, channel_id, False)
    due_s = reads.next_full_read_s(config.load(project.config_path).playlists[0], record)
    assert due_s is not None and after["next_full_read_at"] == clock.iso(due_s)
    full_read_s = clock.parse_iso(full_read_at)
    assert full_read_s is not None and full_read_s + 60 <= due_s <= full_read_s + DEFAULT_FULL_SCAN_INTERVAL_SECONDS


def test_status_says_when_each_playlist_is_next_read_whole_as_a_check_would_plan_it(project: Project) -> None:
    """Channels read whole at moments spread over the last hour: for each, `status` says what `reads.plan` decides at
    the next check, and names the moment from which it reads the playlist whole."""
    interval_s = 3600
    urls = [f"https://www.youtube.com/channel/UC{number:022d}" for number in range(60)]
    project.write_config(
        playlist_url=None,
        playlists=[*urls, {"url": project.feed.feed_url, "feed_url": False}],
        full_scan_interval_seconds=interval_s,
    )
    now_s = clock.now_s()
    records = {url: {"last_full_read_at": clock.iso(now_s - 61 * index)} for index, url in enumerate(urls)}
    for url in urls[:3]:  # read whole just before a slot: due an interval after that read
        records[url] = {"last_full_read_at": clock.iso(reads.full_read_slot_s(url, interval_s, now_s - 3600) - 30)}
    project.state_file.parent.mkdir(parents=True, exist_ok=True)
    last_check = {"last_check_at": clock.iso(now_s - 10), "checks_total": 1}
    project.state_file.write_text(json.dumps(state.empty() | last_check))
    project.write_reads(records)

    status = project.status()
    next_check_s = clock.parse_iso(status["next_check_due_at"])
    assert next_check_s is not None
    playlists = config.load(project.config_path).playlists
    for playlist, shown in zip(playlists, status["playlists"], strict=True):
        record = records.get(playlist.url)
        assert shown["full_read_due"] == (reads.plan(playlist, record, next_check_s).kind == "full"), shown
        due_s = clock.parse_iso(shown["next_full_read_at"])
        assert due_s is not None
        assert reads.plan(playlist, record, due_s + 0.001).kind == "full", shown  # timestamps keep milliseconds
        if not shown["full_read_due"]:
            assert reads.plan(playlist, record, due_s - 0.002).kind == "feed", shown
    due = [shown["url"] for shown in status["playlists"] if shown["full_read_due"]]
    assert 1 < len(due) < len(playlists), "some are due at the next check, others later"
