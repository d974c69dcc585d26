"""File names that fit the filesystem: long titles, long playlist titles and multi-byte characters still download."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Project, wait_for
from playlist_cron.demo.feed import FeedItem

CJK_TITLE = "長い題名の動画" * 12 + "漢字漢字漢字"  # 90 characters, 270 bytes: within YouTube's 100-character limit
ASCII_TITLE = ("A very long title about backups / restores: why? " * 6)[:300]  # '/', ':' and '?' grow when sanitized
EMOJI_TITLE = "🎉" * 80  # 4 bytes each
LONG_FEED_TITLE = "频道的名字很长" * 15  # 105 characters, 315 bytes: the folder name is too long as well

# The longest suffix yt-dlp may put after the name while it works: `.f<format>.<ext>.part-Frag<n>.part` for a
# fragmented format (about 40 bytes), `.temp.<ext>` while post-processing, `.<lang>.vtt`, `.info.json`.
SUFFIX_MARGIN_BYTES = 40


def name_max_bytes(folder: Path) -> int:
    return os.pathconf(folder, "PC_NAME_MAX")


def long_items() -> list[FeedItem]:
    return [
        FeedItem(guid="cjk-90", title=CJK_TITLE),
        FeedItem(guid="ascii-300", title=ASCII_TITLE),
        FeedItem(guid="emoji-80", title=EMOJI_TITLE),
    ]


def assert_names_fit(project: Project, files: list[Path]) -> int:
    """Every component below `download_dir` leaves room for yt-dlp's suffixes; return the longest, in bytes."""
    limit_bytes = name_max_bytes(project.download_dir) - SUFFIX_MARGIN_BYTES
    longest_bytes = 0
    for path in files:
        for component in path.relative_to(project.download_dir).parts:
            size_bytes = len(os.fsencode(component))
            assert size_bytes <= limit_bytes, (component, size_bytes)
            longest_bytes = max(longest_bytes, size_bytes)
    return longest_bytes


@pytest.mark.compat
def test_long_and_multi_byte_titles_download_with_names_that_fit(
    project: Project, reliability: Callable[[str], None]
) -> None:
    project.feed.settings.items = long_items()
    project.feed.settings.title = LONG_FEED_TITLE
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    [completed] = project.events("check_completed")
    assert (completed["downloaded"], completed["failed"]) == (3, 0), project.events("video_failed")
    files = project.downloaded_files()
    longest_bytes = assert_names_fit(project, files)
    [folder] = {path.parent for path in files}
    assert LONG_FEED_TITLE.startswith(folder.name[:20])  # the folder is the feed's title, shortened
    for item in project.feed.settings.items:
        path = project.file_for(item.guid)  # the `[id]` and the extension are kept
        assert path.name.endswith(f" [{item.guid}].mp4")
        assert path.read_bytes() == item.content
        assert len(path.name.encode()) > 150, "the title is shortened, not dropped"
    assert {event["filename"] for event in project.events("video_downloaded")} == {str(path) for path in files}
    assert sorted(project.archive_lines()) == sorted(f"generic {item.guid}" for item in project.feed.settings.items)

    project.feed.settings.feed_validators = False  # no ETag nor Last-Modified: every entry is read
    again = project.run("check", "--now")
    assert again.returncode == 0, again.stderr
    assert project.events("check_completed")[-1]["already_archived"] == 3
    assert project.downloaded_files() == files
    reliability(
        f"long names: titles of 90 CJK characters (270 bytes), 300 ASCII characters and 80 emoji (320 bytes) under a "
        f"315-byte feed title -> 3 downloaded, longest name {longest_bytes} bytes (NAME_MAX "
        f"{name_max_bytes(project.download_dir)}), [id] and .mp4 kept, archive and log name the files on disk"
    )


def test_a_users_own_template_gets_the_same_protection(project: Project) -> None:
    project.feed.settings.items = long_items()
    project.write_config(output_template="%(title)s.%(ext)s")
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    [completed] = project.events("check_completed")
    assert (completed["downloaded"], completed["failed"]) == (3, 0), project.events("video_failed")
    files = project.downloaded_files()
    assert_names_fit(project, files)
    assert [path.parent for path in files] == [project.download_dir] * 3
    assert all(path.suffix == ".mp4" for path in files)
    assert sorted(path.read_bytes() for path in files) == sorted(item.content for item in long_items())


def test_a_long_named_file_cut_short_resumes_under_the_same_name(project: Project) -> None:
    item = project.only_item(2_000_000)
    item.title = CJK_TITLE
    project.feed.settings.title = LONG_FEED_TITLE
    project.feed.settings.bytes_per_second = 400_000
    check = project.start("check")
    part_files = lambda: [p for p in project.download_dir.rglob("*.part") if p.stat().st_size > 300_000]  # noqa: E731
    wait_for(part_files, timeout=60, what="a partial file of some size")
    check.send_signal(signal.SIGKILL)
    check.wait()
    [part_file] = part_files()

    project.assert_next_check_resumes(item)
    assert project.file_for(item.guid).name + ".part" == part_file.name
    assert not part_file.exists()
    assert project.archive_lines() == [f"generic {item.guid}"]


@pytest.mark.parametrize(
    ("text", "limit_bytes", "expected"),
    [
        ("abc", 10, "abc"),
        ("漢字漢字", 7, "漢字"),  # 6 bytes: a third character would need 9
        ("🎉🎉", 5, "🎉"),
        ("é", 1, ""),
    ],
)
def test_text_is_cut_at_a_character_boundary(text: str, limit_bytes: int, expected: str) -> None:
    from playlist_cron.file_names import cut_to_bytes

    assert cut_to_bytes(text, limit_bytes) == expected
