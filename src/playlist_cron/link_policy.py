"""Which links a playlist's entries may lead to: http and https only, never link-local, private ones when allowed.

A feed is written by whoever runs the site, and its links are requested by this machine, from inside its network:
an enclosure at http://169.254.169.254/ (a cloud's metadata service) would be downloaded with its credentials as a
video. Decided from parsed facts alone: the URL's scheme and every address its host name resolves to. The name is
resolved here and again when connecting; a name that answers differently the second time (DNS rebinding) is not
caught.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Callable, Iterable

from playlist_cron.config import Config, Playlist
from playlist_cron.failure_kinds import REFUSED_ADDRESS

FOLLOWED_SCHEMES = ("http", "https")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[Address]]


def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (itself when it is one); none when it does not resolve here (the request
    then fails as any unreachable site does, or a proxy resolves it)."""
    try:
        return [_plain(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    addresses: list[Address] = []
    for *_, socket_address in found:
        try:
            addresses.append(_plain(ipaddress.ip_address(str(socket_address[0]).partition("%")[0])))
        except ValueError:
            continue
    return addresses


def _plain(address: Address) -> Address:
    """An IPv4 address written as IPv6 (::ffff:169.254.169.254) is that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_inward(address: Address) -> bool:
    """Whether an address is this machine's or its network's (loopback, private, shared, unspecified...)."""
    return not address.is_global


def host_and_port(url: str) -> tuple[str, int] | None:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname, port or (443 if parts.scheme.lower() == "https" else 80)


class LinkPolicy:
    """What the entries of a playlist at `own_urls` (its URL, its feed's) may lead to: loopback and private
    addresses when one of those is on such an address, or with `allow_private_addresses`; link-local ones, and
    schemes other than http and https, never. Nothing is looked up before a link is asked about."""

    def __init__(self, own_urls: Iterable[str], allow_private_addresses: bool, resolver: Resolver = resolve) -> None:
        self._own_urls = list(own_urls)
        self._inward_allowed: bool | None = True if allow_private_addresses else None
        self._resolver = resolver
        self._addresses: dict[tuple[str, int], list[Address]] = {}  # one lookup per host and read

    @classmethod
    def of_playlist(cls, playlist: Playlist, config: Config | None) -> LinkPolicy:
        """The policy for a playlist's entries: on its URL or its feed's, with the config's
        `allow_private_addresses` (none without a config)."""
        own_urls = [playlist.url, *([playlist.feed_url] if isinstance(playlist.feed_url, str) else [])]
        return cls(own_urls, config is not None and config.allow_private_addresses)

    @property
    def inward_allowed(self) -> bool:
        if self._inward_allowed is None:
            self._inward_allowed = any(is_inward(address) for url in self._own_urls for address in self.addresses(url))
        return self._inward_allowed

    def addresses(self, url: str) -> list[Address]:
        where = host_and_port(url)
        if where is None:
            return []
        if where not in self._addresses:
            self._addresses[where] = self._resolver(*where)
        return self._addresses[where]

    def refusal(self, url: str) -> str | None:
        """Given a link about to be requested, return why it is refused, in plain words, or None to follow it."""
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        shown = _shown(url)
        if scheme not in FOLLOWED_SCHEMES:
            return f"{REFUSED_ADDRESS}: not requested: {shown} is a {scheme or 'relative'}: link, not http or https"
        for address in self.addresses(url):
            if address.is_link_local:
                return (
                    f"{REFUSED_ADDRESS}: not requested: {shown} is on {address}, a link-local address (where a cloud's "
                    f"metadata service answers)"
                )
            if is_inward(address) and not self.inward_allowed:
                return (
                    f"{REFUSED_ADDRESS}: not requested: {shown} is on {address}, a loopback or private address, and "
                    f"the playlist is not (allow_private_addresses allows it)"
                )
        return None


def _shown(url: str) -> str:
    """A URL as a log line shows it: without a user name or password, and not endless."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    shown = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return shown if len(shown) <= 200 else shown[:200] + "..."
