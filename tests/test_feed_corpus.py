"""Every feed fixture through the parser, its entry count compared with what a lenient reader (feedparser) finds."""

from __future__ import annotations

import ast
from pathlib import Path

import feedparser
import pytest

from playlist_cron.feeds import FeedError, parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
PACKAGE = Path(__file__).resolve().parent.parent / "src" / "playlist_cron"
BASE_URL = "https://feeds.example/feed.xml"

# The HTTP Content-Type a fixture is served with, where its charset matters (the others: none).
CONTENT_TYPES = {"cp1251_http_charset.xml": "application/rss+xml; charset=windows-1251"}

# Where the parser counts otherwise than feedparser, on purpose: fixture -> (its count, feedparser's, why).
DIFFERENCES: dict[str, tuple[int | str, int, str]] = {
    "billion_laughs.xml": (
        "entity_declaration",
        1,
        "a document that declares entities is refused whole (defusedxml's forbid_entities); feedparser expands them",
    ),
    "external_entity.xml": (
        "entity_declaration",
        1,
        "the same: an external entity is refused, never fetched; feedparser reads the document without it",
    ),
    "duplicate_ids.xml": (
        2,
        3,
        "an entry whose id was already seen is dropped, the first wins, as yt-dlp's archive would skip it anyway",
    ),
    "truncated.xml": (
        3,
        4,
        "only the entries the body completed are kept; feedparser also keeps the one it cut, which has no enclosure",
    ),
}

# What each fixture needs repaired to be read (the others: nothing).
REPAIRS = {
    "atom_without_namespace.xml": ("atom_without_namespace",),
    "bare_ampersand.xml": ("bare_ampersand",),
    "control_character.xml": ("control_character",),
    "html_entities.xml": ("html_entity",),
    "latin1_undeclared.xml": ("undeclared_encoding",),
    "php_warning.xml": ("junk_before_root",),
    "truncated.xml": ("truncated",),
}

FIXTURE_NAMES = sorted(path.name for path in FIXTURES.glob("*.xml"))


def reference_count(name: str) -> int:
    content_type = CONTENT_TYPES.get(name)
    parsed = feedparser.parse(
        (FIXTURES / name).read_bytes(), response_headers={"content-type": content_type} if content_type else None
    )
    return len(parsed.entries)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_each_fixture_has_as_many_entries_as_feedparser_finds_or_a_listed_reason(name: str) -> None:
    try:
        feed = parse_feed((FIXTURES / name).read_bytes(), BASE_URL, CONTENT_TYPES.get(name))
    except FeedError as error:
        ours: int | str = error.reason
        repairs: tuple[str, ...] = ()
    else:
        ours, repairs = len(feed.entries), feed.repairs
    theirs = reference_count(name)
    if name in DIFFERENCES:
        expected_ours, expected_theirs, _why = DIFFERENCES[name]
        assert (ours, theirs) == (expected_ours, expected_theirs), "the listed difference no longer holds"
    else:
        assert ours == theirs, f"{name}: the parser finds {ours} entries, feedparser {theirs}"
    assert repairs == REPAIRS.get(name, ())


def test_the_listed_differences_and_repairs_name_fixtures_that_exist() -> None:
    assert set(DIFFERENCES) | set(REPAIRS) | set(CONTENT_TYPES) <= set(FIXTURE_NAMES)


def test_a_podcast_whose_old_episodes_are_typed_x_audio_mp3_gives_every_episode_its_audio() -> None:
    """The shape of a real podcast feed: its oldest episodes typed x-audio/mp3, one application/octet-stream, one
    untyped with no media extension, one with its cover before its audio. Before, these fell back to the page link
    (the site's home page), and each check failed on them."""
    feed = parse_feed((FIXTURES / "podcast_legacy_enclosures.xml").read_bytes(), BASE_URL)
    media = {entry.id: entry.media_url for entry in feed.entries}
    assert len(media) == 20
    assert media["oldcast-001"] == "https://cdn.oldcast.example/audio/episode001.mp3"
    assert media["oldcast-009"] == "https://cdn.oldcast.example/download.php?episode=9"
    assert media["oldcast-010"] == "https://cdn.oldcast.example/stream/10"
    assert media["oldcast-011"] == "https://cdn.oldcast.example/audio/episode011.mp3"
    assert all(url and url.startswith("https://cdn.oldcast.example/") for url in media.values())


@pytest.mark.parametrize(
    ("name", "title", "first_entry_title"),
    [
        ("encoding_gbk.xml", "新闻频道", "第三集：新闻联播"),
        ("encoding_gb2312.xml", "简体中文频道", "第三期 节目"),
        ("encoding_big5.xml", "新聞頻道", "第三集：新聞"),
        ("encoding_shift_jis.xml", "ニュース番組", "第三話 ニュース"),
        ("encoding_euc_kr.xml", "뉴스 채널", "세 번째 뉴스"),
        ("encoding_csunicode_utf16le.xml", "UCS-2 feed", "Épisode 2 – «spécial»"),
        ("latin1_undeclared.xml", "Radio Café", "Émission n°2 : café"),
        ("cp1251_http_charset.xml", "Новости", "Выпуск 2"),
        ("html_entities.xml", "Les cafés", "Café & crème\xa0— part\xa02"),
        ("bare_ampersand.xml", "Questions & Answers", "Q&A with AT&T"),
        ("control_character.xml", "Control characters", "Copied from Word with a vertical tab"),
    ],
)
def test_each_encoding_and_repair_fixture_gives_its_text_as_written(
    name: str, title: str, first_entry_title: str
) -> None:
    feed = parse_feed((FIXTURES / name).read_bytes(), BASE_URL, CONTENT_TYPES.get(name))
    assert (feed.title, feed.entries[0].title) == (title, first_entry_title)


def test_the_package_never_imports_feedparser() -> None:
    """feedparser is the tests' reference reader, in the test extra only: the package reads feeds with expat."""
    importers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if (isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "feedparser" for alias in node.names))
        or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "feedparser")
    ]
    assert importers == []
