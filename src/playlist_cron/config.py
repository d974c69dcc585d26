"""Read the JSON config file, collect every problem in it, and return a frozen `Config`."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playlist_cron.errors import ConfigError

ENVIRONMENT_VARIABLE = "PLAYLIST_CRON_CONFIG"
DEFAULT_CONFIG_NAME = "config.json"
DEFAULT_OUTPUT_TEMPLATE = "%(playlist_title)s/%(title)s [%(id)s].%(ext)s"
DEFAULT_RETRY_BACKOFF_SECONDS = (900, 3600, 21600, 86400)
DEFAULT_NETWORK_ALERT_AFTER_SECONDS = 3600

# yt-dlp options that playlist-cron sets itself: a user's copy would fight ours.
MANAGED_OPTIONS = {
    "-o": "output_template",
    "--output": "output_template",
    "-P": "download_dir",
    "--paths": "download_dir",
    "--download-archive": "archive_file",
    "--no-download-archive": "archive_file",
    "--force-download-archive": "archive_file",
    "--force-write-archive": "archive_file",
    "-a": "playlist_url",
    "--batch-file": "playlist_url",
    "--config-location": "yt_dlp_args",
    "--config-locations": "yt_dlp_args",
    "--cookies": "cookies_file",
    "--max-downloads": "max_downloads_per_check",
    "--dateafter": "date_after",
    "--date": "date_after",
}

_MISSING: Any = object()  # "no value given", as distinct from a JSON null
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/]+\S*$")
_DATE = re.compile(r"^(?:\d{8}|(?:now|today|yesterday)(?:[+-]\d+(?:day|week|month|year)s?)?)$")

PLAYLIST_KEYS = (
    "url",
    "output_template",
    "yt_dlp_args",
    "stop_at_first_archived",
    "max_downloads_per_check",
    "date_after",
)
TOP_LEVEL_KEYS = (
    "playlist_url",
    "playlists",
    "download_dir",
    "archive_file",
    "log_file",
    "state_dir",
    "output_template",
    "yt_dlp_args",
    "check_interval_seconds",
    "max_runtime_seconds",
    "stall_timeout_seconds",
    "min_free_bytes",
    "cooldown_seconds",
    "network_alert_after_seconds",
    "skip_exit_code",
    "stop_at_first_archived",
    "max_downloads_per_check",
    "date_after",
    "cookies_file",
    "retry_backoff_seconds",
    "healthcheck_url",
    "metrics_file",
)


@dataclass(frozen=True)
class Playlist:
    """One playlist and the options it is downloaded with."""

    url: str
    output_template: str
    yt_dlp_args: tuple[str, ...]
    stop_at_first_archived: bool
    max_downloads_per_check: int | None
    date_after: str | None
    yt_dlp_args_key: str = "yt_dlp_args"  # where its yt_dlp_args came from, for error messages


@dataclass(frozen=True)
class Config:
    """A validated config: every path absolute, every value of the right type."""

    path: Path
    playlists: tuple[Playlist, ...]
    download_dir: Path
    archive_file: Path
    log_file: Path
    state_dir: Path
    check_interval_seconds: int = 60
    max_runtime_seconds: int = 14400
    stall_timeout_seconds: int = 900
    min_free_bytes: int = 1_000_000_000
    cooldown_seconds: int = 900
    network_alert_after_seconds: int = DEFAULT_NETWORK_ALERT_AFTER_SECONDS
    skip_exit_code: int = 0
    cookies_file: Path | None = None
    retry_backoff_seconds: tuple[int, ...] = DEFAULT_RETRY_BACKOFF_SECONDS
    healthcheck_url: str | None = None
    metrics_file: Path | None = None

    @property
    def lock_file(self) -> Path:
        """The run lock: beside the archive, so two configs sharing an archive exclude each other."""
        return self.archive_file.with_name(self.archive_file.name + ".lock")


def config_path(argument: str | None) -> Path:
    """Given `--config` (or None), return the config path: the argument, `$PLAYLIST_CRON_CONFIG`, `./config.json`."""
    chosen = argument or os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_CONFIG_NAME
    return Path(chosen).expanduser().absolute()


def load(path: Path) -> Config:
    """Given a config file's path, return its `Config`; raise `ConfigError` listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["the file does not exist (create it from config.example.json)"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), [f"cannot read the file: {getattr(error, 'strerror', None) or error}"]) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            str(path), [f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["expected a JSON object at the top level"])
    return _Reader(path, raw).config()


class _Reader:
    """Walks one parsed config, noting each problem instead of stopping at the first."""

    def __init__(self, path: Path, raw: dict[str, Any]) -> None:
        self.path = path
        self.raw = raw
        self.base_dir = path.parent
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"At '{key}': {message}")

    def config(self) -> Config:
        for key in self.raw:
            if key not in TOP_LEVEL_KEYS:
                self.problem(key, "unknown key" + _suggestion(key, TOP_LEVEL_KEYS))
        defaults = {
            "output_template": self.string("output_template", DEFAULT_OUTPUT_TEMPLATE),
            "yt_dlp_args": self.yt_dlp_args("yt_dlp_args", self.raw.get("yt_dlp_args", [])),
            "stop_at_first_archived": self.boolean("stop_at_first_archived", False),
            "max_downloads_per_check": self.integer("max_downloads_per_check", None, minimum=1),
            "date_after": self.date("date_after", self.raw.get("date_after")),
        }
        playlists = self.playlists(defaults)
        values = {
            "download_dir": self.path_value("download_dir", "downloads"),
            "archive_file": self.path_value("archive_file", "archive.txt"),
            "log_file": self.path_value("log_file", "logs/downloader.log"),
            "state_dir": self.path_value("state_dir", "state"),
            "check_interval_seconds": self.integer("check_interval_seconds", 60, minimum=1),
            "max_runtime_seconds": self.integer("max_runtime_seconds", 14400, minimum=1),
            "stall_timeout_seconds": self.integer("stall_timeout_seconds", 900, minimum=1),
            "min_free_bytes": self.integer("min_free_bytes", 1_000_000_000, minimum=0),
            "cooldown_seconds": self.integer("cooldown_seconds", 900, minimum=0),
            "network_alert_after_seconds": self.integer(
                "network_alert_after_seconds", DEFAULT_NETWORK_ALERT_AFTER_SECONDS, minimum=0
            ),
            "skip_exit_code": self.integer("skip_exit_code", 0, minimum=0, maximum=255),
            "cookies_file": self.path_value("cookies_file", None),
            "retry_backoff_seconds": self.backoff("retry_backoff_seconds"),
            "healthcheck_url": self.url_value("healthcheck_url", self.raw.get("healthcheck_url"), optional=True),
            "metrics_file": self.path_value("metrics_file", None),
        }
        if self.problems:
            raise ConfigError(str(self.path), self.problems)
        return Config(path=self.path, playlists=tuple(playlists), **values)

    def playlists(self, defaults: dict[str, Any]) -> list[Playlist]:
        has_one, has_many = "playlist_url" in self.raw, "playlists" in self.raw
        if has_one == has_many:
            self.problem(
                "playlist_url",
                "set exactly one of 'playlist_url' and 'playlists'" + (" (both are set)" if has_one else ""),
            )
            return []
        if has_one:
            url = self.url_value("playlist_url", self.raw["playlist_url"])
            return [Playlist(url=url, **defaults)] if url else []
        entries = self.raw["playlists"]
        if not isinstance(entries, list) or not entries:
            self.problem("playlists", "expected a non-empty list of URLs or of objects with a 'url'")
            return []
        playlists = []
        for index, entry in enumerate(entries):
            key = f"playlists[{index}]"
            if isinstance(entry, str):
                url = self.url_value(key, entry)
                if url:
                    playlists.append(Playlist(url=url, **defaults))
            elif isinstance(entry, dict):
                playlist = self.playlist_object(key, entry, defaults)
                if playlist:
                    playlists.append(playlist)
            else:
                self.problem(key, f"expected a URL string or an object with a 'url', got {_json_type(entry)}")
        return playlists

    def playlist_object(self, key: str, entry: dict[str, Any], defaults: dict[str, Any]) -> Playlist | None:
        for name in entry:
            if name not in PLAYLIST_KEYS:
                self.problem(f"{key}.{name}", "unknown key" + _suggestion(name, PLAYLIST_KEYS))
        if "url" not in entry:
            self.problem(f"{key}.url", "missing: every playlist object needs a 'url'")
            return None
        url = self.url_value(f"{key}.url", entry["url"])
        values = dict(defaults)
        if "output_template" in entry:
            values["output_template"] = self.string(
                f"{key}.output_template", defaults["output_template"], entry["output_template"]
            )
        if "yt_dlp_args" in entry:
            values["yt_dlp_args"] = self.yt_dlp_args(f"{key}.yt_dlp_args", entry["yt_dlp_args"])
            values["yt_dlp_args_key"] = f"{key}.yt_dlp_args"
        if "stop_at_first_archived" in entry:
            values["stop_at_first_archived"] = self.boolean(
                f"{key}.stop_at_first_archived", False, entry["stop_at_first_archived"]
            )
        if "max_downloads_per_check" in entry:
            values["max_downloads_per_check"] = self.integer(
                f"{key}.max_downloads_per_check", None, minimum=1, value=entry["max_downloads_per_check"]
            )
        if "date_after" in entry:
            values["date_after"] = self.date(f"{key}.date_after", entry["date_after"])
        return Playlist(url=url, **values) if url else None

    def string(self, key: str, default: str | None, value: Any = _MISSING) -> Any:
        value = self.raw.get(key, default) if value is _MISSING else value
        if not isinstance(value, str) or not value:
            self.problem(key, f"expected a non-empty string, got {_json_type(value)}")
            return default
        return value

    def boolean(self, key: str, default: bool, value: Any = _MISSING) -> bool:
        value = self.raw.get(key, default) if value is _MISSING else value
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {_json_type(value)}")
            return default
        return value

    def integer(
        self, key: str, default: int | None, *, minimum: int, maximum: int | None = None, value: Any = _MISSING
    ) -> Any:
        if value is _MISSING:
            if key not in self.raw:
                return default
            value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected a whole number, got {_json_type(value)}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
            self.problem(key, f"expected a whole number {bound}, got {value}")
            return default
        return value

    def url_value(self, key: str, value: Any, *, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not _URL.match(value):
            self.problem(key, f"expected a URL such as https://www.youtube.com/playlist?list=..., got {_show(value)}")
            return None
        return value

    def date(self, key: str, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _DATE.match(value):
            self.problem(key, f"expected a date as YYYYMMDD or like 'now-30days', got {_show(value)}")
            return None
        return value

    def path_value(self, key: str, default: str | None) -> Any:
        value = self.raw.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.problem(key, f"expected a path string, got {_json_type(value)}")
            return None
        return (self.base_dir / Path(value).expanduser()).absolute()

    def yt_dlp_args(self, key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, 'expected a list of strings, as typed on the command line: ["-f", "best"]')
            return ()
        for index, argument in enumerate(value):
            option = argument.split("=", 1)[0] if argument.startswith("--") else argument[:2]
            if option in MANAGED_OPTIONS:
                self.problem(
                    f"{key}[{index}]",
                    f"{option} is managed by playlist-cron: set '{MANAGED_OPTIONS[option]}' in the config instead",
                )
        return tuple(value)

    def backoff(self, key: str) -> tuple[int, ...]:
        value = self.raw.get(key, list(DEFAULT_RETRY_BACKOFF_SECONDS))
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(step, int) and not isinstance(step, bool) and step > 0 for step in value)
        ):
            self.problem(key, f"expected a non-empty list of whole numbers of seconds above 0, got {_show(value)}")
            return DEFAULT_RETRY_BACKOFF_SECONDS
        return tuple(value)


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    if value is None:
        return "null"
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggestion(key: str, known: tuple[str, ...]) -> str:
    import difflib  # only on this error path: it costs start-up time on every check otherwise

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
