"""Reading RSS/Atom feeds and deriving a playlist's feed URL; no yt-dlp."""

from __future__ import annotations

import functools
import re
from typing import Literal, NamedTuple

from playlist_cron.feed_decode import FeedError, FeedErrorReason, may_begin_xml
from playlist_cron.feed_tree import Node, join_url, parse_tree

__all__ = ["Feed", "FeedEntry", "FeedError", "FeedErrorReason", "FeedKind", "FetchResult", "parse_feed"]

FeedKind = Literal["youtube", "atom", "rss"]

YOUTUBE_FEED_URL = "https://www.youtube.com/feeds/videos.xml"
MAX_FEED_BYTES = 16 * 1024 * 1024  # a feed is kilobytes; a bigger answer is not a feed and must not fill memory

_MEDIA_EXTENSIONS = (".mp4", ".m4v", ".webm", ".mkv", ".mov", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".flac")
_NOT_MEDIA_TYPES = ("image/", "text/", "application/xhtml+xml", "application/x-shockwave-flash")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".bmp", ".ico", ".avif", ".heic", ".tiff")
_CHANNEL_ID = re.compile(r"UC[0-9A-Za-z_-]{22}")
_LIST_ID = re.compile(r"[0-9A-Za-z_-]{10,}")
_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com"}
# The end of an ISO 8601 time, its fraction of a second and offset in forms Python 3.10's datetime.fromisoformat does
# not read (3.11 reads them all): a fraction of other than three or six digits, a Z, an offset without its colon.
_ISO_TIME_END = re.compile(
    r"(?P<time>[Tt ]\d\d:\d\d(?::\d\d)?)(?:[.,](?P<fraction>\d+))?(?P<offset>[Zz]|[+-]\d\d:?\d\d)?$"
)
# Lists with no public feed: mixes are generated per viewer, the others are private to their owner.
_LISTS_WITHOUT_FEED = ("RD", "WL", "LL", "LM")
# A channel's tabs and the prefix of the uploads list YouTube keeps for each ("UC" of the channel id replaced);
# None: the channel's own page, whose feed is the channel feed (every upload).
_TAB_LISTS: dict[str, str | None] = {"": None, "videos": "UULF", "shorts": "UUSH", "streams": "UULV"}


class FeedEntry(NamedTuple):
    """One item or entry of a feed; `id` is stripped and unique within its feed."""

    id: str
    title: str | None
    page_url: str | None
    media_url: str | None  # the first video or audio enclosure, else the first that is no image
    published_s: int | None
    updated_s: int | None
    video_id: str | None  # yt:videoId
    channel_id: str | None  # yt:channelId
    own_id: bool = True  # the id is the entry's own (guid, atom:id), not its link standing in for one


class Feed(NamedTuple):
    """A parsed feed: its kind, its title, its entries in document order, and the repairs it needed to be read (the
    names in `feed_decode`, such as `html_entity`; none for a clean feed)."""

    kind: FeedKind
    title: str | None
    entries: list[FeedEntry]
    repairs: tuple[str, ...] = ()


class FetchResult(NamedTuple):
    """One answer to a feed request; `body` is None when the server said 304 (unchanged)."""

    status: int
    body: bytes | None
    etag: str | None
    last_modified: str | None
    content_type: str | None = None  # its charset decodes a feed (see `feed_decode.decode`)


# --- deriving a playlist's feed URL ---


def _youtube_path(url: str) -> tuple[str, dict[str, list[str]]] | None:
    """Given a URL, return its path and query when it is on YouTube's web host, else None."""
    from urllib.parse import parse_qs, urlsplit

    if "youtube.com" not in url.lower():  # every host of `_YOUTUBE_HOSTS` has it: no parse (`status` of 10,000)
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in _YOUTUBE_HOSTS:
        return None
    return parts.path.rstrip("/"), parse_qs(parts.query)


def channel_feed_url(channel_id: str) -> str:
    """Given a channel id (UC…), return its uploads feed."""
    return f"{YOUTUBE_FEED_URL}?channel_id={channel_id}"


def is_youtube_url(url: str) -> bool:
    """Whether `url` is on YouTube's web host (where no page is an RSS or Atom feed)."""
    return _youtube_path(url) is not None


def _channel_page(found: tuple[str, dict[str, list[str]]] | None) -> tuple[str, str | None, str] | None:
    """Given a URL's `_youtube_path`, return how it names a channel ("id", "handle") with the name, and its tab (""
    for the channel's own page), when it is a YouTube channel page; else None."""
    if found is None:
        return None
    segments = found[0].split("/")[1:]
    tab = segments[-1] if len(segments) in (2, 3) and segments[-1] in _TAB_LISTS else None
    named = segments[:-1] if tab is not None and len(segments) in (2, 3) else segments
    if len(named) == 2 and named[0] == "channel" and _CHANNEL_ID.fullmatch(named[1]):
        return "id", named[1], tab or ""
    if len(named) == 1 and named[0].startswith("@") and len(named[0]) > 1:
        return "handle", None, tab or ""
    if len(named) == 2 and named[0] in ("c", "user") and named[1]:
        return "handle", None, tab or ""
    return None


# Remembered: a check and `status` ask it of each playlist several times (its plan, its next full read), and a URL's
# parse is most of their time per playlist at 10,000 playlists. A pure function of its two strings.
@functools.lru_cache(maxsize=1 << 15)
def derive_feed_url(url: str, channel_id: str | None = None) -> str | None:
    """Given a playlist URL (and, for a channel named by handle, its id once known), return the feed that lists
    its newest entries, or None when there is none to derive.

    A channel's own page (`/channel/UC…`, all its uploads) has the channel feed. Its tabs have the feed of the
    uploads list YouTube keeps for each: `/videos` (UULF…), `/shorts` (UUSH…), `/streams` (UULV…), so that a feed
    read fetches no more than the full read would. `/@handle` has one only once its channel id is known: see
    `needs_channel_id`.
    """
    found = _youtube_path(url)
    page = _channel_page(found)
    if page is not None:
        how, named_id, tab = page
        channel_id = named_id if how == "id" else channel_id
        if channel_id is None or not _CHANNEL_ID.fullmatch(channel_id):
            return None
        prefix = _TAB_LISTS[tab]
        return channel_feed_url(channel_id) if prefix is None else playlist_feed_url(prefix + channel_id[2:])
    if found is None:
        return None
    path, query = found
    if path == "/playlist" and len(query.get("list", [])) == 1:
        list_id = query["list"][0]
        if _LIST_ID.fullmatch(list_id) and not list_id.startswith(_LISTS_WITHOUT_FEED):
            return playlist_feed_url(list_id)
    return None


def playlist_feed_url(list_id: str) -> str:
    """Given a playlist id (PL…, UU…), return its feed."""
    return f"{YOUTUBE_FEED_URL}?playlist_id={list_id}"


def needs_channel_id(url: str) -> bool:
    """Given a playlist URL, say whether it names a channel by handle or legacy name (`/@x`, `/c/x`, `/user/x`, or
    one of their tabs).

    Such a channel's feed needs its UC… id, which only a read of the channel page gives (once, then remembered).
    """
    page = _channel_page(_youtube_path(url))
    return page is not None and page[0] == "handle"


def is_channel_id(text: object) -> bool:
    """Whether `text` is a YouTube channel id (UC and 22 more characters)."""
    return isinstance(text, str) and _CHANNEL_ID.fullmatch(text) is not None


# --- fetching ---


def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """Given the validators of the last read, return the headers that let the server answer 304."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def check_looks_like_xml(head: bytes, content_type: str | None) -> None:
    """Given the first bytes of an answer, raise `FeedError` unless they may begin an XML document: an HTML page or
    a media file is told apart before the rest of it is read."""
    start = (head[3:] if head.startswith(b"\xef\xbb\xbf") else head).lstrip(b" \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")) or not (start.startswith(b"<") or may_begin_xml(head)):
        media_type = (content_type or "").partition(";")[0].strip() or "no Content-Type"
        raise FeedError("not_xml", f"the answer ({media_type}) is not an XML document")


# --- parsing ---


def _epoch_s(text: str | None) -> int | None:
    """Given a feed date (RFC 822 in RSS, RFC 3339 in Atom), return epoch seconds; naive dates are UTC."""
    if not text:
        return None
    from datetime import datetime, timezone

    moment: datetime | None
    try:
        moment = datetime.fromisoformat(_iso_for_python_3_10(text))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            moment = None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return int(moment.timestamp())
    except (OverflowError, ValueError, OSError):  # a year 1 or 9999 moved out of range by its offset
        return None


def _iso_for_python_3_10(text: str) -> str:
    """Given an ISO 8601 time, return it with its fraction of a second in six digits and its offset as +HH:MM."""
    match = _ISO_TIME_END.search(text)
    if match is None:
        return text
    fraction = f".{match['fraction'][:6]:0<6}" if match["fraction"] else ""
    offset = match["offset"] or ""
    if offset in ("Z", "z"):
        offset = "+00:00"
    elif offset and ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    return f"{text[: match.start()]}{match['time']}{fraction}{offset}"


def _resolve(node: Node, url: str | None) -> str | None:
    return join_url(node.base, url) if url and url.strip() else None


def _is_media(media_type: str, medium: str, url: str) -> bool:
    """Whether an enclosure is video or audio, by its type, its medium or (untyped) its file name."""
    media_type, medium = media_type.strip().lower(), medium.strip().lower()
    if media_type or medium:
        return media_type.startswith(("video/", "audio/")) or medium in ("video", "audio")
    return _file_name(url).endswith(_MEDIA_EXTENSIONS)


def _is_image(media_type: str, medium: str, url: str) -> bool:
    """Whether an enclosure is an image (a cover, a thumbnail), by its type, its medium or its file name, or a player
    or page (YouTube's Flash player link, an HTML page): never the media itself."""
    return (
        media_type.strip().lower().startswith(_NOT_MEDIA_TYPES)
        or medium.strip().lower() == "image"
        or _file_name(url).endswith(_IMAGE_EXTENSIONS)
    )


def _file_name(url: str) -> str:
    return url.lower().partition("?")[0].partition("#")[0]


def _media_url(item: Node) -> str | None:
    """Given an item, return its media: its first video or audio enclosure (RSS enclosure, Atom link, media:content),
    else its first enclosure that is no image, whatever its type (`x-audio/mp3`, `application/octet-stream`, none);
    None when it has no enclosure but images."""
    candidates: list[tuple[str, str, str, Node]] = []
    for child in item.children:
        if child.name == "media:group":
            enclosures = child.all("media:content")
        elif child.name in ("enclosure", "media:content") or (
            child.name == "atom:link" and child.attributes.get("rel") == "enclosure"
        ):
            enclosures = [child]
        else:
            continue
        for enclosure in enclosures:
            url = enclosure.attributes.get("url") or enclosure.attributes.get("href") or ""
            if url.strip():
                attributes = enclosure.attributes
                candidates.append((attributes.get("type", ""), attributes.get("medium", ""), url, enclosure))
    chosen = next((candidate for candidate in candidates if _is_media(*candidate[:3])), None)
    if chosen is None:
        chosen = next((candidate for candidate in candidates if not _is_image(*candidate[:3])), None)
    return _resolve(chosen[3], chosen[2]) if chosen is not None else None


def _atom_link(entry: Node) -> str | None:
    for link in entry.all("atom:link"):
        if link.attributes.get("rel", "alternate") == "alternate" and link.attributes.get("href", "").strip():
            return _resolve(link, link.attributes["href"])
    return None


def _rss_entry(item: Node) -> FeedEntry | None:
    # The first <link> with text: an <atom:link> read as a bare <link> (Atom's namespace as the default) has none.
    link = next((child for child in item.all("link") if child.text), None)
    page_url = _resolve(link, link.text) if link is not None else None
    if page_url is None:
        page_url = _atom_link(item)  # RSS feeds that borrow Atom's <atom:link>
    guid = item.first("guid")
    media_url = _media_url(item)
    # A guid is a permalink by default, but many feeds leave that unsaid for ids that are no URL at all.
    if (
        page_url is None
        and guid is not None
        and guid.text.startswith(("http://", "https://"))
        and guid.attributes.get("isPermaLink") != "false"
    ):
        page_url = guid.text
    own_id = True
    if guid is not None and guid.text:
        entry_id = guid.text
    elif "rdf:about" in item.attributes and item.attributes["rdf:about"].strip():
        entry_id = item.attributes["rdf:about"].strip()
    else:
        entry_id, own_id = page_url or media_url or "", False
    if not entry_id:
        return None
    published_s = _epoch_s(item.first_text("pubDate", "dc:date", "atom:published"))
    return FeedEntry(
        id=entry_id,
        title=item.first_text("title", "media:title", "itunes:title"),
        page_url=page_url,
        media_url=media_url,
        published_s=published_s,
        updated_s=_epoch_s(item.first_text("atom:updated")) or published_s,
        video_id=None,
        channel_id=None,
        own_id=own_id,
    )


def _atom_entry(entry: Node) -> FeedEntry | None:
    page_url = _atom_link(entry)
    media_url = _media_url(entry)
    video_id = entry.first_text("yt:videoId")
    own_id = entry.first_text("atom:id")
    entry_id = own_id or page_url or media_url
    if not entry_id:
        return None
    group = entry.first("media:group")
    title = entry.first_text("atom:title") or (group.first_text("media:title") if group is not None else None)
    published_s = _epoch_s(entry.first_text("atom:published", "atom:issued"))
    updated_s = _epoch_s(entry.first_text("atom:updated", "atom:modified"))
    return FeedEntry(
        id=entry_id,
        title=title,
        page_url=page_url,
        media_url=media_url,
        published_s=published_s or updated_s,
        updated_s=updated_s or published_s,
        video_id=video_id,
        channel_id=entry.first_text("yt:channelId"),
        own_id=own_id is not None,
    )


def parse_feed(body: bytes, base_url: str, content_type: str | None = None) -> Feed:
    """Given a feed's bytes, the URL they came from and their HTTP Content-Type (its charset decodes them), return
    its entries and the repairs it needed; raise `FeedError` when it is not one, and nothing else whatever the bytes.

    Relative links resolve against `base_url` and any `xml:base`. An entry whose id was already seen is dropped (the
    first wins); an entry with no id, link or enclosure is dropped too, as nothing could identify it.
    """
    root, repairs = parse_tree(body, base_url, content_type)
    kind: FeedKind
    if root.name == "atom:feed":
        items, title = root.all("atom:entry"), root.first_text("atom:title")
        parsed = [_atom_entry(item) for item in items]
        is_youtube = root.first("yt:channelId", "yt:playlistId") is not None
        kind = "youtube" if is_youtube or any(entry and entry.video_id for entry in parsed) else "atom"
    elif root.name in ("rss", "rdf:RDF"):
        channel = root.first("channel")
        # RSS 2.0 nests items in <channel>; RSS 1.0 (RDF) puts them beside it.
        items = (channel.all("item") if channel is not None else []) + root.all("item")
        title = channel.first_text("title") if channel is not None else None
        parsed = [_rss_entry(item) for item in items]
        kind = "rss"
    else:
        raise FeedError("not_a_feed", f"the root element is <{root.name}>, not <rss>, <rdf:RDF> or Atom's <feed>")
    entries: list[FeedEntry] = []
    seen: set[str] = set()
    for entry in parsed:
        if entry is not None and entry.id not in seen:
            seen.add(entry.id)
            entries.append(entry)
    return Feed(kind=kind, title=title, entries=entries, repairs=repairs)
