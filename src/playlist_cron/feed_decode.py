"""A feed's bytes to text as feed readers decode them, and the repairs of its defects that are safe to make."""

from __future__ import annotations

import re
from typing import Literal

FeedErrorReason = Literal["entity_declaration", "not_xml", "not_a_feed", "too_large", "unexpected_not_modified"]

# The names of the repairs a feed may need (`Feed.repairs`, the `feed_repaired` event, the state's `feed_repairs`).
UNDECLARED_ENCODING = "undeclared_encoding"  # no BOM, HTTP charset, declaration nor UTF-8 fits: Windows-1252
JUNK_BEFORE_ROOT = "junk_before_root"  # text or HTML (a PHP warning) before the document
CONTROL_CHARACTER = "control_character"  # a character XML forbids (U+0000 to U+001F but tab and line ends)
HTML_ENTITY = "html_entity"  # an HTML named entity (&nbsp;, &eacute;) that no DTD declares
BARE_AMPERSAND = "bare_ampersand"  # an & that starts no reference (`?a=1&b=2`, `Q&A`)
TRUNCATED = "truncated"  # the body ends before the document does: only its complete entries are kept
JUNK_AFTER_ROOT = "junk_after_root"  # anything after the document's end
ATOM_WITHOUT_NAMESPACE = "atom_without_namespace"  # a <feed> without Atom's namespace, read as Atom

_BYTE_ORDER_MARKS = (  # UTF-32's before UTF-16's: FF FE 00 00 begins with FF FE
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_WIDE_BYTE_ORDER_MARKS = tuple(mark for mark, codec in _BYTE_ORDER_MARKS if codec != "utf-8")
# IANA's names of UCS-2 and UCS-4, which real feeds declare and Python's codecs do not know: their byte order is
# told by the bytes (`_byte_family`).
_ALIASES = {
    "csunicode": "utf-16",
    "iso-10646-ucs-2": "utf-16",
    "ucs-2": "utf-16",
    "ucs2": "utf-16",
    "csucs4": "utf-32",
    "iso-10646-ucs-4": "utf-32",
    "ucs-4": "utf-32",
    "ucs4": "utf-32",
}
# The encodings expat reads itself: a document declaring one of these (or none) is given to it as bytes.
_EXPAT_ENCODINGS = {"utf-8", "us-ascii", "iso-8859-1"}
_DECLARED_ENCODING = re.compile(rb"""<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:+-]{1,64})["']""")
_CHARSET = re.compile(r"""(?:^|;)\s*charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_DECLARATION_HEAD_BYTES = 1024
# What the document may begin with before its root: white space, comments, processing instructions, a DOCTYPE.
_PROLOG = re.compile(r"(?:\s+|<!--.*?-->|<\?.*?\?>|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>)*", re.DOTALL)
# Where a feed begins: its XML declaration, or the start tag of an RSS, RDF or Atom root.
_DECLARATION = re.compile(r"<\?xml\s")
_ROOT_START = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?(?:rss|feed|RDF)[\s>/]")
_FEED_START = re.compile(f"{_DECLARATION.pattern}|{_ROOT_START.pattern}")
# The encoding named in the declaration at the start of decoded text: expat would still check its spelling.
_DECLARED_ENCODING_TEXT = re.compile(r"""\A(<\?xml\s[^>]*?)\s*\bencoding\s*=\s*(["'])[^"'>]*\2""")
_FEED_START_BYTES = re.compile(_FEED_START.pattern.encode())
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Outside CDATA sections and comments, each & and what follows it, when that is a reference.
_AMPERSANDS = re.compile(
    r"<!\[CDATA\[.*?\]\]>|<!--.*?-->"
    r"|&(?:#(?P<decimal>[0-9]{1,8});|#(?P<x>[xX])(?P<hex>[0-9a-fA-F]{1,8});|(?P<name>[A-Za-z][A-Za-z0-9]{0,31});)?",
    re.DOTALL,
)
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}


class FeedError(Exception):
    """A body that cannot be read as a feed; `reason` says why, for the caller to decide on."""

    def __init__(self, reason: FeedErrorReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: FeedErrorReason = reason
        self.detail = detail


def http_charset(content_type: str | None) -> str | None:
    """Given an HTTP Content-Type, return its charset parameter, or None."""
    match = _CHARSET.search(content_type or "")
    return match[1] if match else None


def may_begin_xml(head: bytes) -> bool:
    """Given the first bytes of an answer that do not begin with `<`, say whether they may still begin a feed: in
    UTF-16 or UTF-32, or with junk before its declaration or root (a PHP warning)."""
    if head.startswith(_WIDE_BYTE_ORDER_MARKS):
        return True
    return _byte_family(head) != "ascii" or _FEED_START_BYTES.search(head) is not None


def expat_bytes(body: bytes, charset: str | None) -> bytes | None:
    """Given a feed's bytes and its HTTP charset, return the bytes to give expat as they are, when they say they are
    in an encoding expat reads itself (UTF-8 by default) and the HTTP charset agrees; else None: decode them first.

    This is how a clean feed is read, with no pass over it in Python. Blank lines and a UTF-8 byte-order mark before
    `<?xml`, which XML forbids and real feeds have, are dropped.
    """
    start = body[3:] if body.startswith(b"\xef\xbb\xbf") else body
    start = start.lstrip(b" \t\r\n")
    if start.startswith(_WIDE_BYTE_ORDER_MARKS) or _byte_family(start) != "ascii":
        return None
    match = _DECLARED_ENCODING.search(start, 0, _DECLARATION_HEAD_BYTES)
    declared = match[1].decode("ascii").lower() if match else "utf-8"
    if declared not in _EXPAT_ENCODINGS:
        return None
    if charset is not None and _codec(charset) not in (None, _codec(declared)):
        return None
    return start


def decode(body: bytes, charset: str | None) -> tuple[str, tuple[str, ...]]:
    """Given a feed's bytes and its HTTP charset, return its text and the repairs that took.

    Decoded as feed readers do, by the first of these that fits its bytes: a byte-order mark, the HTTP charset, the
    XML declaration's encoding, UTF-8 (or the UTF-16 or UTF-32 that its first bytes show), and Windows-1252 as the last
    resort (the repair `undeclared_encoding`). An encoding Python's codecs do not know, or that the first bytes
    contradict (a declared UTF-16 in single bytes), is passed over.
    """
    for mark, codec in _BYTE_ORDER_MARKS:
        if body.startswith(mark):
            text = _decoded(body[len(mark) :], codec)
            if text is not None:
                return _without_leading_space(text), ()
            body = body[len(mark) :]
            break
    family = _byte_family(body)
    for name in (charset, _declared_encoding(body, family), "utf-8" if family == "ascii" else family):
        fitting = _fitting_codec(name, family)
        text = _decoded(body, fitting) if fitting else None
        if text is not None:
            return _without_leading_space(text), ()
    text = body.decode("cp1252" if family == "ascii" else family, "replace")
    return _without_leading_space(text), (UNDECLARED_ENCODING,)


def _without_leading_space(text: str) -> str:
    """Given decoded text, return it without the blank lines (or second byte-order mark) that real feeds put before
    `<?xml`, which XML forbids, and without the encoding its declaration names (it is text now: a name expat would
    find misspelt, such as "437", must not stop it)."""
    return _DECLARED_ENCODING_TEXT.sub(r"\1", text.lstrip(" \t\r\n\ufeff"), count=1)


def repair(text: str) -> tuple[str, tuple[str, ...]]:
    """Given a feed's text that expat refused, return it with the defects that are safe to repair repaired, and the
    names of the repairs made (none when there was nothing to repair).

    Junk before the document goes; characters XML forbids go; an HTML named entity becomes the character it names
    (as a character reference: no DTD is read, no entity declared); an & that starts no reference becomes `&amp;`.
    CDATA sections and comments are left as they are.
    """
    repairs: list[str] = []
    start = _document_start(text)
    if start:
        text = _DECLARED_ENCODING_TEXT.sub(r"\1", text[start:], count=1)
        repairs.append(JUNK_BEFORE_ROOT)
    text, count = _CONTROL_CHARACTERS.subn("", text)
    if count:
        repairs.append(CONTROL_CHARACTER)
    found: set[str] = set()
    text = _AMPERSANDS.sub(lambda match: _reference(match, found), text)
    repairs.extend(name for name in (HTML_ENTITY, BARE_AMPERSAND, CONTROL_CHARACTER) if name in found)
    return text, tuple(dict.fromkeys(repairs))


def _document_start(text: str) -> int:
    """Where the document in `text` begins: 0, or after junk (text, HTML, a comment before `<?xml`)."""
    root = _ROOT_START.search(text)
    declaration = _DECLARATION.search(text, 0, root.start() if root else len(text))
    if declaration is not None:
        return declaration.start()
    prolog_end = _PROLOG.match(text).end()  # type: ignore[union-attr]  # matches the empty string at least
    return root.start() if root is not None and root.start() > prolog_end else 0


def _reference(match: re.Match[str], found: set[str]) -> str:
    """Given a match of `_AMPERSANDS`, return what goes in its place, noting in `found` any repair made."""
    whole = match[0]
    if not whole.startswith("&"):
        return whole  # a CDATA section or a comment
    number = int(match["decimal"]) if match["decimal"] else int(match["hex"], 16) if match["hex"] else None
    if number is not None:
        if not _is_xml_character(number):
            found.add(CONTROL_CHARACTER)
            return ""
        if match["x"] == "X":  # HTML's spelling of a hexadecimal reference; XML's is lower case
            found.add(HTML_ENTITY)
            return f"&#x{match['hex']};"
        return whole
    name = match["name"]
    if name is None:
        found.add(BARE_AMPERSAND)
        return "&amp;"
    if name in _XML_ENTITIES:
        return whole
    from html.entities import html5

    characters = html5.get(f"{name};")
    if characters is None:
        found.add(BARE_AMPERSAND)
        return f"&amp;{name};"
    found.add(HTML_ENTITY)
    return "".join(f"&#{ord(character)};" for character in characters)


def _is_xml_character(number: int) -> bool:
    return (
        number in (0x9, 0xA, 0xD)
        or 0x20 <= number <= 0xD7FF
        or 0xE000 <= number <= 0xFFFD
        or 0x10000 <= number <= 0x10FFFF
    )


def _byte_family(head: bytes) -> str:
    """Given a document's first bytes (no byte-order mark), return how its `<` is written: "ascii" in one byte (UTF-8
    and every ASCII-compatible encoding), else "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be" or "cp037" (EBCDIC's
    `<?xm`) (XML 1.0, F.1)."""
    if len(head) >= 4:
        first = head[:4]
        if first == b"\x4c\x6f\xa7\x94":
            return "cp037"
        if first[0] == first[1] == first[2] == 0 and first[3]:
            return "utf-32-be"
        if first[0] and first[1] == first[2] == first[3] == 0:
            return "utf-32-le"
        if first[0] == 0 and first[1] and first[2] == 0 and first[3]:
            return "utf-16-be"
        if first[0] and first[1] == 0 and first[2] and first[3] == 0:
            return "utf-16-le"
    return "ascii"


def _declared_encoding(body: bytes, family: str) -> str | None:
    """The encoding named by the XML declaration near the start of `body`, read in its byte family."""
    head = body[: _DECLARATION_HEAD_BYTES * (1 if family == "ascii" else 4)]
    if family != "ascii":
        head = head.decode(family, "replace").encode("ascii", "replace")
    match = _DECLARED_ENCODING.search(head)
    return match[1].decode("ascii") if match else None


def _codec(name: str) -> str | None:
    """Python's name of the codec `name` names (or one of `_ALIASES`), or None when it knows none."""
    import codecs

    name = _ALIASES.get(name.strip().lower(), name.strip())
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _fitting_codec(name: str | None, family: str) -> str | None:
    """Given an encoding's name and the byte family of a document, return the codec to decode it with, or None when
    Python knows no such text encoding or it writes `<?xml` in other bytes than the document does."""
    codec = _codec(name) if name else None
    if codec is None:
        return None
    if codec in ("utf-16", "utf-32"):  # the byte order is the document's
        return family if family.startswith(codec) else None
    expected = "<?xml".encode("ascii" if family == "ascii" else family)
    try:
        return codec if "<?xml".encode(codec) == expected else None
    except (LookupError, UnicodeError):  # a codec of bytes to bytes, or one that cannot write these characters
        return None


def _decoded(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except (LookupError, UnicodeError):
        return None
