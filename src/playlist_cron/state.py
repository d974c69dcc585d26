"""Each config's counters and state: versioned JSON checked field by field, changed under a lock, replaced whole."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

# Reading needs the standard library alone, and as little as can be (the not-due path ends there): `lock` (and
# portalocker with it) and `atomic` are imported only where the state is changed.
from playlist_cron import clock
from playlist_cron.errors import NotARegularFile, StateError
from playlist_cron.outcomes import COUNTERS, MONOTONIC_COUNTERS
from playlist_cron.reads_file import ReadsFile, reads_file_name, records_problems
from playlist_cron.stored_fields import (
    COUNT,
    OUTCOME,
    TEXT,
    TIMESTAMP,
    Field,
    encode,
    exists,
    is_bool,
    is_check_number,
    is_count,
    is_duration,
    is_regular_file,
    is_text,
    keep_damaged,
    never,
    read_text,
    record_problems,
)

if TYPE_CHECKING:
    from playlist_cron.config import Config
    from playlist_cron.records import PlaylistReadRecord, State

# Version 2 keeps each playlist's read record (`playlists` in version 1) in a file of its own (`reads_file`): a
# version 1 state is read, and its records moved there at its first change.
STATE_VERSION = 2
LEGACY_VERSION = 1
STATE_FILE_SUFFIX = ".state.json"
CONFIG_FILE_SUFFIX = ".json"
LEGACY_FILE_NAME = "state.json"  # before each config had its own, every config of a state_dir shared this one
LOCK_WAIT_S = 10.0  # a state change takes milliseconds; waiting longer means something is wrong
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
MAX_COOLDOWN_FACTOR = 64  # a cooldown grows to at most 64 x cooldown_seconds; one further ahead is capped


def _is_current_version(value: object) -> bool:
    return is_count(value) and value in (LEGACY_VERSION, STATE_VERSION)  # a version 1 state is read as version 2


def _is_outage_reason(value: object) -> bool:
    return value in ("network", "database")


# A `running` record: the check that holds the run lock now, or was killed holding it.
RUNNING_FIELDS: dict[str, Field] = {
    "check": Field(is_check_number, "a check number >= 1", nullable=False, required=True),
    "pid": Field(is_check_number, "a process id >= 1", nullable=False, required=True),
    "started_at": TIMESTAMP._replace(nullable=False, required=True),
    "run_id": TEXT,  # absent in a record written before run ids: such a check is matched by its number
}

# A `failed_videos` record, keyed by the archive id ("extractor id").
FAILED_VIDEO_FIELDS: dict[str, Field] = {
    "video_id": Field(is_text, "a string", nullable=False, required=True),
    "attempts": COUNT,
    "next_retry_at": TIMESTAMP,
    "given_up": Field(is_bool, "true or false", nullable=False, default=lambda: False),
    "error": TEXT,
    "title": TEXT,
    "url": TEXT,
    "playlist_url": TEXT,
    "first_failed_at": TIMESTAMP,
    "last_failed_at": TIMESTAMP,
}

# A `last_log_write_failure` record.
LOG_FAILURE_FIELDS: dict[str, Field] = {
    "check": Field(is_check_number, "a check number >= 1", nullable=False, required=True),
    "at": TIMESTAMP._replace(nullable=False, required=True),
    "error": TEXT,
}

# A `collection_due` record: a fleet's host keeps when its collection is due next, as the database last told it.
COLLECTION_DUE_FIELDS: dict[str, Field] = {
    "next_due_at": TIMESTAMP._replace(nullable=False, required=True),
    "learned_at": TIMESTAMP._replace(nullable=False, required=True),
    "config_digest": Field(is_text, "a string", nullable=False, required=True),  # of the config it was learned under
}
# How long a host trusts what it learned of its collection's due time, at most: another host's config may have added
# a playlist since (due at once), or `retry` made a video due.
COLLECTION_DUE_TRUSTED_S = 900

# The state file, field by field: the one place that says what each holds. Keys not named here (written by a
# later release of the same version) are kept as they are. An optional field is one line: name, kind, comment.
STATE_FIELDS: dict[str, Field] = {
    "version": Field(_is_current_version, str(STATE_VERSION), nullable=False, required=True),
    "config_digest": TEXT,  # the config file's bytes (and the release) a check last found sound, whole
    **{name: COUNT for name in COUNTERS},
    "last_check_at": TIMESTAMP,  # when the last due check started (any outcome): the due clock
    "first_check_at": TIMESTAMP,  # when the first due check started (or the first after an upgrade that added this)
    "last_outcome": OUTCOME,
    "last_outcome_check": Field(is_check_number, "null or a check number >= 1"),  # whose final event set it
    "last_ran_outcome": OUTCOME,  # of the last check that was not SKIPPED
    "last_duration_s": Field(is_duration, "null or a number of seconds >= 0"),
    "last_completed_at": TIMESTAMP,
    "last_failure_reason": TEXT,
    "last_error": TEXT,
    "consecutive_failed": COUNT._replace(required=False),  # FAILED checks since the last COMPLETED one
    "cooldown_until": TIMESTAMP,
    "cooldown_level": COUNT._replace(required=False),
    "archive_garbage_reported": COUNT._replace(required=False),
    "network_failing_since": TIMESTAMP,  # when the current streak of network failures began
    "network_alerted_at": TIMESTAMP,  # when that streak last put a line on stderr
    "network_failed_checks": COUNT._replace(required=False),  # the checks of that streak
    "network_error": TEXT,  # the plain words of its latest failure
    "network_reason": Field(_is_outage_reason, 'null, "network" or "database"'),  # its latest failure's reason
    "log_write_failures_total": COUNT._replace(required=False),  # log lines that could not be written, ever
    "last_log_write_failure": Field(  # the latest of them
        never, "null or an object with check, at and error", record=LOG_FAILURE_FIELDS
    ),
    "config_file_writable_reported": TEXT,  # "mode:uid" of the config last reported as writable by others
    "running": Field(  # the check holding the run lock, from its start to its final event
        never, "null or an object with check, pid and started_at", record=RUNNING_FIELDS
    ),
    "collection_due": Field(  # a fleet's host: when its collection is due next (`collection_is_due`)
        never, "null or an object with next_due_at, learned_at and config_digest", record=COLLECTION_DUE_FIELDS
    ),
    "failed_videos": Field(  # archive id -> its record
        never,
        "an object of failed-video records",
        nullable=False,
        required=True,
        default=dict,
        records=FAILED_VIDEO_FIELDS,
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
        self.reads = ReadsFile(state_dir / reads_file_name(self.name, STATE_FILE_SUFFIX))
        self._legacy_reads: object = None  # the read records of a version 1 state, as the last read found them

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
        self.read_path, self._legacy_reads = self.path, None
        text = read_text(self.path, "the state file")
        if text is None:
            legacy_text = read_text(self.legacy_path, "the state file")
            if legacy_text is not None:
                self.read_path, text = self.legacy_path, legacy_text
        self._file_is_sound = True
        if text is None:
            return empty()
        state, problems, self._legacy_reads = _parse(text, self.read_path)
        if not problems:
            return state
        self._file_is_sound = False
        return self._recover(problems)

    @contextlib.contextmanager
    def update(self) -> Iterator[State]:
        """Read the state under the state lock, let the caller change it, then write it back atomically."""
        with self._state_lock():
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
            if self._legacy_reads is not None and not self.reads.exists():
                self.reads.write(self._legacy_records())  # first: the version 2 state no longer holds them
            self._write(state)

    def read_reads(self) -> dict[str, PlaylistReadRecord]:
        """Return each playlist's read record, by its key (no lock needed: the file is only ever replaced whole).

        Until its first change, a version 1 state holds them, and stands in for a missing file.
        """
        records = self.reads.read()
        if records is not None:
            return records
        self.read()
        return self._legacy_records()

    @contextlib.contextmanager
    def update_reads(self) -> Iterator[dict[str, PlaylistReadRecord]]:
        """Yield the read records to change under the state lock, then write them back atomically.

        Callers change only the records of the playlists they read (a check) or mean to change (`retry`): two of
        them one after the other both keep their changes.
        """
        with self._state_lock():
            records = self.read_reads()
            yield records
            self.reads.write(records)

    @contextlib.contextmanager
    def _state_lock(self) -> Iterator[None]:
        """Hold the state lock (around a change of the state or of the read records); raise StateError when it stays
        busy for LOCK_WAIT_S."""
        self.ensure_directory()
        with _state_lock(self.lock_path) as held:
            if not held:
                raise StateError(
                    f"playlist-cron: the state lock {self.lock_path} was busy for {LOCK_WAIT_S:.0f} s; "
                    "is a process stuck?"
                )
            yield

    def _legacy_records(self) -> dict[str, PlaylistReadRecord]:
        if self._legacy_reads is None:
            return {}
        problems = records_problems(self._legacy_reads)
        if problems:
            note = (
                f"the read records in the state file {self.read_path} were damaged ({'; '.join(problems)}); each "
                "playlist is read whole at its next check"
            )
            if note not in self.reads.notes:
                self.reads.notes.append(note)
            return {}
        return cast("dict[str, PlaylistReadRecord]", self._legacy_reads)

    def _adopt_legacy(self) -> None:
        """Move the state file every config of the folder once shared to this config's name, counters and all.

        Under the legacy file's own lock (the one older releases take to change it), so that of two configs
        of one folder exactly one adopts it, and never in the middle of an older release's change.
        """
        if exists(self.path) or not exists(self.legacy_path):
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
            if exists(self.path) or not is_regular_file(self.legacy_path):
                return  # another config took it first; a symlink there is refused when it is read
            try:
                if is_regular_file(legacy_previous_path) and not exists(self.previous_path):
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

        data = encode_state(state)
        try:
            atomic.replace(self.path, data, FILE_MODE, before_replace=self._keep_previous)
        except OSError as error:
            raise StateError(f"playlist-cron: cannot write the state file {self.path}: {error.strerror}") from None

    def _keep_previous(self) -> None:
        """Keep the last good state beside the new one: the way back if the file is ever damaged."""
        if self._file_is_sound and is_regular_file(self.path):
            previous_temporary = self.state_dir / f".{self.name}.{os.getpid()}.prev"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(previous_temporary)
            os.link(self.path, previous_temporary)
            os.replace(previous_temporary, self.previous_path)

    def _recover(self, problems: list[str]) -> State:
        """The state file is damaged: keep a copy, fall back to the previous good state, say so."""
        damaged_path = self.read_path
        previous_path = damaged_path.with_name(damaged_path.name + ".prev")
        kept = keep_damaged(damaged_path)
        previous_text = read_text(previous_path, "the state file")
        previous, previous_problems, self._legacy_reads = (
            _parse(previous_text, previous_path) if previous_text is not None else (empty(), ["missing"], None)
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


def _parse(text: str, path: Path) -> tuple[State, list[str], object]:
    """Given a state file's text, return the state, its problems and the read records a version 1 state held (else
    None); refuse one from a newer release."""
    try:
        state = json.loads(text)
    except ValueError as error:
        return empty(), [f"invalid JSON: {error}"], None
    if is_newer_version(state):
        raise StateError(
            f"playlist-cron: the state file {path} was written by a newer version of playlist-cron (state version "
            f"{state['version']}; this one reads version {STATE_VERSION}): upgrade playlist-cron, or move the "
            "file away to start its counters afresh"
        )
    legacy_reads = None
    if isinstance(state, dict) and state.get("version") == LEGACY_VERSION:
        legacy_reads = state.pop("playlists", None)
        state["version"] = STATE_VERSION
    problems = validate(state)
    if not problems:
        for key, value in empty().items():
            state.setdefault(key, value)
    return state, problems, legacy_reads


def encode_state(state: Mapping[str, object]) -> bytes:
    """Given a state, return the state file's bytes: a line for each field and for each failed video's record."""
    return encode(state, ("failed_videos",))


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


def collection_is_due(state: State, config_digest: str, interval_s: int, now_s: float) -> tuple[bool, float] | None:
    """A fleet's host: given its own state, its config's digest, the interval and now, return (due?, when the
    collection is due next) from what the host last learned of it (`collection_due`), or None when that cannot be
    trusted: learned under another config, longer ago than the interval or COLLECTION_DUE_TRUSTED_S, or ahead of now
    (the clock was set back). Early by as much as `is_due` allows counts as due."""
    learned = state.get("collection_due")
    if not isinstance(learned, dict) or learned.get("config_digest") != config_digest:
        return None
    learned_s = clock.parse_iso(learned.get("learned_at"))
    due_at = clock.parse_iso(learned.get("next_due_at"))
    if (
        learned_s is None
        or due_at is None
        or not learned_s <= now_s < learned_s + min(interval_s, COLLECTION_DUE_TRUSTED_S)
    ):
        return None
    tolerance_s = min(interval_s * 0.1, 10.0)
    return now_s >= due_at - tolerance_s, due_at
