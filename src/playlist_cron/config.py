"""Read the JSON config file, collect every problem in it, and return a frozen `Config`."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, TypedDict, overload

from playlist_cron import managed_options
from playlist_cron.errors import ConfigError

ENVIRONMENT_VARIABLE = "PLAYLIST_CRON_CONFIG"
DEFAULT_CONFIG_NAME = "config.json"
DEFAULT_OUTPUT_TEMPLATE = "%(playlist_title)s/%(title)s [%(id)s].%(ext)s"
DEFAULT_RETRY_BACKOFF_SECONDS = (900, 3600, 21600, 86400)
DEFAULT_NETWORK_ALERT_AFTER_SECONDS = 3600
DEFAULT_FULL_SCAN_INTERVAL_SECONDS = 21600  # a playlist with a feed is read whole every six hours
DEFAULT_DATABASE_HEARTBEAT_SECONDS = 30
DEFAULT_DATABASE_CONNECT_TIMEOUT_SECONDS = 5
STDOUT_LOG = "-"  # `log_file` for the events on stdout (containers); a file named "-" is spelt "./-"
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")  # the two libpq takes

# Upper bounds of the whole-number keys. A wait longer than a year is a typo, and a far larger one overflows the
# dates it is added to (a cooldown grows to 64 times `cooldown_seconds`: 64 years, still within year 9999).
ONE_YEAR_S = 365 * 24 * 3600
ONE_HOUR_S = 3600
FIVE_MINUTES_S = 300
ONE_EIB = 2**60  # more free space than any filesystem has
MAX_DOWNLOADS_PER_CHECK = 1_000_000  # more videos than the largest channel has

_MISSING = object()  # "no value given", as distinct from a JSON null
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/]+\S*$")
_FEED_URL = re.compile(r"^[hH][tT][tT][pP][sS]?://[^\s/]+\S*$")
# yt-dlp's strict date forms (`DateRange`): YYYYMMDD, or now/today/yesterday minus an amount; never plus.
_DATE = re.compile(r"(?P<ymd>\d{8})|(?P<base>now|today|yesterday)(?:-(?P<amount>\d+)(?P<unit>day|week|month|year)s?)?")

PLAYLIST_KEYS = (
    "url",
    "output_template",
    "yt_dlp_args",
    "stop_at_first_archived",
    "max_downloads_per_check",
    "date_after",
    "feed_url",
    "full_scan_interval_seconds",
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
    "feed_url",
    "full_scan_interval_seconds",
    "cookies_file",
    "retry_backoff_seconds",
    "healthcheck_url",
    "metrics_file",
    "report_file",
    "database_url",
    "collection",
    "host_name",
    "database_heartbeat_seconds",
    "database_connect_timeout_seconds",
)


# NamedTuples rather than frozen dataclasses: the config is read on every cron minute, where `dataclasses` (it
# imports `inspect`) would cost the not-due path a tenth of its time and memory above Python's own start-up.
class Playlist(NamedTuple):
    """One playlist and the options it is downloaded with."""

    url: str
    output_template: str
    yt_dlp_args: tuple[str, ...]
    stop_at_first_archived: bool
    max_downloads_per_check: int | None
    date_after: str | None
    yt_dlp_args_key: str = "yt_dlp_args"  # where its yt_dlp_args came from, for error messages
    feed_url: str | Literal[False] | None = None  # None: derived from `url` where it can be; False: no feed reads
    full_scan_interval_seconds: int = DEFAULT_FULL_SCAN_INTERVAL_SECONDS  # 0: the feed alone


if TYPE_CHECKING:  # building a TypedDict costs the not-due path time (typing compiles its annotations)

    class _PlaylistOptions(TypedDict, total=False):
        """What a playlist object may set, the top level giving the defaults: `Playlist`'s fields but its URL."""

        output_template: str
        yt_dlp_args: tuple[str, ...]
        stop_at_first_archived: bool
        max_downloads_per_check: int | None
        date_after: str | None
        yt_dlp_args_key: str
        full_scan_interval_seconds: int


class Config(NamedTuple):
    """A validated config: every path absolute, every value of the right type."""

    path: Path
    playlists: tuple[Playlist, ...]
    download_dir: Path
    archive_file: Path
    log_file: Path | None  # None: stdout (`"log_file": "-"`)
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
    report_file: Path | None = None  # the `report` page, rewritten after each check that ran
    database_url: str | None = None  # set: the lock, archive and state are in PostgreSQL; may hold a password
    collection: str | None = None  # the rows' key in the database; `load` gives the download folder when unset
    host_name: str | None = None  # this host in the database; `load` gives the machine's name when unset
    database_heartbeat_seconds: int = DEFAULT_DATABASE_HEARTBEAT_SECONDS
    database_connect_timeout_seconds: int = DEFAULT_DATABASE_CONNECT_TIMEOUT_SECONDS

    @property
    def lock_file(self) -> Path:
        """The run lock: beside the archive, so two configs sharing an archive exclude each other."""
        return self.archive_file.with_name(self.archive_file.name + ".lock")

    @property
    def log_name(self) -> str:
        """The log as messages name it: its path, or `stdout`."""
        return "stdout" if self.log_file is None else str(self.log_file)


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
        raw = json.loads(text, parse_int=_whole_number)
    except json.JSONDecodeError as error:
        raise ConfigError(str(path), [_json_problem(error)]) from None
    except RecursionError:
        raise ConfigError(str(path), ["invalid JSON: nested too deeply"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["expected a JSON object at the top level"])
    return _Reader(path, raw).config()


class _Reader:
    """Walks one parsed config, noting each problem instead of stopping at the first."""

    def __init__(self, path: Path, raw: dict[str, object]) -> None:
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
        defaults: _PlaylistOptions = {
            "output_template": self.string("output_template", DEFAULT_OUTPUT_TEMPLATE),
            "yt_dlp_args": self.yt_dlp_args("yt_dlp_args", self.raw.get("yt_dlp_args", [])),
            "stop_at_first_archived": self.boolean("stop_at_first_archived", False),
            "max_downloads_per_check": self.integer(
                "max_downloads_per_check", None, minimum=1, maximum=MAX_DOWNLOADS_PER_CHECK, said="a million"
            ),
            "date_after": self.date("date_after", self.raw.get("date_after")),
            "full_scan_interval_seconds": self.seconds(
                "full_scan_interval_seconds", DEFAULT_FULL_SCAN_INTERVAL_SECONDS, minimum=0
            ),
        }
        playlists = self.playlists(defaults)
        download_dir = self.path_value("download_dir", "downloads")
        config = Config(
            path=self.path,
            playlists=tuple(playlists),
            download_dir=download_dir,
            archive_file=self.path_value("archive_file", "archive.txt"),
            log_file=None
            if self.raw.get("log_file") == STDOUT_LOG
            else self.path_value("log_file", "logs/downloader.log"),
            state_dir=self.path_value("state_dir", "state"),
            check_interval_seconds=self.seconds("check_interval_seconds", 60, minimum=1),
            max_runtime_seconds=self.seconds("max_runtime_seconds", 14400, minimum=1),
            stall_timeout_seconds=self.seconds("stall_timeout_seconds", 900, minimum=1),
            min_free_bytes=self.integer("min_free_bytes", 1_000_000_000, minimum=0, maximum=ONE_EIB, said="1 EiB"),
            cooldown_seconds=self.seconds("cooldown_seconds", 900, minimum=0),
            network_alert_after_seconds=self.seconds(
                "network_alert_after_seconds", DEFAULT_NETWORK_ALERT_AFTER_SECONDS, minimum=0
            ),
            skip_exit_code=self.integer("skip_exit_code", 0, minimum=0, maximum=255),
            cookies_file=self.path_value("cookies_file", None),
            retry_backoff_seconds=self.backoff("retry_backoff_seconds"),
            healthcheck_url=self.url_value("healthcheck_url", self.raw.get("healthcheck_url"), optional=True),
            metrics_file=self.path_value("metrics_file", None),
            report_file=self.path_value("report_file", None),
            database_url=self.database_url("database_url"),
            collection=self.string("collection", str(download_dir)),
            # The kernel's host name, as socket.gethostname() gives it, without importing `socket` (about 10 ms)
            # on every cron minute.
            host_name=self.string("host_name", os.uname().nodename),
            database_heartbeat_seconds=self.integer(
                "database_heartbeat_seconds",
                DEFAULT_DATABASE_HEARTBEAT_SECONDS,
                minimum=1,
                maximum=ONE_HOUR_S,
                said="one hour",
            ),
            database_connect_timeout_seconds=self.integer(
                "database_connect_timeout_seconds",
                DEFAULT_DATABASE_CONNECT_TIMEOUT_SECONDS,
                minimum=1,
                maximum=FIVE_MINUTES_S,
                said="five minutes",
            ),
        )
        if self.problems:
            raise ConfigError(str(self.path), self.problems)
        return config

    def playlists(self, defaults: _PlaylistOptions) -> list[Playlist]:
        has_one, has_many = "playlist_url" in self.raw, "playlists" in self.raw
        if has_one == has_many:
            self.problem(
                "playlist_url",
                "set exactly one of 'playlist_url' and 'playlists'" + (" (both are set)" if has_one else ""),
            )
            return []
        if has_one:
            url = self.url_value("playlist_url", self.raw["playlist_url"])
            feed_url = self.feed_url("feed_url", self.raw["feed_url"]) if "feed_url" in self.raw else None
            return [Playlist(url=url, feed_url=feed_url, **defaults)] if url else []
        if "feed_url" in self.raw:
            self.problem("feed_url", "a feed belongs to one playlist: set it in that playlist's object in 'playlists'")
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

    def playlist_object(self, key: str, entry: dict[str, object], defaults: _PlaylistOptions) -> Playlist | None:
        for name in entry:
            if name not in PLAYLIST_KEYS:
                self.problem(f"{key}.{name}", "unknown key" + _suggestion(name, PLAYLIST_KEYS))
        if "url" not in entry:
            self.problem(f"{key}.url", "missing: every playlist object needs a 'url'")
            return None
        url = self.url_value(f"{key}.url", entry["url"])
        values = defaults.copy()
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
                f"{key}.max_downloads_per_check",
                None,
                minimum=1,
                maximum=MAX_DOWNLOADS_PER_CHECK,
                said="a million",
                value=entry["max_downloads_per_check"],
            )
        if "date_after" in entry:
            values["date_after"] = self.date(f"{key}.date_after", entry["date_after"])
        if "full_scan_interval_seconds" in entry:
            values["full_scan_interval_seconds"] = self.seconds(
                f"{key}.full_scan_interval_seconds",
                DEFAULT_FULL_SCAN_INTERVAL_SECONDS,
                minimum=0,
                value=entry["full_scan_interval_seconds"],
            )
        feed_url = self.feed_url(f"{key}.feed_url", entry["feed_url"]) if "feed_url" in entry else None
        return Playlist(url=url, feed_url=feed_url, **values) if url else None

    def string(self, key: str, default: str, value: object = _MISSING) -> str:
        value = self.raw.get(key, default) if value is _MISSING else value
        if not isinstance(value, str) or not value:
            self.problem(key, f"expected a non-empty string, got {_json_type(value)}")
            return default
        return value

    def boolean(self, key: str, default: bool, value: object = _MISSING) -> bool:
        value = self.raw.get(key, default) if value is _MISSING else value
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {_json_type(value)}")
            return default
        return value

    @overload
    def integer(
        self, key: str, default: int, *, minimum: int, maximum: int, said: str = "", value: object = _MISSING
    ) -> int: ...

    @overload
    def integer(
        self, key: str, default: None, *, minimum: int, maximum: int, said: str = "", value: object = _MISSING
    ) -> int | None: ...

    def integer(
        self, key: str, default: int | None, *, minimum: int, maximum: int, said: str = "", value: object = _MISSING
    ) -> int | None:
        """Given a key and its bounds (`said` names the upper one in words), return its whole number or `default`."""
        if value is _MISSING:
            if key not in self.raw:
                return default
            value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected a whole number, got {_json_type(value)}")
            return default
        if not minimum <= value <= maximum:
            self.problem(key, f"expected a whole number {_range(minimum, maximum, said)}, got {value}")
            return default
        return value

    def seconds(self, key: str, default: int, *, minimum: int, value: object = _MISSING) -> int:
        return self.integer(key, default, minimum=minimum, maximum=ONE_YEAR_S, said="one year", value=value)

    def url_value(self, key: str, value: object, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not _URL.match(value):
            self.problem(key, f"expected a URL such as https://www.youtube.com/playlist?list=..., got {_show(value)}")
            return None
        return value

    def database_url(self, key: str) -> str | None:
        """`database_url`: a libpq URL. Never shown back in a message: it may hold a password."""
        if key not in self.raw:
            return None
        value = self.raw[key]
        if (
            not isinstance(value, str)
            or not value.startswith(DATABASE_URL_SCHEMES)
            or any(character.isspace() for character in value)
        ):
            self.problem(key, "expected a PostgreSQL URL, postgresql://user@host/database (or postgres://...)")
            return None
        return value

    def feed_url(self, key: str, value: object) -> str | Literal[False] | None:
        """A playlist's `feed_url`: an http(s) URL, or false for no feed reads (absent: derived where it can be)."""
        if value is False:
            return False
        if not isinstance(value, str) or not _FEED_URL.match(value):
            self.problem(
                key,
                "expected the playlist's RSS or Atom feed as an http(s) URL, or false to read the playlist whole at "
                f"every check, got {_show(value)}",
            )
            return None
        return value

    def date(self, key: str, value: object) -> str | None:
        if value is None:
            return None
        match = _DATE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            self.problem(
                key,
                "expected a date as YYYYMMDD, or now, today or yesterday minus days, weeks, months or years "
                f"('now-30days'), got {_show(value)}",
            )
            return None
        if not _is_a_day(match):
            self.problem(key, f"{_show(value)} is not a day between the years 1 and 9999")
            return None
        return match.string

    @overload
    def path_value(self, key: str, default: str) -> Path: ...

    @overload
    def path_value(self, key: str, default: None) -> Path | None: ...

    def path_value(self, key: str, default: str | None) -> Path | None:
        """Given a key and its default, return its absolute path (a problem noted gives the default's: never used)."""
        value = self.raw.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.problem(key, f"expected a path string, got {_json_type(value)}")
            value = default
            if value is None:
                return None
        return (self.base_dir / Path(value).expanduser()).absolute()

    def yt_dlp_args(self, key: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, 'expected a list of strings, as typed on the command line: ["-f", "best"]')
            return ()
        for index, said in managed_options.refused(value):
            self.problem(f"{key}[{index}]", said)
        return tuple(value)

    def backoff(self, key: str) -> tuple[int, ...]:
        value = self.raw.get(key, list(DEFAULT_RETRY_BACKOFF_SECONDS))
        if (
            not isinstance(value, list)
            or not value
            or not all(
                isinstance(step, int) and not isinstance(step, bool) and 0 < step <= ONE_YEAR_S for step in value
            )
        ):
            self.problem(
                key,
                f"expected a non-empty list of whole numbers of seconds, each {_range(1, ONE_YEAR_S, 'one year')}, "
                f"got {_show(value)}",
            )
            return DEFAULT_RETRY_BACKOFF_SECONDS
        return tuple(value)


def _range(minimum: int, maximum: int, said: str) -> str:
    return f"from {minimum} to {maximum}" + (f" ({said})" if said else "")


def _is_a_day(match: re.Match[str]) -> bool:
    """Whether a `_DATE` match names a day that Python's dates (and so yt-dlp) can hold."""
    try:
        if match["ymd"]:
            datetime.strptime(match["ymd"], "%Y%m%d")
            return True
        day = date.today() - timedelta(days=1 if match["base"] == "yesterday" else 0)
        amount = int(match["amount"] or 0)
        if match["unit"] in ("month", "year"):  # as yt-dlp counts them: calendar months back from this one
            months = amount * (12 if match["unit"] == "year" else 1)
            return day.year + (day.month - 1 - months) // 12 >= 1
        day -= timedelta(days=amount * (7 if match["unit"] == "week" else 1))
    except (ValueError, OverflowError):
        return False
    return True


class _LongNumber:
    """A JSON whole number too long for Python to read (`sys.get_int_max_str_digits`): no key takes one."""

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __str__(self) -> str:
        return f"a number of {len(self.digits.lstrip('-'))} digits"


def _whole_number(digits: str) -> int | _LongNumber:
    limit = sys.get_int_max_str_digits()
    return _LongNumber(digits) if limit and len(digits.lstrip("-")) > limit else int(digits)


def _json_problem(error: json.JSONDecodeError) -> str:
    """Given the decoder's error, say where it is; name a trailing comma, the usual slip, when that is the cause."""
    doc = error.doc
    # Python 3.13's decoder points at the trailing comma itself, the ones before it at the bracket after the comma.
    comma = error.pos if doc[error.pos : error.pos + 1] == "," else len(doc[: error.pos].rstrip()) - 1
    closing = doc[comma + 1 :].lstrip()[:1]
    if comma >= 0 and doc[comma] == "," and closing in ("}", "]"):
        line = doc.count("\n", 0, comma) + 1
        column = comma - doc.rfind("\n", 0, comma)
        return (
            f"invalid JSON at line {line} column {column}: a trailing comma before "
            f"'{closing}' is the likely cause (JSON allows no comma after the last item)"
        )
    return f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    if value is None:
        return "null"
    if isinstance(value, _LongNumber):
        return str(value)
    return names.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggestion(key: str, known: tuple[str, ...]) -> str:
    import difflib  # only on this error path: it costs start-up time on every check otherwise

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
