"""Each config's counters and state: versioned JSON checked field by field, changed under a lock, replaced whole."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeGuard, cast

# Reading needs the standard library alone, and as little as can be (the not-due path ends there): `lock` (and
# portalocker with it) and `atomic` are imported only where the state is changed.
from playlist_cron import clock
from playlist_cron.errors import NotARegularFile, StateError
from playlist_cron.outcomes import COUNTERS, MONOTONIC_COUNTERS, OUTCOMES

if TYPE_CHECKING:
    from playlist_cron.config import Config
    from playlist_cron.records import State

STATE_VERSION = 1
STATE_FILE_SUFFIX = ".state.json"
CONFIG_FILE_SUFFIX = ".json"
LEGACY_FILE_NAME = "state.json"  # before each config had its own, every config of a state_dir shared this one
LOCK_WAIT_S = 10.0  # a state change takes milliseconds; waiting longer means something is wrong
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
MAX_COOLDOWN_FACTOR = 64  # a cooldown grows to at most 64 x cooldown_seconds; one further ahead is capped
MAX_SHOWN_VALUE_CHARS = 80


# -- what a good value is: one check per kind, and one table per record ------------------------------------------


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_check_number(value: object) -> bool:
    return _is_count(value) and value >= 1


def _is_timestamp(value: object) -> bool:
    """An ISO 8601 time with its offset, as `clock.iso` writes it; a time without one could be any hour."""
    if not isinstance(value, str):
        return False
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.tzinfo is not None


def _is_duration(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


_TEXT = {str}
_TEXT_OR_NULL = {str, type(None)}


def _is_text_map(value: object) -> bool:
    """An object of strings (or nulls) by name: the playlist fields of a full read, as yt-dlp gave them."""
    if not isinstance(value, dict):
        return False
    # The types of keys and values first, in C: a state holds one such map per playlist (10,000 of them in a big
    # config); a subclass of str (not from a JSON file) is looked at one by one.
    if set(map(type, value)) <= _TEXT and set(map(type, value.values())) <= _TEXT_OR_NULL:
        return True
    return all(isinstance(key, str) and (item is None or isinstance(item, str)) for key, item in value.items())


def _is_text_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_outcome(value: object) -> bool:
    return value in OUTCOMES


def _is_current_version(value: object) -> bool:
    return _is_count(value) and value == STATE_VERSION


def _never(value: object) -> bool:
    return False  # a record's own fields are checked one by one; reached only when it is not an object at all


class Field(NamedTuple):  # not a dataclass: see config.Config
    """One field of a stored record: what a good value is (in code and in words), and its value when absent."""

    is_good: Callable[[object], bool]
    expected: str
    nullable: bool = True
    required: bool = False  # absent is damage (a counter that went missing must not restart from 0)
    default: Callable[[], object] = lambda: None
    record: dict[str, Field] | None = None  # the value is an object with these fields
    records: dict[str, Field] | None = None  # the value is an object whose every value has these fields

    def problems(self, where: str, value: object) -> list[str]:
        """Given where the field is and its value, return what is wrong with it (nothing when it is good)."""
        if value is None and self.nullable:
            return []
        if self.record is not None and isinstance(value, dict):
            return record_problems(value, self.record, where)
        if self.records is not None and isinstance(value, dict):
            problems = []
            for key, item in value.items():
                if not isinstance(item, dict):
                    problems.append(f"{where}[{key!r}] is not an object")
                # Where a record is is spelt out only for one with a problem: most of 10,000 have none.
                elif record_problems(item, self.records, ""):
                    problems += record_problems(item, self.records, f"{where}[{key!r}]")
            return problems
        if self.is_good(value):
            return []
        shown = repr(value)
        if len(shown) > MAX_SHOWN_VALUE_CHARS:
            shown = shown[: MAX_SHOWN_VALUE_CHARS - 3] + "..."
        return [f"{where} is {shown}, expected {self.expected}"]


def record_problems(record: Mapping[str, object], fields: dict[str, Field], where: str = "") -> list[str]:
    """Given a record and its table of fields, return what is wrong, one problem per field."""
    problems = []
    for name, field in fields.items():
        if name in record:
            value = record[name]
            if (value is None and field.nullable) or (
                field.record is None and field.records is None and field.is_good(value)
            ):
                continue  # the usual case, checked without building the field's path
            problems += field.problems(f"{where}.{name}" if where else name, value)
        elif field.required:
            problems.append(f"{where}.{name} is missing" if where else f"{name} is missing")
    return problems


COUNT = Field(_is_count, "a whole number >= 0", nullable=False, required=True, default=lambda: 0)
TIMESTAMP = Field(_is_timestamp, "null or an ISO 8601 time with its offset (2026-01-31T12:00:00.000Z)")
TEXT = Field(_is_text, "null or a string")
OUTCOME = Field(_is_outcome, f"null or one of {', '.join(OUTCOMES)}")

# A `running` record: the check that holds the run lock now, or was killed holding it.
RUNNING_FIELDS: dict[str, Field] = {
    "check": Field(_is_check_number, "a check number >= 1", nullable=False, required=True),
    "pid": Field(_is_check_number, "a process id >= 1", nullable=False, required=True),
    "started_at": TIMESTAMP._replace(nullable=False, required=True),
    "run_id": TEXT,  # absent in a record written before run ids: such a check is matched by its number
}

# A `failed_videos` record, keyed by the archive id ("extractor id").
FAILED_VIDEO_FIELDS: dict[str, Field] = {
    "video_id": Field(_is_text, "a string", nullable=False, required=True),
    "attempts": COUNT,
    "next_retry_at": TIMESTAMP,
    "given_up": Field(_is_bool, "true or false", nullable=False, default=lambda: False),
    "error": TEXT,
    "title": TEXT,
    "url": TEXT,
    "playlist_url": TEXT,
    "first_failed_at": TIMESTAMP,
    "last_failed_at": TIMESTAMP,
}

# A `playlists` record, keyed by the playlist's URL: how it was read, for the next check to choose its read.
PLAYLIST_READ_FIELDS: dict[str, Field] = {
    "feed_url": TEXT,  # the feed the validators below belong to
    "etag": TEXT,  # the feed's ETag at its last read: sent back as If-None-Match
    "last_modified": TEXT,  # its Last-Modified: sent back as If-Modified-Since
    "last_feed_read_at": TIMESTAMP,  # the last feed read that got an answer (200 or 304)
    "last_feed_error": TEXT,  # why the last feed read failed (null after one that worked)
    "last_full_read_at": TIMESTAMP,  # when the last full read that went through the playlist began
    "channel_id": TEXT,  # a YouTube handle's channel id (UC...), learnt from a full read
    "is_feed": Field(_is_bool, "null, true or false"),  # whether the playlist's own URL is an RSS or Atom feed
    "playlist_fields": Field(  # yt-dlp's playlist fields at the last full read, for feed reads' file names
        _is_text_map, "null or an object of strings"
    ),
    "feed_repairs": Field(_is_text_list, "null or a list of strings"),  # what the last feed read repaired
}

# A `last_log_write_failure` record.
LOG_FAILURE_FIELDS: dict[str, Field] = {
    "check": Field(_is_check_number, "a check number >= 1", nullable=False, required=True),
    "at": TIMESTAMP._replace(nullable=False, required=True),
    "error": TEXT,
}

# The state file, field by field: the one place that says what each holds. Keys not named here (written by a
# later release of the same version) are kept as they are. An optional field is one line: name, kind, comment.
STATE_FIELDS: dict[str, Field] = {
    "version": Field(_is_current_version, str(STATE_VERSION), nullable=False, required=True),
    **{name: COUNT for name in COUNTERS},
    "last_check_at": TIMESTAMP,  # when the last due check started (any outcome): the due clock
    "last_outcome": OUTCOME,
    "last_outcome_check": Field(_is_check_number, "null or a check number >= 1"),  # whose final event set it
    "last_ran_outcome": OUTCOME,  # of the last check that was not SKIPPED
    "last_duration_s": Field(_is_duration, "null or a number of seconds >= 0"),
    "last_completed_at": TIMESTAMP,
    "last_failure_reason": TEXT,
    "last_error": TEXT,
    "cooldown_until": TIMESTAMP,
    "cooldown_level": COUNT._replace(required=False),
    "archive_garbage_reported": COUNT._replace(required=False),
    "network_failing_since": TIMESTAMP,  # when the current streak of network failures began
    "network_alerted_at": TIMESTAMP,  # when that streak last put a line on stderr
    "network_failed_checks": COUNT._replace(required=False),  # the checks of that streak
    "network_error": TEXT,  # the plain words of its latest failure
    "log_write_failures_total": COUNT._replace(required=False),  # log lines that could not be written, ever
    "last_log_write_failure": Field(  # the latest of them
        _never, "null or an object with check, at and error", record=LOG_FAILURE_FIELDS
    ),
    "config_file_writable_reported": TEXT,  # "mode:uid" of the config last reported as writable by others
    "running": Field(  # the check holding the run lock, from its start to its final event
        _never, "null or an object with check, pid and started_at", record=RUNNING_FIELDS
    ),
    "failed_videos": Field(  # archive id -> its record
        _never,
        "an object of failed-video records",
        nullable=False,
        required=True,
        default=dict,
        records=FAILED_VIDEO_FIELDS,
    ),
    "playlists": Field(  # playlist URL -> how it was last read (feed or full)
        _never, "an object of playlist records", nullable=False, default=dict, records=PLAYLIST_READ_FIELDS
    ),
}


def empty() -> State:
    """Return the state of a config that has never run a check."""
    return cast("State", {name: field.default() for name, field in STATE_FIELDS.items()} | {"version": STATE_VERSION})


def validate(state: object) -> list[str]:
    """Given a parsed state, return what is wrong with it, one problem per field (nothing when it is sound)."""
    if not isinstance(state, dict):
        return ["not a JSON object"]
    return record_problems(state, STATE_FIELDS)


def is_newer_version(state: object) -> bool:
    """Whether a parsed state was written by a newer release: one this release must not read, nor replace."""
    version = state.get("version") if isinstance(state, dict) else None
    return isinstance(version, int) and not isinstance(version, bool) and version > STATE_VERSION


def state_file_name(config_path: Path) -> str:
    """Given a config file's path, return the name of its state file: `config.json` -> `config.state.json`."""
    name = config_path.name
    if name.endswith(CONFIG_FILE_SUFFIX) and len(name) > len(CONFIG_FILE_SUFFIX):
        name = name[: -len(CONFIG_FILE_SUFFIX)]
    return name + STATE_FILE_SUFFIX


def cap_cooldown(state: State, cooldown_seconds: int, now_s: float) -> str | None:
    """Bring a `cooldown_until` further ahead than the longest cooldown (set under a wrong clock?) back to it.

    Return the value it had when it was capped, else None.
    """
    until_s = clock.parse_iso(state.get("cooldown_until"))
    limit_s = now_s + MAX_COOLDOWN_FACTOR * cooldown_seconds
    if until_s is None or until_s <= limit_s:
        return None
    was = state["cooldown_until"]
    state["cooldown_until"] = clock.iso(limit_s)
    return was


class StateStore:
    """The state file of one config: `<state_dir>/<config file name without .json>.state.json`."""

    def __init__(self, state_dir: Path, config_path: Path) -> None:
        self.state_dir = state_dir
        self.name = state_file_name(config_path)
        self.path = state_dir / self.name
        self.previous_path = state_dir / (self.name + ".prev")
        self.lock_path = state_dir / (self.name + ".lock")
        self.legacy_path = state_dir / LEGACY_FILE_NAME
        self.recovery_notes: list[str] = []  # what a read had to repair, for the caller to log
        self.migration_notes: list[str] = []  # the shared state file this config adopted, for the caller to log
        self.read_path = self.path  # the file the last read found the state in
        self._file_is_sound = True  # whether the last read found the file whole (else it is not kept as .prev)

    @classmethod
    def for_config(cls, config: Config) -> StateStore:
        return cls(config.state_dir, config.path)

    def ensure_directory(self) -> None:
        try:
            self.state_dir.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        except OSError as error:
            detail = f"cannot create the folder {self.state_dir}: {error.strerror}"
            raise StateError(f"playlist-cron: {detail}", detail=detail, unusable_folder=True) from None
        if not os.access(self.state_dir, os.W_OK | os.X_OK):
            detail = f"the folder {self.state_dir} is not writable"
            raise StateError(f"playlist-cron: {detail}", detail=detail, unusable_folder=True)

    def read(self) -> State:
        """Return the current state (no lock needed: the file is only ever replaced whole).

        Until a change adopts it (see `update`), the state file that every config of the folder once shared
        stands in for a missing one, so `status` and the due clock go on from it after an upgrade.
        """
        self.read_path = self.path
        text = _read_text(self.path)
        if text is None:
            legacy_text = _read_text(self.legacy_path)
            if legacy_text is not None:
                self.read_path, text = self.legacy_path, legacy_text
        self._file_is_sound = True
        if text is None:
            return empty()
        state, problems = _parse(text, self.read_path)
        if not problems:
            return state
        self._file_is_sound = False
        return self._recover(problems)

    @contextlib.contextmanager
    def update(self) -> Iterator[State]:
        """Read the state under the state lock, let the caller change it, then write it back atomically."""
        self.ensure_directory()
        with _state_lock(self.lock_path) as held:
            if not held:
                raise StateError(
                    f"playlist-cron: the state lock {self.lock_path} was busy for {LOCK_WAIT_S:.0f} s; "
                    "is a process stuck?"
                )
            self._adopt_legacy()
            state = self.read()  # a new object at every read: the caller may change it in place
            before = {name: state[name] for name in MONOTONIC_COUNTERS}  # all a change is checked against
            yield state
            problems = validate(state)
            problems += [
                f"{name} would go down from {before[name]} to {state[name]}"
                for name in MONOTONIC_COUNTERS
                if state[name] < before[name]
            ]
            if problems:
                raise StateError(f"playlist-cron: refusing to write a bad state to {self.path}: " + "; ".join(problems))
            self._write(state)

    def _adopt_legacy(self) -> None:
        """Move the state file every config of the folder once shared to this config's name, counters and all.

        Under the legacy file's own lock (the one older releases take to change it), so that of two configs
        of one folder exactly one adopts it, and never in the middle of an older release's change.
        """
        if _exists(self.path) or not _exists(self.legacy_path):
            return
        legacy_lock_path = self.state_dir / (LEGACY_FILE_NAME + ".lock")
        legacy_previous_path = self.state_dir / (LEGACY_FILE_NAME + ".prev")
        from playlist_cron import atomic, lock

        with lock.hold(legacy_lock_path, LOCK_WAIT_S) as held:
            if not held:
                raise StateError(
                    f"playlist-cron: the state lock {legacy_lock_path} was busy for {LOCK_WAIT_S:.0f} s; "
                    "is a process stuck?"
                )
            if _exists(self.path) or not _is_regular_file(self.legacy_path):
                return  # another config took it first; a symlink there is refused when it is read
            try:
                if _is_regular_file(legacy_previous_path) and not _exists(self.previous_path):
                    os.rename(legacy_previous_path, self.previous_path)
                os.rename(self.legacy_path, self.path)
                atomic.fsync_directory(self.state_dir)
            except OSError as error:
                raise StateError(
                    f"playlist-cron: cannot move the state file {self.legacy_path} to {self.path}: {error.strerror}"
                ) from None
        self.migration_notes.append(
            f"the state file {self.legacy_path}, which every config in {self.state_dir} used to share, is now "
            f"this config's {self.path}, counters kept; other configs there start their own"
        )

    def _write(self, state: State) -> None:
        from playlist_cron import atomic

        data = encode(state)
        try:
            atomic.replace(self.path, data, FILE_MODE, before_replace=self._keep_previous)
        except OSError as error:
            raise StateError(f"playlist-cron: cannot write the state file {self.path}: {error.strerror}") from None

    def _keep_previous(self) -> None:
        """Keep the last good state beside the new one: the way back if the file is ever damaged."""
        if self._file_is_sound and _is_regular_file(self.path):
            previous_temporary = self.state_dir / f".{self.name}.{os.getpid()}.prev"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(previous_temporary)
            os.link(self.path, previous_temporary)
            os.replace(previous_temporary, self.previous_path)

    def _recover(self, problems: list[str]) -> State:
        """The state file is damaged: keep a copy, fall back to the previous good state, say so."""
        damaged_path = self.read_path
        previous_path = damaged_path.with_name(damaged_path.name + ".prev")
        kept = _kept_copy(damaged_path)
        if kept is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            kept = damaged_path.with_name(f"{damaged_path.name}.damaged-{stamp}")
            with contextlib.suppress(OSError):
                if not kept.exists():
                    os.link(damaged_path, kept)
        previous_text = _read_text(previous_path)
        previous, previous_problems = (
            _parse(previous_text, previous_path) if previous_text is not None else (empty(), ["missing"])
        )
        if previous_problems:
            raise StateError(
                f"playlist-cron: the state file {damaged_path} is damaged ({'; '.join(problems)}) and so is its "
                f"previous copy {previous_path}; a copy was kept at {kept}; fix or remove the file to go on"
            )
        note = (
            f"the state file {damaged_path} was damaged ({'; '.join(problems)}); a copy was kept at {kept} and the "
            f"previous good state ({previous['checks_total']} checks) was used"
        )
        if note not in self.recovery_notes:
            self.recovery_notes.append(note)
        return previous


@contextlib.contextmanager
def _state_lock(path: Path) -> Iterator[bool]:
    """Hold the state lock; a FIFO, socket or device at its place is the state folder's problem, a config error."""
    from playlist_cron import lock

    with contextlib.ExitStack() as stack:
        try:
            held = stack.enter_context(lock.hold(path, LOCK_WAIT_S))
        except NotARegularFile as error:
            raise StateError(f"playlist-cron: {error.detail}", detail=error.detail, unusable_folder=True) from None
        yield held


def _parse(text: str, path: Path) -> tuple[State, list[str]]:
    """Given a state file's text, return the state and its problems; refuse one from a newer release."""
    try:
        state = json.loads(text)
    except ValueError as error:
        return empty(), [f"invalid JSON: {error}"]
    if is_newer_version(state):
        raise StateError(
            f"playlist-cron: the state file {path} was written by a newer version of playlist-cron (state version "
            f"{state['version']}; this one reads version {STATE_VERSION}): upgrade playlist-cron, or move the "
            "file away to start its counters afresh"
        )
    problems = validate(state)
    if not problems:
        for key, value in empty().items():
            state.setdefault(key, value)
    return state, problems


# The fields whose value is an object of records, written one record to a line.
_RECORD_MAPS = tuple(name for name, field in STATE_FIELDS.items() if field.records is not None)


def encode(state: Mapping[str, object]) -> bytes:
    """Given a state, return the state file's bytes: JSON, keys sorted, a line for each field and for each record of
    `playlists` and `failed_videos` (so that a record is one line to grep or diff).

    Each line is made by the json module's C encoder; an indented whole is made by its pure-Python one, about four
    times slower (150 ms, more than reading it back, for the 9 MB of 10,000 playlists' records).
    """
    dumps = json.JSONEncoder(sort_keys=True).encode
    lines = []
    for name in sorted(state):
        value = state[name]
        if name in _RECORD_MAPS and isinstance(value, dict) and value:
            records = ",\n".join([f"  {dumps(key)}: {dumps(record)}" for key, record in sorted(value.items())])
            lines.append(f" {dumps(name)}: {{\n{records}\n }}")
        else:
            lines.append(f" {dumps(name)}: {dumps(value)}")
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


def _read_text(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StateError(f"playlist-cron: refusing the state file {path}: it is a symbolic link") from None
        if error.errno in (errno.ENOTDIR, errno.EACCES):
            detail = f"cannot read {path}: {error.strerror}"
            raise StateError(f"playlist-cron: {detail}", detail=detail, unusable_folder=True) from None
        raise StateError(f"playlist-cron: cannot read the state file {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as file:
            return file.read().decode("utf-8", errors="replace")
    except OSError as error:
        raise StateError(f"playlist-cron: cannot read the state file {path}: {error.strerror}") from None


def _kept_copy(damaged_path: Path) -> Path | None:
    """Return the copy already kept of this damaged file (a hard link to it), if a command before kept one.

    Every command that reads a damaged file recovers from it until the next check replaces it: one copy will do.
    """
    try:
        damaged = os.stat(damaged_path, follow_symlinks=False)
        for kept in damaged_path.parent.glob(f"{damaged_path.name}.damaged-*"):
            if os.path.samestat(damaged, os.stat(kept, follow_symlinks=False)):
                return kept
    except OSError:
        return None
    return None


def _exists(path: Path) -> bool:
    """Whether anything (a symlink included) is at `path`."""
    try:
        os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _is_regular_file(path: Path) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_mode & 0o170000 == 0o100000
    except FileNotFoundError:
        return False


def is_due(state: State, interval_s: int, now_s: float) -> tuple[bool, float]:
    """Given the state, the interval and now, return (due?, when the next check is due).

    A start up to a tenth of the interval (10 s at most) early still counts as due: cron starts jobs a little
    before or after the minute, and a check that started late must not push the next one a whole interval on.
    """
    last = clock.parse_iso(state.get("last_check_at"))
    if last is None or last > now_s + interval_s:  # never checked, or the clock was set back
        return True, now_s
    due_at = last + interval_s
    tolerance_s = min(interval_s * 0.1, 10.0)
    return now_s >= due_at - tolerance_s, due_at
