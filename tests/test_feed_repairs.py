"""Feeds as the web serves them, read through real checks against a loopback site: every encoding Python knows, the
defects feed readers repair (each logged and kept in the state), and any media enclosure."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Project
from playlist_cron.demo.feed import FeedServer

QUIRK_PATH = "/quirk.xml"
TITLES = ["第三集 新闻", "第二集", "第一集"]  # the three items' titles, newest first, where the encoding can hold them


def serve(project: Project, body: bytes, content_type: str = "application/rss+xml") -> str:
    """Serve `body` at the loopback site's /quirk.xml with `content_type`, make it the config's playlist, and
    return its URL."""
    feed = project.feed
    feed.extra_paths[QUIRK_PATH] = (body, content_type)
    url = feed.base_url + QUIRK_PATH
    project.write_config(playlist_url=url)
    return url


def rss(feed: FeedServer) -> str:
    return feed.feed_xml().decode()


def check(project: Project, code: int = 0) -> dict[str, Any]:
    result = project.run("check", "--now")
    assert result.returncode == code, (result.stderr, [e for e in project.events() if e["level"] != "info"])
    final: dict[str, Any] = [e for e in project.events() if e["event"].startswith("check_")][-1]
    return final


def assert_read_by_its_feed_whole(project: Project, final: dict[str, Any]) -> None:
    """The check read the playlist by its feed (no fallback to yt-dlp) and downloaded its three items."""
    feed = project.feed
    assert (final["outcome"], final["downloaded"], final["failed"]) == ("COMPLETED", 3, 0), final
    assert final["playlists"][0]["read"] == "feed", final["playlists"][0]
    assert project.events("feed_failed") == []
    assert sorted(project.archive_lines()) == sorted(f"generic {item.guid}" for item in feed.settings.items)
    for item in feed.settings.items:
        assert project.file_for(item.guid).read_bytes() == item.content


def downloaded_titles(project: Project) -> list[str]:
    return [event["title"] for event in project.events("video_downloaded")]


# --- 1. decoding as feed readers do ---


@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        ("GBK", "gbk"),
        ("GB2312", "gb2312"),
        ("Shift_JIS", "shift_jis"),
        ("Big5", "big5"),
        ("EUC-KR", "euc_kr"),
        ("csUnicode", "utf-16-le"),  # IANA's name for UCS-2, unknown to Python's codecs, without a byte-order mark
        ("UTF-16LE", "utf-16-le"),
    ],
)
def test_a_feed_in_a_multi_byte_encoding_is_read_and_the_check_completes(
    project: Project, declared: str, codec: str
) -> None:
    """Before: expat raised ValueError ("multi-byte encodings are not supported"), and every check FAILED."""
    feed = project.feed
    titles = {
        "shift_jis": ["第三話", "第二話", "第一話"],
        "euc_kr": ["세번째", "두번째", "첫번째"],
        "big5": ["第三集 新聞", "第二集", "第一集"],
    }.get(codec, TITLES)
    for item, title in zip(feed.settings.items, titles, strict=True):
        item.title = title
    body = rss(feed).replace('encoding="UTF-8"', f'encoding="{declared}"').encode(codec)
    serve(project, body)
    final = check(project)
    assert_read_by_its_feed_whole(project, final)
    assert sorted(downloaded_titles(project)) == sorted(titles)
    assert project.events("feed_repaired") == [], "a declared encoding is no defect"


def test_the_charset_of_the_http_content_type_decodes_a_feed_that_declares_none(project: Project) -> None:
    feed = project.feed
    feed.settings.items[0].title = "Выпуск первый"
    body = rss(feed).replace('<?xml version="1.0" encoding="UTF-8"?>', "").encode("cp1251")
    serve(project, body, "application/rss+xml; charset=windows-1251")
    assert_read_by_its_feed_whole(project, check(project))
    assert "Выпуск первый" in downloaded_titles(project)
    assert project.events("feed_repaired") == [], "the HTTP charset is how a server says its encoding"


def test_a_feed_in_latin_1_that_declares_no_encoding_is_read_as_windows_1252_and_said_to_need_repair(
    project: Project,
) -> None:
    feed = project.feed
    feed.settings.items[0].title = "Café “special” – Noël"
    body = rss(feed).replace('<?xml version="1.0" encoding="UTF-8"?>', "").encode("cp1252")
    url = serve(project, body, "text/xml")
    assert_read_by_its_feed_whole(project, check(project))
    assert "Café “special” – Noël" in downloaded_titles(project)
    [repaired] = project.events("feed_repaired")
    assert (repaired["level"], repaired["playlist_url"], repaired["feed_url"]) == ("warning", url, url)
    assert repaired["repairs"] == ["undeclared_encoding"]


# --- 2. lenient where it is safe ---


def _defective(feed: FeedServer, defect: str) -> bytes:
    """The loopback feed's RSS with one defect that real feeds have."""
    text = rss(feed)
    first, second = feed.settings.items[0], feed.settings.items[1]
    if defect == "html_entity":
        return text.replace(
            f"<title>{first.title}</title>", f"<title>{first.title}&nbsp;&eacute;t&eacute;</title>"
        ).encode()
    if defect == "bare_ampersand":
        media = feed.media_url(first.guid)
        return (
            text.replace(f'url="{media}"', f'url="{media}?a=1&b=2"')
            .replace(f"<title>{second.title}</title>", f"<title>{second.title} & more</title>")
            .encode()
        )
    if defect == "control_character":
        return text.replace(f"<title>{first.title}</title>", f"<title>{first.title}\x0b\x1b</title>").encode()
    if defect == "junk_before_root":  # what PHP prints before the feed, as HTML
        warning = (
            "<br />\n<b>Warning</b>:  Cannot modify header information in <b>/srv/feed.php</b> on line <b>3</b><br />\n"
        )
        return (warning + text).encode()
    if defect == "junk_before_root (text)":  # the same from PHP's command-line build
        return ("PHP Warning:  Undefined variable $x in /srv/feed.php on line 3\n" + text).encode()
    if defect == "atom_without_namespace":
        return feed.atom_xml().replace(b' xmlns="http://www.w3.org/2005/Atom"', b"")
    raise AssertionError(defect)


@pytest.mark.parametrize(
    "defect",
    [
        "html_entity",
        "bare_ampersand",
        "control_character",
        "junk_before_root",
        "junk_before_root (text)",
        "atom_without_namespace",
    ],
)
def test_a_feed_with_a_defect_that_is_safe_to_repair_is_read_whole_and_the_repair_is_logged_and_kept(
    project: Project, defect: str
) -> None:
    feed = project.feed
    url = serve(project, _defective(feed, defect))
    assert_read_by_its_feed_whole(project, check(project))
    name = defect.partition(" ")[0]
    [repaired] = project.events("feed_repaired")
    assert (repaired["level"], repaired["playlist_url"], repaired["feed_url"], repaired["repairs"]) == (
        "warning",
        url,
        url,
        [name],
    )
    assert project.reads()[url]["feed_repairs"] == [name]
    if defect == "html_entity":
        assert f"{feed.settings.items[0].title}\xa0été" in downloaded_titles(project)
    if defect == "control_character":
        assert feed.settings.items[0].title in downloaded_titles(project)


def test_the_complete_entries_of_a_body_cut_short_are_downloaded(project: Project) -> None:
    feed = project.feed
    text = rss(feed)
    oldest = feed.settings.items[-1]
    cut = text.index(f'<guid isPermaLink="false">{oldest.guid}') + 10  # inside the oldest item
    url = serve(project, text[:cut].encode())
    final = check(project)
    assert (final["outcome"], final["downloaded"], final["failed"]) == ("COMPLETED", 2, 0), final
    assert final["playlists"][0]["read"] == "feed"
    assert sorted(project.archive_lines()) == sorted(f"generic {item.guid}" for item in feed.settings.items[:2])
    [repaired] = project.events("feed_repaired")
    assert repaired["repairs"] == ["truncated"]
    assert project.reads()[url]["feed_repairs"] == ["truncated"]


def test_repairs_are_logged_once_a_check_shown_by_status_and_cleared_by_a_clean_read(project: Project) -> None:
    feed = project.feed
    body = _defective(feed, "html_entity").replace(b"<title>Video 2</title>", b"<title>Video 2 &amp & more</title>")
    url = serve(project, body)
    check(project)
    [repaired] = project.events("feed_repaired")
    assert repaired["repairs"] == ["html_entity", "bare_ampersand"]
    status = project.status()
    [shown] = status["playlists"]
    assert shown["feed_repairs"] == ["html_entity", "bare_ampersand"]
    text = project.run_here("status").stdout
    assert "feed needed repair: html_entity, bare_ampersand" in text

    check(project)
    assert len(project.events("feed_repaired")) == 2, "one a check"

    feed.extra_paths[QUIRK_PATH] = (rss(feed).encode(), "application/rss+xml")
    check(project)
    assert len(project.events("feed_repaired")) == 2
    assert "feed_repairs" not in project.reads()[url]
    assert project.status()["playlists"][0]["feed_repairs"] == []
    assert "feed needed repair" not in project.run_here("status").stdout


def test_a_feed_that_cannot_be_read_at_all_is_a_feed_failure_and_the_playlist_falls_back(
    project: Project, feed: FeedServer
) -> None:
    """No exception from a feed's bytes escapes as an internal error: a feed_failed event saying why, then the full
    read. (Before: a feed declaring GBK raised ValueError, told as a failure of kind "other".)"""
    with FeedServer(feed.settings.items, feed_format="atom") as atom_feed:
        project.write_config(playlist_url=None, playlists=[{"url": feed.feed_url, "feed_url": atom_feed.feed_url}])
        assert check(project)["playlists"][0]["read"] == "full", "the first check reads the playlist whole"
        atom_feed.settings.feed_body = (
            b'<?xml version="1.0" encoding="gbk"?><feed xmlns="http://www.w3.org/2005/Atom"><entry></feed>'
        )
        final = check(project)
        assert (final["outcome"], final["playlists"][0]["read"]) == ("COMPLETED", "full"), final
        [failed] = project.events("feed_failed")
        assert (failed["reason"], failed["feed_url"]) == ("not_xml", atom_feed.feed_url)


# --- 3. any media enclosure ---


@pytest.mark.parametrize(
    "enclosure",
    ["x-audio/mp3", "application/octet-stream", "untyped, no media extension", "after an image"],
)
def test_an_enclosure_of_any_type_but_an_image_is_the_media_and_the_page_link_is_not_tried(
    project: Project, enclosure: str
) -> None:
    """Before: the entry fell back to its page link (the site's home page), and each check failed on it."""
    feed = project.feed
    text = rss(feed)
    for item in feed.settings.items:
        media = feed.media_url(item.guid)
        tag = f'<enclosure url="{media}" length="{item.size_bytes}" type="video/mp4"/>'
        if enclosure == "untyped, no media extension":
            new = f'<enclosure url="{feed.redirect_url(item.guid)}" length="{item.size_bytes}"/>'
        elif enclosure == "after an image":
            image = f'<enclosure url="{feed.base_url}/cover.jpg" length="100"/>'
            new = f'{image}<enclosure url="{media}" type="audio/x-m4a"/>'
        else:
            new = f'<enclosure url="{media}" length="{item.size_bytes}" type="{enclosure}"/>'
        text = text.replace(tag, f"<link>{feed.base_url}/home</link>{new}")
    serve(project, text.encode())
    assert_read_by_its_feed_whole(project, check(project))
    assert not feed.requests_for("/home"), "the page link was not tried"
    assert not feed.requests_for("/cover.jpg"), "nor the image"
