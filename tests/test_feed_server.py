"""The loopback feed server: validators on `/feed.xml`, conditional 304 answers, and extra paths for quirk fixtures."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest

from playlist_cron.demo.feed import FeedItem, FeedServer, make_items

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    """Three videos on a feed that sends validators (the shared `feed` fixture's server sends none)."""
    with FeedServer(make_items(3), feed_validators=True) as server:
        yield server


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """GET `url` with urllib; return (status, headers, body), an HTTP error status included."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def test_feed_answers_carry_an_etag_and_a_last_modified(feed: FeedServer) -> None:
    status, headers, body = get(feed.feed_url)
    assert status == 200
    assert body == feed.feed_xml()
    assert headers["ETag"].startswith('"') and headers["ETag"].endswith('"')
    assert parsedate_to_datetime(headers["Last-Modified"]).tzinfo is not None
    again = get(feed.feed_url)[1]
    assert (again["ETag"], again["Last-Modified"]) == (headers["ETag"], headers["Last-Modified"]), "same body, same"


def test_a_matching_if_none_match_gets_a_304_without_a_body(feed: FeedServer) -> None:
    etag = get(feed.feed_url)[1]["ETag"]
    status, headers, body = get(feed.feed_url, **{"If-None-Match": etag})
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    assert [(r.status, r.if_none_match, r.if_modified_since) for r in feed.requests_for("/feed.xml")] == [
        (200, None, None),
        (304, etag, None),
    ]


def test_if_none_match_may_list_several_tags_or_be_weak(feed: FeedServer) -> None:
    etag = get(feed.feed_url)[1]["ETag"]
    assert get(feed.feed_url, **{"If-None-Match": f'"other", W/{etag}'})[0] == 304
    assert get(feed.feed_url, **{"If-None-Match": "*"})[0] == 304
    assert get(feed.feed_url, **{"If-None-Match": '"other"'})[0] == 200


def test_if_modified_since_not_older_than_last_modified_gets_a_304(feed: FeedServer) -> None:
    last_modified = get(feed.feed_url)[1]["Last-Modified"]
    assert get(feed.feed_url, **{"If-Modified-Since": last_modified})[0] == 304
    later = format_datetime(parsedate_to_datetime(last_modified).replace(year=2100), usegmt=True)
    assert get(feed.feed_url, **{"If-Modified-Since": later})[0] == 304
    earlier = format_datetime(parsedate_to_datetime(last_modified).replace(year=2000), usegmt=True)
    assert get(feed.feed_url, **{"If-Modified-Since": earlier})[0] == 200
    assert get(feed.feed_url, **{"If-Modified-Since": "not a date"})[0] == 200
    recorded = [r.if_modified_since for r in feed.requests_for("/feed.xml")]
    assert recorded == [None, last_modified, later, earlier, "not a date"]


def test_if_none_match_wins_over_if_modified_since(feed: FeedServer) -> None:
    last_modified = get(feed.feed_url)[1]["Last-Modified"]
    headers = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert get(feed.feed_url, **headers)[0] == 200


def test_a_change_in_the_items_gives_a_new_etag_and_a_later_last_modified(feed: FeedServer) -> None:
    first = get(feed.feed_url)[1]
    feed.settings.items.insert(0, FeedItem("video-new", "A new upload"))
    status, headers, body = get(feed.feed_url, **{"If-None-Match": first["ETag"]})
    assert status == 200 and b"video-new" in body
    assert headers["ETag"] != first["ETag"]
    assert parsedate_to_datetime(headers["Last-Modified"]) > parsedate_to_datetime(first["Last-Modified"])
    assert get(feed.feed_url, **{"If-Modified-Since": first["Last-Modified"]})[0] == 200, "changed since then"
    assert get(feed.feed_url, **{"If-None-Match": headers["ETag"]})[0] == 304


def test_a_replaced_feed_body_is_validated_too(feed: FeedServer) -> None:
    feed.settings.feed_body = b"not xml at all"
    status, headers, body = get(feed.feed_url)
    assert (status, body) == (200, b"not xml at all")
    assert get(feed.feed_url, **{"If-None-Match": headers["ETag"]})[0] == 304


def test_a_server_sends_validators_unless_told_not_to() -> None:
    with FeedServer(make_items(2)) as feed:
        assert {"ETag", "Last-Modified"} <= set(get(feed.feed_url)[1]), "as real feed servers do"
        feed.settings.feed_validators = False
        status, headers, _ = get(feed.feed_url)
        assert status == 200
        assert "ETag" not in headers and "Last-Modified" not in headers
        conditional = {"If-None-Match": "*", "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
        assert get(feed.feed_url, **conditional)[0] == 200, "a server without validators never answers 304"
        assert feed.requests_for("/feed.xml")[-1].if_none_match == "*", "what was asked is still recorded"
        feed.settings.feed_validators = True
        assert get(feed.feed_url, **conditional)[0] == 304, "turned on while it runs"


@pytest.mark.parametrize("feed_status", [404, 500, 429])
def test_an_error_status_carries_no_validators_and_ignores_conditions(feed_status: int) -> None:
    with FeedServer(make_items(1), feed_status=feed_status, feed_validators=True) as feed:
        status, headers, _ = get(feed.feed_url, **{"If-None-Match": "*"})
        assert status == feed_status
        assert "ETag" not in headers and "Last-Modified" not in headers


def test_the_atom_feed_is_validated_as_well() -> None:
    with FeedServer(make_items(2), feed_format="atom", feed_validators=True) as feed:
        status, headers, body = get(feed.feed_url)
        assert (status, headers["Content-Type"]) == (200, "application/atom+xml; charset=utf-8")
        assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">')
        assert get(feed.feed_url, **{"If-None-Match": headers["ETag"]})[0] == 304


def test_an_extra_path_serves_the_given_bytes_and_type(feed: FeedServer) -> None:
    quirk = (FIXTURES / "cp1251.xml").read_bytes()
    feed.extra_paths["/other.xml"] = (quirk, "application/rss+xml")
    status, headers, body = get(f"{feed.base_url}/other.xml?ignored=1")
    assert (status, headers["Content-Type"], body) == (200, "application/rss+xml", quirk)
    assert "ETag" not in headers, "an extra path is served as given, without validators"
    assert get(f"{feed.base_url}/missing.xml")[0] == 404
    assert [r.path for r in feed.requests_for("/other.xml")] == ["/other.xml?ignored=1"]


def test_existing_record_fields_keep_working(feed: FeedServer) -> None:
    get(feed.media_url("video-00001"), Range="bytes=0-9")
    record = feed.requests_for("/media/")[0]
    assert (record.method, record.range_header, record.status) == ("GET", "bytes=0-9", 206)
    assert (record.if_none_match, record.if_modified_since) == (None, None)
