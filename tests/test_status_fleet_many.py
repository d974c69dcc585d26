"""`status` of a fleet with many playlists, printed a playlist at a time as it reads their rows: its JSON, field by
field, is what an expectation built here says, for every kind of playlist and row (records of each shape, damaged
ones, rows without a record, playlists without a row, a held one), in the config's order; the installed command
against a real PostgreSQL database."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import clean_env, wait_for
from playlist_cron import clock, config, exit_codes, reads, state
from playlist_cron.config import Playlist
from playlist_cron.storage import postgres
from postgres_server import PostgresServer
from test_fleet import Host, migrate, sql
from test_status_fleet import hold_claim_key

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")

PLAYLISTS = 320  # more than a page of the status cursor (250 rows)
KINDS = 8
INTERVAL_S = 3600
CHANNEL = "UC" + "abcdefghij0123456789AB"  # a channel id: 'UC' and 22 more characters
LAST_CHECK_S = float(int(clock.now_s()) - 30)  # this host's last check, 30 s ago: the next due in an hour
NEXT_CHECK_S = LAST_CHECK_S + INTERVAL_S
READ_AT_S = LAST_CHECK_S - 7200  # the full and feed reads of the records, two hours before


def key_of(number: int) -> str:
    """Playlist `number`'s key: its URL without the password."""
    return url_of(number).replace(f"user:Pw-secret{number}@", "***:***@")


def url_of(number: int) -> str:
    """The config's URL of playlist `number`: its kind (number % KINDS) says what its record and row are."""
    kind = number % KINDS
    if kind in (0, 1, 4):  # a YouTube channel: its feed is derived
        return f"https://www.youtube.com/channel/{CHANNEL[:-5]}{number:05d}"
    if kind == 7:  # a password in the URL: its key (and everything shown) is redacted
        return f"https://user:Pw-secret{number}@example.com/list/{number}"
    return f"https://example.com/list/{number}"


def record_of(number: int) -> dict[str, Any] | None:
    """The read record in playlist `number`'s row; None: no record (kinds 5 and 6)."""
    kind = number % KINDS
    read_at = clock.iso(READ_AT_S + number)
    if kind == 0:
        return {
            "feed_url": f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL[:-5]}{number:05d}",
            "etag": f'"{number}"',
            "last_feed_read_at": read_at,
            "last_full_read_at": read_at,
            "channel_id": f"{CHANNEL[:-5]}{number:05d}",
            "feed_repairs": ["html_entity", "truncated"],
            "playlist_fields": {"playlist_title": f"Uploads {number} \u00e9\u2028"},
        }
    if kind == 1:  # the feed's last read failed; never read whole
        return {"last_feed_error": f"HTTP Error 500: number {number}", "last_feed_read_at": read_at}
    if kind == 2:  # no feed: read whole at every check
        return {"is_feed": False, "last_full_read_at": read_at}
    if kind == 3:  # the playlist's own URL is a feed: never read whole
        return {"is_feed": True, "last_feed_read_at": read_at, "etag": 'W/"x"'}
    if kind == 4:  # damaged (an etag that is no string): left out, as if it had none, its other fields unseen
        return {"etag": number, "last_feed_read_at": read_at, "last_full_read_at": read_at, "feed_repairs": ["x"]}
    if kind == 7:
        return {"is_feed": False, "last_full_read_at": read_at}
    return None


def expected_playlist(number: int, playlist: Playlist | None = None) -> dict[str, Any]:
    """What `status --json` shows of playlist `number` (the config's `playlist`), built from what the test wrote."""
    kind, url, key = number % KINDS, url_of(number), key_of(number)
    record = record_of(number) if kind != 4 else None
    record = record or {}
    feed_url = None
    if kind in (0, 1, 4):
        feed_url = f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL[:-5]}{number:05d}"
    elif kind == 3:
        feed_url = url
    if kind == 0:  # its next slot after its last full read, as a check computes it
        assert playlist is not None and playlist.url == url
        full_read_s = reads.next_full_read_s(playlist, record)  # type: ignore[arg-type]  # a record of the test's
        assert full_read_s is not None and full_read_s > READ_AT_S
        next_full_read_at: str | None = clock.iso(max(full_read_s, NEXT_CHECK_S))
        full_read_due = full_read_s <= NEXT_CHECK_S
    elif kind == 3:
        next_full_read_at, full_read_due = None, False
    else:  # never read whole, or no feed: at the next check
        next_full_read_at, full_read_due = clock.iso(NEXT_CHECK_S), True
    has_row = kind != 6
    return {
        "url": key,
        "feed_url": feed_url,
        "feed_reads": feed_url is not None,
        "last_feed_read_at": record.get("last_feed_read_at"),
        "last_feed_error": record.get("last_feed_error"),
        "feed_repairs": record.get("feed_repairs", []),
        "last_full_read_at": record.get("last_full_read_at"),
        "next_full_read_at": next_full_read_at,
        "full_read_due": full_read_due,
        "channel_id": record.get("channel_id"),
        "full_scan_interval_seconds": INTERVAL_S,
        "holder": None,
        "due_at": clock.iso(due_at_s(number)) if has_row else None,
        "last_checked_at": clock.iso(checked_at_s(number)) if has_row else None,
    }


def due_at_s(number: int) -> float:
    return NEXT_CHECK_S + number * 60.25  # whole milliseconds: shown exactly


def checked_at_s(number: int) -> float:
    return LAST_CHECK_S - number * 0.4999  # fractions of a millisecond: cut, as `clock.iso` cuts them


def write_rows(database: str, collection: str, numbers: range) -> None:
    """The playlists' rows (none for kind 6), each with its record (none for 5), as a check leaves them; the playlists
    are inserted in reverse, so that the rows' order is not the config's."""
    rows = []
    for number in reversed(numbers):
        if number % KINDS == 6:
            continue
        record = record_of(number)
        value = None if record is None else json.dumps({"version": postgres.RECORD_VERSION, "record": record})
        rows.append((collection, key_of(number), due_at_s(number), checked_at_s(number), value))
    with psycopg.connect(database, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO playlist_cron_playlists (collection, url, due_at, last_checked_at, read_record) "
            "VALUES (%s, %s, to_timestamp(%s), to_timestamp(%s), %s::jsonb)",
            rows,
        )
        own = {**postgres._own_part(state.empty()), "checks_total": 7, "last_check_at": clock.iso(LAST_CHECK_S)}
        cursor.execute(
            "INSERT INTO playlist_cron_state (collection, host, state) VALUES (%s, 'a', %s)",
            (collection, json.dumps(own)),
        )


def many_playlists_host(tmp_path: Path, database: str) -> Host:
    downloads = tmp_path / "downloads"
    host = Host(
        tmp_path,
        "a",
        database,
        downloads,
        playlists=[url_of(number) for number in range(PLAYLISTS)],
        check_interval_seconds=INTERVAL_S,
        full_scan_interval_seconds=INTERVAL_S,
    )
    migrate(host)
    write_rows(database, str(downloads), range(PLAYLISTS))
    return host


def test_status_of_many_playlists_shows_each_as_its_row_says_in_config_order(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    host = many_playlists_host(tmp_path, database)
    held_number = 10  # kind 2: a check of host "b" holds it now
    [(row_id,)] = sql(
        postgres_server,
        database,
        "UPDATE playlist_cron_playlists SET holder_host = 'b', holder_pid = 4242, "  # noqa: S608  # the test's values
        f"held_since = to_timestamp({LAST_CHECK_S}) WHERE url = '{url_of(held_number)}' RETURNING id",
    )
    sql(
        postgres_server,
        database,
        "INSERT INTO playlist_cron_failed_videos (collection, video, record) VALUES "  # noqa: S608  # the test's values
        f"""('{tmp_path / "downloads"}', 'generic bad', '{{"version": 1, "record": {{"attempts": "x"}}}}')""",
    )
    with psycopg.connect(database, autocommit=True) as holder:
        hold_claim_key(holder, row_id)
        result = host.run("status", "--json")
        text = host.run("status")
    assert (result.returncode, result.stderr) == (0, ""), (result.stderr, result.stdout[-2000:])
    assert "Pw-secret" not in result.stdout + text.stdout
    report = json.loads(result.stdout)
    assert result.stdout == json.dumps(report, indent=2) + "\n", "as json.dumps(..., indent=2) writes it"
    shown = report["playlists"]
    assert len(shown) == PLAYLISTS
    holder_shown = shown[held_number].pop("holder")
    assert (holder_shown["host"], holder_shown["pid"]) == ("b", 4242)
    assert holder_shown["since"] == clock.iso(LAST_CHECK_S) and holder_shown["held_s"] >= 0
    configured = config.load(host.config_path).playlists
    for number, playlist in enumerate(shown):
        expected = expected_playlist(number, configured[number])
        if number == held_number:
            expected.pop("holder")
        assert list(playlist) == list(expected), number
        for field, value in expected.items():
            assert playlist[field] == value, (number, field, playlist[field], value)
    # A damaged record is left out: its playlist is shown as one without a record, and a note says so (the first
    # three named, the rest counted), as the check that reads it whole says `state_recovered`. Healthy: the next
    # check mends it.
    damaged = [number for number in range(PLAYLISTS) if number % KINDS == 4]
    collection = str(tmp_path / "downloads")
    named = [
        f"the read record of {key_of(number)} in collection {collection!r} is damaged (etag is {number}, expected "
        "null or a string); the playlist is read whole at its next check"
        for number in damaged[:3]
    ]
    [failed_video, *read_records] = report["notes"]
    assert read_records == [*named, f"{len(damaged) - 3} more damaged read records; each is read whole too"]
    assert failed_video.startswith("failed video 'generic bad' in "), failed_video
    assert failed_video.endswith("; the video is tried as a new one"), failed_video
    assert report["failed_videos"] == [], "the damaged one left out"
    assert (report["problems"], report["healthy"]) == ([], True)
    assert (report["checks_total"], report["last_check_at"]) == (7, clock.iso(LAST_CHECK_S))
    assert report["next_check_due_at"] == clock.iso(NEXT_CHECK_S)

    assert (text.returncode, text.stderr) == (0, "")
    lines = text.stdout.splitlines()
    start = lines.index("Playlists (times UTC):") + 1
    playlist_lines = lines[start : start + PLAYLISTS]
    assert [line.split(": ", 1)[0].strip() for line in playlist_lines] == [playlist["url"] for playlist in shown]
    assert lines[start + PLAYLISTS].startswith("Log: ") and lines[-1] == "Health: OK"
    assert "(last try failed: HTTP Error 500: number 1)" in playlist_lines[1]
    assert "(feed needed repair: html_entity, truncated)" in playlist_lines[0]
    assert playlist_lines[4].split(": ", 1)[1].startswith("feed read never, full read never, next full read at the")
    assert playlist_lines[6].endswith("; due now (never checked)")
    assert "; held by b (pid 4242, for " in playlist_lines[held_number]


def test_status_of_many_playlists_refuses_a_record_a_newer_release_wrote_before_printing_any(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    host = many_playlists_host(tmp_path, database)
    newer = url_of(PLAYLISTS - 3)
    sql(
        postgres_server,
        database,
        """UPDATE playlist_cron_playlists SET read_record = '{"version": 2, "record": {}}' """  # noqa: S608
        f"WHERE url = '{newer}'",  # the test's own URL
    )
    for arguments in (("status", "--json"), ("status",)):
        result = host.run(*arguments)
        assert (result.returncode, result.stdout) == (1, ""), result.stdout[-500:]
        [line] = result.stderr.splitlines()
        assert line == (
            f"playlist-cron: the read record of {newer} in collection {str(tmp_path / 'downloads')!r} was written by "
            "a newer version of playlist-cron (record version 2; this one reads version 1): upgrade playlist-cron"
        )


def test_status_whose_database_is_lost_while_it_prints_the_playlists_ends_with_one_line_exit_75(
    tmp_path: Path, database: str, postgres_server: PostgresServer
) -> None:
    """The playlists are printed as the server sends them: a session terminated half-way (the server blocked sending
    rows, `status` blocked writing to a pipe the test has not read yet) cuts the output short, with one line on
    stderr and exit 75 (the database could not be read), no traceback."""
    big = "x" * 4000  # each record 4 kB: more rows than the sockets' buffers hold, so the server waits to send
    count = 2000
    downloads = tmp_path / "downloads"
    urls = [f"https://example.com/list/{number}" for number in range(count)]
    host = Host(tmp_path, "a", database, downloads, playlists=urls, check_interval_seconds=INTERVAL_S)
    migrate(host)
    record = json.dumps({"version": postgres.RECORD_VERSION, "record": {"playlist_fields": {"playlist_title": big}}})
    with psycopg.connect(database, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO playlist_cron_playlists (collection, url, read_record) VALUES (%s, %s, %s::jsonb)",
            [(str(downloads), url, record) for url in urls],
        )
    process = subprocess.Popen(
        host.command("status", "--json"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        cwd="/",
    )
    sending = (
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'playlist-cron a' AND wait_event = 'ClientWrite'"
    )
    wait_for(lambda: sql(postgres_server, database, sending), what="the server waiting to send status its rows")
    terminate = sending.replace("SELECT pid", "SELECT pg_terminate_backend(pid)")
    assert sql(postgres_server, database, terminate) == [(True,)]
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_codes.TEMPFAIL, stderr
    [line] = stderr.decode().splitlines()
    assert line.startswith("playlist-cron: lost the database postgresql://"), line
    shown = stdout.decode().count('"url": "https://example.com/list/')
    assert 0 < shown < count, f"{shown} of {count} playlists printed before the loss"
