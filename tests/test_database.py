"""The PostgreSQL storage against a real server: the schema, `db` commands in real processes, state rows, archive."""

from __future__ import annotations

import json
import os
import random
import socket
import string
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import Project
from playlist_cron import config, exit_codes, state, storage
from playlist_cron.errors import DatabaseUnavailable, SchemaMissing, SchemaNewer, StateError
from playlist_cron.storage import postgres, schema
from postgres_server import SUPERUSER, PostgresServer

PASSWORD = "Pw-" + "k7Qz9xVb3mR1tL"  # trust authentication takes any password: what matters is that none is shown
MIGRATE_FIRST = "run `playlist-cron db migrate` first"


def with_password(url: str) -> str:
    return url.replace(f"://{SUPERUSER}@", f"://{SUPERUSER}:{PASSWORD}@", 1)


def database_project(project: Project, url: str, **overrides: Any) -> Project:
    project.write_config(database_url=url, **overrides)
    return project


def load_config(tmp_path: Path, url: str, host: str, **overrides: Any) -> config.Config:
    """A config of host `host` sharing the collection `shared` on `url`, in a folder of its own."""
    folder = tmp_path / host
    folder.mkdir(parents=True, exist_ok=True)
    values = {"playlist_url": "https://example.com/p", "database_url": url, "collection": "shared", "host_name": host}
    (folder / "config.json").write_text(json.dumps(values | overrides))
    return config.load(folder / "config.json")


def migrated(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as connection:
        schema.migrate(connection)
    return url


def sql(url: str, statement: str, parameters: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(statement, parameters)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# -- the schema ---------------------------------------------------------------------------------------------------


def test_migrate_creates_the_tables_and_a_second_migrate_changes_nothing(project: Project, database: str) -> None:
    database_project(project, database)
    first = project.run("db", "migrate")
    assert (first.returncode, first.stderr) == (0, ""), first.stderr
    assert "created the playlist-cron tables" in first.stdout and "schema version 3" in first.stdout
    tables = {row[0] for row in sql(database, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'playlist_cron%'")}
    assert tables == {
        "playlist_cron_schema",
        "playlist_cron_archive",
        "playlist_cron_state",
        "playlist_cron_playlists",
        "playlist_cron_failed_videos",
        "playlist_cron_collections",
    }
    sql(database, "INSERT INTO playlist_cron_archive (collection, extractor, video_id) VALUES ('c', 'youtube', 'a')")
    second = project.run("db", "migrate")
    assert (second.returncode, second.stderr) == (0, ""), second.stderr
    assert "at schema version 3 already: nothing to do" in second.stdout
    assert sql(database, "SELECT version FROM playlist_cron_schema") == [(3,)]
    assert sql(database, "SELECT video_id FROM playlist_cron_archive") == [("a",)], "rows are kept"


def test_a_version_1_database_is_refused_until_migrated(project: Project, database: str) -> None:
    """Version 1's hosts claimed with `pg_try_advisory_lock(row id)`; this release's claims use a key space of their
    own, so a host of each would not see the other's claims: the schema's version keeps them apart."""
    sql(migrated(database), "UPDATE playlist_cron_schema SET version = 1")
    database_project(project, database)
    result = project.run("check")
    assert result.returncode == exit_codes.CONFIG
    assert "schema is version 1, older than this release's 3: run `playlist-cron db migrate`" in one_line(result.stderr)
    upgraded = project.run("db", "migrate")
    assert "upgraded the playlist-cron tables" in upgraded.stdout and "from schema version 1 to 3" in upgraded.stdout
    assert project.run("check").returncode == 0


def test_a_schema_newer_than_this_release_is_refused_and_left_alone(project: Project, database: str) -> None:
    sql(migrated(database), "UPDATE playlist_cron_schema SET version = 4")
    database_project(project, database)
    for command in (("db", "migrate"), ("db", "export-archive", "-")):
        result = project.run(*command)
        assert result.returncode == exit_codes.FAILED, result
        assert "schema is version 4, made by a newer playlist-cron" in one_line(result.stderr)
        assert "upgrade playlist-cron" in result.stderr
    assert sql(database, "SELECT version FROM playlist_cron_schema") == [(4,)]
    with psycopg.connect(database) as connection, pytest.raises(SchemaNewer):
        schema.require_current(connection)


def test_version_is_none_without_the_schema_and_the_storage_says_what_to_run(tmp_path: Path, database: str) -> None:
    with psycopg.connect(database) as connection:
        assert schema.version(connection) is None
        with pytest.raises(SchemaMissing, match="run `playlist-cron db migrate` first"):
            schema.require_current(connection)
    with pytest.raises(SchemaMissing):
        storage.open_for(load_config(tmp_path, database, "a")).state.read()


def test_db_commands_need_database_url(project: Project) -> None:
    result = project.run("db", "migrate")
    assert result.returncode == exit_codes.CONFIG
    assert one_line(result.stderr).endswith("db commands need database_url in the config")


def test_import_and_export_before_migrate_say_what_to_run(project: Project, database: str, tmp_path: Path) -> None:
    database_project(project, database)
    (tmp_path / "archive.txt").write_text("youtube abc\n")
    for command in (("import-archive", str(tmp_path / "archive.txt")), ("export-archive", str(tmp_path / "out.txt"))):
        result = project.run("db", *command)
        assert result.returncode == exit_codes.CONFIG, result
        assert MIGRATE_FIRST in one_line(result.stderr)
    assert not (tmp_path / "out.txt").exists()


# -- moving an archive in and out ---------------------------------------------------------------------------------


def test_import_of_100000_lines_then_export_gives_the_same_lines(
    project: Project, database: str, tmp_path: Path
) -> None:
    database_project(project, migrated(database))
    alphabet = string.ascii_letters + string.digits + "-_"
    extractors = ("youtube", "vimeo", "generic", "BiliBili", "twitch:vod")
    lines = {f"{random.choice(extractors)} {''.join(random.choices(alphabet, k=11))}" for _ in range(100_000)}
    while len(lines) < 100_000:
        lines.add(f"youtube {''.join(random.choices(alphabet, k=11))}")
    archive = tmp_path / "archive.txt"
    archive.write_text("".join(line + "\n" for line in lines))

    started = time.monotonic()
    imported = project.run("db", "import-archive", str(archive))
    import_s = time.monotonic() - started
    assert (imported.returncode, imported.stderr) == (0, ""), imported.stderr
    assert imported.stdout == "imported 100000 lines, 0 already there, 0 not archive lines\n"

    again = project.run("db", "import-archive", str(archive))
    assert again.stdout == "imported 0 lines, 100000 already there, 0 not archive lines\n", again.stderr

    started = time.monotonic()
    exported = project.run("db", "export-archive", str(tmp_path / "exported.txt"))
    export_s = time.monotonic() - started
    assert (exported.returncode, exported.stderr) == (0, ""), exported.stderr
    assert exported.stdout == f"exported 100000 lines to {tmp_path / 'exported.txt'}\n"
    data = (tmp_path / "exported.txt").read_bytes()
    assert data.endswith(b"\n") and data.decode().splitlines() == sorted(lines, key=lambda line: line.encode())
    print(f"import of 100,000 lines: {import_s:.2f} s; export: {export_s:.2f} s (whole commands, start-up included)")

    to_stdout = project.run("db", "export-archive", "-")
    assert (to_stdout.returncode, to_stdout.stdout.encode()) == (0, data)


def test_bad_lines_are_counted_and_skipped(project: Project, database: str, tmp_path: Path) -> None:
    database_project(project, migrated(database))
    archive = tmp_path / "archive.txt"
    archive.write_bytes(
        b"youtube aaa\n"
        b"\n"  # blank: yt-dlp skips it too, not counted
        b"garbage\n"
        b"youtube aaa\n"  # twice in the file: the second is already there
        b"  vimeo 123  \r\n"  # yt-dlp strips each line
        b"you tube x y\n"
        b"youtube \xff\xfe\n"  # not UTF-8
        b"youtube a\x00b\n"  # PostgreSQL text holds no NUL
        b"generic last-without-newline"
    )
    result = project.run("db", "import-archive", str(archive))
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == "imported 3 lines, 1 already there, 4 not archive lines\n"
    exported = project.run("db", "export-archive", "-")
    assert exported.stdout == "generic last-without-newline\nvimeo 123\nyoutube aaa\n"


def test_export_refuses_an_existing_file_and_a_symlink(project: Project, database: str, tmp_path: Path) -> None:
    database_project(project, migrated(database))
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me\n")
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "elsewhere.txt")
    for target in (existing, link):
        result = project.run("db", "export-archive", str(target))
        assert result.returncode == exit_codes.FAILED, result
        assert f"{target} exists" in one_line(result.stderr)
    assert existing.read_text() == "keep me\n"
    assert not (tmp_path / "elsewhere.txt").exists()


def test_import_of_a_missing_file_says_so(project: Project, database: str, tmp_path: Path) -> None:
    database_project(project, migrated(database))
    result = project.run("db", "import-archive", str(tmp_path / "missing.txt"))
    assert result.returncode == exit_codes.FAILED
    assert (
        one_line(result.stderr) == f"playlist-cron: cannot read {tmp_path / 'missing.txt'}: No such file or directory"
    )


def test_the_password_is_never_shown(project: Project, database: str, tmp_path: Path) -> None:
    url = with_password(database)
    database_project(project, url)
    archive = tmp_path / "archive.txt"
    archive.write_text("youtube abc\nnot-a-line\n")
    results = [
        project.run("db", "import-archive", str(archive)),  # before migrate: refused
        project.run("db", "migrate"),
        project.run("db", "import-archive", str(archive)),
        project.run("db", "export-archive", "-"),
        project.run("db", "export-archive", str(archive)),  # exists: refused
    ]
    assert [result.returncode for result in results] == [78, 0, 0, 0, 1]
    for result in results:
        assert PASSWORD not in result.stdout + result.stderr
    database_project(project, url.replace("/test_", "/missing_test_"))  # the server answers: no such database
    refused = project.run("db", "migrate")
    assert refused.returncode == exit_codes.TEMPFAIL
    assert "does not exist" in one_line(refused.stderr) and PASSWORD not in refused.stderr
    written = [path for path in project.root.rglob("*") if path.is_file() and path != project.config_path]
    assert not any(PASSWORD in path.read_text(errors="replace") for path in written)


# -- an unreachable database -------------------------------------------------------------------------------------


def test_a_stopped_database_exits_75_with_one_line(project: Project, own_postgres_server: PostgresServer) -> None:
    url = with_password(own_postgres_server.create_database("fleet"))
    database_project(project, migrated(url), database_connect_timeout_seconds=2)
    own_postgres_server.stop()
    started = time.monotonic()
    result = project.run("db", "import-archive", str(project.archive_file))
    elapsed_s = time.monotonic() - started
    assert result.returncode == exit_codes.TEMPFAIL, result
    line = one_line(result.stderr)
    assert line.startswith(f"playlist-cron: cannot reach the database postgresql://{SUPERUSER}@127.0.0.1:")
    assert PASSWORD not in line and result.stdout == ""
    assert elapsed_s < 10, elapsed_s


def test_a_database_that_never_answers_times_out_with_exit_75(project: Project, tmp_path: Path) -> None:
    with socket.socket() as silent:  # takes connections (the kernel does) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        database_project(
            project, f"postgresql://cron:{PASSWORD}@127.0.0.1:{port}/fleet", database_connect_timeout_seconds=2
        )
        started = time.monotonic()
        result = project.run("db", "migrate")
        elapsed_s = time.monotonic() - started
    assert result.returncode == exit_codes.TEMPFAIL, result
    assert "cannot reach the database postgresql://cron@127.0.0.1" in one_line(result.stderr)
    assert PASSWORD not in result.stderr
    assert 1.5 < elapsed_s < 10, elapsed_s


# -- the state: one row per host, and the collection's records in rows of their own ----------------------------


def test_each_host_has_its_own_counters_and_the_fleet_shares_failed_videos(tmp_path: Path, database: str) -> None:
    migrated(database)
    host_a = storage.open_for(load_config(tmp_path, database, "a"))
    host_b = storage.open_for(load_config(tmp_path, database, "b"))
    assert isinstance(host_a.state, postgres.PostgresState) and isinstance(host_a.archive, postgres.PostgresArchive)
    assert host_a.state.read() == state.empty()
    sql(database, "INSERT INTO playlist_cron_playlists (collection, url) VALUES ('shared', 'https://example.com/p')")
    with host_a.state.update() as changed:
        changed["checks_total"] = 3
        changed["cooldown_until"] = "2030-01-01T00:00:00.000Z"
        changed["failed_videos"]["youtube x"] = {"video_id": "x", "attempts": 1}
    with host_a.state.update_reads() as records:
        records["https://example.com/p"] = {"etag": "1"}
        records["https://example.com/no-row"] = {"etag": "2"}  # no row: not kept
    with host_b.state.update() as changed:
        assert changed["checks_total"] == 0 and changed["cooldown_until"] is None, "a host's own row"
        assert changed["failed_videos"] == {"youtube x": {"video_id": "x", "attempts": 1}}, "the collection's rows"
        changed["checks_total"] = 1
        changed["failed_videos"]["youtube x"]["attempts"] = 2
        changed["failed_videos"]["youtube y"] = {"video_id": "y", "attempts": 1}
    seen_by_a = host_a.state.read()
    assert (seen_by_a["checks_total"], seen_by_a["failed_videos"]["youtube x"]["attempts"]) == (3, 2)
    assert host_b.state.read_reads() == {"https://example.com/p": {"etag": "1"}}, "the playlist's row"
    rows = dict(sql(database, "SELECT host, state FROM playlist_cron_state WHERE collection = 'shared'"))
    assert set(rows) == {"a", "b"}, "no fleet-wide row"
    assert "failed_videos" not in rows["a"] and rows["a"]["checks_total"] == 3
    assert sql(database, "SELECT video, record FROM playlist_cron_failed_videos ORDER BY video") == [
        ("youtube x", {"version": 1, "record": {"video_id": "x", "attempts": 2}}),
        ("youtube y", {"version": 1, "record": {"video_id": "y", "attempts": 1}}),
    ]
    with host_a.state.update() as changed:
        del changed["failed_videos"]["youtube x"]
    assert sql(database, "SELECT video FROM playlist_cron_failed_videos") == [("youtube y",)], "a forgotten one goes"
    with host_a.state.update_reads() as records:
        records.clear()
    assert sql(database, "SELECT read_record FROM playlist_cron_playlists") == [(None,)]


def test_a_failed_videos_change_writes_its_row_alone(tmp_path: Path, database: str) -> None:
    """Each failed video is upserted in its own row: another video's row is not rewritten (its xmin stays)."""
    migrated(database)
    host = storage.open_for(load_config(tmp_path, database, "a")).state
    with host.update() as changed:
        changed["failed_videos"]["youtube x"] = {"video_id": "x", "attempts": 1}
        changed["failed_videos"]["youtube y"] = {"video_id": "y", "attempts": 1}
    before = dict(sql(database, "SELECT video, xmin::text FROM playlist_cron_failed_videos"))
    with host.update() as changed:
        changed["failed_videos"]["youtube y"]["attempts"] = 2
    after = dict(sql(database, "SELECT video, xmin::text FROM playlist_cron_failed_videos"))
    assert after["youtube x"] == before["youtube x"] and after["youtube y"] != before["youtube y"]


def test_another_collection_on_the_same_database_is_apart(tmp_path: Path, database: str) -> None:
    migrated(database)
    mine = storage.open_for(load_config(tmp_path, database, "a"))
    other = storage.open_for(load_config(tmp_path / "other", database, "a", collection="other"))
    with mine.state.update() as changed:
        changed["checks_total"] = 5
        changed["failed_videos"]["youtube x"] = {"video_id": "x", "attempts": 1}
    assert other.state.read() == state.empty()


def test_counters_never_go_down_and_a_refused_change_writes_nothing(tmp_path: Path, database: str) -> None:
    migrated(database)
    host = storage.open_for(load_config(tmp_path, database, "a")).state
    with host.update() as changed:
        changed["checks_total"] = 2
    with pytest.raises(StateError, match="checks_total would go down from 2 to 1"), host.update() as changed:
        changed["checks_total"] = 1
        changed["failed_videos"]["youtube x"] = {"video_id": "x", "attempts": 1}
    assert host.read()["checks_total"] == 2 and host.read()["failed_videos"] == {}
    refused = "refusing to write a bad state to table playlist_cron_state"
    with pytest.raises(StateError, match=refused), host.update() as changed:
        changed["last_outcome"] = "MAYBE"  # type: ignore[typeddict-item]
    with pytest.raises(RuntimeError), host.update() as changed:  # the caller's failure: nothing written
        changed["checks_total"] = 9
        raise RuntimeError
    assert host.read()["checks_total"] == 2


def test_a_damaged_row_is_refused_naming_the_table_collection_and_host(tmp_path: Path, database: str) -> None:
    migrated(database)
    host = storage.open_for(load_config(tmp_path, database, "a")).state
    with host.update() as changed:
        changed["checks_total"] = 2
    sql(database, """UPDATE playlist_cron_state SET state = state || '{"checks_total": "x"}' WHERE host = 'a'""")
    with pytest.raises(StateError) as damaged:
        host.read()
    assert "table playlist_cron_state (collection 'shared', host 'a') is damaged" in str(damaged.value)
    assert "checks_total is 'x'" in str(damaged.value)
    with pytest.raises(StateError, match="host 'a'"), host.update():
        pass


def test_a_damaged_record_in_its_row_is_left_out_and_said(tmp_path: Path, database: str) -> None:
    """A damaged read record costs its playlist a full read; a damaged failed video is tried as a new one; the
    others are read as they are, and the storage says what it left out (`state_recovered`)."""
    migrated(database)
    host = storage.open_for(load_config(tmp_path, database, "a")).state
    sql(
        database,
        "INSERT INTO playlist_cron_playlists (collection, url, read_record) VALUES "
        """('shared', 'https://example.com/good', '{"version": 1, "record": {"etag": "1"}}'), """
        """('shared', 'https://example.com/bad', '{"version": 1, "record": {"etag": 5}}'), """
        """('shared', 'https://example.com/worse', '[1]')""",
    )
    sql(
        database,
        "INSERT INTO playlist_cron_failed_videos (collection, video, record) VALUES "
        """('shared', 'youtube x', '{"version": 1, "record": {"video_id": "x", "attempts": 1}}'), """
        """('shared', 'youtube y', '{"version": 1, "record": {"video_id": "y", "attempts": -1}}')""",
    )
    assert host.read_reads() == {"https://example.com/good": {"etag": "1"}}
    assert host.read()["failed_videos"] == {"youtube x": {"video_id": "x", "attempts": 1}}
    notes = [note.message for note in host.take_notes()]
    assert len(notes) == 3 and all("is damaged" in note for note in notes), notes
    assert any("https://example.com/bad" in note and "etag is 5" in note for note in notes), notes


def test_a_row_written_by_a_newer_release_is_refused(tmp_path: Path, database: str) -> None:
    migrated(database)
    host = storage.open_for(load_config(tmp_path, database, "a")).state
    with host.update() as changed:
        changed["checks_total"] = 2
    sql(database, """UPDATE playlist_cron_state SET state = state || '{"version": 2}' WHERE host = 'a'""")
    with pytest.raises(StateError, match=r"written by a newer version of playlist-cron \(state version 2"):
        host.read()
    with pytest.raises(StateError, match="newer version"), host.update():
        pass
    assert sql(database, "SELECT state->'version' FROM playlist_cron_state WHERE host = 'a'") == [(2,)]
    sql(
        database,
        "INSERT INTO playlist_cron_playlists (collection, url, read_record) VALUES "
        """('shared', 'https://example.com/p', '{"version": 2, "record": {}}')""",
    )
    with pytest.raises(StateError, match=r"newer version of playlist-cron \(record version 2"):
        host.read_reads()


def test_migrating_from_version_2_moves_the_fleets_records_into_their_rows(tmp_path: Path, database: str) -> None:
    """A version 2 database keeps every playlist's read record and the failed videos in the fleet's row (host ''):
    the migration moves each into its own row, and the fleet's row goes."""
    migrated(database)
    sql(database, "UPDATE playlist_cron_schema SET version = 2")
    sql(database, "DROP TABLE playlist_cron_failed_videos")
    sql(database, "ALTER TABLE playlist_cron_playlists DROP COLUMN read_record")
    sql(database, "INSERT INTO playlist_cron_playlists (collection, url) VALUES ('shared', 'https://example.com/p')")
    fleet_row = {
        "version": 1,
        "failed_videos": {"youtube x": {"video_id": "x", "attempts": 3}},
        "playlists": {"https://example.com/p": {"etag": "1"}, "https://example.com/q": {"etag": "2"}},
    }
    sql(
        database,
        "INSERT INTO playlist_cron_state (collection, host, state) VALUES ('shared', '', %s), ('shared', 'a', %s)",
        (json.dumps(fleet_row), json.dumps({**postgres._own_part(state.empty()), "checks_total": 4})),
    )
    with psycopg.connect(database) as connection:
        assert schema.migrate(connection) == (2, 3)
    host = storage.open_for(load_config(tmp_path, database, "a")).state
    assert host.read_reads() == {"https://example.com/p": {"etag": "1"}, "https://example.com/q": {"etag": "2"}}
    moved = host.read()
    assert moved["failed_videos"] == {"youtube x": {"video_id": "x", "attempts": 3}}
    assert moved["checks_total"] == 4
    assert sql(database, "SELECT host FROM playlist_cron_state") == [("a",)]


# -- the archive's rows -------------------------------------------------------------------------------------------


def test_the_archive_adds_each_line_once_and_sees_other_hosts_lines(tmp_path: Path, database: str) -> None:
    migrated(database)
    archive_a = storage.open_for(load_config(tmp_path, database, "a")).archive
    archive_b = storage.open_for(load_config(tmp_path, database, "b")).archive
    assert isinstance(archive_a, postgres.PostgresArchive) and isinstance(archive_b, postgres.PostgresArchive)
    assert archive_a.name == "database archive (collection shared)"
    assert archive_a.tend() == storage.ArchiveHealth()
    assert archive_a.lines() == set() and not archive_b.holds("youtube x")
    assert archive_a.add("youtube x") is True
    assert archive_b.add("youtube x") is False, "already there"
    assert archive_b.holds("youtube x") and archive_b.lines() == {"youtube x"}
    assert sql(database, "SELECT added_by FROM playlist_cron_archive") == [("a",)]
    counts = archive_b.import_lines(["youtube x\n", b"vimeo 1\n", "nonsense"])
    assert counts == postgres.ImportCounts(added=1, already=1, bad=1)
    assert list(archive_a.export_lines()) == ["vimeo 1", "youtube x"]
    with pytest.raises(ValueError, match="not an archive line"):
        archive_a.add("nonsense")


def test_the_collection_defaults_to_the_download_folder_and_the_host_to_the_machine(
    tmp_path: Path, database: str
) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"playlist_url": "https://example.com/p", "database_url": database})
    )
    loaded = config.load(tmp_path / "config.json")
    database_storage = postgres.Database(loaded)
    assert (database_storage.collection, database_storage.host) == (str(tmp_path / "downloads"), os.uname().nodename)


def test_connect_names_this_host_to_the_server(tmp_path: Path, database: str) -> None:
    with postgres.connect(load_config(tmp_path, database, "node-7"), autocommit=True) as connection:
        row = connection.execute("SELECT current_setting('application_name')").fetchone()
    assert row == ("playlist-cron node-7",)
    with pytest.raises(DatabaseUnavailable):
        postgres.connect(load_config(tmp_path, database.replace("/test_", "/missing_"), "b"))


def test_an_exported_archive_is_on_disk_before_the_command_says_so(
    project: Project, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is synced (its data, then its folder's entry) before `exported ... lines` is printed: a power cut
    after the message must not leave an empty or half-written archive that passes for the whole one."""
    database_project(project, migrated(database))
    archive = tmp_path / "archive.txt"
    archive.write_text("youtube aaa\nyoutube bbb\n")
    assert project.run("db", "import-archive", str(archive)).returncode == 0
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "exported.txt"
    result = project.run_here("db", "export-archive", str(target))
    assert (result.returncode, result.stdout) == (0, f"exported 2 lines to {target}\n"), result.stderr
    assert synced == [str(target), str(tmp_path)], synced
