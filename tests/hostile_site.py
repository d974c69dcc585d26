"""A loopback HTTP server for answers no honest site sends, and an HTTP proxy standing in for the whole internet.

Each answer is registered under the full URL it is served at. A request for a path (`GET /bomb.xml`) is served as
`http://127.0.0.1:<port>/bomb.xml`; a request for an absolute URL, as a client sends to its proxy
(`GET http://169.254.169.254/latest/meta-data/`), is answered as if from that URL's host. With yt-dlp's `--proxy`
pointing here, every request a check makes, to whatever host, lands here and is recorded: a test sees whether a
request for a cloud metadata address was attempted at all. Bodies may be generators, so that a 200 MB answer is
never held in the test's memory either.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

CHUNK_BYTES = 64 * 1024


@dataclass
class Answer:
    """What the server sends for one URL: a status, headers, and a body (bytes, or a function giving its chunks)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Callable[[], Iterable[bytes]] = b""
    length: int | None = None  # the Content-Length sent with a generated body; None: the connection's end ends it


def gzip_of_zeros(size_bytes: int) -> bytes:
    """A gzip member that inflates to `size_bytes` zero bytes, compressed as it goes (1 GiB gives about 1 MB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(CHUNK_BYTES * 16)
    parts = []
    for _ in range(size_bytes // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(bytes(size_bytes % len(block))))
    parts.append(compressor.flush())
    return b"".join(parts)


def filler_html(size_bytes: int) -> Callable[[], Iterable[bytes]]:
    """A plain HTML page of `size_bytes`, generated a chunk at a time when it is sent."""
    head, tail = b"<!DOCTYPE html><html><head><title>Big</title></head><body>", b"</body></html>"
    line = b"<p>nothing to see here, only more of the same</p>\n"
    chunk = line * (CHUNK_BYTES // len(line))

    def chunks() -> Iterable[bytes]:
        yield head
        left = size_bytes - len(head) - len(tail)
        while left > 0:
            yield chunk[:left]
            left -= len(chunk)
        yield tail

    return chunks


def rss(title: str, items: list[dict[str, str]]) -> bytes:
    """An RSS feed; each item a dict with `guid`, `title` and an `enclosure` URL or a `link`."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title>",
    ]
    for item in items:
        parts.append(f"<item><title>{escape(item['title'])}</title>")
        parts.append(f'<guid isPermaLink="false">{escape(item["guid"])}</guid>')
        if "enclosure" in item:
            parts.append(f'<enclosure url={quoteattr(item["enclosure"])} length="1000" type="video/mp4"/>')
        if "link" in item:
            parts.append(f"<link>{escape(item['link'])}</link>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no reverse lookup of the address
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class HostileSite:
    """The server: `answers` maps full URLs to what is sent there; `requests` lists every URL asked, in order."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _make_handler(self))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def serve(self, url: str, answer: Answer) -> str:
        """Answer `answer` at `url` (a full URL, or a path on this server); return the full URL."""
        full_url = url if "://" in url else self.url(url)
        self.answers[full_url] = answer
        return full_url

    def asked(self, prefix: str) -> list[str]:
        with self._lock:
            return [url for url in self.requests if url.startswith(prefix)]

    def __enter__(self) -> HostileSite:
        threading.Thread(target=self._server.serve_forever, name="hostile-site", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(site: HostileSite) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, *, send_body: bool) -> None:
            url = self.path if "://" in self.path else f"http://{self.headers.get('Host')}{self.path}"
            with site._lock:
                site.requests.append(url)
            answer = site.answers.get(url, Answer(404, {"Content-Type": "text/plain"}, b"not found"))
            body = answer.body
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if isinstance(body, bytes):
                self.send_header("Content-Length", str(len(body)))
            elif answer.length is not None:
                self.send_header("Content-Length", str(answer.length))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if not send_body:
                return
            try:
                for chunk in [body] if isinstance(body, bytes) else body():
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: what a bounded read does
                self.close_connection = True

    return Handler
