"""What a stored value may be: a check per kind of value, a `Field` per field of a record, and the reading of files.

The state file and the playlists' read records are both checked field by field with these tables; reading needs the
standard library alone (the not-due path ends there).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, TypeGuard

from playlist_cron.errors import StateError
from playlist_cron.outcomes import OUTCOMES

MAX_SHOWN_VALUE_CHARS = 80

# -- what a good value is: one check per kind, and one table per record -------------------------------------------


def is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_check_number(value: object) -> bool:
    return is_count(value) and value >= 1


def is_timestamp(value: object) -> bool:
    """An ISO 8601 time with its offset, as `clock.iso` writes it; a time without one could be any hour."""
    if not isinstance(value, str):
        return False
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.tzinfo is not None


def is_duration(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def is_text(value: object) -> bool:
    return isinstance(value, str)


def is_bool(value: object) -> bool:
    return isinstance(value, bool)


_TEXT = {str}
_TEXT_OR_NULL = {str, type(None)}


def is_text_map(value: object) -> bool:
    """An object of strings (or nulls) by name: the playlist fields of a full read, as yt-dlp gave them."""
    if not isinstance(value, dict):
        return False
    # The types of keys and values first, in C: a state holds one such map per playlist (10,000 of them in a big
    # config); a subclass of str (not from a JSON file) is looked at one by one.
    if set(map(type, value)) <= _TEXT and set(map(type, value.values())) <= _TEXT_OR_NULL:
        return True
    return all(isinstance(key, str) and (item is None or isinstance(item, str)) for key, item in value.items())


def is_text_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def is_outcome(value: object) -> bool:
    return value in OUTCOMES


def never(value: object) -> bool:
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


COUNT = Field(is_count, "a whole number >= 0", nullable=False, required=True, default=lambda: 0)
TIMESTAMP = Field(is_timestamp, "null or an ISO 8601 time with its offset (2026-01-31T12:00:00.000Z)")
TEXT = Field(is_text, "null or a string")
OUTCOME = Field(is_outcome, f"null or one of {', '.join(OUTCOMES)}")


# -- files: read without following links, a record to a line -----------------------------------------------------


def read_text(path: Path, what: str) -> str | None:
    """Given a file's path and what it is ("the state file"), return its text, or None when there is none; raise
    StateError for a symbolic link there or a file that cannot be read (a folder's fault: `unusable_folder`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StateError(f"playlist-cron: refusing {what} {path}: it is a symbolic link") from None
        if error.errno in (errno.ENOTDIR, errno.EACCES):
            detail = f"cannot read {path}: {error.strerror}"
            raise StateError(f"playlist-cron: {detail}", detail=detail, unusable_folder=True) from None
        raise StateError(f"playlist-cron: cannot read {what} {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as file:
            return file.read().decode("utf-8", errors="replace")
    except OSError as error:
        raise StateError(f"playlist-cron: cannot read {what} {path}: {error.strerror}") from None


def encode(document: Mapping[str, object], record_maps: tuple[str, ...]) -> bytes:
    """Given a stored document and the names of its fields that are objects of records, return the file's bytes:
    JSON, keys sorted, a line for each field and for each of those records (so that a record is one line to grep or
    diff).

    Each line is made by the json module's C encoder; an indented whole is made by its pure-Python one, about four
    times slower (150 ms, more than reading it back, for the 9 MB of 10,000 playlists' records).
    """
    dumps = json.JSONEncoder(sort_keys=True).encode
    lines = []
    for name in sorted(document):
        value = document[name]
        if name in record_maps and isinstance(value, dict) and value:
            records = ",\n".join([f"  {dumps(key)}: {dumps(record)}" for key, record in sorted(value.items())])
            lines.append(f" {dumps(name)}: {{\n{records}\n }}")
        else:
            lines.append(f" {dumps(name)}: {dumps(value)}")
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


def kept_copy(damaged_path: Path) -> Path | None:
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


def keep_damaged(damaged_path: Path) -> Path:
    """Keep a damaged file beside itself (a hard link, `<name>.damaged-<time>`), once; return the copy's path."""
    kept = kept_copy(damaged_path)
    if kept is None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = damaged_path.with_name(f"{damaged_path.name}.damaged-{stamp}")
        with contextlib.suppress(OSError):
            if not kept.exists():
                os.link(damaged_path, kept)
    return kept


def exists(path: Path) -> bool:
    """Whether anything (a symlink included) is at `path`."""
    try:
        os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def is_regular_file(path: Path) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_mode & 0o170000 == 0o100000
    except FileNotFoundError:
        return False
