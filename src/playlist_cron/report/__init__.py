"""`report`: the JSON log (and logrotate's copies beside it) drawn as one self-contained HTML page, no script.

The page holds one <style> and inline <svg>; it fetches nothing. The marks a browser (or a test) can look for:

- each check that ran: an SVG element `class="check outcome-COMPLETED"` (or FAILED, DEFERRED) with
  `data-check="N"` and a `<title>` "Check #N COMPLETED, 12.3 s, ..."; FAILED is hatched, DEFERRED has a dashed
  outline, so the outcome is not told by colour alone. A check still running is `class="running"`.
- each SKIPPED check: `class="skip-tick"` with `data-check="N"` and `data-holder-check="M"` (M: the check that held
  the lock, found by its pid in `check_started` and time overlap; empty when another process held it), with a
  `<title>` "Check #N SKIPPED: previous download still in progress (held by check #M)".
- more than `MAX_DRAWN_CHECKS` checks in the period: `class="bucket"` elements per hour instead, with
  `data-checks`, `data-skipped` and `data-failed`; the page says so.
- `id="summary"` (the two lines `status` prints first, then the counters), `id="timeline"`, `id="durations"`
  (overruns of check_interval_seconds marked `class="overrun"`), `id="failed-videos"`, `id="playlists"`,
  `id="sources"` (the files read, their time span, lines not understood: not JSON, or odd values).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playlist_cron.report.history import DAY_S, HOUR_S
from playlist_cron.report.page import render

if TYPE_CHECKING:
    from pathlib import Path

    from playlist_cron.config import Config

__all__ = ["DEFAULT_SINCE", "build", "default_output", "parse_since", "render", "write"]

DEFAULT_SINCE = "7d"
_SINCE = re.compile(r"(\d{1,6})([dhm])")
_UNIT_S = {"d": DAY_S, "h": HOUR_S, "m": 60}


def parse_since(text: str) -> float:
    """Given `7d`, `12h` or `30m`, return the seconds it names; raise ValueError for anything else."""
    match = _SINCE.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise ValueError(f"expected a number and d, h or m (7d, 12h, 30m), not {text!r}")
    return int(match[1]) * _UNIT_S[match[2]]


def default_output(config: Config) -> Path:
    """Where `report` writes without --output: `report.html` beside the log (beside the config for a stdout log)."""
    folder = config.log_file.parent if config.log_file is not None else config.path.parent
    return folder / "report.html"


def build(config: Config, since_s: float) -> str:
    """Given a config and how far back to look (seconds), return the page of that period."""
    import time

    from playlist_cron import status

    now_s = time.time()
    return render(config, now_s - since_s, now_s, status.report(config))


PAGE_MODE = 0o644  # a page to be read, by a web server say, like the metrics file


def write(path: Path, page: str) -> None:
    """Replace `path` with `page` atomically (a temporary file created exclusively beside it, then renamed)."""
    from playlist_cron import atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.replace(path, page.encode("utf-8"), PAGE_MODE)
