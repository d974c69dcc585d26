"""yt-dlp's urllib request handler with bounds: answers inflated as they are read, a body read whole capped, and
every request (each redirect included) of a playlist's entry looked at before it is sent.

yt-dlp's own handler inflates a gzip or deflate answer whole, in memory, before anyone reads it: a feed of 1 MB that
inflates to 1 GB took a check to 2 GB. Here the answer is inflated as it is read, a buffer at a time, and reading it
whole (as a page, a feed or a JSON document is read) stops at `MAX_WHOLE_ANSWER_BYTES`, counted inflated, with
`AnswerTooLarge`. Media, read a block at a time into a file, are not capped.

The connections of a check's reader (one client each) are kept alive between its requests to one site (`_KeepAlive`):
yt-dlp's handler, as urllib's, sends `Connection: close` and opens a new connection, and a TLS handshake, for every
feed it polls.

`UrllibRH` replaces yt-dlp's handler of the same name (and key) in a client's request director, and is preferred to
the others (requests, curl_cffi) where installed, so that these bounds hold whatever is installed; a request only
another handler can make (an HTTPS proxy, impersonation) goes to that one, without the redirect check.
"""

from __future__ import annotations

import copy
import http.client
import io
import threading
import urllib.error
import urllib.request
import urllib.response
import zlib
from collections.abc import Callable
from typing import Any

from yt_dlp.networking import _urllib
from yt_dlp.networking._helper import add_accept_encoding_header
from yt_dlp.networking.exceptions import RequestError

from playlist_cron.failure_kinds import Refused, TooLarge, host_of

MAX_WHOLE_ANSWER_BYTES = 16 * 1024 * 1024  # a page, feed or document read whole: YouTube's largest are a few MB
READ_CHUNK_BYTES = 64 * 1024
DECODED_ENCODINGS = ("gzip", "deflate")  # the only ones asked for: each is inflated here, a buffer at a time
PREFERRED = 1000  # above yt-dlp's preferences for its handlers (requests: 100; --compat-options' urllib: 500)

LinkCheck = Callable[[str], "str | None"]


class AnswerTooLarge(RequestError, TooLarge):  # type: ignore[misc]
    """An answer read whole was larger than `MAX_WHOLE_ANSWER_BYTES`, inflated: it was not read further."""


class RefusedLink(RequestError, Refused):  # type: ignore[misc]
    """A request that a playlist's entry led to and `LinkPolicy` refuses: it was not sent."""


class UnaskedEncoding(RequestError):  # type: ignore[misc]
    """An answer in a content encoding that was not asked for (brotli, zstd): it would be inflated whole."""


class UrllibRH(_urllib.UrllibRH):  # type: ignore[misc]
    """yt-dlp's urllib handler, its answers bounded (`_BoundedAnswers`); `link_check`, when set, is asked about every
    request it sends, redirects included, and returns why a URL is refused, or None."""

    link_check: LinkCheck | None = None

    def _create_instance(self, *args: Any, **kwargs: Any) -> Any:
        opener = super()._create_instance(*args, **kwargs)
        opener.add_handler(_BoundedAnswers(self))
        [yt_dlp_http] = [handler for handler in opener.handlers if isinstance(handler, _urllib.HTTPHandler)]
        opener.add_handler(_KeepAlive(yt_dlp_http))
        return opener

    def _prepare_headers(self, request: Any, headers: Any) -> None:
        add_accept_encoding_header(headers, DECODED_ENCODINGS)


def with_bounded_urllib(handlers: Any) -> list[Any]:
    """yt-dlp's request handler classes, its urllib one replaced by `UrllibRH`."""
    return [UrllibRH if handler is _urllib.UrllibRH else handler for handler in handlers]


def prefer_bounded(handler: Any, request: Any) -> int:
    """A request director preference: `UrllibRH` first, wherever it can make the request."""
    return PREFERRED if isinstance(handler, UrllibRH) else 0


def set_link_check(director: Any, link_check: LinkCheck) -> None:
    """Make the director's `UrllibRH` ask `link_check` about every request it sends."""
    for handler in director.handlers.values():
        if isinstance(handler, UrllibRH):
            handler.link_check = link_check


class _BoundedAnswers(urllib.request.BaseHandler):
    """A urllib handler that runs before yt-dlp's (a lower `handler_order`): each request, a redirect's too, is
    checked; each answer's body is wrapped in a `_BoundedBody`, its Content-Encoding taken off so that yt-dlp's
    handler, which would inflate it whole, leaves it alone."""

    handler_order = 400

    def __init__(self, owner: UrllibRH) -> None:
        self._owner = owner

    def _check(self, request: urllib.request.Request) -> urllib.request.Request:
        link_check = self._owner.link_check
        refusal = link_check(request.full_url) if link_check is not None else None
        if refusal is not None:
            raise RefusedLink(refusal)
        return request

    http_request = https_request = ftp_request = data_request = file_request = _check

    def http_response(self, request: urllib.request.Request, response: Any) -> Any:
        encodings = [
            word.strip().lower() for word in (response.headers.get("Content-Encoding") or "").split(",") if word.strip()
        ]
        encodings = [word for word in encodings if word != "identity"]
        unasked = [word for word in encodings if word not in DECODED_ENCODINGS]
        if unasked:
            response.close()
            raise UnaskedEncoding(f"{host_of(request.full_url)} answered in {', '.join(unasked)}, not asked for")
        headers = copy.copy(response.headers)
        if encodings:
            del headers["Content-Encoding"]
            del headers["Content-Length"]  # the compressed length: no longer what reading gives
        body = _BoundedBody(response, encodings, host_of(request.full_url))
        reader = io.BufferedReader(body, READ_CHUNK_BYTES)
        bounded: Any = urllib.response.addinfourl(reader, headers, response.url, response.code)
        bounded.msg = getattr(response, "msg", None)
        bounded.reason = getattr(response, "reason", None)
        return bounded

    https_response = http_response


class _KeepAlive(urllib.request.BaseHandler):
    """Opens HTTP and HTTPS requests on a connection kept from an earlier answer of the same site when there is one,
    as yt-dlp's handler would on a new one (its TLS context and source address); an answer read to its end gives
    its connection back. Tried before yt-dlp's handler (a lower `handler_order`), it leaves to it what goes through
    a proxy (an HTTP proxy, or a SOCKS one that yt-dlp names in a header).

    A client belongs to one reader thread (`download.Session`), but an answer may be closed by the garbage collector
    in another: the idle connections are kept under a lock.
    """

    handler_order = 499
    MAX_IDLE_PER_SITE = 2

    def __init__(self, yt_dlp_http: Any) -> None:
        self._context = yt_dlp_http._context  # private: the TLS context yt-dlp built from its options
        self._source_address = yt_dlp_http._source_address
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def http_open(self, request: urllib.request.Request) -> Any:
        return self._open(request, http.client.HTTPConnection, {})

    def https_open(self, request: urllib.request.Request) -> Any:
        return self._open(request, http.client.HTTPSConnection, {"context": self._context})

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _open(self, request: urllib.request.Request, connection_class: Any, options: dict[str, Any]) -> Any:
        if request.has_proxy() or request._tunnel_host or request.has_header("Ytdl-socks-proxy"):  # type: ignore[attr-defined]
            return None  # yt-dlp's handler opens it, as before
        site = (request.type, request.host)
        headers = dict(request.unredirected_hdrs)
        headers.update({name: value for name, value in request.header_items() if name not in headers})
        headers = {name.title(): value for name, value in headers.items()}
        headers.pop("Connection", None)  # HTTP/1.1 keeps a connection open unless told otherwise
        connection = self._take(site)
        if connection is not None:
            connection.timeout = request.timeout
            if connection.sock is not None:
                connection.sock.settimeout(request.timeout)
            try:
                return self._send(connection, site, request, headers)
            except (ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest) as error:
                connection.close()  # the site closed it while it was idle: once more on a new one
                if request.get_method() not in ("GET", "HEAD"):
                    raise urllib.error.URLError(error) from None
            except OSError as error:
                connection.close()
                raise urllib.error.URLError(error) from None
        connection = _urllib._create_http_connection(  # private: yt-dlp's, with its source address
            connection_class, self._source_address, request.host, timeout=request.timeout, **options
        )
        try:
            return self._send(connection, site, request, headers)
        except OSError as error:
            connection.close()
            raise urllib.error.URLError(error) from None

    def _send(
        self,
        connection: http.client.HTTPConnection,
        site: tuple[str, str],
        request: urllib.request.Request,
        headers: dict[str, str],
    ) -> Any:
        connection.response_class = _ReusableResponse
        connection.request(
            request.get_method(),
            request.selector,
            request.data,
            headers,
            encode_chunked=request.has_header("Transfer-encoding"),
        )
        response = connection.getresponse()
        assert isinstance(response, _ReusableResponse)
        if not response.will_close:
            response.give_back = lambda: self._give_back(site, connection)
        response.url = request.get_full_url()
        response.msg = response.reason  # type: ignore[assignment]  # as urllib's do_open does
        return response

    def _take(self, site: tuple[str, str]) -> http.client.HTTPConnection | None:
        with self._lock:
            connections = self._idle.get(site)
            return connections.pop() if connections else None

    def _give_back(self, site: tuple[str, str], connection: http.client.HTTPConnection) -> None:
        if connection.sock is None or connection.sock.fileno() == -1:
            return  # an answer collected with its connection as garbage: its socket may have been closed first
        with self._lock:
            connections = self._idle.setdefault(site, [])
            if len(connections) < self.MAX_IDLE_PER_SITE:
                connections.append(connection)
                return
        connection.close()


class _ReusableResponse(http.client.HTTPResponse):
    """An answer that gives its connection back once its body has been read to its end and it is closed; one closed
    before (a feed found too big, a download stopped) closes its connection, as the rest of its body is unread."""

    give_back: Callable[[], None] | None = None
    _trailer_read = False  # the last chunk's trailer: a chunked body read to its end

    def _read_and_discard_trailer(self) -> None:
        super()._read_and_discard_trailer()  # type: ignore[misc]
        self._trailer_read = True

    def _close_conn(self) -> None:
        read_whole = self.length == 0 or self._trailer_read
        super()._close_conn()  # type: ignore[misc]
        give_back, self.give_back = self.give_back, None
        if give_back is not None and read_whole and not self.will_close:
            give_back()


class _BoundedBody(io.RawIOBase):
    """An answer's body, inflated a buffer at a time (`encodings` in the order the server applied them); read whole,
    it stops at `MAX_WHOLE_ANSWER_BYTES` with AnswerTooLarge."""

    def __init__(self, response: Any, encodings: list[str], host: str) -> None:
        self._response = response
        self._host = host
        source: Any = response
        for encoding in reversed(encodings):
            source = io.BufferedReader(_Inflating(source, encoding), READ_CHUNK_BYTES)
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # What has come, after at most one read of the socket: readinto would wait until the buffer is full, so a
        # server trickling a file (or stalled mid-file) would have its bytes held here instead of written out.
        data = self._source.read1(len(buffer))  # http.client's response, or a BufferedReader
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = self.read(READ_CHUNK_BYTES)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > MAX_WHOLE_ANSWER_BYTES:
                self.close()
                raise AnswerTooLarge(
                    f"the answer from {self._host} is larger than {MAX_WHOLE_ANSWER_BYTES // (1024 * 1024)} MiB "
                    f"(counted decompressed); it was not read further"
                )
            chunks.append(chunk)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


class _Inflating(io.RawIOBase):
    """A gzip or deflate stream, inflated as it is read: never more than the reader's buffer at once. Bytes after
    the end of the compressed data are ignored, as yt-dlp ignores them."""

    def __init__(self, source: Any, encoding: str) -> None:
        self._source = source
        self._encoding = encoding
        self._decompressor: Any = None
        self._pending = b""  # compressed bytes not yet inflated
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._ended:
            if not self._pending:
                self._pending = self._source.read1(READ_CHUNK_BYTES)  # what has come; see _BoundedBody.readinto
                if not self._pending:
                    raise zlib.error(f"the {self._encoding} answer ended before its compressed data did")
            decompressor = self._decompressor or self._start(self._pending)
            inflated = decompressor.decompress(self._pending, len(buffer))
            self._pending = decompressor.unconsumed_tail
            if decompressor.eof:
                self._ended = True
            if inflated:
                buffer[: len(inflated)] = inflated
                return len(inflated)
        return 0

    def _start(self, first_bytes: bytes) -> Any:
        """The decompressor for the stream: gzip; deflate with its zlib header, or raw, as servers send either."""
        if self._encoding == "gzip":
            wbits = zlib.MAX_WBITS | 16
        elif len(first_bytes) >= 2 and first_bytes[0] & 0x0F == 8 and int.from_bytes(first_bytes[:2], "big") % 31 == 0:
            wbits = zlib.MAX_WBITS
        else:
            wbits = -zlib.MAX_WBITS
        self._decompressor = zlib.decompressobj(wbits)
        return self._decompressor

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()
