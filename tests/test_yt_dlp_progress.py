"""yt-dlp's own progress line, which a check never shows, is formatted once a download; the check's progress is not
thinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yt_dlp

from playlist_cron import config as config_module
from playlist_cron.demo.feed import FeedServer, make_items
from playlist_cron.ytdl import yt_dlp_params

pytestmark = pytest.mark.compat


def params_for(tmp_path: Path, feed: FeedServer, **values: object) -> dict[str, Any]:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {"playlist_url": feed.feed_url, "download_dir": str(tmp_path / "downloads"), "min_free_bytes": 0, **values}
        )
    )
    loaded = config_module.load(path)
    return yt_dlp_params(loaded, loaded.playlists[0], mark_archived=False)


def statuses_of_a_download(tmp_path: Path, **values: object) -> list[dict[str, Any]]:
    """Download one throttled video with a check's params (and `values` in its config); return each progress status
    a hook of the check's saw, as it saw it (yt-dlp's own progress report runs first, and writes its fields in)."""
    items = make_items(1, size_bytes=100_000)
    with FeedServer(items, bytes_per_second=200_000) as feed:
        params = params_for(tmp_path, feed, **values)
        seen: list[dict[str, Any]] = []
        params["progress_hooks"] = [lambda status: seen.append(dict(status))]
        with yt_dlp.YoutubeDL(params) as ydl:
            ydl.download([feed.media_url(items[0].guid)])
    assert list((tmp_path / "downloads").iterdir()), "the video was not downloaded"
    return seen


def test_yt_dlp_s_unshown_progress_line_is_formatted_once_a_download(tmp_path: Path) -> None:
    seen = statuses_of_a_download(tmp_path)
    downloading = [status for status in seen if status.get("status") == "downloading"]
    assert len(downloading) >= 5, seen  # every block still reaches the check's hooks (its progress, its disk watch)
    assert downloading[-1]["downloaded_bytes"] == 100_000
    formatted = [status for status in downloading if "_percent_str" in status]
    assert len(formatted) <= 1, f"yt-dlp formatted {len(formatted)} progress lines that nothing shows"
    assert [status["status"] for status in seen][-1] == "finished"


def test_a_console_title_asked_for_in_yt_dlp_args_keeps_every_progress_line(tmp_path: Path) -> None:
    seen = statuses_of_a_download(tmp_path, yt_dlp_args=["--console-title"])
    downloading = [status for status in seen if status.get("status") == "downloading"]
    assert len(downloading) >= 5, seen
    assert all("_percent_str" in status for status in downloading)
