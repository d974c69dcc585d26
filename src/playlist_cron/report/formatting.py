"""How the page writes values: escaped text, UTC moments and byte sizes."""

from __future__ import annotations

import html
from datetime import datetime, timezone


def utc(epoch_s: float | None, seconds: bool = False) -> str:
    """Given a moment, return it in UTC as `2026-12-01 23:40` (`23:40:05` with `seconds`), or "unknown"."""
    if epoch_s is None:
        return "unknown"
    moment = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def byte_size(count: float) -> str:
    """Given a count of bytes, return it in decimal units: `512 B`, `1.5 MB`."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def escape(text: object) -> str:
    """Given any value, return its text escaped for HTML, quotes included."""
    return html.escape(str(text), quote=True)
