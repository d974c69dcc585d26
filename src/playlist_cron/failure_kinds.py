"""What kind of failure an exception from yt-dlp is (rate limited, no space, network, refused, other), from structured
facts.

A rate limit and a full disk end the whole check: `raise_when_check_must_stop` raises `RateLimited` or `DiskFull`.
"""

from __future__ import annotations

import errno
import http
import os
import re
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

from playlist_cron.errors import DiskFull

RATE_LIMITED = "rate_limited"
NO_SPACE = "no_space"
NETWORK = "network"
REFUSED_ADDRESS = "refused_address"  # a link a playlist's entry led to, not followed (`link_policy.py`)
SIZE_MISMATCH = "size_mismatch"  # a downloaded file whose size is not what the server announced (`file_sizes.py`)
OTHER = "other"
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
UNREACHABLE_ERRNOS = {
    errno.ENETUNREACH: "the network is unreachable",
    errno.ENETDOWN: "the network is down",
    errno.EHOSTUNREACH: "no route to the host",
    errno.EHOSTDOWN: "the host is down",
}
UNRESOLVED_GAI_ERRORS = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
# In this order: ConnectionRefusedError and the others are OSErrors with errnos of their own.
CONNECTION_WORDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "the connection was reset"),
    ((ConnectionAbortedError, BrokenPipeError), "the connection was cut"),
    (TimeoutError, "timed out"),
)


@dataclass(frozen=True)
class Failure:
    """What kind of failure an exception is (`RATE_LIMITED`, `NO_SPACE`, `NETWORK`, `REFUSED_ADDRESS`,
    `SIZE_MISMATCH`, `OTHER`), and plain words for it."""

    kind: str
    message: str
    status: int | None = None  # the HTTP status the site answered with, when it answered


class Refused(Exception):
    """A request that was not sent: its link leads where playlist-cron does not go (`link_policy.py`)."""


class TooLarge(Exception):
    """An answer read whole that was larger than playlist-cron reads: it was not read further."""


class SizeMismatch(Exception):
    """A downloaded file whose size differs from what its server announced: removed, and not archived."""


class RateLimited(Exception):
    """The site answered HTTP 429 or asked to confirm we are not a bot: stop making requests now."""


def raise_when_check_must_stop(failure: Failure) -> None:
    """Raise what ends the whole check for a failure that is neither one video's nor one playlist's: RateLimited
    when the site says to slow down, DiskFull when the disk is full (no retry step is spent)."""
    if failure.kind == RATE_LIMITED:
        raise RateLimited(failure.message) from None
    if failure.kind == NO_SPACE:
        raise DiskFull(failure.message) from None


def classify(error: BaseException, host: str | None = None) -> Failure:
    """Given an exception from yt-dlp, say what kind of failure it is, from types, statuses and errnos alone.

    Everything the exception wraps is looked at (DownloadError.exc_info, ExtractorError.cause, __cause__,
    __context__, URLError.reason), never its message: that carries URLs, ids and titles, which say nothing about
    what the site answered. `host` names the host in a network message when the exception does not tell it.
    """
    from yt_dlp.networking.exceptions import HTTPError  # only a check that downloads gets here (see ytdl.py)

    links = list(_chain(error))
    for link in links:
        if isinstance(link, HTTPError) and link.status == 429:
            return Failure(RATE_LIMITED, f"HTTP 429 Too Many Requests from {host_of(link.response.url)}", 429)
    for link in links:
        if isinstance(link, OSError) and link.errno in NO_SPACE_ERRNOS:
            where = f" ({link.filename})" if link.filename else ""
            return Failure(NO_SPACE, f"{link.strerror or os.strerror(link.errno)}{where}")
    for link in links:
        if isinstance(link, SizeMismatch):
            return Failure(SIZE_MISMATCH, one_line(link))
        if isinstance(link, (Refused, TooLarge)):  # said by playlist-cron itself, in plain words
            return Failure(REFUSED_ADDRESS if isinstance(link, Refused) else OTHER, one_line(link))
    # The nearest link that tells is the cause: an answer such as 404 says the site was reached, even when
    # yt-dlp met it while handling an earlier, incidental failure (chained as __context__, further out).
    decisive = next((link for link in links if isinstance(link, HTTPError) or _network_words(link)), None)
    words = _network_words(decisive) if decisive is not None else _transport_words(links)
    status = decisive.status if isinstance(decisive, HTTPError) else None
    if status is None:
        status = next((link.status for link in links if isinstance(link, HTTPError)), None)
    if words is None:
        return Failure(OTHER, one_line(error), status)
    if isinstance(decisive, HTTPError):
        host = host_of(decisive.response.url)
    return Failure(NETWORK, f"cannot reach {host or 'the site'}: {words}", status)


def host_of(url: str) -> str:
    """The host (and port) a URL names, without any user name or password."""
    return urllib.parse.urlsplit(url).netloc.rpartition("@")[2] or url


def one_line(error: object) -> str:
    """An exception's message on one line, without yt-dlp's "ERROR: " in front."""
    text = str(error).replace("\n", " ").strip()
    return re.sub(r"^ERROR:\s*", "", text)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The exception and every exception it wraps, each once, outermost first."""
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        link = pending.pop(0)
        if not isinstance(link, BaseException) or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        exc_info = getattr(link, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) == 3:
            pending.append(exc_info[1])
        pending.extend([getattr(link, "cause", None), link.__cause__, link.__context__, getattr(link, "reason", None)])


def _transport_words(links: list[BaseException]) -> str | None:
    """Words for a transport failure that no link explains, or None; a certificate that does not verify needs a
    human, not patience: it is no outage."""
    from yt_dlp.networking.exceptions import CertificateVerifyError, TransportError

    transport_failed = any(isinstance(link, TransportError) for link in links)
    if transport_failed and not any(isinstance(link, CertificateVerifyError) for link in links):
        return "the connection failed"
    return None


def _network_words(link: BaseException) -> str | None:
    """Plain words for one exception that says the site could not be reached, or None when it does not."""
    from yt_dlp.networking.exceptions import HTTPError, IncompleteRead

    if isinstance(link, HTTPError):
        return _http_words(link.status)
    if isinstance(link, socket.gaierror):
        if link.errno in UNRESOLVED_GAI_ERRORS:
            return "the name does not resolve"
        return "the name could not be looked up (no answer from DNS)"
    for types, words in CONNECTION_WORDS:
        if isinstance(link, types):
            return words
    if isinstance(link, IncompleteRead):
        return "the connection closed before the whole answer came"
    if isinstance(link, OSError) and link.errno in UNREACHABLE_ERRNOS:
        return UNREACHABLE_ERRNOS[link.errno]
    return None


def _http_words(status: int) -> str | None:
    """Words for an HTTP answer that says the site is unreachable for now (a 5xx), or None."""
    if status < 500:
        return None
    try:
        phrase = f" {http.HTTPStatus(status).phrase}"
    except ValueError:
        phrase = ""
    return f"it answered HTTP {status}{phrase}"
