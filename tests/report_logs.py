"""A generated log of a month at one check a minute, for the report's tests and its benchmark.

`write_month_log(path)` writes what 30 days of `check` under cron leave in `log_file`: 43,200 checks, about 100,000
JSON lines in the events and fields of the contract, with long downloads that overrun the interval (the checks due
meanwhile are SKIPPED, naming the long check's pid as `holder_pid`), FAILED and DEFERRED checks among them, and
`video_downloaded` lines. It returns what a reader must find in it.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

FAILURE_REASONS = ("timeout", "stalled", "playlist_error", "disk_space", "error")
PLAYLIST = "https://www.youtube.com/playlist?list=PLgenerated"


class GeneratedLog(NamedTuple):
    path: Path
    first_at: datetime  # the first check's start
    last_at: datetime  # the last check's start
    checks: int  # every check, SKIPPED ones included
    outcomes: dict[str, int]  # COMPLETED, FAILED, DEFERRED, SKIPPED -> count
    holders: dict[int, int]  # SKIPPED check number -> number of the check that held the lock
    failures: dict[str, int]  # FAILED checks by reason
    downloaded: int  # video_downloaded lines
    bytes: int  # their bytes
    lines: int

    @property
    def ran(self) -> int:
        return self.checks - self.outcomes["SKIPPED"]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_month_log(
    path: Path, *, days: int = 30, end: datetime | None = None, first_check: int = 1, seed: int = 14
) -> GeneratedLog:
    """Write `days` days of checks, one a minute, the last starting a minute before `end` (default: now)."""
    chance = random.Random(seed)
    end = end or datetime.now(timezone.utc).replace(microsecond=0)
    count = days * 24 * 60
    start = end - timedelta(minutes=count)
    outcomes = {"COMPLETED": 0, "FAILED": 0, "DEFERRED": 0, "SKIPPED": 0}
    holders: dict[int, int] = {}
    failures: dict[str, int] = {}
    downloaded = total_bytes = lines = 0
    skipped_total = consecutive = 0
    held_until: datetime | None = None
    holder: tuple[int, int, datetime] | None = None  # (check, pid, started)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as log:

        def write(event: dict[str, object]) -> None:
            nonlocal lines
            log.write(json.dumps(event, separators=(",", ":")) + "\n")
            lines += 1

        for index in range(count):
            number = first_check + index
            started = start + timedelta(minutes=index, seconds=chance.random() * 0.5)
            run_id = str(uuid.UUID(int=chance.getrandbits(128), version=4))
            if held_until is not None and holder is not None and started < held_until:
                skipped_total += 1
                consecutive += 1
                outcomes["SKIPPED"] += 1
                holders[number] = holder[0]
                write(
                    {
                        "timestamp": stamp(started + timedelta(milliseconds=15)),
                        "level": "warning",
                        "event": "check_skipped",
                        "check": number,
                        "outcome": "SKIPPED",
                        "run_id": run_id,
                        "reason": "previous download still in progress",
                        "skipped_total": skipped_total,
                        "consecutive_skipped": consecutive,
                        "holder_pid": holder[1],
                        "lock_held_s": round((started - holder[2]).total_seconds(), 3),
                        "message": f"Check #{number} - SKIPPED (previous download still in progress) - "
                        f"Total skipped: {skipped_total}",
                    }
                )
                continue
            consecutive = 0
            pid = 1000 + index % 30000
            write(
                {
                    "timestamp": stamp(started + timedelta(milliseconds=10)),
                    "level": "info",
                    "event": "check_started",
                    "check": number,
                    "run_id": run_id,
                    "pid": pid,
                    "playlists": [PLAYLIST],
                    "message": f"Check #{number} - {stamp(started)[:-4]}Z",
                }
            )
            if index % 97 == 5:  # a long download: overruns the interval by 2 to 4 minutes
                duration = 150 + chance.random() * 100
                held_until, holder = started + timedelta(seconds=duration), (number, pid, started)
            else:
                duration = 1.5 + chance.random() * 6
            finished = started + timedelta(seconds=duration)
            if index % 503 == 250:
                outcomes["DEFERRED"] += 1
                write(
                    {
                        "timestamp": stamp(finished),
                        "level": "warning",
                        "event": "check_deferred",
                        "check": number,
                        "outcome": "DEFERRED",
                        "run_id": run_id,
                        "cooldown_until": stamp(finished + timedelta(minutes=30)),
                        "message": f"Check #{number} - DEFERRED (cooling down after failures)",
                    }
                )
                continue
            videos = 1 if index % 3 == 0 else 0
            check_bytes = 0
            for video in range(videos):
                size = 5_000_000 + chance.randrange(50_000_000)
                downloaded += 1
                total_bytes += size
                check_bytes += size
                video_id = f"gen{number:06d}v{video}"
                write(
                    {
                        "timestamp": stamp(finished - timedelta(seconds=0.5)),
                        "level": "info",
                        "event": "video_downloaded",
                        "check": number,
                        "run_id": run_id,
                        "video_id": video_id,
                        "title": f"Generated video {number}",
                        "filename": f"downloads/Generated/Generated video {number} [{video_id}].mp4",
                        "bytes": size,
                        "duration_s": round(duration - 1, 3),
                    }
                )
            if index % 211 == 100:
                reason = FAILURE_REASONS[(index // 211) % len(FAILURE_REASONS)]
                outcomes["FAILED"] += 1
                failures[reason] = failures.get(reason, 0) + 1
                write(
                    {
                        "timestamp": stamp(finished),
                        "level": "error",
                        "event": "check_failed",
                        "check": number,
                        "outcome": "FAILED",
                        "run_id": run_id,
                        "duration_s": round(duration, 3),
                        "reason": reason,
                        "error": f"generated failure: {reason}",
                        "message": f"Check #{number} - FAILED ({reason})",
                    }
                )
                continue
            outcomes["COMPLETED"] += 1
            write(
                {
                    "timestamp": stamp(finished),
                    "level": "info",
                    "event": "check_completed",
                    "check": number,
                    "outcome": "COMPLETED",
                    "run_id": run_id,
                    "duration_s": round(duration, 3),
                    "downloaded": videos,
                    "failed": 0,
                    "already_archived": 14,
                    "waiting_retry": 0,
                    "bytes": check_bytes,
                    "playlists": [{"url": PLAYLIST, "title": "Generated", "read": "feed", "downloaded": videos}],
                    "message": f"Check completed in {duration:.1f} seconds",
                }
            )
    return GeneratedLog(
        path,
        start,
        start + timedelta(minutes=count - 1),
        count,
        outcomes,
        holders,
        failures,
        downloaded,
        total_bytes,
        lines,
    )


if __name__ == "__main__":  # python tests/report_logs.py FILE: write one, and say what is in it
    import sys

    made = write_month_log(Path(sys.argv[1]))
    print(json.dumps({"lines": made.lines, "checks": made.checks, "outcomes": made.outcomes}))
