"""A feed's bytes to a tree of elements with expat, refusing every entity declaration, repairing what is safe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playlist_cron import feed_decode
from playlist_cron.feed_decode import FeedError

if TYPE_CHECKING:
    from xml.parsers.expat import XMLParserType

# The parser is the standard library's expat, driven directly: it costs 0.6 ms to import against 8 ms for
# xml.etree, 10 ms for defusedxml.ElementTree and 56 ms for feedparser. Expat never fetches external entities or
# DTDs (no handler for them is set), and every entity declaration is refused below, which is what defusedxml's
# `forbid_entities` does: a billion-laughs document stops at its first `<!ENTITY`.

NAMESPACE_PREFIXES = {
    "http://www.w3.org/2005/Atom": "atom",
    "http://purl.org/atom/ns#": "atom",  # Atom 0.3, still served by old blogs
    "http://www.youtube.com/xml/schemas/2015": "yt",
    "http://search.yahoo.com/mrss/": "media",
    "http://search.yahoo.com/mrss": "media",
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
    "http://www.w3.org/XML/1998/namespace": "xml",
}
# RSS has no namespace of its own, but some feeds put one on `<rss>` (or RSS 1.0's on its items): their names
# mean the same as bare ones.
_RSS_NAMESPACES = {
    "http://purl.org/rss/1.0/",
    "http://backend.userland.com/rss2",
    "http://backend.userland.com/rss",
    "http://my.netscape.com/rdf/simple/0.9/",
}
ENTRY_NAMES = ("item", "atom:entry")
FEED_ROOT_NAMES = ("rss", "rdf:RDF", "atom:feed")


class Node:
    """One element: its name (`prefix:local`, or bare for RSS and unknown-free names), attributes, text, children."""

    __slots__ = ("attributes", "base", "children", "closed", "name", "text_parts")

    def __init__(self, name: str, attributes: dict[str, str], base: str) -> None:
        self.name = name
        self.attributes = attributes
        self.base = base  # the URL that relative links inside resolve against (xml:base applied)
        self.children: list[Node] = []
        self.text_parts: list[str] = []
        self.closed = False  # its end tag was read

    @property
    def text(self) -> str:
        return "".join(self.text_parts).strip()

    def first(self, *names: str) -> Node | None:
        for name in names:
            for child in self.children:
                if child.name == name:
                    return child
        return None

    def first_text(self, *names: str) -> str | None:
        for name in names:
            for child in self.children:
                if child.name == name and child.text:
                    return child.text
        return None

    def all(self, name: str) -> list[Node]:
        return [child for child in self.children if child.name == name]


def join_url(base: str, url: str) -> str | None:
    """Given a base URL and a link, return the link resolved against the base, or None when it is no URL at all (a
    malformed IPv6 host)."""
    from urllib.parse import urljoin

    try:
        return urljoin(base, url.strip())
    except ValueError:
        return None


class _TreeBuilder:
    """Builds `Node`s from expat's callbacks, refusing every entity declaration."""

    def __init__(self, parser: XMLParserType, base_url: str) -> None:
        self.base_url = base_url
        self.root: Node | None = None
        self.stack: list[Node] = []
        self.rss_namespaces = set(_RSS_NAMESPACES)
        self.bare_prefix = ""  # "atom:" for a <feed> without Atom's namespace: its bare names are Atom's
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.characters
        parser.EntityDeclHandler = self.refuse_entity

    def refuse_entity(self, name: str, *_: object) -> None:
        raise FeedError("entity_declaration", f"the document declares the entity {name!r}; feeds need none")

    def name(self, expat_name: str, bare_prefix: str = "") -> str:
        namespace, _, local = expat_name.rpartition(" ")
        if not namespace:
            return bare_prefix + local
        if namespace in self.rss_namespaces:
            return local
        prefix = NAMESPACE_PREFIXES.get(namespace)
        return f"{prefix}:{local}" if prefix else f"{{{namespace}}}{local}"

    def start(self, expat_name: str, expat_attributes: dict[str, str]) -> None:
        if self.root is None:
            if expat_name.endswith(" rss"):
                self.rss_namespaces.add(expat_name.rpartition(" ")[0])  # a default namespace on <rss>
            elif expat_name == "feed":
                self.bare_prefix = "atom:"
        attributes = {self.name(key): value for key, value in expat_attributes.items()}
        base = self.stack[-1].base if self.stack else self.base_url
        if "xml:base" in attributes:
            base = join_url(base, attributes["xml:base"]) or base
        node = Node(self.name(expat_name, self.bare_prefix), attributes, base)
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)

    def end(self, _: str) -> None:
        self.stack.pop().closed = True

    def characters(self, data: str) -> None:
        if self.stack:
            self.stack[-1].text_parts.append(data)

    def drop_open_entries(self) -> None:
        """The body ended inside the document: drop the entries it cut, keep the complete ones before them."""
        for parent, child in zip(self.stack, self.stack[1:], strict=False):
            if child.name in ENTRY_NAMES and parent.children and parent.children[-1] is child:
                parent.children.pop()
                return


class _NotWellFormed(Exception):
    """Expat stopped at a defect of the document (`detail` says which, and where)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def parse_tree(body: bytes, base_url: str, content_type: str | None = None) -> tuple[Node, tuple[str, ...]]:
    """Given a feed's bytes, the URL they came from and their HTTP Content-Type, return its root element and the
    names of the repairs it needed (`feed_decode`); raise `FeedError` when it is no XML document, even repaired.

    A clean feed in UTF-8 is read in one pass of expat over its bytes. Any other is decoded first
    (`feed_decode.decode`); when expat refuses that too, its defects that are safe to repair are repaired and it is
    read once more. A body that ends inside the document keeps the entries it completed (`truncated`).
    """
    charset = feed_decode.http_charset(content_type)
    refused: _NotWellFormed | None = None
    as_is = feed_decode.expat_bytes(body, charset)
    if as_is is not None:
        try:
            return _parse(as_is, base_url, ())
        except _NotWellFormed as error:
            refused = error
    text, repairs = feed_decode.decode(body, charset)
    if as_is is None or repairs:  # else the text is what expat has just refused
        try:
            return _parse(text, base_url, repairs)
        except _NotWellFormed as error:
            refused = refused or error
    repaired, more = feed_decode.repair(text)
    if more:
        try:
            return _parse(repaired, base_url, repairs + more)
        except _NotWellFormed:
            pass
    assert refused is not None  # it was parsed at least once
    raise FeedError("not_xml", refused.detail)


def _parse(document: bytes | str, base_url: str, repairs: tuple[str, ...]) -> tuple[Node, tuple[str, ...]]:
    """Parse `document` (text is given to expat as UTF-8, whatever its declaration says); return its root and the
    repairs it needed, or raise `_NotWellFormed`.

    Anything after the root element's end is ignored (`junk_after_root`); a document that ends before it is read up
    to there (`truncated`).
    """
    from xml.parsers import expat

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    builder = _TreeBuilder(parser, base_url)
    found: list[str] = []
    try:
        parser.Parse(document, False)
    except expat.ExpatError as error:
        if builder.root is None or not builder.root.closed or builder.root.name not in FEED_ROOT_NAMES:
            raise _NotWellFormed(f"{expat.ErrorString(error.code)} at line {error.lineno}") from None
        found.append(feed_decode.JUNK_AFTER_ROOT)
    except (ValueError, LookupError, UnicodeError) as error:  # an encoding expat cannot read, declared too late
        raise _NotWellFormed(f"undecodable: {error}") from None
    if not found:
        try:
            parser.Parse(b"", True)
        except expat.ExpatError as error:
            if builder.root is None:
                raise _NotWellFormed(f"{expat.ErrorString(error.code)} at line {error.lineno}") from None
            builder.drop_open_entries()
            found.append(feed_decode.TRUNCATED)
    if builder.root is None:
        raise _NotWellFormed("no root element")
    if builder.bare_prefix:
        found.append(feed_decode.ATOM_WITHOUT_NAMESPACE)
    return builder.root, repairs + tuple(found)
