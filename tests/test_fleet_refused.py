"""A database that refuses this host (a wrong or missing password, a database that does not exist) is a config error,
said at once in one line (exit 78), by `check` and by `status`: a real PostgreSQL server asking for passwords."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postgres_server import SUPERUSER, PostgresServer
from test_fleet import Host, migrate

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

PASSWORD = "Right-" + "pa55word"
WRONG = "Wrong-" + "pa55word"


@pytest.fixture
def password_server() -> Iterator[PostgresServer]:
    """A server of its own that asks role `fleet` for its password (SCRAM) over TCP; the superuser stays trusted."""
    from conftest import unstarted_postgres_server

    with unstarted_postgres_server() as server:
        server.execute(f"CREATE ROLE fleet LOGIN PASSWORD '{PASSWORD}'")
        server.execute(f"CREATE ROLE stranger LOGIN PASSWORD '{PASSWORD}'")  # may connect, may not read the tables
        server.execute("CREATE DATABASE fleet OWNER fleet")
        (server.data_dir / "pg_hba.conf").write_text(
            f"host all {SUPERUSER} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        server.execute("SELECT pg_reload_conf()")
        yield server


def url(server: PostgresServer, password: str | None, database: str = "fleet", user: str = "fleet") -> str:
    secret = f":{password}" if password is not None else ""
    return f"postgresql://{user}{secret}@127.0.0.1:{server.port}/{database}"


@pytest.mark.parametrize(
    ("user", "password", "database", "what"),
    [
        ("fleet", WRONG, "fleet", "a wrong password"),
        ("fleet", None, "fleet", "no password"),
        ("fleet", PASSWORD, "nosuch", "no such database"),
        ("stranger", PASSWORD, "fleet", "no right to the tables (SQLSTATE 42501, sent by the server)"),
    ],
)
def test_a_database_that_refuses_this_host_is_a_config_error_said_at_once(
    tmp_path: Path, password_server: PostgresServer, user: str, password: str | None, database: str, what: str
) -> None:
    good = Host(tmp_path, "good", url(password_server, PASSWORD), tmp_path / "downloads", playlist_url="http://x/p")
    migrate(good)
    host = Host(
        tmp_path, "a", url(password_server, password, database, user), tmp_path / "downloads", playlist_url="http://x/p"
    )
    described = f"postgresql://{user}@127.0.0.1:{password_server.port}/{database}"
    for arguments in (("check",), ("status",), ("status", "--json")):
        result = host.run(*arguments)
        assert (result.returncode, result.stdout) == (78, ""), (what, arguments, result)
        [line] = result.stderr.splitlines()
        assert line.startswith(
            f"playlist-cron: {host.config_path}: At 'database_url': the database {described} refused this host"
        ), (what, line)
        assert PASSWORD not in line and WRONG not in line
    assert host.events("check_failed") == [], "not an outage: no streak of database failures"
