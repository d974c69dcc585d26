"""One yt-dlp session per check: a Downloader per set of options and reader thread, reset for each playlist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from playlist_cron import ytdl
from test_parallel_reads import channels, final_event, project_in


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The playlists each new Downloader was made for, in the order they were made."""
    made: list[str] = []
    original = ytdl.Downloader.__init__

    def counted(self: ytdl.Downloader, params: dict[str, Any], playlist: Any, *args: Any, **kwargs: Any) -> None:
        made.append(playlist.url)
        original(self, params, playlist, *args, **kwargs)

    monkeypatch.setattr(ytdl.Downloader, "__init__", counted)
    return made


@pytest.mark.parametrize("parallel_reads", [1, 3])
def test_a_check_of_twenty_playlists_builds_at_most_parallel_reads_downloaders(
    tmp_path: Path, made: list[str], parallel_reads: int
) -> None:
    with channels(20, 1, size_bytes=10_000) as server:
        project = project_in(tmp_path / "project", server, server.channel_urls, parallel_reads=parallel_reads)
        result = project.run_here("check")
    assert result.returncode == 0, result.stderr
    assert final_event(project)["downloaded"] == 20
    assert 1 <= len(made) <= parallel_reads


def test_nothing_of_one_playlists_read_leaks_into_the_next(tmp_path: Path, made: list[str]) -> None:
    with channels(4, 3, size_bytes=10_000) as server:
        limited, *others = server.channel_urls
        playlists: list[Any] = [{"url": limited, "max_downloads_per_check": 1}, *others]
        project = project_in(tmp_path / "project", server, playlists, parallel_reads=1)
        result = project.run_here("check")
    assert result.returncode == 0, result.stderr
    assert len(made) == 1, "one Downloader, reset for each playlist"
    summaries = final_event(project)["playlists"]
    assert [summary["url"] for summary in summaries] == server.channel_urls
    assert [summary["title"] for summary in summaries] == [f"Channel {number}" for number in range(1, 5)]
    assert [summary["downloaded"] for summary in summaries] == [1, 3, 3, 3]
    assert [summary["stopped"] for summary in summaries] == ["max_downloads_per_check", None, None, None]
    assert [summary["error"] for summary in summaries] == [None] * 4
    lines = project.archive_lines()
    for number, summary in enumerate(summaries, start=1):
        mine = [line for line in lines if f"channel{number:05d}-" in line]
        assert len(mine) == summary["downloaded"], "each playlist's downloads are its own"


def test_what_yt_dlp_counts_of_one_playlist_starts_again_at_the_next(tmp_path: Path, made: list[str]) -> None:
    with channels(3, 3, size_bytes=10_000) as server:
        template = "%(playlist_title)s/%(autonumber)s [%(id)s].%(ext)s"
        project = project_in(
            tmp_path / "project", server, server.channel_urls, parallel_reads=1, output_template=template
        )
        result = project.run_here("check")
    assert result.returncode == 0, result.stderr
    assert len(made) == 1
    for number in range(1, 4):
        folder = project.download_dir / f"Channel {number}"
        numbers = sorted(path.name.split(" ")[0] for path in folder.iterdir())
        assert numbers == ["00001", "00002", "00003"], "yt-dlp's autonumber counts per playlist, as it always did"
