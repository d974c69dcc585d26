"""The loopback feed server: validators on `/feed.xml`, conditional 304 answers, extra paths for quirk fixtures,
channel feeds, a delay per request, the counts of requests in flight, and a second site that throttles."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest

from playlist_cron.demo.feed import FeedItem, FeedServer, RequestCounts, make_items

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
SECOND_HOST = "127.0.0.2"  # Linux routes all of 127.0.0.0/8 to the loopback interface


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


def get_all_at_once(urls: list[str]) -> list[int]:
    """GET every URL at the same moment, a thread each; return the statuses in the order of `urls`."""
    statuses = [0] * len(urls)
    start = threading.Barrier(len(urls))

    def one(index: int) -> None:
        start.wait()
        statuses[index] = get(urls[index])[0]

    threads = [threading.Thread(target=one, args=(index,)) for index in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_channels_serve_feeds_of_their_own_items() -> None:
    with FeedServer(channels=3) as feed:
        assert feed.channel_urls == [f"{feed.base_url}/channel/{number}/feed" for number in (1, 2, 3)]
        status, headers, body = get(feed.channel_urls[1])
        assert (status, headers["Content-Type"]) == (200, "application/rss+xml; charset=utf-8")
        assert body == feed.channel_xml(2)
        assert body.count(b"<item>") == 15, "as many as a YouTube channel's feed lists"
        assert b"<title>Channel 2</title>" in body and b"channel00002-video-00015" in body
        assert b"channel00001-" not in body
        assert get(feed.feed_url)[0] == 200, "the one feed is still served beside them"
        for missing in ("/channel/0/feed", "/channel/4/feed", "/channel/two/feed", "/channel/2", "/channel/2/x"):
            assert get(feed.base_url + missing)[0] == 404, missing
        with pytest.raises(KeyError):
            feed.channel(4)


def test_each_channel_has_its_own_validators_and_answers_304() -> None:
    with FeedServer(channels=2, channel_items=3) as feed:
        first, second = (get(url)[1] for url in feed.channel_urls)
        assert first["ETag"] != second["ETag"]
        assert get(feed.channel_urls[0], **{"If-None-Match": first["ETag"]})[0] == 304
        assert get(feed.channel_urls[0], **{"If-None-Match": second["ETag"]})[0] == 200, "another channel's tag"
        assert get(feed.channel_urls[1], **{"If-Modified-Since": second["Last-Modified"]})[0] == 304
        feed.channel(2).items.insert(0, FeedItem("channel00002-new", "A new upload"))
        status, headers, body = get(feed.channel_urls[1], **{"If-None-Match": second["ETag"]})
        assert status == 200 and b"channel00002-new" in body and body.count(b"<item>") == 4
        assert headers["ETag"] != second["ETag"]
        assert get(feed.channel_urls[0], **{"If-None-Match": first["ETag"]})[0] == 304, "the other is unchanged"
        feed.settings.feed_validators = False
        assert "ETag" not in get(feed.channel_urls[0])[1], "feed_validators turns theirs off too"


def test_a_channel_item_media_is_its_enclosure() -> None:
    with FeedServer(channels=2, channel_items=2) as feed:
        item = feed.channel(2).items[0]
        url = feed.channel_media_url(2, item.guid)
        assert f"url={quoteattr(url)}".encode() in feed.channel_xml(2)
        status, _, body = get(url)
        assert (status, body) == (200, item.content)
        status, headers, body = get(url, Range="bytes=0-9")
        assert (status, headers["Content-Range"], body) == (206, f"bytes 0-9/{item.size_bytes}", item.content[:10])
        assert get(feed.channel_media_url(1, item.guid))[0] == 404, "another channel's item"
        assert get(feed.media_url(item.guid))[0] == 404, "not one of the one feed's items"


def test_delayed_requests_overlap_and_the_counts_see_them_in_flight() -> None:
    with FeedServer(channels=8, delay_s=0.5) as feed:
        started = time.monotonic()
        assert get_all_at_once(feed.channel_urls) == [200] * 8
        elapsed_s = time.monotonic() - started
        assert 0.5 <= elapsed_s < 8 * 0.5 / 2, "one after another would take 4 s"
        counts = feed.counts()
        assert (counts.in_flight, counts.max_in_flight, counts.total) == (0, 8, 8)
        assert counts.by_path == {f"/channel/{number}/feed": 1 for number in range(1, 9)}


def test_the_delay_holds_every_request_and_can_change_while_the_server_runs(feed: FeedServer) -> None:
    feed.settings.delay_s = 0.3
    for url in (feed.feed_url, feed.media_url("video-00001"), f"{feed.base_url}/missing"):
        started = time.monotonic()
        get(url)
        assert time.monotonic() - started >= 0.3, url
    feed.settings.delay_s = 0
    started = time.monotonic()
    get(feed.feed_url)
    assert time.monotonic() - started < 0.3


def test_a_download_is_in_flight_until_its_last_byte(feed: FeedServer) -> None:
    feed.settings.sending.clear()
    download = threading.Thread(target=get, args=(feed.media_url("video-00001"),))
    download.start()
    deadline = time.monotonic() + 10
    while feed.counts().in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert feed.counts().in_flight == 1, "held before its body"
    get(feed.feed_url)
    assert feed.counts().max_in_flight == 2, "a feed request beside it"
    feed.settings.sending.set()
    download.join()
    counts = feed.counts()
    assert (counts.in_flight, counts.max_in_flight, counts.total) == (0, 2, 2)
    assert counts.by_path == {"/media/video-00001.mp4": 1, "/feed.xml": 1}


def test_counts_keep_the_query_and_reset_to_what_is_in_flight(feed: FeedServer) -> None:
    get(f"{feed.feed_url}?playlist=1")
    get(f"{feed.feed_url}?playlist=1")
    get(feed.feed_url)
    assert feed.counts().by_path == {"/feed.xml?playlist=1": 2, "/feed.xml": 1}
    feed.reset_counts()
    assert feed.counts() == RequestCounts(in_flight=0, max_in_flight=0, total=0, by_path={})
    assert len(feed.requests) == 3, "the records are kept"
    get(feed.feed_url)
    assert feed.counts().total == 1


def test_requests_one_after_another_are_never_seen_in_flight_together() -> None:
    # Each on a new connection, so a new thread of the server's: before requests were counted out just ahead of their
    # last byte, the thread of one was often still counting it when the next arrived.
    with FeedServer(channels=1) as feed:
        for _ in range(300):
            assert get(feed.channel_urls[0])[0] == 200
            assert feed.counts().in_flight == 0
        assert feed.counts().max_in_flight == 1


def test_many_clients_connecting_at_once_are_all_in_flight_together() -> None:
    # A listen backlog of 5 (socketserver's default) drops most of 64 connections at once; they come back a second
    # later, after the first ones were answered.
    with FeedServer(channels=64, delay_s=1.0) as feed:
        assert get_all_at_once(feed.channel_urls) == [200] * 64
        assert feed.counts().max_in_flight == 64


def test_every_status_answers_every_path_with_that_status() -> None:
    with FeedServer(make_items(1), channels=1, every_status=429) as feed:
        paths = [feed.feed_url, feed.media_url("video-00001"), feed.channel_urls[0], f"{feed.base_url}/missing"]
        for url in paths:
            status, headers, _ = get(url, **{"If-None-Match": "*"})
            assert (status, headers["Retry-After"]) == (429, "60"), url
        assert feed.counts().total == 4
        feed.settings.every_status = None
        assert get(feed.channel_urls[0])[0] == 200


def second_site(**settings: object) -> FeedServer:
    """A FeedServer on 127.0.0.2; skips the test where that address is not on the loopback interface."""
    try:
        return FeedServer(host=SECOND_HOST, **settings)
    except OSError as error:
        pytest.skip(f"{SECOND_HOST} is not a loopback address here: {error}")


def test_two_sites_on_two_loopback_addresses_one_throttling() -> None:
    with FeedServer(channels=2) as first, second_site(channels=2, every_status=429) as second:
        assert (first.host, second.host) == ("127.0.0.1", SECOND_HOST)
        assert urllib.parse.urlsplit(second.channel_urls[0]).hostname == SECOND_HOST
        assert [get(url)[0] for url in first.channel_urls + second.channel_urls] == [200, 200, 429, 429]
        assert (first.counts().total, second.counts().total) == (2, 2), "each counts its own"
