"""End-to-end: the small things a new user meets at the command line (pipes, --version, a JSON slip)."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from pathlib import Path

import yt_dlp.version

from conftest import COMMAND, Project, clean_env
from playlist_cron import __version__
from playlist_cron.demo.feed import make_items


def test_status_piped_into_head_exits_quietly(project: Project) -> None:
    # 600 failed videos make `status` print more than a pipe holds (64 KiB), so `head -1` is gone before it ends.
    items = make_items(600, size_bytes=1000)
    for item in items:
        item.media_status = 404
    project.feed.settings.items = items
    assert project.run("check").returncode == 0
    assert len(project.status()["failed_videos"]) == 600
    for arguments, first_line in (
        ("status", f"playlist-cron status for {project.config_path}"),
        ("status --json", "{"),
    ):
        pipeline = f"set -o pipefail; {shlex.join(project.command(*arguments.split()))} | head -1"
        result = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, env=clean_env(), cwd="/")
        assert result.stderr == "", f"{arguments}: {result.stderr}"
        assert result.stdout == first_line + "\n"
        assert result.returncode == 141, "as `seq 100000 | head -1` reports: ended by SIGPIPE (128 + 13)"


def test_version_names_yt_dlp_and_python() -> None:
    expected = (
        f"playlist-cron {__version__} (yt-dlp {yt_dlp.version.__version__}, Python {platform.python_version()})\n"
    )
    for command in ([COMMAND], [sys.executable, "-m", "playlist_cron"]):
        result = subprocess.run([*command, "--version"], capture_output=True, text=True, env=clean_env(), cwd="/")
        assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")


def test_a_trailing_comma_is_named_as_the_likely_cause(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    for text, line, column, closing in (
        ('{\n  "playlist_url": "https://example.com/feed.xml",\n  "min_free_bytes": 0,\n}\n', 3, 22, "}"),
        ('{"playlists": ["https://example.com/a.xml",\n    ]}', 1, 43, "]"),
    ):
        path.write_text(text)
        result = subprocess.run(
            [COMMAND, "check", "--config", str(path)], capture_output=True, text=True, env=clean_env(), cwd="/"
        )
        assert result.returncode == 78
        assert result.stderr == (
            f"playlist-cron: {path}: invalid JSON at line {line} column {column}: a trailing comma before "
            f"'{closing}' is the likely cause (JSON allows no comma after the last item)\n"
        )
    path.write_text('{"playlist_url": "x" "min_free_bytes": 0}')  # another slip keeps the decoder's own words
    result = subprocess.run([COMMAND, "check", "--config", str(path)], capture_output=True, text=True, cwd="/")
    assert result.stderr == f"playlist-cron: {path}: invalid JSON at line 1 column 22: Expecting ',' delimiter\n"
