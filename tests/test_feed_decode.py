"""Decoding and repairing feeds, one rule at a time; and no bytes make the parser raise anything but FeedError."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from playlist_cron import feed_decode
from playlist_cron.feeds import Feed, FeedError, parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
BASE_URL = "http://127.0.0.1:8000/feed.xml"


def rss(title: str, declaration: str = '<?xml version="1.0"?>') -> str:
    return (
        f"{declaration}<rss version='2.0'><channel><title>{title}</title>"
        "<item><guid>one</guid><title>One</title><enclosure url='http://x/1.mp3' type='audio/mpeg'/></item>"
        "</channel></rss>"
    )


# --- decoding: a BOM, the HTTP charset, the declaration, UTF-8, Windows-1252 ---


@pytest.mark.parametrize(
    ("body", "content_type", "title"),
    [
        (b"\xef\xbb\xbf" + rss("Café").encode(), "text/xml; charset=windows-1251", "Café"),  # the BOM wins
        (b"\xff\xfe" + rss("日本").encode("utf-16-le"), None, "日本"),
        (b"\xfe\xff" + rss("日本").encode("utf-16-be"), "application/xml; charset=utf-8", "日本"),
        (rss("Выпуск").encode("cp1251"), "application/rss+xml; charset=windows-1251", "Выпуск"),  # undeclared
        (rss("Выпуск").encode("cp1251"), 'text/xml; Charset="WINDOWS-1251"', "Выпуск"),
        (  # the HTTP charset before the declaration
            rss("Выпуск", '<?xml version="1.0" encoding="koi8-r"?>').encode("cp1251"),
            "text/xml; charset=windows-1251",
            "Выпуск",
        ),
        (  # an HTTP charset that does not fit the bytes is passed over
            rss("Выпуск", '<?xml version="1.0" encoding="windows-1251"?>').encode("cp1251"),
            "text/xml; charset=utf-8",
            "Выпуск",
        ),
        (rss("中文", '<?xml version="1.0" encoding="gb18030"?>').encode("gb18030"), None, "中文"),
        (rss("中文", '<?xml version="1.0" encoding="GBK"?>').encode("gbk"), "text/xml; charset=no-such-codec", "中文"),
        (rss("日本", '<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16-be"), None, "日本"),  # no BOM
        (rss("日本", '<?xml version="1.0" encoding="ucs-2"?>').encode("utf-16-le"), None, "日本"),
        (rss("日本", '<?xml version="1.0" encoding="utf-32"?>').encode("utf-32-le"), None, "日本"),
        (rss("Café", '<?xml version="1.0" encoding="cp500"?>').encode("cp500"), None, "Café"),  # EBCDIC
        (rss("Café", '<?xml version="1.0" encoding="437"?>').encode("cp437"), None, "Café"),  # a name expat refuses
        # A declared UTF-16 in single bytes is a lie the bytes tell apart: read as UTF-8.
        (rss("Café", '<?xml version="1.0" encoding="utf-16"?>').encode(), None, "Café"),
        (rss("Café", '<?xml version="1.0" encoding="no-such-codec"?>').encode(), None, "Café"),
        (rss("Café", '<?xml version="1.0" encoding="base64"?>').encode(), None, "Café"),  # no text encoding
    ],
)
def test_a_feed_is_decoded_by_the_first_of_bom_http_charset_declaration_utf8_that_fits(
    body: bytes, content_type: str | None, title: str
) -> None:
    feed = parse_feed(body, BASE_URL, content_type)
    assert (feed.title, feed.repairs) == (title, ())
    assert [entry.id for entry in feed.entries] == ["one"]


def test_bytes_that_nothing_declared_fits_are_read_as_windows_1252_and_that_is_a_repair() -> None:
    body = rss("Café “quoted” – Noël").encode("cp1252")
    feed = parse_feed(body, BASE_URL)
    assert (feed.title, feed.repairs) == ("Café “quoted” – Noël", ("undeclared_encoding",))
    declared_utf8 = rss("Café", '<?xml version="1.0" encoding="utf-8"?>').encode("latin-1")
    assert parse_feed(declared_utf8, BASE_URL, "text/xml; charset=utf-8").repairs == ("undeclared_encoding",)


def test_http_charset_is_read_from_the_content_type_parameters() -> None:
    assert feed_decode.http_charset("application/rss+xml; charset=utf-8") == "utf-8"
    assert feed_decode.http_charset('text/xml;charset="GB2312"') == "GB2312"
    assert feed_decode.http_charset("text/xml; format=flowed; charset=koi8-r") == "koi8-r"
    assert feed_decode.http_charset("text/xml") is None
    assert feed_decode.http_charset(None) is None


def test_a_clean_utf8_feed_goes_to_expat_as_its_bytes() -> None:
    body = b"\xef\xbb\xbf\n\n" + rss("Café").encode()
    assert feed_decode.expat_bytes(body, "utf-8") == rss("Café").encode()
    assert feed_decode.expat_bytes(body, None) is not None
    assert feed_decode.expat_bytes(body, "windows-1251") is None, "the HTTP charset says otherwise: decode first"
    assert feed_decode.expat_bytes(rss("x", '<?xml version="1.0" encoding="gbk"?>').encode(), None) is None
    assert feed_decode.expat_bytes(b"\xff\xfe" + rss("x").encode("utf-16-le"), None) is None


# --- repairs ---


@pytest.mark.parametrize(
    ("title_xml", "title", "repairs"),
    [
        ("A&nbsp;b &eacute;t&eacute; &hellip; &amp; &#233;", "A\xa0b été … & é", ("html_entity",)),
        ("Q&A", "Q&A", ("bare_ampersand",)),
        ("AT&T &copy 2026", "AT&T &copy 2026", ("bare_ampersand",)),
        ("&unknownname; x", "&unknownname; x", ("bare_ampersand",)),
        ("a\x01b\x1b", "ab", ("control_character",)),
        ("a&#1;b", "ab", ("control_character",)),
        ("caf&#XE9;", "café", ("html_entity",)),  # HTML's upper-case X
        ("<![CDATA[&nbsp; & kept]]> &nbsp;x", "&nbsp; & kept \xa0x", ("html_entity",)),
    ],
)
def test_defects_that_are_safe_to_repair_are_repaired_and_named(
    title_xml: str, title: str, repairs: tuple[str, ...]
) -> None:
    feed = parse_feed(rss(title_xml).encode(), BASE_URL)
    assert (feed.title, feed.repairs) == (title, repairs)
    assert [entry.id for entry in feed.entries] == ["one"]


def test_a_bare_ampersand_in_an_attribute_is_kept_in_the_link() -> None:
    body = rss("x").replace("http://x/1.mp3", "http://x/1.mp3?a=1&b=2").encode()
    feed = parse_feed(body, BASE_URL)
    assert (feed.entries[0].media_url, feed.repairs) == ("http://x/1.mp3?a=1&b=2", ("bare_ampersand",))


@pytest.mark.parametrize(
    "junk",
    [
        "PHP Warning:  Undefined variable $x in /srv/feed.php on line 3\n",
        "<br />\n<b>Notice</b>:  Undefined index: id in <b>/srv/feed.php</b> on line <b>4</b><br />\n",
    ],
)
def test_junk_before_the_document_is_dropped(junk: str) -> None:
    feed = parse_feed((junk + rss("Feed")).encode(), BASE_URL)
    assert (feed.title, len(feed.entries), feed.repairs) == ("Feed", 1, ("junk_before_root",))


def test_a_comment_before_the_declaration_is_junk() -> None:
    feed = parse_feed(("<!-- generated -->\n" + rss("Feed")).encode(), BASE_URL)
    assert (feed.title, len(feed.entries), feed.repairs) == ("Feed", 1, ("junk_before_root",))


def test_junk_before_a_declaration_of_an_encoding_expat_cannot_spell_is_dropped() -> None:
    body = ("PHP Notice: x\n" + rss("Café", '<?xml version="1.0" encoding="437"?>')).encode("cp437")
    assert parse_feed(body, BASE_URL).title == "Café"


def test_junk_after_the_document_is_ignored() -> None:
    feed = parse_feed((rss("Feed") + "\n<br />\n<b>Warning</b>: oops").encode(), BASE_URL)
    assert (feed.title, len(feed.entries), feed.repairs) == ("Feed", 1, ("junk_after_root",))


def test_a_comment_and_a_doctype_before_the_root_are_no_junk() -> None:
    body = '<?xml version="1.0"?><!-- made by hand --><!DOCTYPE rss><rss><channel><title>Q&A</title></channel></rss>'
    assert parse_feed(body.encode(), BASE_URL).repairs == ("bare_ampersand",)


@pytest.mark.parametrize("cut_after", ["<item><guid>two</guid><title>Tw", "<item><guid>two</gu", "<item>", "</item>"])
def test_a_body_cut_short_keeps_the_entries_it_completed(cut_after: str) -> None:
    text = rss("Feed").replace("</channel>", "<item><guid>two</guid><title>Two</title></item></channel>")
    cut = text.index("<item><guid>two") + len(cut_after) if cut_after != "</item>" else text.index("</item>") + 7
    feed = parse_feed(text[:cut].encode(), BASE_URL)
    assert ([entry.id for entry in feed.entries], feed.repairs) == (["one"], ("truncated",))


def test_a_body_cut_inside_a_multi_byte_character_keeps_its_complete_entries() -> None:
    text = rss("Feed").replace("</channel>", "<item><guid>two</guid><title>日本語</title></item></channel>")
    body = text.encode()
    cut = body.index("日本語".encode()) + 4
    assert [entry.id for entry in parse_feed(body[:cut], BASE_URL).entries] == ["one"]


def test_atom_without_its_namespace_is_read_as_atom() -> None:
    body = (
        b"<feed><title>Bare</title><entry><id>e-1</id><title>One</title>"
        b'<link rel="enclosure" href="http://x/1.mp4" type="video/mp4"/><updated>2026-11-01T00:00:00Z</updated>'
        b"</entry></feed>"
    )
    feed = parse_feed(body, BASE_URL)
    assert (feed.kind, feed.title, feed.repairs) == ("atom", "Bare", ("atom_without_namespace",))
    assert [(entry.id, entry.title, entry.media_url) for entry in feed.entries] == [("e-1", "One", "http://x/1.mp4")]


def test_entity_declarations_are_refused_even_when_the_feed_needs_repairs() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "x">]>'
        b"<rss><channel><title>&a; &nbsp; Q&A</title></channel></rss>"
    )
    with pytest.raises(FeedError) as caught:
        parse_feed(body, BASE_URL)
    assert caught.value.reason == "entity_declaration"


def test_a_defect_in_the_middle_that_no_repair_mends_is_not_xml_with_expats_words() -> None:
    with pytest.raises(FeedError) as caught:
        parse_feed(b"<rss><channel><item></channel></rss>", BASE_URL)
    assert (caught.value.reason, caught.value.detail) == ("not_xml", "mismatched tag at line 1")


# --- enclosures ---


@pytest.mark.parametrize(
    ("enclosures", "media_url"),
    [
        ('<enclosure url="http://x/a.mp3" type="x-audio/mp3"/>', "http://x/a.mp3"),
        ('<enclosure url="http://x/get?id=7" type="application/octet-stream"/>', "http://x/get?id=7"),
        ('<enclosure url="http://x/get?id=7"/>', "http://x/get?id=7"),
        ('<enclosure url="http://x/c.jpg"/><enclosure url="http://x/get?id=7"/>', "http://x/get?id=7"),
        ('<enclosure url="http://x/c" type="image/png"/><enclosure url="http://x/a.bin"/>', "http://x/a.bin"),
        ('<enclosure url="http://x/a.pdf" type="application/pdf"/><enclosure url="http://x/b.ogg"/>', "http://x/b.ogg"),
        ('<enclosure url="http://x/c.webp"/>', None),  # an image alone: the page link
        ('<media:content url="http://x/c.png" medium="image"/>', None),
    ],
)
def test_the_media_is_the_first_enclosure_that_is_no_image(enclosures: str, media_url: str | None) -> None:
    body = (
        '<rss xmlns:media="http://search.yahoo.com/mrss/"><channel><item><guid>g</guid>'
        f"<link>http://x/page</link>{enclosures}</item></channel></rss>"
    )
    [entry] = parse_feed(body.encode(), BASE_URL).entries
    assert (entry.media_url, entry.page_url) == (media_url, "http://x/page")


# --- no bytes make it raise anything else ---


@pytest.mark.parametrize(
    "item",
    [
        '<item xml:base="http://[::1"><guid>a</guid><link>page</link></item>',
        "<item><guid>a</guid><link>http://[x/</link></item>",
        '<item><guid>a</guid><enclosure url="http://[x/a.mp3"/></item>',
    ],
)
def test_a_link_that_is_no_url_is_no_link_rather_than_an_error(item: str) -> None:
    """Before: urljoin's ValueError ("Invalid IPv6 URL") came out of parse_feed."""
    [entry] = parse_feed(f"<rss><channel>{item}</channel></rss>".encode(), BASE_URL).entries
    assert entry.id == "a" and entry.media_url is None


def _seeds() -> list[bytes]:
    seeds = [path.read_bytes() for path in sorted(FIXTURES.glob("*.xml")) if "laughs" not in path.name]
    seeds.append(rss("中文", '<?xml version="1.0" encoding="gbk"?>').encode("gbk"))
    seeds.append(b"\xff\xfe" + rss("x").encode("utf-16-le"))
    return seeds


def _mutated(rng: random.Random, seed: bytes) -> bytes:
    body = bytearray(seed)
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        at = rng.randrange(len(body) + 1)
        if choice < 0.3 and body:
            body[min(at, len(body) - 1)] = rng.randrange(256)
        elif choice < 0.5:
            body[at:at] = rng.choice(
                [
                    b"&",
                    b"&nbsp;",
                    b"&#0;",
                    b"\x00",
                    b"<",
                    b"]]>",
                    b"<![CDATA[",
                    b"\xff\xfe",
                    b"encoding='gbk'",
                    b"&#x1F;",
                ]
            )
        elif choice < 0.7:
            del body[at : at + rng.randint(1, 64)]
        elif choice < 0.8:
            body = body[:at]
        elif choice < 0.9:
            body[at:at] = rng.choice(
                [b'xml:base="http://[::1"', b' href="http://[x"', b"<pubDate>Fri, 31 Dec 9999 23:59:59 -2359</pubDate>"]
            )
        else:
            body[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(body)


def test_no_bytes_make_the_parser_raise_anything_but_a_feed_error() -> None:
    """Mutations of every fixture (flipped bytes, cuts, stray references, foreign encodings, broken URLs and dates)
    and random bytes, under a fixed seed: each gives a Feed or a FeedError."""
    rng = random.Random(20261204)
    seeds = _seeds()
    content_types = [
        None,
        "text/xml; charset=utf-8",
        "text/xml; charset=gbk",
        "text/xml; charset=utf-16",
        "x; charset=",
    ]
    outcomes = {"feed": 0, "error": 0}
    for number in range(3000):
        if number % 10 == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        else:
            body = _mutated(rng, rng.choice(seeds))
        try:
            result = parse_feed(body, BASE_URL, rng.choice(content_types))
        except FeedError:
            outcomes["error"] += 1
        except Exception as error:  # the test's point: anything else is a bug, shown with its input
            pytest.fail(f"{type(error).__name__}: {error} for {body[:300]!r}")
        else:
            assert isinstance(result, Feed)
            outcomes["feed"] += 1
    assert outcomes["feed"] > 500 and outcomes["error"] > 100, outcomes
