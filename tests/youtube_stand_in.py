"""A stand-in for www.youtube.com behind an HTTP proxy on 127.0.0.1, and a builder of YouTube-shaped feeds.

yt-dlp reaches it through its own `--proxy` (with `--no-check-certificates`): the proxy accepts `CONNECT` to any
host, answers 200, speaks TLS inside the tunnel with a self-signed certificate for www.youtube.com, and serves
HTTP/1.1 there (keep-alive); plain-HTTP proxy requests (`GET http://host/path`) are served the same way. Every request
is recorded, so a test can prove which pages of "YouTube" a check asked for, and which it did not.
"""

from __future__ import annotations

import atexit
import functools
import http.server
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape, quoteattr

import pytest

from playlist_cron.demo.feed import FeedValidators, not_modified

FEED_PATH = "/feeds/videos.xml"
FEED_KINDS = ("channel_id", "playlist_id")
FEED_CONTENT_TYPE = "application/atom+xml; charset=UTF-8"
NOT_FOUND_PAGE = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>Not Found</body></html>"
CERTIFICATE_NAMES = ("www.youtube.com", "youtube.com", "*.youtube.com", "*.googlevideo.com", "*.ytimg.com")
TLS_HANDSHAKE = 0x16  # the first byte of a TLS ClientHello record


@functools.cache
def _make_certificate(openssl: str = "openssl") -> tuple[Path, Path] | str:
    """Make a self-signed certificate for www.youtube.com once per process; return (certificate, key) or why not."""
    if shutil.which(openssl) is None:
        return f"the {openssl} command is not installed (the YouTube stand-in needs it for its certificate)"
    folder = Path(tempfile.mkdtemp(prefix="youtube-stand-in-"))
    atexit.register(shutil.rmtree, folder, True)
    certificate, key = folder / "certificate.pem", folder / "key.pem"
    names = ",".join(f"DNS:{name}" for name in CERTIFICATE_NAMES)
    made = subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(certificate), "-days", "30", "-subj", "/CN=www.youtube.com"),
            *("-addext", f"subjectAltName={names}"),
        ],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        return f"openssl could not make the YouTube stand-in's certificate: {made.stderr.strip()}"
    return certificate, key


def certificate_files() -> tuple[Path, Path]:
    """Return the (certificate, key) files for www.youtube.com; skip the test, saying why, when openssl cannot."""
    made = _make_certificate()
    if isinstance(made, str):
        print(f"SKIPPED: {made}")
        pytest.skip(made)
    return made


@dataclass(frozen=True)
class SeenRequest:
    """One request the stand-in answered: `host` without its port, `path` with its query."""

    method: str
    scheme: str  # "https" inside a CONNECT tunnel, "http" for a plain proxy request
    host: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int
    at: float

    def header(self, name: str) -> str | None:
        """The value of header `name` (any case), or None when the request did not send it."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)


@dataclass
class Answer:
    """What the stand-in answers to a path it has no feed for."""

    status: int = 404
    body: bytes = NOT_FOUND_PAGE
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class Upload(NamedTuple):
    """One video of a YouTube-shaped feed; a plain (video_id, title, published) tuple does as well."""

    video_id: str
    title: str
    published: datetime


def youtube_feed(
    channel_id: str,
    title: str,
    uploads: Iterable[tuple[str, str, datetime]],
    *,
    playlist_id: str | None = None,
    author: str | None = None,
) -> bytes:
    """Given a channel, its title and its uploads (newest first, as YouTube lists them), return its feed's bytes.

    Shaped as YouTube publishes `feeds/videos.xml?channel_id=...` (tests/fixtures/feeds/youtube_channel.xml): Atom
    with yt:videoId, yt:channelId and a media:group per entry. With `playlist_id`, shaped as the playlist's feed
    (`?playlist_id=...`, youtube_playlist.xml), `title` being the playlist's and `author` the channel's name.
    """
    author = author or title
    channel_url = f"https://www.youtube.com/channel/{channel_id}"
    if playlist_id is None:
        self_url = f"http://www.youtube.com/feeds/videos.xml?channel_id={channel_id}"
        head = [f" <id>yt:channel:{channel_id}</id>", f" <yt:channelId>{channel_id}</yt:channelId>"]
        alternate = channel_url
    else:
        self_url = f"http://www.youtube.com/feeds/videos.xml?playlist_id={playlist_id}"
        head = [
            f" <id>yt:playlist:{playlist_id}</id>",
            f" <yt:playlistId>{playlist_id}</yt:playlistId>",
            f" <yt:channelId>{channel_id}</yt:channelId>",
        ]
        alternate = f"https://www.youtube.com/playlist?list={playlist_id}"
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" xmlns:media="http://search.yahoo.com/mrss/"'
        ' xmlns="http://www.w3.org/2005/Atom">',
        f" <link rel={quoteattr('self')} href={quoteattr(self_url)}/>",
        *head,
        f" <title>{escape(title)}</title>",
        f' <link rel="alternate" href={quoteattr(alternate)}/>',
        " <author>",
        f"  <name>{escape(author)}</name>",
        f"  <uri>{channel_url}</uri>",
        " </author>",
        " <published>2019-03-14T09:26:53+00:00</published>",
    ]
    for number, (video_id, video_title, published) in enumerate(uploads):
        published = published.astimezone(timezone.utc)
        updated = published + timedelta(minutes=30 + number % 20)
        lines += [
            " <entry>",
            f"  <id>yt:video:{video_id}</id>",
            f"  <yt:videoId>{video_id}</yt:videoId>",
            f"  <yt:channelId>{channel_id}</yt:channelId>",
            f"  <title>{escape(video_title)}</title>",
            f'  <link rel="alternate" href="https://www.youtube.com/watch?v={video_id}"/>',
            "  <author>",
            f"   <name>{escape(author)}</name>",
            f"   <uri>{channel_url}</uri>",
            "  </author>",
            f"  <published>{published.isoformat(timespec='seconds')}</published>",
            f"  <updated>{updated.isoformat(timespec='seconds')}</updated>",
            "  <media:group>",
            f"   <media:title>{escape(video_title)}</media:title>",
            f'   <media:content url="https://www.youtube.com/v/{video_id}?version=3"'
            ' type="application/x-shockwave-flash" width="640" height="390"/>',
            f'   <media:thumbnail url="https://i{1 + number % 4}.ytimg.com/vi/{video_id}/hqdefault.jpg"'
            ' width="480" height="360"/>',
            f"   <media:description>{escape(video_title)}</media:description>",
            "   <media:community>",
            f'    <media:starRating count="{7 * (number + 1)}" average="5.00" min="1" max="5"/>',
            f'    <media:statistics views="{1000 * (number + 1) + 17}"/>',
            "   </media:community>",
            "  </media:group>",
            " </entry>",
        ]
    lines.append("</feed>")
    return ("\n".join(lines) + "\n").encode()


class YouTubeStandIn:
    """An HTTP proxy on 127.0.0.1 that plays www.youtube.com (and any other host) for yt-dlp, recording requests.

    Feeds: `feeds[("channel_id", id)]` or `feeds[("playlist_id", id)]` holds the body served at
    `/feeds/videos.xml?channel_id=id` (or `?playlist_id=id`) with an ETag and a Last-Modified, 304 to a matching
    If-None-Match or If-Modified-Since; a changed body gets new validators. An id not in `feeds` gets 404, as
    YouTube answers for an unknown channel. `feed_status[(kind, id)]` overrides the status (e.g. 404, 429, 500).
    Any other path gets `answers[path with query]`, else `answers[path]`, else `default_answer` (404).
    """

    def __init__(self) -> None:
        self.feeds: dict[tuple[str, str], bytes] = {}
        self.feed_status: dict[tuple[str, str], int] = {}
        self.answers: dict[str, Answer] = {}
        self.default_answer = Answer()
        self.tunnels: list[str] = []  # each CONNECT's target, "host:port"
        self._requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._validators: dict[tuple[str, str], FeedValidators] = {}
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- the feeds

    def set_channel_feed(
        self, channel_id: str, uploads: Iterable[tuple[str, str, datetime]], *, title: str = "Loopback Channel"
    ) -> str:
        """Serve a YouTube-shaped feed of `uploads` for the channel; return the feed's URL."""
        self.feeds[("channel_id", channel_id)] = youtube_feed(channel_id, title, uploads)
        return self.feed_url("channel_id", channel_id)

    def set_playlist_feed(
        self,
        playlist_id: str,
        uploads: Iterable[tuple[str, str, datetime]],
        *,
        channel_id: str = "UCq3Ci-h945sbEYXpVlw7rJg",
        title: str = "Loopback Playlist",
        author: str = "Loopback Channel",
    ) -> str:
        """Serve a YouTube-shaped feed of `uploads` for the playlist (`author` names its channel); return its URL."""
        body = youtube_feed(channel_id, title, uploads, playlist_id=playlist_id, author=author)
        self.feeds[("playlist_id", playlist_id)] = body
        return self.feed_url("playlist_id", playlist_id)

    @staticmethod
    def feed_url(kind: str, feed_id: str) -> str:
        """The URL a client asks for that feed: `https://www.youtube.com/feeds/videos.xml?<kind>=<feed_id>`."""
        assert kind in FEED_KINDS, kind
        return f"https://www.youtube.com{FEED_PATH}?{kind}={feed_id}"

    # --- the proxy

    @property
    def port(self) -> int:
        assert self._server is not None, "the stand-in is not started"
        return int(self._server.server_address[1])

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def yt_dlp_args(self) -> list[str]:
        """The arguments that send yt-dlp through the stand-in, for a config's `yt_dlp_args`."""
        return ["--proxy", self.proxy_url, "--no-check-certificates"]

    def yt_dlp_params(self) -> dict[str, object]:
        """The same as `yt_dlp_args`, as `yt_dlp.YoutubeDL` options."""
        return {"proxy": self.proxy_url, "nocheckcertificate": True}

    def start(self) -> YouTubeStandIn:
        certificate, key = certificate_files()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        context.set_alpn_protocols(["http/1.1"])
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, context))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="youtube-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> YouTubeStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what it saw

    @property
    def requests(self) -> list[SeenRequest]:
        """Every request answered so far, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_prefix: str = "/", host: str | None = "www.youtube.com") -> list[SeenRequest]:
        """The requests whose path (with query) starts with `path_prefix`, to `host` (None: to any host)."""
        return [r for r in self.requests if r.path.startswith(path_prefix) and (host is None or r.host == host)]

    def watched_video_ids(self) -> list[str]:
        """The `v` of each request for `/watch?v=...` on www.youtube.com, in order (repeats kept)."""
        return [r.query["v"][0] for r in self.requests_to("/watch?") if r.query.get("v")]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self.tunnels.clear()

    def _record(self, request: SeenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _record_tunnel(self, target: str) -> None:
        with self._lock:
            self.tunnels.append(target)

    def _validators_for(self, key: tuple[str, str]) -> FeedValidators:
        with self._lock:
            return self._validators.setdefault(key, FeedValidators())

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Given a request's path (with query) and headers (lower-case names), return (status, headers, body)."""
        split = urllib.parse.urlsplit(path)
        if split.path == FEED_PATH:
            return self._feed_answer(urllib.parse.parse_qs(split.query), headers)
        answer = self.answers.get(path) or self.answers.get(split.path) or self.default_answer
        return answer.status, {"Content-Type": answer.content_type, **answer.headers}, answer.body

    def _feed_answer(self, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        key = next(((kind, query[kind][0]) for kind in FEED_KINDS if query.get(kind)), None)
        html = {"Content-Type": "text/html; charset=utf-8"}
        if key is None:
            return 400, html, b"<html><body>Bad Request</body></html>"
        body = self.feeds.get(key)
        status = self.feed_status.get(key, 200 if body is not None else 404)
        if status != 200 or body is None:
            status = 404 if status == 200 else status
            return status, html, f"<html><body>Error {status}</body></html>".encode()
        etag, last_modified = self._validators_for(key).for_body(body)
        validators = {"ETag": etag, "Last-Modified": last_modified}
        if not_modified(headers.get("if-none-match"), headers.get("if-modified-since"), etag, last_modified):
            return 304, validators, b""
        return 200, {"Content-Type": FEED_CONTENT_TYPE, **validators}, body


def _make_handler(stand_in: YouTubeStandIn, context: ssl.SSLContext) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60  # an idle keep-alive connection's thread ends after this
        tunnel_host: str | None = None
        tls: ssl.SSLSocket | None = None

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (OSError, ssl.SSLError):  # the client went away, or refused the handshake: its business
                self.close_connection = True

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                if self.tls is not None:
                    self.tls.close()  # wrapping took the socket over: the server's own close no longer reaches it

        def do_CONNECT(self) -> None:
            if self.tunnel_host is not None:
                self.send_error(400, "CONNECT inside a tunnel")
                return
            stand_in._record_tunnel(self.path)
            self.send_response_only(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            self.tunnel_host = self.path.rsplit(":", 1)[0].strip("[]").lower()
            self.close_connection = False  # http.client asks CONNECT in HTTP/1.0, yet the tunnel stays open
            if self.connection.recv(1, socket.MSG_PEEK)[:1] != bytes([TLS_HANDSHAKE]):
                return  # plain HTTP inside the tunnel: served as it is
            self.rfile.close()
            self.wfile.close()
            self.tls = context.wrap_socket(self.connection, server_side=True)
            self.connection = self.tls
            self.rfile = self.tls.makefile("rb")
            self.wfile = self.tls.makefile("wb")

        def do_GET(self) -> None:
            self._serve()

        def do_HEAD(self) -> None:
            self._serve(send_body=False)

        def do_POST(self) -> None:
            self._serve()

        def _serve(self, send_body: bool = True) -> None:
            if self.tunnel_host is not None:
                scheme, host, path = ("https" if self.tls else "http"), self.tunnel_host, self.path
            elif self.path.startswith(("http://", "https://")):  # a plain proxy request names the whole URL
                split = urllib.parse.urlsplit(self.path)
                scheme, host = split.scheme, (split.hostname or "")
                path = urllib.parse.urlunsplit(("", "", split.path or "/", split.query, ""))
            else:
                scheme, host, path = "http", (self.headers.get("Host") or "").rsplit(":", 1)[0].lower(), self.path
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer_headers, answer_body = stand_in._answer(path, headers)
            stand_in._record(
                SeenRequest(self.command, scheme, host, path, tuple(self.headers.items()), body, status, time.time())
            )
            self.send_response(status)
            for name, value in answer_headers.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(answer_body)))
            self.end_headers()
            if send_body and status != 304:
                self.wfile.write(answer_body)

    return Handler
