"""Read the JSON config file, collect every problem in it, and return a frozen `Config`."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, overload

from playlist_cron import __version__
from playlist_cron.errors import ConfigError

ENVIRONMENT_VARIABLE = "PLAYLIST_CRON_CONFIG"
DEFAULT_CONFIG_NAME = "config.json"
STDOUT_LOG = "-"  # `log_file` for the events on stdout (containers); a file named "-" is spelt "./-"
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")  # the two libpq takes

# Upper bounds of the whole-number keys. A wait longer than a year is a typo, and a far larger one overflows the
# dates it is added to (a cooldown grows to 64 times `cooldown_seconds`: 64 years, still within year 9999).
ONE_YEAR_S = 365 * 24 * 3600
ONE_HOUR_S = 3600
FIVE_MINUTES_S = 300
ONE_EIB = 2**60  # more free space than any filesystem has
MAX_DOWNLOADS_PER_CHECK = 1_000_000  # more videos than the largest channel has

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/]+\S*$")
_HTTP_URL = re.compile(r"^[hH][tT][tT][pP][sS]?://[^\s/]+\S*$")
# An Apprise URL: a scheme and `://`; some services name nothing after it (`dbus://`, `macosx://`).
_APPRISE_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S*$")
# yt-dlp's strict date forms (`DateRange`): YYYYMMDD, or now/today/yesterday minus an amount; never plus.
_DATE = re.compile(r"(?P<ymd>\d{8})|(?P<base>now|today|yesterday)(?:-(?P<amount>\d+)(?P<unit>day|week|month|year)s?)?")


# NamedTuples rather than frozen dataclasses: the config is read on every cron minute, where `dataclasses` (it
# imports `inspect`) would cost the not-due path a tenth of its time and memory above Python's own start-up.
class Key(NamedTuple):
    """One config key: which check its value gets, its bounds, its default, and whether a playlist may set it."""

    kind: str  # which check its value gets (`_CHECKS`); "playlists": the two keys `_Reader.playlists` reads
    default: Any = None  # its value when absent (a path's is resolved against the config file's folder)
    minimum: int = 0  # the bounds of a whole number, or of each step of a list of them
    maximum: int = 0
    said: str = ""  # the upper bound in words, for messages
    per_playlist: bool = False  # a playlist object may set it too; the top level's value is its default there


def _seconds(default: int, minimum: int, *, per_playlist: bool = False) -> Key:
    """A key that is a wait in whole seconds, at most a year."""
    return Key("whole", default, minimum, ONE_YEAR_S, "one year", per_playlist)


# Every key of the config file, in the order the reader checks them (and so the order of its messages).
KEYS: dict[str, Key] = {
    "playlist_url": Key("playlists"),  # one playlist, or
    "playlists": Key("playlists"),  # several: URLs, or objects that may set the keys marked per_playlist
    "output_template": Key("text", "%(playlist_title)s/%(title)s [%(id)s].%(ext)s", per_playlist=True),
    "yt_dlp_args": Key("yt_dlp_args", (), per_playlist=True),
    "stop_at_first_archived": Key("boolean", False, per_playlist=True),
    "max_downloads_per_check": Key("whole", None, 1, MAX_DOWNLOADS_PER_CHECK, "a million", per_playlist=True),
    "date_after": Key("date", None, per_playlist=True),
    # A playlist with a feed is read whole every six hours; 0: the feed alone.
    "full_scan_interval_seconds": _seconds(21600, minimum=0, per_playlist=True),
    # One playlist's own (at the top level only beside `playlist_url`). None: derived from its URL where it can
    # be; false: no feed reads.
    "feed_url": Key("feed_url", None, per_playlist=True),
    "download_dir": Key("path", "downloads"),
    "archive_file": Key("path", "archive.txt"),
    "log_file": Key("log", "logs/downloader.log"),
    "state_dir": Key("path", "state"),
    "check_interval_seconds": _seconds(60, minimum=1),
    "max_runtime_seconds": _seconds(14400, minimum=1),
    "stall_timeout_seconds": _seconds(900, minimum=1),
    "min_free_bytes": Key("whole", 1_000_000_000, 0, ONE_EIB, "1 EiB"),
    "cooldown_seconds": _seconds(900, minimum=0),
    "network_alert_after_seconds": _seconds(3600, minimum=0),
    "skip_exit_code": Key("whole", 0, 0, 255),
    "cookies_file": Key("path"),
    "retry_backoff_seconds": Key("backoff", (900, 3600, 21600, 86400), 1, ONE_YEAR_S, "one year"),
    "healthcheck_url": Key("optional_url"),
    "metrics_file": Key("path"),
    # A Prometheus Pushgateway: the metrics file's text is pushed there after every check, SKIPPED ones included.
    "metrics_push_url": Key("push_url"),
    # Apprise URLs: a message per check that downloaded something, per video given up, per alert (`monitoring.notify`).
    "notify_urls": Key("notify_urls", ()),
    "report_file": Key("path"),
    "database_url": Key("database_url"),
    "collection": Key("text"),  # absent: `load` gives the download folder
    "host_name": Key("text"),  # absent: `load` gives the machine's name
    "database_heartbeat_seconds": Key("whole", 30, 1, ONE_HOUR_S, "one hour"),
    "database_connect_timeout_seconds": Key("whole", 5, 1, FIVE_MINUTES_S, "five minutes"),
    # The most playlist reads in flight at once in one check (so never more to one site); 1: one after another.
    "parallel_reads": Key("whole", 4, 1, 64),
    # Links in a feed may lead to loopback and private addresses even when the playlist is on a public one.
    "allow_private_addresses": Key("boolean", False),
}
TOP_LEVEL_KEYS = tuple(KEYS)
PLAYLIST_KEYS = ("url", *(name for name, key in KEYS.items() if key.per_playlist))
# The top level gives these their defaults for every playlist (a feed is one playlist's own).
_PLAYLIST_OPTIONS = tuple(name for name in PLAYLIST_KEYS[1:] if name != "feed_url")
_CONFIG_KEYS = tuple(name for name, key in KEYS.items() if not key.per_playlist and key.kind != "playlists")
DEFAULT_OUTPUT_TEMPLATE: str = KEYS["output_template"].default
DEFAULT_FULL_SCAN_INTERVAL_SECONDS: int = KEYS["full_scan_interval_seconds"].default


class Playlist(NamedTuple):
    """One playlist and the options it is downloaded with."""

    url: str
    output_template: str
    yt_dlp_args: tuple[str, ...]
    stop_at_first_archived: bool
    max_downloads_per_check: int | None
    date_after: str | None
    yt_dlp_args_key: str = "yt_dlp_args"  # where its yt_dlp_args came from, for error messages
    feed_url: str | Literal[False] | None = KEYS["feed_url"].default
    full_scan_interval_seconds: int = KEYS["full_scan_interval_seconds"].default


class Config(NamedTuple):
    """A validated config: every path absolute, every value of the right type; the defaults are `KEYS`'s.

    Its playlists may be checked when first used rather than at `load` (see there): a check always uses them.
    """

    path: Path
    playlists: Sequence[Playlist]
    download_dir: Path
    archive_file: Path
    log_file: Path | None  # None: stdout (`"log_file": "-"`)
    state_dir: Path
    check_interval_seconds: int = KEYS["check_interval_seconds"].default
    max_runtime_seconds: int = KEYS["max_runtime_seconds"].default
    stall_timeout_seconds: int = KEYS["stall_timeout_seconds"].default
    min_free_bytes: int = KEYS["min_free_bytes"].default
    cooldown_seconds: int = KEYS["cooldown_seconds"].default
    network_alert_after_seconds: int = KEYS["network_alert_after_seconds"].default
    skip_exit_code: int = KEYS["skip_exit_code"].default
    cookies_file: Path | None = KEYS["cookies_file"].default
    retry_backoff_seconds: tuple[int, ...] = KEYS["retry_backoff_seconds"].default
    healthcheck_url: str | None = KEYS["healthcheck_url"].default
    metrics_file: Path | None = KEYS["metrics_file"].default
    metrics_push_url: str | None = KEYS["metrics_push_url"].default  # it may hold a password: never logged as is
    notify_urls: tuple[str, ...] = KEYS["notify_urls"].default  # tokens and passwords: never logged, nor shown back
    report_file: Path | None = KEYS["report_file"].default  # the `report` page, rewritten after each check that ran
    # Set: the lock, archive and state are in PostgreSQL. It may hold a password.
    database_url: str | None = KEYS["database_url"].default
    collection: str | None = KEYS["collection"].default  # the rows' key in the database; `load` sets it
    host_name: str | None = KEYS["host_name"].default  # this host in the database; `load` sets it
    database_heartbeat_seconds: int = KEYS["database_heartbeat_seconds"].default
    database_connect_timeout_seconds: int = KEYS["database_connect_timeout_seconds"].default
    parallel_reads: int = KEYS["parallel_reads"].default
    allow_private_addresses: bool = KEYS["allow_private_addresses"].default
    digest: str = ""  # the file's bytes, as read, and the release that read them: see `digest_of`

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


def load(path: Path, *, sound_digest: Callable[[Config], str | None] | None = None) -> Config:
    """Given a config file's path, return its `Config`; raise `ConfigError` listing every problem.

    `sound_digest`, given the config's settings (its playlists not yet read), returns the digest of the last config a
    check found sound, whole (its state keeps it). When that is this file's, the playlists are checked when first
    used instead: the not-due and skip paths, which run every cron minute, never use them, and a check of this
    release found these very bytes sound.
    """
    try:
        data = path.read_bytes()
        digest, text = digest_of(data), data.decode("utf-8")
        del data  # a config of 10,000 playlists is 0.6 MB: not kept beside its text and what it parses into
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
    return _Reader(path, raw, digest).config(sound_digest)


def digest_of(data: bytes) -> str:
    """Given a config file's bytes, return what a check notes of them once it found them sound: this release, their
    length and CRC-32 (a check of another release may find other problems)."""
    import binascii  # 0.1 ms, where hashlib would cost the not-due path 3

    return f"{__version__}/{len(data)}/{binascii.crc32(data):08x}"


class _CheckedOnFirstUse(Sequence["Playlist"]):
    """The playlists of a config a check of this release found sound, byte for byte: checked when first used."""

    def __init__(self, reader: _Reader, defaults: dict[str, Any]) -> None:
        self._reader = reader
        self._defaults = defaults
        self._checked: tuple[Playlist, ...] | None = None

    def _playlists(self) -> tuple[Playlist, ...]:
        if self._checked is None:
            playlists = self._reader.playlists(self._defaults)
            if self._reader.problems:  # not for the bytes a check found sound; said as `load` would say it
                raise ConfigError(str(self._reader.path), self._reader.problems)
            self._checked = tuple(playlists)
        return self._checked

    def __len__(self) -> int:
        return len(self._playlists())

    @overload
    def __getitem__(self, index: int) -> Playlist: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Playlist, ...]: ...

    def __getitem__(self, index: int | slice) -> Playlist | tuple[Playlist, ...]:
        return self._playlists()[index]

    def __iter__(self) -> Iterator[Playlist]:
        return iter(self._playlists())

    def __repr__(self) -> str:
        return repr(self._checked) if self._checked is not None else "<playlists checked when first used>"


class _Reader:
    """Walks one parsed config, noting each problem instead of stopping at the first.

    Each check is given where the value is (`playlists[2].date_after`), its key's row of `KEYS` and the value,
    and returns the value as `Config` holds it; after noting a problem it returns None, the config being refused.
    """

    def __init__(self, path: Path, raw: dict[str, object], digest: str = "") -> None:
        self.path = path
        self.raw = raw
        self.digest = digest
        self.base_dir = path.parent
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"At '{key}': {message}")

    def config(self, sound_digest: Callable[[Config], str | None] | None = None) -> Config:
        for key in self.raw:
            if key not in KEYS:
                self.problem(key, "unknown key" + _suggestion(key, TOP_LEVEL_KEYS))
        defaults = {name: self.top_level(name) for name in _PLAYLIST_OPTIONS}
        playlists = self.playlists(defaults) if sound_digest is None else []
        values = {name: self.top_level(name) for name in _CONFIG_KEYS}
        if "collection" not in self.raw:
            values["collection"] = str(values["download_dir"])
        if "host_name" not in self.raw:
            # The kernel's host name, as socket.gethostname() gives it, without importing `socket` (about 10 ms)
            # on every cron minute.
            values["host_name"] = os.uname().nodename
        if self.problems and sound_digest is not None:
            return _Reader(self.path, self.raw, self.digest).config()  # every problem, in the usual order
        if self.problems:
            raise ConfigError(str(self.path), self.problems)
        config = Config(path=self.path, playlists=tuple(playlists), digest=self.digest, **values)
        if sound_digest is None:
            return config
        if sound_digest(config) == self.digest:
            return config._replace(playlists=_CheckedOnFirstUse(self, defaults))
        return _Reader(self.path, self.raw, self.digest).config()

    def top_level(self, name: str) -> Any:
        """Given a key's name, return its value at the top level, checked, or its default when it is absent."""
        key = KEYS[name]
        if name in self.raw:
            return self.check(name, key, self.raw[name])
        if key.kind in ("path", "log") and key.default is not None:
            return self.resolved(key.default)
        return key.default

    def check(self, where: str, key: Key, value: object) -> Any:
        return _CHECKS[key.kind](self, where, key, value)

    def playlists(self, defaults: dict[str, Any]) -> list[Playlist]:
        has_one, has_many = "playlist_url" in self.raw, "playlists" in self.raw
        if has_one == has_many:
            self.problem(
                "playlist_url",
                "set exactly one of 'playlist_url' and 'playlists'" + (" (both are set)" if has_one else ""),
            )
            return []
        if has_one:
            url = self.url("playlist_url", self.raw["playlist_url"])
            feed_url = self.top_level("feed_url")
            return [Playlist(url=url, feed_url=feed_url, **defaults)] if url else []
        if "feed_url" in self.raw:
            self.problem("feed_url", "a feed belongs to one playlist: set it in that playlist's object in 'playlists'")
        entries = self.raw["playlists"]
        if not isinstance(entries, list) or not entries:
            self.problem("playlists", "expected a non-empty list of URLs or of objects with a 'url'")
            return []
        playlists = []
        # A URL string is the usual entry, 10,000 of them in a big config: its Playlist is made from the defaults
        # in one step, and its place is spelt out only for a message.
        with_defaults = Playlist(url="", **defaults)[1:]
        for index, entry in enumerate(entries):
            if isinstance(entry, str) and _URL.match(entry):
                playlists.append(Playlist._make((entry, *with_defaults)))
                continue
            key = f"playlists[{index}]"
            if isinstance(entry, str):
                self.url(key, entry)
            elif isinstance(entry, dict):
                playlist = self.playlist_object(key, entry, defaults)
                if playlist:
                    playlists.append(playlist)
            else:
                self.problem(key, f"expected a URL string or an object with a 'url', got {_json_type(entry)}")
        return playlists

    def playlist_object(self, key: str, entry: dict[str, object], defaults: dict[str, Any]) -> Playlist | None:
        for name in entry:
            if name not in PLAYLIST_KEYS:
                self.problem(f"{key}.{name}", "unknown key" + _suggestion(name, PLAYLIST_KEYS))
        if "url" not in entry:
            self.problem(f"{key}.url", "missing: every playlist object needs a 'url'")
            return None
        url = self.url(f"{key}.url", entry["url"])
        values = defaults.copy()
        for name in PLAYLIST_KEYS[1:]:
            if name in entry:
                values[name] = self.check(f"{key}.{name}", KEYS[name], entry[name])
        if "yt_dlp_args" in entry:
            values["yt_dlp_args_key"] = f"{key}.yt_dlp_args"
        return Playlist(url=url, **values) if url else None

    def resolved(self, path: str) -> Path:
        return (self.base_dir / Path(path).expanduser()).absolute()

    def text(self, where: str, key: Key, value: object) -> str | None:
        if not isinstance(value, str) or not value:
            self.problem(where, f"expected a non-empty string, got {_json_type(value)}")
            return None
        return value

    def boolean(self, where: str, key: Key, value: object) -> bool | None:
        if not isinstance(value, bool):
            self.problem(where, f"expected true or false, got {_json_type(value)}")
            return None
        return value

    def whole(self, where: str, key: Key, value: object) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(where, f"expected a whole number, got {_json_type(value)}")
            return None
        if not key.minimum <= value <= key.maximum:
            self.problem(where, f"expected a whole number {_range(key)}, got {value}")
            return None
        return value

    def url(self, where: str, value: object) -> str | None:
        if not isinstance(value, str) or not _URL.match(value):
            self.problem(where, f"expected a URL such as https://www.youtube.com/playlist?list=..., got {_show(value)}")
            return None
        return value

    def optional_url(self, where: str, key: Key, value: object) -> str | None:
        return None if value is None else self.url(where, value)

    def push_url(self, where: str, key: Key, value: object) -> str | None:
        """`metrics_push_url`: the Pushgateway's http(s) URL. Never shown back in a message: it may hold a password."""
        if not isinstance(value, str) or not _HTTP_URL.match(value):
            self.problem(where, "expected the Pushgateway's http(s) URL, such as http://pushgateway.example:9091")
            return None
        return value

    def notify_urls(self, where: str, key: Key, value: object) -> tuple[str, ...] | None:
        """`notify_urls`: Apprise URLs. Never shown back in a message: a service's token is often in its path."""
        if not isinstance(value, list):
            self.problem(where, f"expected a list of Apprise URLs such as json://host/path, got {_json_type(value)}")
            return None
        refused = [index for index, url in enumerate(value) if not isinstance(url, str) or not _APPRISE_URL.match(url)]
        for index in refused:
            url = value[index]
            said = "a string without a scheme:// or with a space" if isinstance(url, str) else _json_type(url)
            self.problem(f"{where}[{index}]", f"expected an Apprise URL such as json://host/path, got {said}")
        return None if refused else tuple(value)

    def database_url(self, where: str, key: Key, value: object) -> str | None:
        """`database_url`: a libpq URL. Never shown back in a message: it may hold a password."""
        if (
            not isinstance(value, str)
            or not value.startswith(DATABASE_URL_SCHEMES)
            or any(character.isspace() for character in value)
        ):
            self.problem(where, "expected a PostgreSQL URL, postgresql://user@host/database (or postgres://...)")
            return None
        return value

    def feed_url(self, where: str, key: Key, value: object) -> str | Literal[False] | None:
        """A playlist's `feed_url`: an http(s) URL, or false for no feed reads (absent: derived where it can be)."""
        if value is False:
            return False
        if not isinstance(value, str) or not _HTTP_URL.match(value):
            self.problem(
                where,
                "expected the playlist's RSS or Atom feed as an http(s) URL, or false to read the playlist whole at "
                f"every check, got {_show(value)}",
            )
            return None
        return value

    def date(self, where: str, key: Key, value: object) -> str | None:
        if value is None:
            return None
        match = _DATE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            self.problem(
                where,
                "expected a date as YYYYMMDD, or now, today or yesterday minus days, weeks, months or years "
                f"('now-30days'), got {_show(value)}",
            )
            return None
        if not _is_a_day(match):
            self.problem(where, f"{_show(value)} is not a day between the years 1 and 9999")
            return None
        return match.string

    def path_value(self, where: str, key: Key, value: object) -> Path | None:
        """A path string, made absolute against the config file's folder; null is no path, for a key whose absence
        is none (a key with a default always has a path)."""
        if value is None and key.default is None:
            return None
        if value is None:
            default = key.default
            self.problem(where, f"expected a path string, got null (leave the key out for its default, {default!r})")
            return None
        if not isinstance(value, str) or not value:
            self.problem(where, f"expected a path string, got {_json_type(value)}")
            return None
        return self.resolved(value)

    def log(self, where: str, key: Key, value: object) -> Path | None:
        """`log_file`: a path, or "-" for stdout (None)."""
        return None if value == STDOUT_LOG else self.path_value(where, key, value)

    def yt_dlp_args(self, where: str, key: Key, value: object) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(where, 'expected a list of strings, as typed on the command line: ["-f", "best"]')
            return None
        from playlist_cron import managed_options  # only for a config with yt_dlp_args: not on every cron minute

        for index, said in managed_options.refused(value):
            self.problem(f"{where}[{index}]", said)
        return tuple(value)

    def backoff(self, where: str, key: Key, value: object) -> tuple[int, ...] | None:
        if (
            not isinstance(value, list)
            or not value
            or not all(
                isinstance(step, int) and not isinstance(step, bool) and key.minimum <= step <= key.maximum
                for step in value
            )
        ):
            self.problem(
                where,
                f"expected a non-empty list of whole numbers of seconds, each {_range(key)}, got {_show(value)}",
            )
            return None
        return tuple(value)


# Each kind of key (`Key.kind`) and the check its values get.
_CHECKS: dict[str, Callable[[_Reader, str, Key, object], object]] = {
    "text": _Reader.text,
    "boolean": _Reader.boolean,
    "whole": _Reader.whole,
    "optional_url": _Reader.optional_url,
    "push_url": _Reader.push_url,
    "notify_urls": _Reader.notify_urls,
    "database_url": _Reader.database_url,
    "feed_url": _Reader.feed_url,
    "date": _Reader.date,
    "path": _Reader.path_value,
    "log": _Reader.log,
    "yt_dlp_args": _Reader.yt_dlp_args,
    "backoff": _Reader.backoff,
}


def _range(key: Key) -> str:
    return f"from {key.minimum} to {key.maximum}" + (f" ({key.said})" if key.said else "")


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
