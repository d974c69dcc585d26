"""File names that fit the filesystem: a video's text fields shortened, byte-aware, until every path part fits."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

# A file's name leaves this much room below the filesystem's limit for what yt-dlp appends while it works:
# ".f<format id>.<ext>.part-Frag<n>.part" for a fragment of one format (about 45 bytes), ".temp.<ext>", ".ytdl".
NAME_RESERVE_BYTES = 60
# The names of files written beside the video (".info.json", ".en.vtt", ".jpg") get only ".part" or ".temp" added.
SIDECAR_RESERVE_BYTES = 16
NAME_MAX_FALLBACK_BYTES = 255
KEPT_FIELDS = frozenset({"id", "ext"})  # a name always keeps them: the id finds the file again, the extension opens it
MAX_FIT_ROUNDS = 8


def name_max_bytes(folder: str) -> int:
    """The longest file name, in bytes, that the filesystem holding `folder` takes."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return NAME_MAX_FALLBACK_BYTES


def cut_to_bytes(text: str, limit_bytes: int) -> str:
    """Given text, return its longest beginning that takes at most `limit_bytes` in UTF-8, cut between characters."""
    return text.encode("utf-8", "surrogateescape")[: max(limit_bytes, 0)].decode("utf-8", "ignore")


def fit_fields(evaluate: Callable[[dict[str, Any]], str], info: dict[str, Any], limit_bytes: int) -> dict[str, Any]:
    """Given the fields of a video and how they become a path, return them with text fields shortened until every
    part of the path takes at most `limit_bytes`.

    The path is measured after templating, so sanitizing (a "/" becomes a 3-byte "⧸") and the template's own text
    count. Each round shortens the field that gives the too-long part the most bytes; `id` and `ext` are never
    shortened. A part that stays too long (the template's own text, or an id) is left for yt-dlp to report.
    """
    path = evaluate(info)
    for _ in range(MAX_FIT_ROUNDS):
        index = _too_long_part(path, limit_bytes) if path else None
        if index is None:
            return info
        key = _field_that_gains_most(evaluate, info, path, index)
        if key is None:
            return info
        info = {
            **info,
            key: _longest_fitting_beginning(evaluate, info, key, index, len(path.split(os.sep)), limit_bytes),
        }
        path = evaluate(info)
    return info


def _field_that_gains_most(
    evaluate: Callable[[dict[str, Any]], str], info: dict[str, Any], path: str, index: int
) -> str | None:
    """The text field whose halving shortens part `index` of the path the most, or None when none shortens it."""
    parts = len(path.split(os.sep))
    before_bytes = len(os.fsencode(path.split(os.sep)[index]))
    gains: dict[str, int] = {}
    for key, value in info.items():
        if key in KEPT_FIELDS or not isinstance(value, str) or not value:
            continue
        probe_bytes = _part_bytes(evaluate({**info, key: cut_to_bytes(value, len(value.encode()) // 2)}), index, parts)
        if probe_bytes is not None and probe_bytes < before_bytes:
            gains[key] = before_bytes - probe_bytes
    return max(gains, key=lambda name: gains[name]) if gains else None


def _longest_fitting_beginning(
    evaluate: Callable[[dict[str, Any]], str], info: dict[str, Any], key: str, index: int, parts: int, limit_bytes: int
) -> str:
    """The longest beginning of field `key` with which part `index` of the path fits: the part grows with the field."""
    value = str(info[key])
    low, high = 0, len(value.encode()) - 1
    while low < high:
        middle = (low + high + 1) // 2
        middle_bytes = _part_bytes(evaluate({**info, key: cut_to_bytes(value, middle)}), index, parts)
        if middle_bytes is not None and middle_bytes <= limit_bytes:
            low = middle
        else:
            high = middle - 1
    return cut_to_bytes(value, low).rstrip()


def _too_long_part(path: str, limit_bytes: int) -> int | None:
    """Given a path, return the index of its first part longer than `limit_bytes`, or None."""
    for index, part in enumerate(path.split(os.sep)):
        if len(os.fsencode(part)) > limit_bytes:
            return index
    return None


def _part_bytes(path: str, index: int, parts: int) -> int | None:
    """The length in bytes of part `index` of `path`, or None when the path no longer has `parts` parts."""
    split = path.split(os.sep)
    return len(os.fsencode(split[index])) if len(split) == parts else None
