"""The feed reader: YouTube-shaped and real-world quirky feeds parse to the right entries; entity tricks are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from playlist_cron.feeds import (
    FeedError,
    conditional_headers,
    derive_feed_url,
    needs_channel_id,
    parse_feed,
)

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
BASE_URL = "http://127.0.0.1:8000/feeds/feed.xml"
CHANNEL_ID = "UCq3Ci-h945sbEYXpVlw7rJg"


def epoch_s(text: str) -> int:
    """Given an ISO 8601 time (UTC when it names no offset), return epoch seconds."""
    moment = datetime.fromisoformat(text)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp())


def parse_fixture(name: str) -> list[tuple[str, str | None, str | None, str | None]]:
    feed = parse_feed((FIXTURES / name).read_bytes(), BASE_URL)
    return [(entry.id, entry.title, entry.page_url, entry.media_url) for entry in feed.entries]


# --- YouTube-shaped feeds ---


@pytest.mark.parametrize(("name", "letter"), [("youtube_channel.xml", "V"), ("youtube_playlist.xml", "P")])
def test_youtube_feed_gives_its_15_entries_with_video_ids_and_dates(name: str, letter: str) -> None:
    feed = parse_feed((FIXTURES / name).read_bytes(), "https://www.youtube.com/feeds/videos.xml")
    assert feed.kind == "youtube"
    video_ids = [f"{letter}{number:02d}-xQ_7tYz" for number in range(15, 0, -1)]
    assert [entry.video_id for entry in feed.entries] == video_ids
    assert [entry.id for entry in feed.entries] == [f"yt:video:{video_id}" for video_id in video_ids]
    assert [entry.page_url for entry in feed.entries] == [
        f"https://www.youtube.com/watch?v={video_id}" for video_id in video_ids
    ]
    newest, oldest = feed.entries[0], feed.entries[-1]
    assert newest.published_s == epoch_s("2026-11-28T17:00:05+00:00")
    assert newest.updated_s == epoch_s("2026-11-28T17:45:05+00:00")
    assert oldest.published_s == epoch_s("2026-11-24T15:00:05+00:00")  # 14 × 7 hours earlier
    assert newest.title == "Episode 15 – «quoted» <live>"
    assert newest.media_url is None, "the flash player link is no video file"


def test_youtube_playlist_feed_names_each_entrys_own_channel() -> None:
    feed = parse_feed((FIXTURES / "youtube_playlist.xml").read_bytes(), BASE_URL)
    assert feed.title == "Loopback & Friends Playlist"
    assert {entry.channel_id for entry in feed.entries} == {CHANNEL_ID, "UCaBcDeFgHiJkLmNoPqRsTuV"}


def test_podcast_feed_gives_enclosures_links_and_rfc822_dates() -> None:
    feed = parse_feed((FIXTURES / "podcast.xml").read_bytes(), "https://podcast.example/feed.xml")
    assert (feed.kind, feed.title) == ("rss", "Loopback Radio")
    assert [(entry.id, entry.page_url, entry.media_url) for entry in feed.entries] == [
        ("podcast-ep-3", "https://podcast.example/episodes/3", "https://cdn.podcast.example/ep3.mp3"),
        ("podcast-ep-2", None, "https://cdn.podcast.example/ep2.m4a"),
        (
            "https://podcast.example/episodes/1",
            "https://podcast.example/episodes/1",
            "https://cdn.podcast.example/ep1.mp3",
        ),
    ]
    assert [entry.published_s for entry in feed.entries] == [
        epoch_s("2026-11-24T05:00:00+00:00"),
        epoch_s("2026-11-17T06:00:00+00:00"),
        epoch_s("2026-11-10T11:00:00+00:00"),  # EST is five hours behind
    ]


# --- quirks that real feeds have ---


def test_byte_order_mark_and_blank_lines_before_the_prolog_are_read() -> None:
    assert (FIXTURES / "blank_line_before_prolog.xml").read_bytes().startswith(b"\xef\xbb\xbf\n")
    assert parse_fixture("blank_line_before_prolog.xml") == [
        ("blank-1", "One", None, "http://media.example/1.mp4"),
        ("blank-2", "Two", None, "http://media.example/2.mp4"),
    ]


def test_default_namespace_on_rss_is_read_as_plain_rss() -> None:
    feed = parse_feed((FIXTURES / "default_namespace.xml").read_bytes(), BASE_URL)
    assert (feed.kind, feed.title) == ("rss", "Default namespace")
    assert [(entry.id, entry.page_url, entry.media_url, entry.published_s) for entry in feed.entries] == [
        ("ns-1", "http://video.example/watch/1", "http://video.example/media/1.webm", epoch_s("2026-11-27T12:00:00")),
        ("ns-2", "http://video.example/watch/2", "http://video.example/media/2.webm", epoch_s("2026-11-28T12:00:00")),
    ]


def test_legacy_encoding_declared_in_the_prolog_is_decoded() -> None:
    body = (FIXTURES / "cp1251.xml").read_bytes()
    assert "Выпуск".encode("cp1251") in body, "the fixture really is cp1251"
    feed = parse_feed(body, BASE_URL)
    assert feed.title == "Новости канала"
    assert [(entry.id, entry.title) for entry in feed.entries] == [
        ("cp1251-1", "Выпуск первый"),
        ("cp1251-2", "Выпуск второй — «финал»"),
    ]
    assert feed.entries[0].published_s == epoch_s("2026-11-29T05:30:00+00:00")


def test_cdata_gives_its_text_unescaped_and_ids_are_stripped() -> None:
    feed = parse_feed((FIXTURES / "cdata.xml").read_bytes(), BASE_URL)
    assert feed.title == "Tom & Jerry's <Feed>"
    assert parse_fixture("cdata.xml") == [
        (
            "cdata-1",
            "A title with <b>markup</b> & an ampersand",
            "http://cdata.example/item?a=1&b=2",
            "http://cdata.example/1.mp3",
        )
    ]


def test_relative_links_resolve_against_the_feed_url_and_xml_base() -> None:
    feed = parse_feed((FIXTURES / "relative_links.xml").read_bytes(), BASE_URL)
    assert feed.kind == "atom"
    assert parse_fixture("relative_links.xml") == [
        (
            "rel-1",
            "Against the feed's own URL",
            "http://127.0.0.1:8000/feeds/posts/1.html",
            "http://127.0.0.1:8000/media/1.mp4",
        ),
        ("rel-2", "Against xml:base", "http://cdn.example/shows/page-2.html", "http://cdn.example/shows/audio/2.ogg"),
    ]
    second = feed.entries[1]
    assert (second.published_s, second.updated_s) == (epoch_s("2026-11-21T09:00:00"), epoch_s("2026-11-22T09:00:00"))


@pytest.mark.parametrize(
    "published",
    [
        "2026-11-28T17:00:05Z",
        "2026-11-28T17:00:05.5Z",  # RFC 3339 allows a fraction of any length
        "2026-11-28T17:00:05.1234567Z",  # .NET writes seven digits
        "2026-11-28T18:00:05.123456789+01:00",
        "2026-11-28t17:00:05z",
        "2026-11-28T18:00:05+0100",  # not RFC 3339, but ISO 8601 and met in feeds
    ],
)
def test_atom_dates_are_read_whatever_the_length_of_their_fraction_of_a_second(published: str) -> None:
    """Python 3.10's fromisoformat reads a fraction of three or six digits only, and no offset without a colon."""
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>dated-1</id>'
        f"<published>{published}</published><updated>{published}</updated></entry></feed>"
    )
    [entry] = parse_feed(atom.encode(), BASE_URL).entries
    assert (entry.published_s, entry.updated_s) == (epoch_s("2026-11-28T17:00:05+00:00"),) * 2


def test_duplicate_ids_keep_the_first_entry() -> None:
    assert parse_fixture("duplicate_ids.xml") == [
        ("dup-1", "First copy", None, "http://dup.example/1a.mp4"),
        ("dup-2", "Other", None, "http://dup.example/2.mp4"),
    ]


def test_first_video_or_audio_enclosure_wins() -> None:
    assert [media_url for *_, media_url in parse_fixture("several_enclosures.xml")] == [
        "http://multi.example/1.mp3",  # after an image and a PDF, before the video
        "http://multi.example/2-720.mp4",  # media:group: the thumbnail is skipped
        "http://multi.example/3.webm?token=x",  # untyped: judged by the file name
    ]


def test_importing_the_module_loads_neither_the_parser_nor_the_http_client() -> None:
    # `parse_feed` and `fetch` import them when called, so a check may import this module at no cost.
    probe = (
        "import sys, json; before = set(sys.modules); import playlist_cron.feeds; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    loaded = set(json.loads(result.stdout))
    assert "playlist_cron.feeds" in loaded, "the probe sees what the import loads"
    assert loaded & {"pyexpat", "xml.parsers.expat", "urllib.request", "http.client", "email.utils"} == set()


# --- refusals ---


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml"])
def test_entity_declarations_are_refused_with_a_clear_error(name: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse_feed((FIXTURES / name).read_bytes(), BASE_URL)
    assert caught.value.reason == "entity_declaration"
    assert "declares the entity" in str(caught.value)


def test_billion_laughs_is_refused_quickly_in_a_fresh_process() -> None:
    # Expanded, the document is about 3 GB of "lol": a parser that expanded it would be killed by the timeout.
    probe = (
        "import sys; from playlist_cron.feeds import parse_feed, FeedError\n"
        "try: parse_feed(open(sys.argv[1], 'rb').read(), 'http://x/')\n"
        "except FeedError as error: print(error.reason)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(FIXTURES / "billion_laughs.xml")], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "entity_declaration", result.stderr


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>Sign in</body></html>", "not_a_feed"),
        (b"not xml at all", "not_xml"),
        (b"", "not_xml"),
        (b"<rss><channel><item></channel></rss>", "not_xml"),  # a defect in the middle: nothing to repair
        (b'<?xml version="1.0"?>', "not_xml"),
    ],
)
def test_what_is_no_feed_raises_a_feed_error_with_its_reason(body: bytes, reason: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse_feed(body, BASE_URL)
    assert caught.value.reason == reason


# --- deriving the feed URL ---


@pytest.mark.parametrize(
    ("url", "feed_url"),
    [
        (
            f"https://www.youtube.com/channel/{CHANNEL_ID}",
            f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL_ID}",
        ),
        (
            f"https://youtube.com/channel/{CHANNEL_ID}/",
            f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL_ID}",
        ),
        (
            f"http://m.youtube.com/channel/{CHANNEL_ID}",
            f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL_ID}",
        ),
        (
            "https://www.youtube.com/playlist?list=PLq3Ci-h945sbEYXpVlw7rJgAbCdEf0123",
            "https://www.youtube.com/feeds/videos.xml?playlist_id=PLq3Ci-h945sbEYXpVlw7rJgAbCdEf0123",
        ),
        (
            "https://www.youtube.com/playlist?list=UUq3Ci-h945sbEYXpVlw7rJg&si=abc",
            "https://www.youtube.com/feeds/videos.xml?playlist_id=UUq3Ci-h945sbEYXpVlw7rJg",
        ),
        (
            "https://www.youtube.com/playlist?list=OLAK5uy_kgSMhsL4D2gWjG8SvT0fdgq2pzCLoxO5M",
            "https://www.youtube.com/feeds/videos.xml?playlist_id=OLAK5uy_kgSMhsL4D2gWjG8SvT0fdgq2pzCLoxO5M",
        ),
        (  # a tab: the uploads list YouTube keeps for it, so that the feed has no more than the tab
            f"https://www.youtube.com/channel/{CHANNEL_ID}/videos",
            f"https://www.youtube.com/feeds/videos.xml?playlist_id=UULF{CHANNEL_ID[2:]}",
        ),
        (
            f"https://www.youtube.com/channel/{CHANNEL_ID}/shorts/",
            f"https://www.youtube.com/feeds/videos.xml?playlist_id=UUSH{CHANNEL_ID[2:]}",
        ),
        (
            f"https://www.youtube.com/channel/{CHANNEL_ID}/streams",
            f"https://www.youtube.com/feeds/videos.xml?playlist_id=UULV{CHANNEL_ID[2:]}",
        ),
        (f"https://www.youtube.com/channel/{CHANNEL_ID}/playlists", None),  # a list of lists: no feed
        ("https://www.youtube.com/channel/UCtooShort", None),
        ("https://www.youtube.com/playlist?list=RDq3Ci-h945sbEYXpVlw7rJg", None),  # a mix: no public feed
        ("https://www.youtube.com/playlist?list=WL", None),
        ("https://www.youtube.com/watch?v=V15-xQ_7tYz&list=PLq3Ci-h945sbEYXpVlw7rJgAbCdEf0123", None),
        ("https://www.youtube.com/@LoopbackChannel", None),
        (f"https://www.notyoutube.com/channel/{CHANNEL_ID}", None),
        (f"ftp://www.youtube.com/channel/{CHANNEL_ID}", None),
        ("http://127.0.0.1:8000/feed.xml", None),
    ],
)
def test_derive_feed_url(url: str, feed_url: str | None) -> None:
    assert derive_feed_url(url) == feed_url


@pytest.mark.parametrize(
    ("url", "feed_url"),
    [
        (
            "https://www.youtube.com/@LoopbackChannel",
            f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL_ID}",
        ),
        (
            "https://www.youtube.com/@LoopbackChannel/videos",
            f"https://www.youtube.com/feeds/videos.xml?playlist_id=UULF{CHANNEL_ID[2:]}",
        ),
        ("https://www.youtube.com/user/loopback", f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL_ID}"),
        ("https://www.youtube.com/@LoopbackChannel/playlists", None),
    ],
)
def test_a_handle_has_a_feed_once_its_channel_id_is_known(url: str, feed_url: str | None) -> None:
    assert derive_feed_url(url) is None
    assert derive_feed_url(url, CHANNEL_ID) == feed_url
    assert derive_feed_url(url, "UCtooShort") is None, "only a well-formed id is used"


@pytest.mark.parametrize(
    ("url", "needed"),
    [
        ("https://www.youtube.com/@LoopbackChannel", True),
        ("https://www.youtube.com/@LoopbackChannel/", True),
        ("https://www.youtube.com/c/LoopbackChannel", True),
        ("https://www.youtube.com/user/loopback", True),
        ("https://www.youtube.com/@LoopbackChannel/videos", True),  # a tab: its uploads list needs the id too
        ("https://www.youtube.com/@LoopbackChannel/playlists", False),
        ("https://www.youtube.com/@", False),
        (f"https://www.youtube.com/channel/{CHANNEL_ID}", False),
        ("https://example.org/@someone", False),
    ],
)
def test_needs_channel_id(url: str, needed: bool) -> None:
    assert needs_channel_id(url) is needed


# --- conditional requests against a loopback server ---


def test_conditional_headers_send_only_what_the_last_read_gave() -> None:
    assert conditional_headers(None, None) == {}
    assert conditional_headers('"v1"', None) == {"If-None-Match": '"v1"'}
    assert conditional_headers('W/"v1"', "Sun, 29 Nov 2026 10:00:00 GMT") == {
        "If-None-Match": 'W/"v1"',
        "If-Modified-Since": "Sun, 29 Nov 2026 10:00:00 GMT",
    }
