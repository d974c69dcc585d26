"""The `status --json` object as the text `json.dumps(status, indent=2)` makes of it, a playlist at a time."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from playlist_cron.records import PlaylistReads, Status

_INDENT = "  "
_ENCODER = json.JSONEncoder(indent=len(_INDENT))
_FLAT: dict[int, json.JSONEncoder] = {}  # by level: an encoder that parts an object's fields as that level does


def json_pieces(status: Status, playlists: Iterable[PlaylistReads]) -> Iterator[str]:
    """Given the `status --json` object and its playlists (in place of its own `playlists`), return the pieces of its
    indented JSON text: each playlist's piece is made as it is reached, and the fields after `playlists` (`notes`
    among them) only once the playlists are done."""
    separator = "{\n"
    for name, value in status.items():
        yield f"{separator}{_INDENT}{_ENCODER.encode(name)}: "
        if name == "playlists":
            yield from _list_pieces(playlists)
        else:
            yield _nested(_ENCODER.encode(value), 1)
        separator = ",\n"
    yield "\n}" if separator != "{\n" else "{}"


def _list_pieces(items: Iterable[Mapping[str, object]]) -> Iterator[str]:
    """A list of objects, one level into the object, an item at a time."""
    opening = "[\n"
    for item in items:
        yield f"{opening}{_INDENT * 2}{_object_text(item, 2)}"
        opening = ",\n"
    yield "[]" if opening == "[\n" else f"\n{_INDENT}]"


def _object_text(value: Mapping[str, object], level: int) -> str:
    """An object `level` levels into the document, as `json.dumps(..., indent=2)` writes it there.

    One whose values hold nothing over several lines (strings, numbers, booleans, nulls, empty lists and objects: a
    playlist with no holder and no repairs) is written by the encoder of C, its fields parted by a newline and the
    indent: `json.dumps` with an indent writes everything in Python, twice the time for 10,000 playlists."""
    for item in value.values():
        if item and isinstance(item, (dict, list, tuple)):
            return _nested(_ENCODER.encode(value), level)
    if not value:
        return "{}"
    inner = "\n" + _INDENT * (level + 1)
    flat = _FLAT.get(level) or _FLAT.setdefault(level, json.JSONEncoder(separators=("," + inner, ": ")))
    return "{" + inner + flat.encode(value)[1:-1] + "\n" + _INDENT * level + "}"


def _nested(text: str, level: int) -> str:
    """Given a value's indented JSON text, return it as it reads `level` levels into a document: a newline in JSON
    text is always indentation (a string's own is written `\\n`)."""
    return text.replace("\n", "\n" + _INDENT * level)
