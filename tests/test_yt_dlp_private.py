"""Each private or undocumented part of yt-dlp that playlist-cron uses still works as it expects (marker `compat`)."""

from __future__ import annotations

import optparse
from pathlib import Path
from typing import Any

import pytest
import yt_dlp
from yt_dlp.version import __version__ as YT_DLP_VERSION

from playlist_cron import yt_dlp_private
from playlist_cron.demo.feed import FeedServer, make_items

pytestmark = pytest.mark.compat

QUIET = {"quiet": True, "no_warnings": True, "noprogress": True}
YOUTUBE_URL = "https://www.youtube.com/watch?v=BaW_jenozKc"


def broken(what: str, purpose: str, where: str = "ytdl.py") -> str:
    """The message a test fails with when a yt-dlp release changed something playlist-cron relies on."""
    return (
        f"yt-dlp {YT_DLP_VERSION} {what}, which playlist-cron uses to {purpose}: "
        f"see src/playlist_cron/yt_dlp_private.py and its use in src/playlist_cron/{where}"
    )


def require(owner: object, name: str, purpose: str, where: str = "ytdl.py") -> None:
    owner_name = getattr(owner, "__name__", type(owner).__name__)
    if not hasattr(owner, name):
        pytest.fail(broken(f"no longer has {owner_name}.{name}", purpose, where))


def test_archive_id_is_made_from_a_playlist_entry_without_a_request() -> None:
    purpose = "tell a playlist entry's archive id without a request"
    require(yt_dlp.YoutubeDL, "_make_archive_id", purpose, "archive_ids.py")
    with yt_dlp.YoutubeDL(QUIET) as ydl:
        made = {
            "keyed": yt_dlp_private.archive_id(ydl, {"id": "item-1", "ie_key": "Generic"}),
            "by URL": yt_dlp_private.archive_id(ydl, {"id": "BaW_jenozKc", "url": YOUTUBE_URL}),
            "no id": yt_dlp_private.archive_id(ydl, {"url": YOUTUBE_URL}),
        }
    expected = {"keyed": "generic item-1", "by URL": "youtube BaW_jenozKc", "no id": None}
    assert made == expected, broken(
        f"makes archive ids differently ({made}, not {expected})", purpose, "archive_ids.py"
    )


def test_the_extractor_for_a_url_is_found_in_yt_dlp_s_own_order() -> None:
    purpose = "find a new feed entry's extractor once per folder of URLs"
    require(yt_dlp.YoutubeDL(QUIET), "_ies", purpose, "archive_ids.py")
    with yt_dlp.YoutubeDL(QUIET) as ydl:
        found = {
            url: yt_dlp_private.first_suitable_extractor(ydl, url)
            for url in (YOUTUBE_URL, "http://127.0.0.1:9/media/item-1.mp4")
        }
    expected = {YOUTUBE_URL: "Youtube", "http://127.0.0.1:9/media/item-1.mp4": "Generic"}
    assert found == expected, broken(
        f"picks extractors differently through YoutubeDL._ies ({found})", purpose, "archive_ids.py"
    )


def test_the_loaded_archive_answers_membership(tmp_path: Path) -> None:
    purpose = "look an archive id up per extractor key, without building an info dict"
    archive_file = tmp_path / "archive.txt"
    archive_file.write_text("generic item-1\nyoutube BaW_jenozKc\n")
    with yt_dlp.YoutubeDL({**QUIET, "download_archive": str(archive_file)}) as ydl:
        require(ydl, "archive", purpose, "archive_ids.py")
        held = [yt_dlp_private.archive_holds(ydl, line) for line in ("generic item-1", "generic item-2")]
        ydl.record_download_archive({"id": "item-2", "extractor_key": "Generic"})
        recorded = yt_dlp_private.archive_holds(ydl, "generic item-2")
    assert held == [True, False], broken("answers `line in YoutubeDL.archive` differently", purpose, "archive_ids.py")
    assert recorded, broken("no longer adds a recorded id to YoutubeDL.archive", purpose, "archive_ids.py")


class _AskedLines:
    """Lines that note what yt-dlp asks and adds: `archive_view.LookedUpLines` answers the same calls."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.added: list[str] = []

    def __contains__(self, line: object) -> bool:
        self.asked.append(str(line))
        return line == "generic item-1"

    def __bool__(self) -> bool:
        return True

    def add(self, line: str) -> None:
        self.added.append(line)


def test_a_shared_archive_is_asked_with_in_and_added_to_without_a_file() -> None:
    purpose = "ask the archive only about the entries a check meets (a database's, looked up by key)"
    lines = _AskedLines()
    with yt_dlp.YoutubeDL(dict(QUIET)) as ydl:  # a copy: share_archive sets its params
        yt_dlp_private.share_archive(ydl, None, lines)
        held = [ydl.in_download_archive({"id": video, "extractor_key": "Generic"}) for video in ("item-1", "item-2")]
        ydl.record_download_archive({"id": "item-3", "extractor_key": "Generic"})
    assert held == [True, False] and "generic item-2" in lines.asked, broken(
        f"asks a shared archive differently (asked {lines.asked}, answered {held})", purpose, "archive_view.py"
    )
    assert lines.added == ["generic item-3"], broken(
        f"records to a shared archive differently ({lines.added})", purpose, "archive_view.py"
    )


class _Recording(yt_dlp.YoutubeDL):  # type: ignore[misc]
    """A YoutubeDL that notes how yt-dlp calls the methods ytdl.py overrides."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.entry_calls: list[tuple[Any, bool]] = []
        self.processed: list[Any] = []
        super().__init__(params)

    def process_ie_result(self, ie_result: Any, download: bool = True, extra_info: Any = None) -> Any:
        self.entry_calls.append((ie_result.get("id"), yt_dlp_private.is_playlist_entry(extra_info)))
        return super().process_ie_result(ie_result, download, extra_info)

    def process_info(self, info_dict: dict[str, Any]) -> Any:
        self.processed.append(info_dict.get("id"))
        return super().process_info(info_dict)


def test_each_playlist_entry_reaches_process_ie_result_marked_as_an_entry(tmp_path: Path) -> None:
    purpose = "tell a playlist's entries from the playlist itself in process_ie_result"
    entries = [
        {"id": f"item-{number}", "title": f"Item {number}", "url": f"http://127.0.0.1:9/{number}.mp4", "ext": "mp4"}
        for number in (1, 2)
    ]
    playlist = {
        "_type": "playlist",
        "id": "list",
        "title": "List",
        "entries": entries,
        "extractor": "generic",
        "extractor_key": "Generic",
    }
    with _Recording({**QUIET, "simulate": True, "paths": {"home": str(tmp_path)}}) as ydl:
        ydl.process_ie_result(playlist, download=True)
    expected = [("list", False), ("item-1", True), ("item-2", True)]
    assert ydl.entry_calls == expected, broken(
        f"calls process_ie_result as {ydl.entry_calls}, no longer with `playlist_autonumber` in each entry's "
        f"extra_info",
        purpose,
    )
    assert ydl.processed == ["item-1", "item-2"], broken("no longer calls process_info for each video", purpose)


def test_a_feed_item_s_guid_is_smuggled_into_its_entry_url() -> None:
    purpose = "know a feed entry's archive id (its guid) without a request"
    with FeedServer(make_items(2)) as feed, yt_dlp.YoutubeDL(QUIET) as ydl:
        info = ydl.extract_info(feed.feed_url, download=False, process=False)
        smuggled = [yt_dlp_private.smuggled_video_id(entry["url"]) for entry in info["entries"]]
    expected = [(feed.media_url(item.guid), item.guid) for item in feed.settings.items]
    assert smuggled == expected, broken(
        f"no longer smuggles a feed item's guid as `force_videoid` ({smuggled})", purpose, "archive_ids.py"
    )
    url = yt_dlp_private.with_smuggled_video_id(info["entries"][0]["url"], "other-id")
    assert yt_dlp_private.smuggled_video_id(url) == (expected[0][0], "other-id")


def test_yt_dlp_s_parser_resolves_long_and_short_options() -> None:
    purpose = "name the managed option that an abbreviation or a short-option cluster stands for"
    parser = yt_dlp_private.option_parser()
    assert isinstance(parser, optparse.OptionParser), broken(
        "no longer builds its command line with optparse (yt_dlp.options.create_parser)", purpose, "yt_dlp_options.py"
    )
    for name in ("_match_long_opt", "_long_opt", "_short_opt"):
        require(parser, name, purpose, "yt_dlp_options.py")
    batch_file = yt_dlp_private.long_option(parser, "--batch-f")
    resolved = {
        "--batch-f": batch_file and (batch_file[0], batch_file[1].dest),
        "--no-such-option": yt_dlp_private.long_option(parser, "--no-such-option"),
        "--no": yt_dlp_private.long_option(parser, "--no"),  # ambiguous
        "-a": getattr(yt_dlp_private.short_option(parser, "-a"), "dest", None),
        "-§": yt_dlp_private.short_option(parser, "-§"),
    }
    expected = {
        "--batch-f": ("--batch-file", "batchfile"),
        "--no-such-option": None,
        "--no": None,
        "-a": "batchfile",
        "-§": None,
    }
    assert resolved == expected, broken(f"resolves options differently ({resolved})", purpose, "yt_dlp_options.py")
    long_names = dict(yt_dlp_private.long_options(parser))
    assert long_names["--batch-file"].dest == "batchfile", broken(
        "lists long options differently", purpose, "yt_dlp_options.py"
    )
