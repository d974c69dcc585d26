"""Unit: reading the config file, and the messages a user gets for every kind of mistake."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from playlist_cron import config
from playlist_cron.errors import ConfigError

URL = "https://www.youtube.com/playlist?list=PL123"


def write(tmp_path: Path, values: Any, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(values if isinstance(values, str) else json.dumps(values))
    return path


def problems(tmp_path: Path, values: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        config.load(write(tmp_path, values))
    assert raised.value.path == str(tmp_path / "config.json")
    return raised.value.problems


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, {"playlist_url": URL}))
    assert loaded.download_dir == tmp_path / "downloads"
    assert loaded.archive_file == tmp_path / "archive.txt"
    assert loaded.lock_file == tmp_path / "archive.txt.lock"
    assert loaded.log_file == tmp_path / "logs" / "downloader.log"
    assert loaded.state_dir == tmp_path / "state"
    assert loaded.check_interval_seconds == 60
    assert loaded.max_runtime_seconds == 14400
    assert loaded.stall_timeout_seconds == 900
    assert loaded.min_free_bytes == 1_000_000_000
    assert loaded.cooldown_seconds == 900
    assert loaded.skip_exit_code == 0
    assert loaded.network_alert_after_seconds == 3600
    assert loaded.retry_backoff_seconds == (900, 3600, 21600, 86400)
    assert loaded.cookies_file is None and loaded.healthcheck_url is None and loaded.metrics_file is None
    [playlist] = loaded.playlists
    assert playlist.url == URL
    assert playlist.output_template == "%(playlist_title)s/%(title)s [%(id)s].%(ext)s"
    assert playlist.yt_dlp_args == ()
    assert playlist.stop_at_first_archived is False
    assert playlist.max_downloads_per_check is None and playlist.date_after is None
    assert playlist.feed_url is None, "derived from the URL where it can be"
    assert playlist.full_scan_interval_seconds == 21600


def test_every_key_of_the_table_is_checked_and_named_in_its_message(tmp_path: Path) -> None:
    # An object is a wrong value for every key: each row of the table reaches a check that names its key.
    wrong: dict[str, object] = {"playlist_url": URL}
    wrong.update((name, {}) for name, key in config.KEYS.items() if key.kind != "playlists")
    assert [problem.split("'")[1] for problem in problems(tmp_path, wrong)] == [
        name for name in config.KEYS if name not in ("playlist_url", "playlists")
    ]
    options = [name for name, key in config.KEYS.items() if key.per_playlist]
    in_a_playlist = problems(tmp_path, {"playlists": [{"url": URL, **{name: {} for name in options}}]})
    assert [problem.split("'")[1] for problem in in_a_playlist] == [f"playlists[0].{name}" for name in options]


def test_the_records_take_their_defaults_from_the_table() -> None:
    for record in (config.Config, config.Playlist):
        for name, default in record._field_defaults.items():
            if name in config.KEYS:
                assert default == config.KEYS[name].default, f"{record.__name__}.{name}"


def test_relative_paths_resolve_against_the_config_folder_not_the_current_one(tmp_path: Path) -> None:
    os.chdir("/")
    loaded = config.load(write(tmp_path, {"playlist_url": URL, "download_dir": "../media", "archive_file": "a/b.txt"}))
    assert loaded.download_dir == tmp_path / ".." / "media"
    assert loaded.archive_file == tmp_path / "a" / "b.txt"
    assert loaded.lock_file == tmp_path / "a" / "b.txt.lock"


def test_absolute_and_home_paths_are_kept(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, {"playlist_url": URL, "download_dir": "/srv/videos", "state_dir": "~/pc"}))
    assert loaded.download_dir == Path("/srv/videos")
    assert loaded.state_dir == Path.home() / "pc"


def test_playlists_take_strings_and_objects_with_their_own_options(tmp_path: Path) -> None:
    loaded = config.load(
        write(
            tmp_path,
            {
                "playlists": [
                    URL,
                    {
                        "url": URL + "2",
                        "output_template": "%(id)s.%(ext)s",
                        "yt_dlp_args": ["-f", "b"],
                        "stop_at_first_archived": True,
                        "max_downloads_per_check": 5,
                        "date_after": "now-30days",
                    },
                ],
                "yt_dlp_args": ["--embed-metadata"],
            },
        )
    )
    first, second = loaded.playlists
    assert first.yt_dlp_args == ("--embed-metadata",)
    assert second.yt_dlp_args == ("-f", "b")
    assert second.yt_dlp_args_key == "playlists[1].yt_dlp_args"
    assert (second.output_template, second.stop_at_first_archived, second.max_downloads_per_check) == (
        "%(id)s.%(ext)s",
        True,
        5,
    )
    assert second.date_after == "now-30days"


def test_network_alert_after_seconds_is_a_whole_number_of_at_least_0(tmp_path: Path) -> None:
    assert (
        config.load(
            write(tmp_path, {"playlist_url": URL, "network_alert_after_seconds": 0})
        ).network_alert_after_seconds
        == 0
    )
    assert problems(tmp_path, {"playlist_url": URL, "network_alert_after_seconds": -1, "cooldown_seconds": "x"}) == [
        "At 'cooldown_seconds': expected a whole number, got a string",
        "At 'network_alert_after_seconds': expected a whole number from 0 to 31536000 (one year), got -1",
    ]
    assert problems(tmp_path, {"playlist_url": URL, "network_alert_after_seconds": "1h"}) == [
        "At 'network_alert_after_seconds': expected a whole number, got a string"
    ]


def test_database_keys_default_to_files_this_host_and_the_download_folder(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, {"playlist_url": URL, "download_dir": "media"}))
    assert loaded.database_url is None, "the file backend stays the default"
    assert loaded.collection == str(tmp_path / "media"), "the collection is the download folder"
    assert loaded.host_name == os.uname().nodename
    assert (loaded.database_heartbeat_seconds, loaded.database_connect_timeout_seconds) == (30, 5)


def test_database_keys_are_read(tmp_path: Path) -> None:
    values = {
        "playlist_url": URL,
        "database_url": "postgres://cron@db.example/videos",
        "collection": "shared videos",
        "host_name": "node-3",
        "database_heartbeat_seconds": 1,
        "database_connect_timeout_seconds": 300,
    }
    loaded = config.load(write(tmp_path, values))
    assert loaded.database_url == "postgres://cron@db.example/videos"
    assert (loaded.collection, loaded.host_name) == ("shared videos", "node-3")
    assert (loaded.database_heartbeat_seconds, loaded.database_connect_timeout_seconds) == (1, 300)
    loaded = config.load(
        write(tmp_path, values | {"database_url": "postgresql://cron:secret@db/videos?sslmode=require"})
    )
    assert loaded.database_url == "postgresql://cron:secret@db/videos?sslmode=require"


def test_database_key_mistakes_name_their_key_and_never_show_the_url(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "playlist_url": URL,
            "database_url": "mysql://cron:hunter2@db/videos",
            "collection": "",
            "host_name": 3,
            "database_heartbeat_seconds": 0,
            "database_connect_timeout_seconds": 301,
        },
    )
    assert found == [
        "At 'database_url': expected a PostgreSQL URL, postgresql://user@host/database (or postgres://...)",
        "At 'collection': expected a non-empty string, got a string",
        "At 'host_name': expected a non-empty string, got a number",
        "At 'database_heartbeat_seconds': expected a whole number from 1 to 3600 (one hour), got 0",
        "At 'database_connect_timeout_seconds': expected a whole number from 1 to 300 (five minutes), got 301",
    ]
    assert not any("hunter2" in problem for problem in found)
    assert problems(tmp_path, {"playlist_url": URL, "database_url": None}) == [
        "At 'database_url': expected a PostgreSQL URL, postgresql://user@host/database (or postgres://...)"
    ]


def test_feed_url_and_full_scan_interval_per_playlist_and_at_the_top(tmp_path: Path) -> None:
    loaded = config.load(
        write(
            tmp_path,
            {
                "full_scan_interval_seconds": 0,
                "playlists": [
                    URL,
                    {"url": URL, "feed_url": False, "full_scan_interval_seconds": 3600},
                    {"url": URL, "feed_url": "https://example.org/feed.xml"},
                ],
            },
        )
    )
    assert [(p.feed_url, p.full_scan_interval_seconds) for p in loaded.playlists] == [
        (None, 0),
        (False, 3600),
        ("https://example.org/feed.xml", 0),
    ]
    seed = config.load(write(tmp_path, {"playlist_url": URL, "feed_url": "http://127.0.0.1:8000/f.xml"}))
    assert seed.playlists[0].feed_url == "http://127.0.0.1:8000/f.xml"


def test_feed_url_and_full_scan_interval_mistakes_name_their_key(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        {
            "full_scan_interval_seconds": -1,
            "feed_url": "https://example.org/feed.xml",
            "playlists": [
                {"url": URL, "feed_url": True},
                {"url": URL, "feed_url": "ftp://example.org/feed.xml", "full_scan_interval_seconds": 40_000_000},
            ],
        },
    ) == [
        "At 'full_scan_interval_seconds': expected a whole number from 0 to 31536000 (one year), got -1",
        "At 'feed_url': a feed belongs to one playlist: set it in that playlist's object in 'playlists'",
        "At 'playlists[0].feed_url': expected the playlist's RSS or Atom feed as an http(s) URL, or false to read "
        "the playlist whole at every check, got true",
        "At 'playlists[1].full_scan_interval_seconds': expected a whole number from 0 to 31536000 (one year), got "
        "40000000",
        "At 'playlists[1].feed_url': expected the playlist's RSS or Atom feed as an http(s) URL, or false to read "
        'the playlist whole at every check, got "ftp://example.org/feed.xml"',
    ]


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        config.load(tmp_path / "nope.json")
    assert "does not exist" in raised.value.one_line()
    assert str(tmp_path / "nope.json") in raised.value.one_line()


def test_invalid_json_says_where(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, '{"playlist_url": "x",\n  oops}')
    assert problem.startswith("invalid JSON at line 2 column 3")


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    assert problems(tmp_path, [URL]) == ["expected a JSON object at the top level"]


def test_unknown_key_suggests_the_closest_known_one(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, {"playlist_url": URL, "check_intervall_seconds": 60})
    assert problem == "At 'check_intervall_seconds': unknown key (did you mean 'check_interval_seconds'?)"


def test_unknown_key_inside_a_playlist_object(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, {"playlists": [{"url": URL, "output_templat": "x"}]})
    assert problem == "At 'playlists[0].output_templat': unknown key (did you mean 'output_template'?)"


def test_both_or_neither_playlist_keys(tmp_path: Path) -> None:
    assert problems(tmp_path, {}) == ["At 'playlist_url': set exactly one of 'playlist_url' and 'playlists'"]
    assert problems(tmp_path, {"playlist_url": URL, "playlists": [URL]}) == [
        "At 'playlist_url': set exactly one of 'playlist_url' and 'playlists' (both are set)"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "playlists": [URL, "not a url", {"url": 5}, 7, {"title": "x"}],
            "check_interval_seconds": 0,
            "max_runtime_seconds": "1h",
            "stall_timeout_seconds": True,
            "min_free_bytes": -1,
            "cooldown_seconds": 1.5,
            "skip_exit_code": 256,
            "stop_at_first_archived": "yes",
            "max_downloads_per_check": 0,
            "date_after": "last tuesday",
            "retry_backoff_seconds": [900, -1],
            "healthcheck_url": "hc-ping.com/abc",
            "yt_dlp_args": "-f best",
            "download_dir": 3,
            "output_template": "",
        },
    )
    keys = [problem.split("'")[1] for problem in found]
    assert keys == [
        "output_template",
        "yt_dlp_args",
        "stop_at_first_archived",
        "max_downloads_per_check",
        "date_after",
        "playlists[1]",
        "playlists[2].url",
        "playlists[3]",
        "playlists[4].title",
        "playlists[4].url",
        "download_dir",
        "check_interval_seconds",
        "max_runtime_seconds",
        "stall_timeout_seconds",
        "min_free_bytes",
        "cooldown_seconds",
        "skip_exit_code",
        "retry_backoff_seconds",
        "healthcheck_url",
    ]
    assert "At 'skip_exit_code': expected a whole number from 0 to 255, got 256" in found
    assert "At 'stall_timeout_seconds': expected a whole number, got a boolean" in found
    assert "At 'max_runtime_seconds': expected a whole number, got a string" in found


@pytest.mark.parametrize(
    ("arguments", "option", "key"),
    [
        (["-o", "x"], "-o", "output_template"),
        (["--output=%(id)s"], "--output", "output_template"),
        (["-oX"], "-o", "output_template"),
        (["--download-archive", "a.txt"], "--download-archive", "archive_file"),
        (["-P", "media"], "-P", "download_dir"),
        (["--paths", "media"], "--paths", "download_dir"),
        (["--cookies", "c.txt"], "--cookies", "cookies_file"),
        (["--max-downloads", "3"], "--max-downloads", "max_downloads_per_check"),
        (["--dateafter", "20260101"], "--dateafter", "date_after"),
        (["-a", "list.txt"], "-a", "playlist_url"),
        (["--config-locations", "x"], "--config-locations", "yt_dlp_args"),
    ],
)
def test_options_the_tool_manages_are_refused_in_yt_dlp_args(
    tmp_path: Path, arguments: list[str], option: str, key: str
) -> None:
    [problem] = problems(tmp_path, {"playlist_url": URL, "yt_dlp_args": ["-f", "best", *arguments]})
    assert problem == f"At 'yt_dlp_args[2]': {option} is managed by playlist-cron: set '{key}' in the config instead"


def test_date_forms_of_yt_dlp_are_accepted(tmp_path: Path) -> None:
    for value in ("20260101", "now", "today-2weeks", "now-30days", "yesterday"):
        assert config.load(write(tmp_path, {"playlist_url": URL, "date_after": value})).playlists[0].date_after


def test_config_path_order_is_argument_then_environment_then_current_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAYLIST_CRON_CONFIG", "/etc/pc.json")
    assert config.config_path("x.json") == tmp_path / "x.json"
    assert config.config_path(None) == Path("/etc/pc.json")
    monkeypatch.delenv("PLAYLIST_CRON_CONFIG")
    assert config.config_path(None) == tmp_path / "config.json"


def test_example_config_loads() -> None:
    example = Path(__file__).parent.parent / "config.example.json"
    loaded = config.load(example)
    assert loaded.playlists


def test_the_example_config_shows_each_key_at_its_default() -> None:
    # The example is what people copy: a value in it that is not the default would change a setting unsaid.
    example = json.loads((Path(__file__).parent.parent / "config.example.json").read_text())
    shown = {name: value for name, value in example.items() if name not in ("playlist_url", "playlists", "yt_dlp_args")}
    defaults = {name: config.KEYS[name].default for name in shown}
    assert shown == {name: list(value) if isinstance(value, tuple) else value for name, value in defaults.items()}


def run_cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PLAYLIST_CRON_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "playlist_cron", *arguments], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("command", ["check", "status", "retry"])
def test_config_errors_exit_78_naming_the_file_and_every_key_on_stderr(tmp_path: Path, command: str) -> None:
    path = write(tmp_path, {"playlist_url": "nope", "chek_interval_seconds": 5, "skip_exit_code": -1})
    result = run_cli(command, "--config", str(path), cwd=Path("/"))
    assert result.returncode == 78
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.startswith(f"playlist-cron: {path}: At '")
    assert "'chek_interval_seconds': unknown key (did you mean 'check_interval_seconds'?)" in result.stderr
    assert "'playlist_url': expected a URL" in result.stderr
    assert "'skip_exit_code'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"], "a config error writes nothing"


def test_missing_config_exits_78_with_one_line(tmp_path: Path) -> None:
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 78
    assert (
        result.stderr
        == f"playlist-cron: {tmp_path / 'config.json'}: the file does not exist (create it from config.example.json)\n"
    )


# Root reads any file, so as root the command must meet the file as another user, `nobody`. That user may be unable
# to read this checkout or even to start the interpreter (a clone in a private folder, a Python under /root), so the
# child starts as root, imports all that a check loads up to a config error while the files are readable, then drops
# to `nobody` itself and runs the command's own code. As anybody else it runs the command as itself.
RUN_AS_NOBODY = """
import os, sys
from playlist_cron import cli, config, console  # what `check` loads up to reading the config
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
sys.exit(cli.main(sys.argv[1:]))
"""


def test_unreadable_config_exits_78() -> None:
    folder = Path(tempfile.mkdtemp(prefix="playlist-cron-unreadable-"))
    try:
        folder.chmod(0o755)
        path = write(folder, {"playlist_url": URL})
        path.chmod(0)
        result = subprocess.run(
            [sys.executable, "-c", RUN_AS_NOBODY, "check", "--config", str(path)],
            cwd="/",
            capture_output=True,
            text=True,
        )
    finally:
        shutil.rmtree(folder)
    assert result.returncode == 78, result.stderr
    assert result.stderr == f"playlist-cron: {path}: cannot read the file: Permission denied\n"


def test_config_that_is_a_folder_exits_78(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 78
    assert "cannot read the file: Is a directory" in result.stderr


def test_unwritable_log_folder_is_a_config_error_naming_log_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    path = write(tmp_path, {"playlist_url": URL, "log_file": "blocker/downloader.log", "min_free_bytes": 0})
    result = run_cli("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 78
    assert f"playlist-cron: {path}: At 'log_file': cannot open" in result.stderr


def test_a_config_of_10000_playlists_gives_each_its_options_and_names_each_mistake_by_its_place(
    tmp_path: Path,
) -> None:
    count = 10_000
    entries: list[Any] = [f"https://www.youtube.com/channel/UC{number:022d}" for number in range(count)]
    entries[1] = {"url": URL, "max_downloads_per_check": 2, "feed_url": False}
    top = {"output_template": "%(title)s.%(ext)s", "full_scan_interval_seconds": 600, "stop_at_first_archived": True}
    loaded = config.load(write(tmp_path, {"playlists": entries, **top}))
    defaults = {
        **top,
        "yt_dlp_args": (),
        "max_downloads_per_check": None,
        "date_after": None,
        "yt_dlp_args_key": "yt_dlp_args",
        "feed_url": None,
    }
    assert len(loaded.playlists) == count
    assert loaded.playlists[0] == config.Playlist(url=entries[0], **defaults)
    assert loaded.playlists[1] == config.Playlist(
        url=URL, **{**defaults, "max_downloads_per_check": 2, "feed_url": False}
    )
    assert loaded.playlists[-1] == config.Playlist(url=entries[-1], **defaults)
    assert [playlist.url for playlist in loaded.playlists[2:]] == entries[2:]
    assert all(type(playlist) is config.Playlist for playlist in loaded.playlists)

    entries[4999], entries[count - 1] = "not a url", {"url": URL, "stop_at_first_archive": True}
    assert problems(tmp_path, {"playlists": entries}) == [
        "At 'playlists[4999]': expected a URL such as https://www.youtube.com/playlist?list=..., got \"not a url\"",
        f"At 'playlists[{count - 1}].stop_at_first_archive': unknown key (did you mean 'stop_at_first_archived'?)",
    ]


def test_notify_urls_is_a_list_of_apprise_urls_never_shown_back(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, {"playlist_url": URL})).notify_urls == ()
    urls = ["json://cron:hunter2@127.0.0.1:8080/hook", "tgram://123456:ABCdef/4567", "dbus://"]
    assert config.load(write(tmp_path, {"playlist_url": URL, "notify_urls": urls})).notify_urls == tuple(urls)
    assert config.load(write(tmp_path, {"playlist_url": URL, "notify_urls": []})).notify_urls == ()
    found = problems(tmp_path, {"playlist_url": URL, "notify_urls": ["tgram://123456:ABCdef/4567", "", "hunter2", 3]})
    assert found == [
        "At 'notify_urls[1]': expected an Apprise URL such as json://host/path, got a string without a scheme:// or "
        "with a space",
        "At 'notify_urls[2]': expected an Apprise URL such as json://host/path, got a string without a scheme:// or "
        "with a space",
        "At 'notify_urls[3]': expected an Apprise URL such as json://host/path, got a number",
    ]
    assert problems(tmp_path, {"playlist_url": URL, "notify_urls": "json://host/hunter2"}) == [
        "At 'notify_urls': expected a list of Apprise URLs such as json://host/path, got a string"
    ]


@pytest.mark.parametrize("key", ["download_dir", "archive_file", "log_file", "state_dir"])
@pytest.mark.parametrize("command", ["check", "status"])
def test_null_for_a_path_that_has_a_default_exits_78_naming_the_file_and_the_key(
    tmp_path: Path, key: str, command: str
) -> None:
    """null is "no path" only for keys whose absence means none (metrics_file): a folder, the archive, the log and
    the state always have one (before: `internal error: TypeError`, exit 1, from the first use of the path)."""
    path = write(tmp_path, {"playlist_url": URL, key: None})
    result = run_cli(command, "--config", str(path), cwd=Path("/"))
    default = config.KEYS[key].default
    assert (result.returncode, result.stdout) == (78, "")
    assert result.stderr == (
        f"playlist-cron: {path}: At '{key}': expected a path string, got null "
        f"(leave the key out for its default, {default!r})\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"], "a config error writes nothing"
