"""A generated log for `report`: days of checks at one a minute, as real checks write them (long ones overrun and
the next ones are SKIPPED behind them, some FAILED, a few lines that are not JSON)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

PLAYLIST = "https://www.youtube.com/playlist?list=PLgenerated"
LONG_EVERY = 97  # every 97th check downloads for 150 s: the next two starts are SKIPPED behind it
FAIL_EVERY = 211
DOWNLOAD_EVERY = 3


class Generated:
    """What `write` put in the log, to compare with the page."""

    def __init__(self) -> None:
        self.ran: dict[int, str] = {}  # check number -> outcome
        self.skipped: dict[int, int] = {}  # skipped check number -> the check holding the lock
        self.lines = 0
        self.not_json = 0


def _dumps(event: dict[str, object]) -> str:
    return json.dumps(event, separators=(",", ":"))  # as the log writes them


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def write(log_file: Path, days: float, *, end_s: float | None = None, interval_s: int = 60) -> Generated:
    """Write `days` of one check per `interval_s` ending at `end_s` (now) into `log_file`; return what was written."""
    end_s = time.time() - 5 if end_s is None else end_s
    count = int(days * 86400 / interval_s)
    start_s = end_s - count * interval_s
    generated = Generated()
    lines: list[str] = []
    busy_until_s = 0.0
    holder: tuple[int, int] = (0, 0)  # (check, pid) of the check downloading
    for index in range(count):
        number = index + 1
        at_s = start_s + index * interval_s
        run_id = f"00000000-0000-4000-8000-{number:012d}"
        pid = 1000 + number
        if at_s < busy_until_s:
            lines.append(
                _dumps(
                    {
                        "timestamp": _iso(at_s),
                        "level": "warning",
                        "event": "check_skipped",
                        "check": number,
                        "outcome": "SKIPPED",
                        "run_id": run_id,
                        "reason": "previous download still in progress",
                        "skipped_total": len(generated.skipped) + 1,
                        "consecutive_skipped": 1,
                        "holder_pid": holder[1],
                        "lock_held_s": round(at_s - (busy_until_s - 150), 3),
                        "message": f"Check #{number} - SKIPPED (previous download still in progress)",
                    }
                )
            )
            generated.skipped[number] = holder[0]
            continue
        lines.append(
            _dumps(
                {
                    "timestamp": _iso(at_s),
                    "level": "info",
                    "event": "check_started",
                    "check": number,
                    "run_id": run_id,
                    "pid": pid,
                    "playlists": [PLAYLIST],
                    "message": f"Check #{number} - {_iso(at_s)}",
                }
            )
        )
        duration_s = 150.0 if number % LONG_EVERY == 0 else 0.8 + (number % 7) * 0.1
        downloaded = 1 if number % DOWNLOAD_EVERY == 0 or duration_s > 60 else 0
        if downloaded:
            lines.append(
                _dumps(
                    {
                        "timestamp": _iso(at_s + duration_s - 0.1),
                        "level": "info",
                        "event": "video_downloaded",
                        "check": number,
                        "run_id": run_id,
                        "video_id": f"v{number}",
                        "title": f"Video {number}",
                        "filename": f"/srv/videos/Video {number} [v{number}].mp4",
                        "bytes": 50_000_000,
                        "duration_s": duration_s - 0.2,
                    }
                )
            )
        failed = number % FAIL_EVERY == 0
        outcome = "FAILED" if failed else "COMPLETED"
        final: dict[str, object] = {
            "timestamp": _iso(at_s + duration_s),
            "level": "error" if failed else "info",
            "event": "check_failed" if failed else "check_completed",
            "check": number,
            "outcome": outcome,
            "run_id": run_id,
            "duration_s": duration_s,
        }
        if failed:
            final.update(reason="network", error="Unable to download webpage: timed out")
        else:
            final.update(
                downloaded=downloaded,
                failed=0,
                already_archived=40,
                waiting_retry=0,
                bytes=50_000_000 * downloaded,
                playlists=[
                    {
                        "url": PLAYLIST,
                        "title": "Generated",
                        "read": "full" if number % 360 == 0 else "feed",
                        "downloaded": downloaded,
                        "failed": 0,
                        "already_archived": 40,
                    }
                ],
                message=f"Check completed in {duration_s:.1f} seconds",
            )
        lines.append(_dumps(final))
        generated.ran[number] = outcome
        if duration_s > interval_s:
            busy_until_s = at_s + duration_s
            holder = (number, pid)
        if number % 5000 == 0:
            lines.append("Traceback (most recent call last): not a JSON line")
            generated.not_json += 1
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("\n".join(lines) + "\n")
    generated.lines = len(lines)
    return generated
