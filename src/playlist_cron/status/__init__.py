"""`status`: the counters, the last check, the lock holder, each playlist's reads and a health verdict, as JSON or
as text; for a config with `database_url`, read from the database, with every host's counters (the fleet).

`gather` builds the object from the state, the lock and the database; `text` prints it for a person, `json_text` as
JSON, both a playlist at a time.
"""

from __future__ import annotations

from playlist_cron.status.gather import STALE_AFTER_INTERVALS, log_setting, playlist_reads, report, stream
from playlist_cron.status.json_text import json_pieces
from playlist_cron.status.text import render_text, text_lines

__all__ = [
    "STALE_AFTER_INTERVALS",
    "json_pieces",
    "log_setting",
    "playlist_reads",
    "render_text",
    "report",
    "stream",
    "text_lines",
]
