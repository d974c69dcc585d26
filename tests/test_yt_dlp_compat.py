"""The parts of yt-dlp that ytdl.py relies on beyond its documented API: a release that changes one fails here."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yt_dlp
from yt_dlp.version import __version__ as YT_DLP_VERSION

from conftest import Project
from playlist_cron import ytdl

pytestmark = pytest.mark.compat

# The YoutubeDL methods that ytdl.py overrides, and why. yt-dlp calls them itself: were one renamed, ours would
# simply never be called again, and nothing would fail loudly.
OVERRIDDEN = {
    "process_ie_result": "see each playlist entry before yt-dlp works on it (archive, stop_at_first_archived, retries)",
    "process_info": "log video_started when a video's download begins",
    "in_download_archive": "count a video that yt-dlp itself finds in the archive as already archived",
    "record_download_archive": "keep its list of the archive's extractors up to date",
    "urlopen": "notice HTTP 429 answers and bot-check pages (the rate-limit cooldown)",
    "prepare_filename": "shorten file names until they fit the filesystem",
    "_match_entry": "count a playlist entry that yt-dlp skips before running it (archived, or filtered) as such",
    "build_request_director": "send every request through bounded_http's urllib handler, which checks links",
    "add_default_info_extractors": "work out which extractors a client gets once a process, not at every client",
}
PACKAGE = ytdl.__name__.partition(".")[0]  # importing ytdl defined the subclass


def downloader_class() -> type[Any]:
    """playlist-cron's subclass of YoutubeDL, found by type: it may be renamed, or moved out of ytdl.py."""
    ours: list[type[Any]] = []
    pending = list(yt_dlp.YoutubeDL.__subclasses__())
    while pending:
        subclass = pending.pop()
        pending.extend(subclass.__subclasses__())
        if subclass.__module__.partition(".")[0] == PACKAGE:
            ours.append(subclass)
    leaves = [
        subclass
        for subclass in ours
        if not any(other is not subclass and issubclass(other, subclass) for other in ours)
    ]
    assert len(leaves) == 1, f"expected one subclass of YoutubeDL in playlist_cron, found {leaves}"
    return leaves[0]


def our_classes() -> list[type[Any]]:
    """The classes between yt-dlp's YoutubeDL and our subclass: where our overrides and attributes are defined."""
    return [cls for cls in downloader_class().__mro__ if cls.__module__.partition(".")[0] == PACKAGE]


def broke(name: str, why: str, detail: str) -> str:
    return f"yt-dlp {YT_DLP_VERSION} removed or changed YoutubeDL.{name}, which ytdl.py uses to {why}: {detail}"


def signature_mismatch(theirs: inspect.Signature, ours: inspect.Signature) -> str | None:
    """Given yt-dlp's signature of a method and our override's, say how a call that fits yt-dlp's would fail ours."""
    our_parameters = ours.parameters
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in our_parameters.values())
    for name, parameter in theirs.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            if not any(p.kind is parameter.kind for p in our_parameters.values()):
                return f"yt-dlp's takes {parameter}, ours does not"
            continue
        our_parameter = our_parameters.get(name)
        if our_parameter is None:
            if takes_any_keyword and parameter.kind is parameter.KEYWORD_ONLY:
                continue
            return f"yt-dlp's takes '{name}', ours does not"
        if (parameter.kind is parameter.KEYWORD_ONLY) != (our_parameter.kind is our_parameter.KEYWORD_ONLY):
            return f"'{name}' is keyword-only in one of them and not in the other"
        if parameter.default is not parameter.empty and our_parameter.default is our_parameter.empty:
            return f"'{name}' may be left out of a call to yt-dlp's, but ours requires it"
    for name, our_parameter in our_parameters.items():
        required = our_parameter.default is our_parameter.empty and our_parameter.kind not in (
            our_parameter.VAR_POSITIONAL,
            our_parameter.VAR_KEYWORD,
        )
        if required and name not in theirs.parameters:
            return f"ours requires '{name}', which yt-dlp's does not take"
    return None


@pytest.fixture
def archive_file(tmp_path: Path) -> Path:
    path = tmp_path / "archive.txt"
    path.write_text("generic video-00001\nyoutube dQw4w9WgXcQ\n")
    return path


@pytest.fixture
def plain_ydl(archive_file: Path) -> Any:
    """yt-dlp's own YoutubeDL, as ytdl.py configures it for the archive."""
    with yt_dlp.YoutubeDL({"quiet": True, "download_archive": str(archive_file)}) as ydl:
        yield ydl


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_youtubedl_still_has_each_method_ytdl_py_overrides_with_a_signature_ours_accepts(name: str) -> None:
    why = OVERRIDDEN[name]
    assert callable(getattr(yt_dlp.YoutubeDL, name, None)), broke(name, why, "it is gone, so ours is never called")
    theirs = inspect.signature(getattr(yt_dlp.YoutubeDL, name))
    ours = inspect.signature(getattr(downloader_class(), name))
    mismatch = signature_mismatch(theirs, ours)
    assert mismatch is None, broke(name, why, f"yt-dlp's is {name}{theirs}, ours is {name}{ours}: {mismatch}")


def test_the_list_of_overrides_matches_what_ytdl_py_defines() -> None:
    # Keeps OVERRIDDEN true, and catches a method yt-dlp adds under a name that ytdl.py already uses for its own.
    subclass = downloader_class()
    defined = {
        name
        for cls in our_classes()
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("__")
    }
    shared = {name for name in defined if hasattr(yt_dlp.YoutubeDL, name)}
    unexpected = sorted(shared - set(OVERRIDDEN))
    assert not unexpected, (
        f"{subclass.__name__} in ytdl.py defines {unexpected}, which yt-dlp {YT_DLP_VERSION}'s YoutubeDL has too: "
        "if that is a new override, add it to OVERRIDDEN here; if not, yt-dlp added a method of that name, which "
        "ours now replaces: rename ours"
    )
    gone = sorted(set(OVERRIDDEN) - defined)
    assert not gone, f"{subclass.__name__} in ytdl.py no longer overrides {gone}: remove them from OVERRIDDEN here"


def test_attributes_ytdl_py_sets_do_not_clash_with_yt_dlps(plain_ydl: Any) -> None:
    subclass = downloader_class()
    trees = [ast.parse(textwrap.dedent(inspect.getsource(cls))) for cls in our_classes()]
    ours = {
        node.attr
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }
    assert "rate_limited" in ours, "the scan finds the attributes ytdl.py sets"
    clashes = sorted(name for name in ours if hasattr(plain_ydl, name) or hasattr(yt_dlp.YoutubeDL, name))
    assert not clashes, (
        f"yt-dlp {YT_DLP_VERSION}'s YoutubeDL has attributes named {clashes}, which {subclass.__name__} in "
        "ytdl.py sets for its own use: one would overwrite the other; rename ours"
    )


def test_a_feed_without_guids_is_matched_in_the_archive_by_yt_dlp_and_counted_as_archived(project: Project) -> None:
    # Without a guid there is no archive id before yt-dlp has looked at the media URL: its own archive check,
    # seen through the in_download_archive override, is what counts the video as archived rather than filtered.
    project.feed.settings.feed_body = re.sub(rb"<guid[^>]*>[^<]*</guid>\s*", b"", project.feed.feed_xml())
    assert b"<guid" not in project.feed.settings.feed_body
    assert project.run("check").returncode == 0
    files = {path: path.stat().st_mtime_ns for path in project.downloaded_files()}
    assert len(files) == 3
    assert sorted(project.archive_lines()) == [f"generic video-0000{n}" for n in (1, 2, 3)]

    project.feed.settings.feed_validators = False  # no ETag nor Last-Modified: every entry is read
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    completed = project.events("check_completed")[-1]
    assert (completed["downloaded"], completed["already_archived"], completed["failed"]) == (0, 3, 0), completed
    assert [event for event in project.events("video_downloaded") if event["check"] == 2] == []
    assert {path: path.stat().st_mtime_ns for path in project.downloaded_files()} == files
    assert len(project.archive_lines()) == 3
