"""Each playlist's read record (its feed's validators, its last reads), in a file of its own beside the state.

`<state_dir>/<config name>.reads.json`: versioned, checked field by field, replaced whole once per check under the
state's lock. A config of 10,000 playlists has about 8 MiB of them: the not-due and skip paths, which run every cron
minute, never read this file; only a check that reads playlists, `status` and `retry` do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

from playlist_cron.errors import StateError
from playlist_cron.stored_fields import (
    TEXT,
    TIMESTAMP,
    Field,
    encode,
    exists,
    is_bool,
    is_count,
    is_text_list,
    is_text_map,
    keep_damaged,
    never,
    read_text,
    record_problems,
)

if TYPE_CHECKING:
    from playlist_cron.records import PlaylistReadRecord

READS_VERSION = 1
READS_FILE_SUFFIX = ".reads.json"
WHAT = "the playlists' read records"

# A record, keyed by the playlist's URL (its password redacted): how it was read, for the next check to choose its read.
PLAYLIST_READ_FIELDS: dict[str, Field] = {
    "feed_url": TEXT,  # the feed the validators below belong to
    "etag": TEXT,  # the feed's ETag at its last read: sent back as If-None-Match
    "last_modified": TEXT,  # its Last-Modified: sent back as If-Modified-Since
    "last_feed_read_at": TIMESTAMP,  # the last feed read that got an answer (200 or 304)
    "last_feed_error": TEXT,  # why the last feed read failed (null after one that worked)
    "last_full_read_at": TIMESTAMP,  # when the last full read that went through the playlist began
    "channel_id": TEXT,  # a YouTube handle's channel id (UC...), learnt from a full read
    "is_feed": Field(is_bool, "null, true or false"),  # whether the playlist's own URL is an RSS or Atom feed
    "playlist_fields": Field(  # yt-dlp's playlist fields at the last full read, for feed reads' file names
        is_text_map, "null or an object of strings"
    ),
    "feed_repairs": Field(is_text_list, "null or a list of strings"),  # what its feed's last read had to repair
}


def _is_current_version(value: object) -> bool:
    return is_count(value) and value == READS_VERSION


RECORDS = Field(never, "an object of playlist records", nullable=False, required=True, records=PLAYLIST_READ_FIELDS)

READS_FIELDS: dict[str, Field] = {
    "version": Field(_is_current_version, str(READS_VERSION), nullable=False, required=True),
    "playlists": RECORDS,
}


def reads_file_name(state_file_name: str, state_file_suffix: str) -> str:
    """Given the state file's name, return its read records' file's: `config.state.json` -> `config.reads.json`."""
    return state_file_name[: -len(state_file_suffix)] + READS_FILE_SUFFIX


def records_problems(records: object) -> list[str]:
    """Given read records found elsewhere (a version 1 state's, a database row's), return what is wrong with them."""
    return record_problems({"playlists": records}, {"playlists": RECORDS})


class ReadsFile:
    """The read records of one config's playlists."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.notes: list[str] = []  # what a read had to do on its own, for the check to log (`state_recovered`)

    def exists(self) -> bool:
        return exists(self.path)

    def read(self) -> dict[str, PlaylistReadRecord] | None:
        """Return the records, or None when there is no file; raise StateError for one from a newer release.

        A damaged file is kept beside itself and read as no records at all: each playlist is then read whole once,
        the way it would be for a new config. Its records are what a check learns, not what it has downloaded.
        """
        text = read_text(self.path, WHAT)
        if text is None:
            return None
        try:
            document = json.loads(text)
        except ValueError as error:
            return self._damaged([f"invalid JSON: {error}"])
        version = document.get("version") if isinstance(document, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and version > READS_VERSION:
            raise StateError(
                f"playlist-cron: {WHAT} {self.path} were written by a newer version of playlist-cron (version "
                f"{version}; this one reads version {READS_VERSION}): upgrade playlist-cron, or move the file away "
                "to read every playlist whole once"
            )
        problems = record_problems(document, READS_FIELDS) if isinstance(document, dict) else ["not a JSON object"]
        if problems:
            return self._damaged(problems)
        return cast("dict[str, PlaylistReadRecord]", document["playlists"])

    def write(self, records: dict[str, PlaylistReadRecord]) -> None:
        """Check the records and replace the file with them, atomically; raise StateError when they are bad."""
        from playlist_cron import atomic

        document = {"version": READS_VERSION, "playlists": records}
        problems = record_problems(document, READS_FIELDS)
        if problems:
            raise StateError(f"playlist-cron: refusing to write bad records to {self.path}: " + "; ".join(problems))
        try:
            atomic.replace(self.path, encode(document, ("playlists",)), 0o600)
        except OSError as error:
            raise StateError(f"playlist-cron: cannot write {WHAT} {self.path}: {error.strerror}") from None

    def _damaged(self, problems: list[str]) -> dict[str, PlaylistReadRecord]:
        kept = keep_damaged(self.path)
        note = (
            f"{WHAT} {self.path} were damaged ({'; '.join(problems)}); a copy was kept at {kept}, and each playlist "
            "is read whole at its next check"
        )
        if note not in self.notes:
            self.notes.append(note)
        return {}
