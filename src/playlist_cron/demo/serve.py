"""`playlist-cron demo --serve`: the demo's loopback feed kept running, with a config for it, until a signal."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import tempfile
from pathlib import Path

from playlist_cron import exit_codes
from playlist_cron.demo.feed import FeedServer, make_items
from playlist_cron.demo.run import shell_command

ITEMS = 3
VIDEO_BYTES = 200_000
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def write_config(folder: Path, feed_url: str) -> Path:
    """Given a folder and the feed's URL, write `config.json` there for that feed and return its path.

    The paths are left to their defaults, so the downloads, the log and the state go beside the config.
    """
    config_path = folder / "config.json"
    config = {"playlist_url": feed_url, "check_interval_seconds": 60, "min_free_bytes": 0}
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return config_path


def main(directory: str | None) -> int:
    """Serve the feed on 127.0.0.1 until SIGINT or SIGTERM, with a config for it in `directory` (a new temporary
    folder when None); return an exit code."""
    root = Path(directory).absolute() if directory else Path(tempfile.mkdtemp(prefix="playlist-cron-serve-"))
    root.mkdir(parents=True, exist_ok=True)
    # Blocked before the server's threads start, so they inherit the mask and `sigwait` below takes every stop signal.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    with FeedServer(make_items(ITEMS, size_bytes=VIDEO_BYTES), title="Demo Channel") as feed:
        config_path = write_config(root, feed.feed_url)
        command = shell_command(sys.argv[0], sys.executable)
        print(f"Serving a feed of {ITEMS} videos on the loopback interface, for a config to try things against.")
        print(f"  feed      {feed.feed_url}")
        print(f"  config    {config_path}")
        print(f"  check     {command} check --config {shlex.quote(str(config_path))}")
        print(f"  status    {command} status --config {shlex.quote(str(config_path))}")
        print('Or put the feed in a config of your own: "playlist_url" or an entry of "playlists".')
        print("Serving until Ctrl-C (SIGINT) or SIGTERM.", flush=True)
        received = signal.sigwait(STOP_SIGNALS)
    # The signals stay blocked: the command ends right after this line, and a second Ctrl-C must not turn that into a
    # KeyboardInterrupt.
    print(f"Stopped serving ({signal.Signals(received).name}); the files stay in {root}", flush=True)
    return exit_codes.OK
