"""What a check prints: nothing under cron unless a human must act; progress and a summary on a terminal."""

from __future__ import annotations

import sys
from typing import TextIO


def _size(size_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size_bytes) < 1024 or unit == "GiB":
            return f"{size_bytes:.0f} {unit}" if unit == "B" else f"{size_bytes:.1f} {unit}"
        size_bytes /= 1024
    return f"{size_bytes:.1f} GiB"


class Console:
    """stderr, for a person: interactive when stderr is a terminal, silent but for alerts otherwise."""

    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._progress_shown = False

    def alert(self, message: str) -> None:
        """A line a human must read, printed even under cron (cron mails it)."""
        from playlist_cron.log import redact

        self._end_progress()
        print(redact(message), file=self.stream, flush=True)

    def say(self, message: str) -> None:
        """A line for a person at a terminal; nothing under cron."""
        if self.interactive:
            self._end_progress()
            print(message, file=self.stream, flush=True)

    def progress(
        self, title: str, downloaded_bytes: int, total_bytes: int | None, speed_bps: float | None, eta_s: float | None
    ) -> None:
        if not self.interactive:
            return
        percent = f"{100 * downloaded_bytes / total_bytes:5.1f}%" if total_bytes else "  ?  %"
        speed = f"{_size(speed_bps)}/s" if speed_bps else "?/s"
        eta = f"ETA {int(eta_s) // 60:d}:{int(eta_s) % 60:02d}" if eta_s is not None else "ETA ?"
        line = f"  {percent} of {_size(total_bytes) if total_bytes else '?'} at {speed:>12} {eta}  {title}"
        self.stream.write("\r" + line[:119].ljust(119))
        self.stream.flush()
        self._progress_shown = True

    def end_progress(self) -> None:
        """End a progress line on the terminal, so that what comes next (a log line on stdout) starts a line."""
        self._end_progress()

    def _end_progress(self) -> None:
        if self._progress_shown:
            self.stream.write("\n")
            self._progress_shown = False
