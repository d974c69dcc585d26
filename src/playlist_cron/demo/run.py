"""`playlist-cron demo`: a loopback feed, checks started every few seconds, overlapping ones SKIPPED, live."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playlist_cron import exit_codes
from playlist_cron.demo.feed import FeedItem, FeedServer, make_items

CHECK_EVERY_S = 4.0
CHECKS = 5
VIDEO_BYTES = 600_000
BYTES_PER_SECOND = 200_000  # each video takes about 3 s, so the first check outlasts the next two starts
HOLD_AT_MOST_S = 15.0  # the feed holds the first check's download while the second runs, at most this long


def shell_command(argv0: str, executable: str) -> str:
    """Given how this process was started, return a shell command that runs playlist-cron again from anywhere.

    The demo is often run as `.venv/bin/playlist-cron demo` with the venv not on PATH: a bare `playlist-cron`
    would not be found, so the hint names the running program by its absolute path.
    """
    program = Path(argv0)
    if program.name == "playlist-cron" and program.is_file():
        return shlex.quote(str(program.absolute()))
    return f"{shlex.quote(executable)} -m playlist_cron"  # started as `python -m playlist_cron`


def _describe(event: dict[str, Any]) -> str | None:
    """Given a log event, return the demo's timeline line for it (None for events the timeline leaves out)."""
    number = event.get("check")
    name = event.get("event")
    if name == "check_started":
        return f"Check #{number} starts -> lock acquired"
    if name == "check_skipped":
        return (
            f"Check #{number} tries -> lock HELD by pid {event['holder_pid']} for {event['lock_held_s']:.1f} s "
            f"-> SKIPPED (total skipped: {event['skipped_total']})"
        )
    if name == "video_downloaded":
        return f"Check #{number} downloaded {event['title']!r} ({event['bytes']} bytes in {event['duration_s']:.1f} s)"
    if name == "video_failed":
        return f"Check #{number} failed on {event['video_id']}: {event['error']}"
    if name == "check_completed":
        return (
            f"Check #{number} COMPLETED in {event['duration_s']:.1f} s: {event['downloaded']} downloaded, "
            f"{event['already_archived']} already archived -> lock released"
        )
    if name in ("check_failed", "check_deferred"):
        return f"Check #{number} {event['outcome']}: {event.get('reason')}: {event.get('error')}"
    return None


class _LogFollower:
    """Reads the lines a log file gained since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_events(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


def main(directory: str | None) -> int:
    """Run the demo in `directory` (a new temporary folder when None) and return an exit code."""
    root = Path(directory).absolute() if directory else Path(tempfile.mkdtemp(prefix="playlist-cron-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    items = make_items(3, size_bytes=VIDEO_BYTES)
    late_item = FeedItem(guid="video-00004", title="Video 4 (published during the demo)", size_bytes=VIDEO_BYTES)
    with FeedServer(items, bytes_per_second=BYTES_PER_SECOND, title="Demo Channel") as feed:
        config_path = root / "config.json"
        config_path.write_text(
            json.dumps(
                {
                    "playlist_url": feed.feed_url,
                    "check_interval_seconds": 60,
                    "min_free_bytes": 0,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"playlist-cron demo in {root}")
        print(f"A feed of {len(items)} videos on {feed.feed_url}, served at {BYTES_PER_SECOND // 1000} kB/s.")
        print(f"A check starts every {CHECK_EVERY_S:.0f} s (cron would start one every minute); each runs")
        print("`playlist-cron check --now` in its own process, as cron would.\n")
        follower = _LogFollower(root / "logs" / "downloader.log")
        started = time.monotonic()
        started_at_s = time.time() - 1  # the report's period: the demo's run
        processes: list[subprocess.Popen[bytes]] = []

        seen: set[str] = set()

        def show_new_events() -> None:
            for event in follower.new_events():
                seen.add(event.get("event", ""))
                line = _describe(event)
                if line:
                    print(f"  {time.monotonic() - started:5.1f} s  {line}", flush=True)

        for index in range(CHECKS):
            start_at = started + index * CHECK_EVERY_S

            def waiting(index: int = index, start_at: float = start_at) -> bool:
                # The last check must find the lock free, to download the new video: on a slow machine the first
                # check can still be downloading at its time, so it also waits for the first to end.
                last_waits = index == CHECKS - 1 and processes[0].poll() is None
                # The second must meet the first holding the lock: it waits for the first to have taken it.
                second_waits = index == 1 and "check_started" not in seen and processes[0].poll() is None
                return time.monotonic() < start_at or last_waits or second_waits

            while waiting():
                show_new_events()
                time.sleep(0.05)
            if index == 3:
                feed.settings.items.insert(0, late_item)
                print(f"  {time.monotonic() - started:5.1f} s  (a new video is published in the feed)", flush=True)
            if index == 1:  # the first check's download waits until the second has tried, however slow its start
                feed.settings.sending.clear()
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "playlist_cron", "check", "--now", "--config", str(config_path)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
            if index == 1:
                held_until = time.monotonic() + HOLD_AT_MOST_S
                while processes[1].poll() is None and time.monotonic() < held_until:
                    show_new_events()
                    time.sleep(0.05)
                feed.settings.sending.set()
        for process in processes:
            while process.poll() is None:
                show_new_events()
                time.sleep(0.05)
        show_new_events()
        codes = [process.returncode for process in processes]
        errors = b"".join(process.stderr.read() for process in processes if process.stderr).decode().strip()

    from playlist_cron import config as config_module
    from playlist_cron import report as report_page
    from playlist_cron import status

    config = config_module.load(config_path)
    report = status.report(config)
    page_path = report_page.default_output(config)
    try:
        report_page.write(page_path, report_page.render(config, started_at_s, time.time(), report))
        page_said = f"{page_path}   (open it in a browser; again: `report` below)"
    except OSError as error:
        page_said = f"not written: {error}"
    print(f"\nAll {CHECKS} checks ended in {time.monotonic() - started:.1f} s; exit codes {codes}.\n")
    print(status.render_text(report))
    from playlist_cron.storage.files import DOWNLOAD_FOLDER_LOCK

    downloads = sorted(
        path for path in (root / "downloads").rglob("*") if path.is_file() and path.name != DOWNLOAD_FOLDER_LOCK
    )
    print("\nWhere things are:")
    print(f"  config    {config_path}")
    print(f"  log       {root / 'logs' / 'downloader.log'}   (try: grep SKIPPED, or jq)")
    print(f"  archive   {root / 'archive.txt'}")
    print(f"  videos    {root / 'downloads'} ({len(downloads)} files)")
    print(f"  status    {shell_command(sys.argv[0], sys.executable)} status --config {shlex.quote(str(config_path))}")
    print(f"  report    {page_said}")
    print(f"            {shell_command(sys.argv[0], sys.executable)} report --config {shlex.quote(str(config_path))}")
    if errors:
        print(f"\nThe checks printed:\n{errors}")
    expected = len(items) + 1
    if (report["skipped_total"] or 0) < 1 or len(downloads) != expected or any(codes):
        print(f"\nThe demo did not go as planned: {expected} videos and at least one SKIPPED were expected.")
        return exit_codes.FAILED
    return exit_codes.OK
