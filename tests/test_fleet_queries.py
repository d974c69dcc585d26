"""What a fleet's check asks of PostgreSQL, counted by the server itself (`log_statement = all` on the test's database
of a server of its own): claims in batches, not one statement per playlist tried; a check with nothing due in a
few statements whatever the number of playlists; and a host's cron minute with nothing due yet in none at all."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import COMMAND
from playlist_cron.demo.feed import FeedServer
from postgres_server import PostgresServer
from test_fleet import Host, migrate

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

PLAYLISTS = 12
READERS = 4  # parallel_reads
CONSTANT = 14  # the statements of a check that do not grow with its playlists (12 seen: schema, look, state, archive)
# A statement as the server logs it: `[pid] LOG:  statement: BEGIN` (simple protocol), `[pid] LOG:  execute
# <unnamed>: SELECT ...` (extended protocol, parameters bound). The pid tells the connections apart.
STATEMENT = re.compile(r"\[(\d+)\] LOG:  (?:statement|execute [^:]*): (.*)", re.DOTALL)
ENTRY = re.compile(r"\n(?=\d{4}-\d\d-\d\d )")  # each entry of the log starts with its time (log_line_prefix %m)
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class ServerLog:
    """The statements the server logs from a point on: `mark()`, then `since()` after the commands to count."""

    def __init__(self, server: PostgresServer) -> None:
        self.path = server.log_file
        self._offset = 0

    def mark(self) -> None:
        self._offset = self.path.stat().st_size

    def since(self) -> list[tuple[int, str]]:
        with self.path.open("rb") as log:
            log.seek(self._offset)
            text = log.read().decode("utf-8", "replace")
        entries = [STATEMENT.search(entry) for entry in ENTRY.split(text)]
        return [(int(match[1]), " ".join(match[2].split())) for match in entries if match]


@pytest.fixture
def counted(own_postgres_server: PostgresServer) -> Iterator[tuple[str, ServerLog]]:
    """A database whose every statement the server logs, and the log to count them in."""
    url = own_postgres_server.create_database("counted")
    own_postgres_server.execute("ALTER DATABASE counted SET log_statement = 'all'")
    yield url, ServerLog(own_postgres_server)


def work(statements: list[tuple[int, str]]) -> list[str]:
    """The statements that do work, without BEGIN and COMMIT (what a wrapper counting execute calls would count)."""
    return [text for _, text in statements if not text.upper().startswith(TRANSACTION_CONTROL)]


def about_playlists(statements: list[str]) -> list[str]:
    """The statements of the claims: those on the playlists' rows or their advisory locks (a video's lock aside)."""
    return [
        text
        for text in statements
        if "playlist_cron_playlists" in text or ("advisory" in text and "hashtext" not in text)
    ]


def test_a_check_claims_in_batches_and_a_check_with_nothing_due_sends_three_statements(
    tmp_path: Path, counted: tuple[str, ServerLog]
) -> None:
    url, log = counted
    with FeedServer(channels=PLAYLISTS, channel_items=1) as server:
        host = Host(
            tmp_path,
            "a",
            url,
            tmp_path / "downloads",
            playlists=server.channel_urls,
            parallel_reads=READERS,
            check_interval_seconds=3600,
        )
        migrate(host)
        assert host.run("check", "--mark-archived").returncode == 0  # the feeds' validators kept: 304 from now on
        log.mark()
        result = host.run("check", "--now")
        assert (result.returncode, result.stderr) == (0, "")
        reading = log.since()
        [completed] = host.events("check_completed")[-1:]
        assert len(completed["playlists"]) == PLAYLISTS
        # Each read: its share of a claim (a claim takes as many as the host has readers free: at least one, save
        # each reader's last, which finds none left) and its release; then a constant: the schema's version, the
        # last look, and what the state and the archive ask whatever the number of playlists (FOUR readers).
        statements = work(reading)
        claims = about_playlists(statements)
        claiming = [text for text in claims if text.startswith("WITH")]
        print(f"a check of {PLAYLISTS} playlists (304): {len(statements)} statements, {len(claims)} of the claims")
        print(Counter(text[:50] for text in statements))
        assert len(claiming) <= PLAYLISTS + READERS, claiming
        assert len(claims) <= 2 * PLAYLISTS + READERS + 2, claims
        assert len(statements) <= 2 * PLAYLISTS + READERS + CONSTANT, "the rest (state, archive) a constant"
        assert not [text for text in claims if "ANY(" in text and "unnest" not in text], "no list of ids sent back"

        log.mark()
        due_path = host.run("check")  # checked moments ago: the host knows it without asking the database
        assert (due_path.returncode, due_path.stdout, due_path.stderr) == (0, "", "")
        assert log.since() == [], "a cron minute with nothing due yet asks the database nothing"

        state_file = host.folder / "state" / "config.state.json"
        state_file.unlink()  # what the host knew is gone: it must ask
        log.mark()
        nothing_due = host.run("check")
        assert (nothing_due.returncode, nothing_due.stdout, nothing_due.stderr) == (0, "", "")
        asked = log.since()
        print(f"a check with nothing due: {[text[:60] for _, text in asked]}")
        assert len(asked) <= 3, asked
        assert len({pid for pid, _ in asked}) <= 2, "two connections at most"
        assert state_file.exists(), "it learned when the collection is due next"
        assert COMMAND  # the installed command ran every check
