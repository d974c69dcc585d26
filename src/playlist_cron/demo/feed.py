"""A loopback RSS feed server: the demo's playlist and the tests' stand-in for a real site."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import socketserver
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from xml.sax.saxutils import escape, quoteattr

CHUNK_BYTES = 16 * 1024
BOT_CHECK_PAGE = (
    b"<html><body><h1>Sign in to confirm you're not a bot</h1><p>This helps protect our community.</p></body></html>"
)


def media_bytes(guid: str, size_bytes: int) -> bytes:
    """Given an item's guid and size, return its deterministic content."""
    block = hashlib.sha256(guid.encode()).digest() * 64  # 2 KiB of repeating, guid-specific bytes
    repeats = size_bytes // len(block) + 1
    return (block * repeats)[:size_bytes]


@dataclass
class FeedItem:
    """One `<item>` of the feed and the file its enclosure points to."""

    guid: str
    title: str
    size_bytes: int = 200_000
    published: datetime | None = None
    media_status: int = 200  # 404 or 403 stands in for a removed or private video

    @property
    def content(self) -> bytes:
        return media_bytes(self.guid, self.size_bytes)


@dataclass
class RequestRecord:
    """What the server saw of one request."""

    method: str
    path: str
    range_header: str | None
    status: int
    at: float
    if_none_match: str | None = None
    if_modified_since: str | None = None


@dataclass
class FeedSettings:
    """Behaviour that a test may change while the server runs."""

    bytes_per_second: int | None = None  # None: as fast as the socket takes it
    stall_after_bytes: int | None = None  # stop sending (but keep the connection) after this many body bytes
    # Media bodies are sent only while this is set: clear it to hold every download where it is, set it to go on.
    sending: threading.Event = field(default_factory=lambda: _set(threading.Event()))
    feed_status: int = 200
    feed_body: bytes | None = None  # replaces the generated feed, e.g. to serve something that is not XML
    media_status_override: int | None = None  # e.g. 429 for every media request
    bot_check: bool = False  # answer every request with a "confirm you're not a bot" page
    title: str = "Loopback Channel"
    feed_format: str = "rss"  # or "atom", a format yt-dlp does not read as a playlist
    # Send ETag and Last-Modified, and answer 304 to a request they match, as real feed servers do.
    feed_validators: bool = True
    items: list[FeedItem] = field(default_factory=list)
    # Every request waits this long before it is answered, as a far server's round trip makes it; requests overlap.
    delay_s: float = 0.0
    every_status: int | None = None  # answer every request with this status, e.g. 429 for a site that throttles
    # Channel feeds at /channel/1/feed to /channel/<channels>/feed, each of `channel_items` items of its own.
    channels: int = 0
    channel_items: int = 15  # as a YouTube channel's feed lists its 15 newest videos


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


class FeedValidators:
    """The ETag and Last-Modified of a body that changes while a server runs: a new body gets a new pair.

    The ETag is a digest of the body. Last-Modified is the second the body was first served, and always later than
    the one before it, even when the body changes twice within a second, so If-Modified-Since alone sees the change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._etag: str | None = None
        self._last_modified_s = 0

    def for_body(self, body: bytes) -> tuple[str, str]:
        """Given the body about to be served, return its (ETag, Last-Modified) header values."""
        etag = f'"{hashlib.sha256(body).hexdigest()[:24]}"'
        with self._lock:
            if etag != self._etag:
                self._etag = etag
                self._last_modified_s = max(int(time.time()), self._last_modified_s + 1)
            last_modified = datetime.fromtimestamp(self._last_modified_s, tz=timezone.utc)
        return etag, format_datetime(last_modified, usegmt=True)


@dataclass
class Channel:
    """One of a server's channel feeds: its items (change them to publish or remove) and its validators."""

    number: int
    items: list[FeedItem]
    validators: FeedValidators = field(default_factory=FeedValidators)


@dataclass(frozen=True)
class RequestCounts:
    """A snapshot of what a server has been asked since it started or its counts were last reset."""

    in_flight: int  # received, and the last byte of the answer not yet written (waiting out `delay_s` included)
    max_in_flight: int  # the most in flight at one moment
    total: int
    by_path: dict[str, int]  # requests per path as sent, query included
    connections: int = 0  # TCP connections accepted: fewer than `total` when clients keep them alive


def not_modified(if_none_match: str | None, if_modified_since: str | None, etag: str, last_modified: str) -> bool:
    """Whether a request with these condition headers gets a 304 for a body with these validators (RFC 9110 13.2.2).

    If-None-Match, when sent, decides alone (weak comparison, `*` matches); else an If-Modified-Since not older than
    Last-Modified matches. A date that does not parse is ignored.
    """
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or etag.removeprefix("W/") in tags
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    return since >= parsedate_to_datetime(last_modified)


class _ThreadingServer(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # many clients connecting at once wait to be accepted rather than being refused

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # without HTTPServer's reverse lookup of the address: no DNS here
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class FeedServer:
    """An HTTP server on a loopback address serving `/feed.xml` and `/media/<guid>.mp4`, with Range and throttling.

    A thread per connection, so requests held by `delay_s` or a slow download overlap. `host` is the address it
    listens on: two servers on 127.0.0.1 and 127.0.0.2 (Linux routes all of 127/8 to loopback) are two sites to a
    client that tells sites apart by host name. `channels` (a setting) adds that many channel feeds, see
    `channel`. `extra_paths` maps a path (without its query) to the (body, content type) served there as given,
    for fixtures of other feeds' quirks. `counts()` says how many requests are in flight and were made, per path.
    """

    def __init__(
        self, items: list[FeedItem] | None = None, *, port: int = 0, host: str = "127.0.0.1", **settings: object
    ) -> None:
        self.settings = FeedSettings(items=list(items or []), **settings)  # type: ignore[arg-type]
        self.requests: list[RequestRecord] = []
        self.extra_paths: dict[str, tuple[bytes, str]] = {}
        self.validators = FeedValidators()
        self._requests_lock = threading.Lock()
        self._stop_stalling = threading.Event()
        self._channels: dict[int, Channel] = {}
        self._channels_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._in_flight = self._max_in_flight = 0
        self._by_path: Counter[str] = Counter()
        self._connections = 0
        self._server = _ThreadingServer((host, port), _make_handler(self))
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}/feed.xml"

    def media_url(self, guid: str) -> str:
        return f"{self.base_url}/media/{urllib.parse.quote(guid, safe='')}.mp4"

    def redirect_url(self, guid: str) -> str:
        """A URL that answers 302 with the item's media URL as its Location."""
        return f"{self.base_url}/redirect/{urllib.parse.quote(guid, safe='')}"

    def start(self) -> FeedServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="feed-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop_stalling.set()
        self.settings.sending.set()  # a download held by a caller that forgot to let it go ends too
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def channel(self, number: int) -> Channel:
        """Given a number from 1 to `settings.channels`, return that channel, made on first use with
        `settings.channel_items` items of its own (guids `channel00001-video-00015` and so on); raise KeyError for
        another number."""
        if not 1 <= number <= self.settings.channels:
            raise KeyError(f"no channel {number}: this server has {self.settings.channels}")
        with self._channels_lock:
            if number not in self._channels:
                items = make_items(self.settings.channel_items, prefix=f"channel{number:05d}-video")
                self._channels[number] = Channel(number, items)
            return self._channels[number]

    def channel_url(self, number: int) -> str:
        return f"{self.base_url}/channel/{number}/feed"

    @property
    def channel_urls(self) -> list[str]:
        """Every channel's feed URL, channel 1 first."""
        return [self.channel_url(number) for number in range(1, self.settings.channels + 1)]

    def channel_media_url(self, number: int, guid: str) -> str:
        return f"{self.base_url}/channel/{number}/media/{urllib.parse.quote(guid, safe='')}.mp4"

    def channel_xml(self, number: int) -> bytes:
        """The channel's RSS feed, as a podcast's: each item's media file is its enclosure."""
        channel = self.channel(number)
        link = f"{self.base_url}/channel/{number}"
        return rss_xml(f"Channel {number}", link, channel.items, lambda guid: self.channel_media_url(number, guid))

    def counts(self) -> RequestCounts:
        with self._counts_lock:
            counts = (self._in_flight, self._max_in_flight, self._by_path.total(), dict(self._by_path))
            return RequestCounts(*counts, connections=self._connections)

    def reset_counts(self) -> None:
        """Count from now: no requests so far, and the most in flight is those in flight now (`requests` is kept)."""
        with self._counts_lock:
            self._max_in_flight = self._in_flight
            self._by_path.clear()
            self._connections = 0

    def count_connection(self) -> None:
        with self._counts_lock:
            self._connections += 1

    @contextlib.contextmanager
    def _counting(self, path: str) -> Iterator[Callable[[], None]]:
        """Count a request to `path` in flight while the block answers it. The block is given a function that counts
        it out sooner, once (the block's end then changes nothing)."""
        with self._counts_lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._by_path[path] += 1
        counted_out = False

        def count_out() -> None:
            nonlocal counted_out
            with self._counts_lock:
                if not counted_out:
                    counted_out = True
                    self._in_flight -= 1

        try:
            yield count_out
        finally:
            count_out()

    def item(self, guid: str) -> FeedItem:
        return next(item for item in self.settings.items if item.guid == guid)

    def record(self, record: RequestRecord) -> None:
        with self._requests_lock:
            self.requests.append(record)

    def requests_for(self, prefix: str) -> list[RequestRecord]:
        with self._requests_lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def release_stalls(self) -> None:
        """End every stalled response (the connection closes) and stop stalling new ones."""
        self.settings.stall_after_bytes = None
        self._stop_stalling.set()
        self._stop_stalling = threading.Event()

    def feed_xml(self) -> bytes:
        if self.settings.feed_format == "atom":
            return self.atom_xml()
        return rss_xml(self.settings.title, f"{self.base_url}/", self.settings.items, self.media_url)

    def atom_xml(self) -> bytes:
        """The items as an Atom feed, each media file an enclosure link."""
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<feed xmlns="http://www.w3.org/2005/Atom">',
            f"<title>{escape(self.settings.title)}</title>",
            f"<id>{self.base_url}/</id>",
            "<updated>2026-11-01T12:00:00Z</updated>",
        ]
        for item in self.settings.items:
            published = (item.published or datetime(2026, 11, 1, tzinfo=timezone.utc)).astimezone(timezone.utc)
            parts.append("<entry>")
            parts.append(f"<title>{escape(item.title)}</title>")
            parts.append(f"<id>{escape(item.guid)}</id>")
            parts.append(f"<updated>{published.strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>")
            parts.append(
                f'<link rel="enclosure" href={quoteattr(self.media_url(item.guid))} type="video/mp4" '
                f'length="{item.size_bytes}"/>'
            )
            parts.append("</entry>")
        parts.append("</feed>")
        return "\n".join(parts).encode()


def rss_xml(title: str, link: str, items: list[FeedItem], media_url: Callable[[str], str]) -> bytes:
    """Given a channel's title and link, its items and where each item's media is, return its RSS feed."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title>",
        f"<link>{link}</link>",
        "<description>A feed served on the loopback interface</description>",
    ]
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title>")
        parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.published is not None:
            parts.append(f"<pubDate>{format_datetime(item.published.astimezone(timezone.utc))}</pubDate>")
        parts.append(f'<enclosure url={quoteattr(media_url(item.guid))} length="{item.size_bytes}" type="video/mp4"/>')
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def make_items(count: int, *, size_bytes: int = 200_000, prefix: str = "video") -> list[FeedItem]:
    """Return `count` items, the newest first, one day apart."""
    newest = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    return [
        FeedItem(
            guid=f"{prefix}-{number:05d}",
            title=f"Video {number}",
            size_bytes=size_bytes,
            published=datetime.fromtimestamp(newest.timestamp() - 86400 * (count - number), tz=timezone.utc),
        )
        for number in range(count, 0, -1)
    ]


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Given a `Range: bytes=...` header, return (first, last) inclusive, or None when absent or unusable."""
    if not header or not header.startswith("bytes="):
        return None
    spec = header[len("bytes=") :].split(",")[0].strip()
    first_text, _, last_text = spec.partition("-")
    try:
        if first_text == "":
            length = int(last_text)
            return max(0, size - length), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    return first, min(last, size - 1)


def _make_handler(feed: FeedServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A request is counted out of flight just before the last byte of its answer is written, not when its thread
        # is done: a client that sends its next request once it has an answer never sees the two in flight together.
        _count_out: Callable[[], None] | None = None
        _sends_body = False
        _body_bytes_left = 0

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def setup(self) -> None:
            feed.count_connection()
            super().setup()

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionResetError, BrokenPipeError):  # a client that ended before the answer: not an error
                self.close_connection = True

        def send_response(self, code: int, message: str | None = None) -> None:
            # Recorded as the answer starts, so a request whose body is still streaming is already counted.
            headers = self.headers
            feed.record(
                RequestRecord(
                    self.command,
                    self.path,
                    headers.get("Range"),
                    code,
                    time.time(),
                    if_none_match=headers.get("If-None-Match"),
                    if_modified_since=headers.get("If-Modified-Since"),
                )
            )
            super().send_response(code, message)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def send_header(self, keyword: str, value: str) -> None:
            if keyword == "Content-Length" and self._sends_body:
                self._body_bytes_left = int(value)
            super().send_header(keyword, value)

        def end_headers(self) -> None:
            if self._body_bytes_left <= 0 and self._count_out:
                self._count_out()  # the headers are the whole answer
            super().end_headers()

        def _write_body(self, chunk: bytes) -> None:
            self._body_bytes_left -= len(chunk)
            if self._body_bytes_left <= 0 and self._count_out:
                self._count_out()
            self.wfile.write(chunk)

        def _answer(self, *, send_body: bool) -> None:
            with feed._counting(self.path) as count_out:
                self._count_out, self._sends_body, self._body_bytes_left = count_out, send_body, 0
                if feed.settings.delay_s > 0:
                    time.sleep(feed.settings.delay_s)
                self._route(send_body)

        def _route(self, send_body: bool) -> None:
            settings = feed.settings
            path = urllib.parse.unquote(self.path.split("?")[0])
            if settings.every_status is not None:
                status = settings.every_status
                self._send_simple(status, f"error {status}".encode(), "text/plain", send_body)
            elif settings.bot_check:
                self._send_simple(200, BOT_CHECK_PAGE, "text/html; charset=utf-8", send_body)
            elif path == "/feed.xml":
                self._send_feed(send_body)
            elif path in feed.extra_paths:
                body, content_type = feed.extra_paths[path]
                self._send_simple(200, body, content_type, send_body)
            elif path.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", feed.media_url(path[len("/redirect/") :]))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path.startswith("/media/") and path.endswith(".mp4"):
                self._send_media(settings.items, path[len("/media/") : -len(".mp4")], send_body)
            elif path.startswith("/channel/"):
                self._send_channel(path.split("/")[2:], send_body)
            else:
                self._send_simple(404, b"not found", "text/plain", send_body)

        def _send_channel(self, parts: list[str], send_body: bool) -> None:
            """Given the path's parts after `/channel/`: `<n>/feed` or `<n>/media/<guid>.mp4`."""
            number = int(parts[0]) if parts[0].isdecimal() else 0
            if not 1 <= number <= feed.settings.channels:
                self._send_simple(404, b"not found", "text/plain", send_body)
            elif parts[1:] == ["feed"]:
                channel = feed.channel(number)
                content_type = "application/rss+xml; charset=utf-8"
                self._send_validated(feed.channel_xml(number), content_type, channel.validators, send_body)
            elif len(parts) == 3 and parts[1] == "media" and parts[2].endswith(".mp4"):
                self._send_media(feed.channel(number).items, parts[2][: -len(".mp4")], send_body)
            else:
                self._send_simple(404, b"not found", "text/plain", send_body)

        def _send_feed(self, send_body: bool) -> None:
            settings = feed.settings
            status = settings.feed_status
            content_type = f"application/{settings.feed_format}+xml; charset=utf-8"
            if status != 200:
                self._send_simple(status, f"error {status}".encode(), content_type, send_body)
                return
            body = settings.feed_body if settings.feed_body is not None else feed.feed_xml()
            self._send_validated(body, content_type, feed.validators, send_body)

        def _send_validated(self, body: bytes, content_type: str, validators: FeedValidators, send_body: bool) -> None:
            """Send a feed's body with its validators, or a 304 when the request's conditions match them."""
            if not feed.settings.feed_validators:
                self._send_simple(200, body, content_type, send_body)
                return
            etag, last_modified = validators.for_body(body)
            headers = {"ETag": etag, "Last-Modified": last_modified}
            conditions = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            if not_modified(*conditions, etag, last_modified):
                self.send_response(304)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                return
            self._send_simple(200, body, content_type, send_body, headers)

        def _send_simple(
            self, status: int, body: bytes, content_type: str, send_body: bool, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 429:
                self.send_header("Retry-After", "60")
            self.end_headers()
            if send_body:
                self._write_body(body)

        def _send_media(self, items: list[FeedItem], guid: str, send_body: bool) -> None:
            settings, range_header = feed.settings, self.headers.get("Range")
            item = next((i for i in items if i.guid == guid), None)
            status = settings.media_status_override or (item.media_status if item else 404)
            if item is None or status != 200:
                self._send_simple(status, f"error {status}".encode(), "text/plain", send_body)
                return
            content = item.content
            byte_range = _parse_range(range_header, len(content))
            if byte_range is not None and byte_range[0] >= len(content):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(content)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first, last = byte_range or (0, len(content) - 1)
            status = 206 if byte_range else 200
            self.send_response(status)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(last - first + 1))
            if byte_range:
                self.send_header("Content-Range", f"bytes {first}-{last}/{len(content)}")
            self.end_headers()
            if send_body:
                self._stream(content[first : last + 1])

        def _stream(self, body: bytes) -> None:
            settings = feed.settings
            stall_event = feed._stop_stalling
            sent = 0
            started = time.monotonic()
            while sent < len(body):
                if settings.stall_after_bytes is not None and sent >= settings.stall_after_bytes:
                    stall_event.wait()  # hold the connection open, sending nothing
                    self.close_connection = True
                    return
                settings.sending.wait()
                chunk = body[sent : sent + CHUNK_BYTES]
                if settings.stall_after_bytes is not None:
                    chunk = chunk[: max(1, settings.stall_after_bytes - sent)]
                try:
                    self._write_body(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                sent += len(chunk)
                rate = settings.bytes_per_second
                if rate:
                    ahead_s = sent / rate - (time.monotonic() - started)
                    if ahead_s > 0:
                        time.sleep(ahead_s)

    return Handler
