"""The YouTube stand-in: real yt-dlp reaches it through `--proxy`, and it records what was asked of www.youtube.com."""

from __future__ import annotations

import http.client
import ssl
import time
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest
import yt_dlp
import yt_dlp.networking
from yt_dlp.networking.exceptions import HTTPError

from playlist_cron import failure_kinds
from playlist_cron.feeds import parse_feed
from youtube_stand_in import (
    Answer,
    Upload,
    YouTubeStandIn,
    _make_certificate,
    certificate_files,
    youtube_feed,
)

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
CHANNEL_ID = "UCq3Ci-h945sbEYXpVlw7rJg"
PLAYLIST_ID = "PLq3Ci-h945sbEYXpVlw7rJgAbCdEf0123"
NEWEST = datetime(2026, 11, 28, 17, 0, 5, tzinfo=timezone.utc)


def uploads(count: int, prefix: str = "V") -> list[Upload]:
    """`count` uploads, newest first, seven hours apart."""
    return [
        Upload(f"{prefix}{number:02d}-xQ_7tYz", f"Episode {number}", NEWEST - timedelta(hours=7 * (count - number)))
        for number in range(count, 0, -1)
    ]


def ydl(youtube: YouTubeStandIn) -> yt_dlp.YoutubeDL:
    return yt_dlp.YoutubeDL({**youtube.yt_dlp_params(), "quiet": True, "no_warnings": True})


def fetch(youtube: YouTubeStandIn, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """GET `url` with yt-dlp's networking through the stand-in; return (status, headers, body), errors included."""
    with ydl(youtube) as downloader:
        try:
            answer = downloader.urlopen(yt_dlp.networking.Request(url, headers=headers))
        except HTTPError as error:
            return error.status, dict(error.response.headers), error.response.read()
        with answer:
            return answer.status, dict(answer.headers), answer.read()


def tree(data: bytes) -> ElementTree.Element:
    return ElementTree.fromstring(data)  # noqa: S314 - our own fixtures and builder's output, no one else's XML


def shape(element: ElementTree.Element) -> list[tuple[str, tuple[str, ...]]]:
    """The element's tags and attribute names, depth first: what a feed's layout is, its values aside."""
    return [(node.tag, tuple(sorted(node.attrib))) for node in element.iter()]


def test_yt_dlp_args_name_the_proxy_and_skip_certificate_checks(youtube: YouTubeStandIn) -> None:
    assert youtube.yt_dlp_args() == ["--proxy", f"http://127.0.0.1:{youtube.port}", "--no-check-certificates"]
    assert youtube.yt_dlp_params() == {"proxy": youtube.proxy_url, "nocheckcertificate": True}


def test_channel_feed_through_yt_dlp_then_304_with_its_etag(youtube: YouTubeStandIn) -> None:
    url = youtube.set_channel_feed(CHANNEL_ID, uploads(3))
    assert url == f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL_ID}"

    status, headers, body = fetch(youtube, url)
    assert (status, headers["Content-Type"]) == (200, "application/atom+xml; charset=UTF-8")
    assert body == youtube.feeds[("channel_id", CHANNEL_ID)]
    assert [entry.id for entry in parse_feed(body, url).entries] == [
        "yt:video:V03-xQ_7tYz",
        "yt:video:V02-xQ_7tYz",
        "yt:video:V01-xQ_7tYz",
    ]

    with ydl(youtube) as downloader, pytest.raises(HTTPError) as raised:
        downloader.urlopen(yt_dlp.networking.Request(url, headers={"If-None-Match": headers["ETag"]}))
    assert raised.value.status == 304
    assert raised.value.response.read() == b""
    assert raised.value.response.headers["ETag"] == headers["ETag"]

    seen = youtube.requests_to("/feeds/")
    assert [(r.method, r.scheme, r.host, r.path, r.status) for r in seen] == [
        ("GET", "https", "www.youtube.com", f"/feeds/videos.xml?channel_id={CHANNEL_ID}", 200),
        ("GET", "https", "www.youtube.com", f"/feeds/videos.xml?channel_id={CHANNEL_ID}", 304),
    ]
    assert (seen[0].header("if-none-match"), seen[1].header("If-None-Match")) == (None, headers["ETag"])
    assert youtube.tunnels == ["www.youtube.com:443", "www.youtube.com:443"]


def test_if_modified_since_gets_a_304_and_a_new_upload_a_200_with_new_validators(youtube: YouTubeStandIn) -> None:
    url = youtube.set_channel_feed(CHANNEL_ID, uploads(2))
    first = fetch(youtube, url)[1]
    assert fetch(youtube, url, **{"If-Modified-Since": first["Last-Modified"]})[0] == 304

    newer = Upload("NEW-xQ_7tYz", "A new upload", NEWEST + timedelta(hours=1))
    youtube.set_channel_feed(CHANNEL_ID, [newer, *uploads(2)])
    status, headers, body = fetch(youtube, url, **{"If-None-Match": first["ETag"]})
    assert status == 200 and b"<yt:videoId>NEW-xQ_7tYz</yt:videoId>" in body
    assert headers["ETag"] != first["ETag"]
    assert parsedate_to_datetime(headers["Last-Modified"]) > parsedate_to_datetime(first["Last-Modified"])
    assert fetch(youtube, url, **{"If-Modified-Since": first["Last-Modified"]})[0] == 200
    assert fetch(youtube, url, **{"If-None-Match": headers["ETag"]})[0] == 304


def test_playlist_feed_is_served_at_its_playlist_id(youtube: YouTubeStandIn) -> None:
    url = youtube.set_playlist_feed(PLAYLIST_ID, uploads(2, prefix="P"), title="Loopback & Friends Playlist")
    assert url == f"https://www.youtube.com/feeds/videos.xml?playlist_id={PLAYLIST_ID}"
    status, _, body = fetch(youtube, url)
    assert status == 200
    feed = parse_feed(body, url)
    assert (feed.title, [entry.id for entry in feed.entries]) == (
        "Loopback & Friends Playlist",
        ["yt:video:P02-xQ_7tYz", "yt:video:P01-xQ_7tYz"],
    )
    assert fetch(youtube, YouTubeStandIn.feed_url("channel_id", PLAYLIST_ID))[0] == 404, "kinds are kept apart"


def test_unknown_channel_is_404_and_feed_status_overrides(youtube: YouTubeStandIn) -> None:
    assert fetch(youtube, YouTubeStandIn.feed_url("channel_id", "UCunknown"))[0] == 404
    url = youtube.set_channel_feed(CHANNEL_ID, uploads(1))
    for status in (404, 429, 500):
        youtube.feed_status[("channel_id", CHANNEL_ID)] = status
        answered, headers, _ = fetch(youtube, url, **{"If-None-Match": "*"})
        assert answered == status and "ETag" not in headers
    del youtube.feed_status[("channel_id", CHANNEL_ID)]
    assert fetch(youtube, url)[0] == 200
    assert [r.status for r in youtube.requests_to("/feeds/")] == [404, 404, 429, 500, 200]


def test_other_paths_get_the_default_404_or_a_configured_answer(youtube: YouTubeStandIn) -> None:
    status, headers, body = fetch(youtube, "https://www.youtube.com/watch?v=abc")
    assert (status, headers["Content-Type"]) == (404, "text/html; charset=utf-8") and b"Not Found" in body
    youtube.answers["/watch?v=abc"] = Answer(200, b"<html>the page</html>")
    youtube.answers["/robots.txt"] = Answer(200, b"User-agent: *", "text/plain", {"X-Test": "yes"})
    assert fetch(youtube, "https://www.youtube.com/watch?v=abc")[::2] == (200, b"<html>the page</html>")
    assert fetch(youtube, "https://www.youtube.com/watch?v=other")[0] == 404, "an answer for a path with query is exact"
    status, headers, body = fetch(youtube, "https://www.youtube.com/robots.txt?any=query")
    assert (status, headers["X-Test"], body) == (200, "yes", b"User-agent: *")
    youtube.default_answer = Answer(503, b"down")
    assert fetch(youtube, "https://www.youtube.com/")[0] == 503


def test_plain_http_proxy_requests_and_other_hosts_are_served_and_recorded(youtube: YouTubeStandIn) -> None:
    url = youtube.set_channel_feed(CHANNEL_ID, uploads(1))
    assert fetch(youtube, url.replace("https://", "http://"))[0] == 200
    assert fetch(youtube, "https://i.ytimg.com/vi/x/hqdefault.jpg")[0] == 404
    assert [(r.scheme, r.host, r.path) for r in youtube.requests] == [
        ("http", "www.youtube.com", f"/feeds/videos.xml?channel_id={CHANNEL_ID}"),
        ("https", "i.ytimg.com", "/vi/x/hqdefault.jpg"),
    ]
    assert youtube.requests_to("/vi/") == [], "requests_to looks at www.youtube.com unless told"
    assert len(youtube.requests_to("/vi/", host=None)) == 1
    youtube.clear_requests()
    assert (youtube.requests, youtube.tunnels) == ([], [])


def test_a_tunnel_is_kept_alive_and_its_certificate_is_for_www_youtube_com(youtube: YouTubeStandIn) -> None:
    certificate, _ = certificate_files()
    context = ssl.create_default_context(cafile=str(certificate))  # verifies the chain and the name
    connection = http.client.HTTPSConnection("127.0.0.1", youtube.port, context=context, timeout=30)
    connection.set_tunnel("www.youtube.com", 443)
    url = youtube.set_channel_feed(CHANNEL_ID, uploads(1))
    try:
        for _ in range(2):
            connection.request("GET", url.removeprefix("https://www.youtube.com"))
            answer = connection.getresponse()
            assert (answer.status, answer.read()) == (200, youtube.feeds[("channel_id", CHANNEL_ID)])
        connection.request("HEAD", "/watch?v=abc")
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (404, b"")
    finally:
        connection.close()
    assert youtube.tunnels == ["www.youtube.com:443"], "three requests, one tunnel"
    assert [r.method for r in youtube.requests] == ["GET", "GET", "HEAD"]


def test_youtube_extractor_fails_fast_on_the_404_watch_page_as_one_videos_failure(youtube: YouTubeStandIn) -> None:
    started_s = time.monotonic()
    with ydl(youtube) as downloader, pytest.raises(yt_dlp.utils.DownloadError) as raised:
        downloader.extract_info("https://www.youtube.com/watch?v=dQw4w9WgXcQ", download=False)
    took_s = time.monotonic() - started_s
    error = raised.value

    asked = [(r.method, r.path.split("?")[0], r.status) for r in youtube.requests]
    print(f"yt-dlp {yt_dlp.version.__version__}: {took_s:.2f} s, {asked}, {error!r}, exc_info={error.exc_info[:2]}")
    assert took_s < 10
    assert youtube.watched_video_ids() == ["dQw4w9WgXcQ"] * 4, "the page, then three extractor retries"
    assert youtube.requests_to("/watch?")[0].path == "/watch?v=dQw4w9WgXcQ&bpctr=9999999999&has_verified=1"
    assert {r.host for r in youtube.requests} == {"www.youtube.com"}
    assert {path for _, path, _ in asked} == {"/watch", "/youtubei/v1/next"}
    assert all(status == 404 for _, _, status in asked)
    cause = error.exc_info[1]
    assert isinstance(cause, HTTPError) and cause.status == 404
    assert failure_kinds.classify(error).kind == failure_kinds.OTHER, "a 404 is the video's failure, not an outage"


def test_feed_builder_gives_the_published_shape() -> None:
    fixture_bytes = (FIXTURES / "youtube_channel.xml").read_bytes()
    fixture = parse_feed(fixture_bytes, "https://www.youtube.com/feeds/videos.xml")
    same = [
        Upload(entry.video_id or "", entry.title or "", datetime.fromtimestamp(entry.published_s or 0, timezone.utc))
        for entry in fixture.entries
    ]
    built_bytes = youtube_feed(CHANNEL_ID, "Loopback Channel", same)
    assert shape(tree(built_bytes)) == shape(tree(fixture_bytes))
    built = parse_feed(built_bytes, "https://www.youtube.com/feeds/videos.xml")
    assert (built.kind, built.title) == (fixture.kind, fixture.title) == ("youtube", "Loopback Channel")
    assert [entry._replace(updated_s=None) for entry in built.entries] == [
        entry._replace(updated_s=None) for entry in fixture.entries
    ]


def test_feed_builder_gives_the_playlist_shape_and_takes_plain_tuples() -> None:
    fixture = tree((FIXTURES / "youtube_playlist.xml").read_bytes())
    built = tree(
        youtube_feed(
            CHANNEL_ID,
            "Loopback & Friends Playlist",
            [(upload.video_id, upload.title, upload.published) for upload in uploads(15, prefix="P")],
            playlist_id=PLAYLIST_ID,
            author="Loopback Channel",
        )
    )
    assert shape(built) == shape(fixture)
    texts = ["{http://www.w3.org/2005/Atom}id", "{http://www.youtube.com/xml/schemas/2015}playlistId"]
    for tag in texts:
        assert [node.text for node in built.iter(tag)] == [node.text for node in fixture.iter(tag)]


def test_without_openssl_the_reason_is_given() -> None:
    reason = _make_certificate.__wrapped__(openssl="no-such-openssl-command")
    assert isinstance(reason, str) and "openssl" in reason


def test_if_modified_since_in_the_future_of_the_feed_is_not_modified(youtube: YouTubeStandIn) -> None:
    url = youtube.set_channel_feed(CHANNEL_ID, uploads(1))
    later = format_datetime(datetime(2100, 1, 1, tzinfo=timezone.utc), usegmt=True)
    assert fetch(youtube, url, **{"If-Modified-Since": later})[0] == 304
