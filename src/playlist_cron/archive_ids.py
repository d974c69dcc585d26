"""A playlist entry's archive id ("<extractor> <id>"), told without a request; the look-ups behind it made once."""

from __future__ import annotations

from typing import Any

from playlist_cron import yt_dlp_private
from playlist_cron.archive_view import extractors_of, look_up


def with_plain_id(entry: dict[str, Any]) -> dict[str, Any]:
    """Given a playlist entry, return it with its id on one line.

    A feed's guid often keeps the XML's line breaks and indentation ("\\n    1234\\n"): as yt-dlp's id it would break
    the archive's line in three, so the video would never be found there and come again at every check.
    """
    entry_id = entry.get("id")
    if isinstance(entry_id, str) and entry_id != " ".join(entry_id.split()):
        entry = {**entry, "id": " ".join(entry_id.split())}
    url = entry.get("url")
    if not isinstance(url, str):
        return entry
    _, video_id = yt_dlp_private.smuggled_video_id(url)
    if video_id is None or video_id == " ".join(video_id.split()):
        return entry
    return {**entry, "url": yt_dlp_private.with_smuggled_video_id(url, " ".join(video_id.split()))}


class ArchiveIds:
    """The benchmark-justified shortcuts: the extractor and archive look-ups that yt-dlp would repeat for every
    entry, made once for one YoutubeDL (`ydl`, its download archive loaded)."""

    def __init__(self, ydl: Any) -> None:
        self._ydl = ydl
        self._archive_keys: set[str] | None = None
        self._extractor_keys: dict[tuple[str, str], str | None] = {}

    def of(self, entry: dict[str, Any]) -> str | None:
        """Return an entry's archive id without a request: from yt-dlp, or from the id a feed smuggles into the URL."""
        archive_id = yt_dlp_private.archive_id(self._ydl, entry)
        if archive_id:
            return archive_id
        url = entry.get("url")
        if not isinstance(url, str):
            return None
        plain_url, video_id = yt_dlp_private.smuggled_video_id(url)
        if not video_id:
            return None
        # yt-dlp would find the extractor by trying every one of its ~1,800 on the URL: milliseconds an entry. When
        # the archive holds this id under one extractor, that is the answer; only new ids pay for the full search.
        extractors = self.archived_extractors(video_id)
        if len(extractors) == 1:
            return f"{next(iter(extractors))} {video_id}"
        extractor = self.extractor_key_for(plain_url)
        return f"{extractor} {video_id}" if extractor else None

    def extractor_key_for(self, url: str) -> str | None:
        """The archive key of the extractor yt-dlp would pick for `url`, looked up once per folder of URLs.

        A feed's enclosures share a host and a folder, and the search tries every extractor's pattern (a few
        milliseconds each time); yt-dlp repeats it when it processes the entry, so without this cache a new entry
        would pay for it twice.
        """
        shape = _url_shape(url)
        if shape not in self._extractor_keys:
            self._extractor_keys[shape] = yt_dlp_private.first_suitable_extractor(self._ydl, url)
        ie_key = self._extractor_keys[shape]
        return ie_key.lower() if ie_key else None

    def known_ie_key(self, url: str) -> str | None:
        """The extractor already looked up for this folder of URLs, if any: yt-dlp need not search again."""
        return self._extractor_keys.get(_url_shape(url))

    def archived_extractors(self, video_id: str) -> set[str]:
        """The extractor keys under which the archive holds `video_id`.

        An archive names few extractors (youtube, generic, ...): they are asked once, and then each is tried
        against the archive (looked up, or answered from what the check looked up already).
        """
        if self._archive_keys is None:
            self._archive_keys = extractors_of(self._ydl.archive)
        return {key for key in self._archive_keys if yt_dlp_private.archive_holds(self._ydl, f"{key} {video_id}")}

    def look_up(self, entries: object) -> None:
        """Ask the archive about a playlist's entries in one batch, when they are listed whole (a feed's, a list's;
        a playlist whose entries yt-dlp pages through has each asked about as it comes)."""
        if isinstance(entries, list):
            look_up(self._ydl.archive, self.candidates(entries))

    def candidates(self, entries: list[Any]) -> list[str]:
        """The archive lines the archive is asked about for `entries` (to look them up in one batch): each entry's
        archive id when yt-dlp tells it, else its smuggled id under each extractor the archive names, and under the
        one yt-dlp would pick."""
        lines = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            entry = with_plain_id(entry)
            archive_id = yt_dlp_private.archive_id(self._ydl, entry)
            if archive_id:
                lines.append(archive_id)
                continue
            url = entry.get("url")
            plain_url, video_id = yt_dlp_private.smuggled_video_id(url) if isinstance(url, str) else (None, None)
            if not video_id or plain_url is None:
                continue
            if self._archive_keys is None:
                self._archive_keys = extractors_of(self._ydl.archive)
            extractor = self.extractor_key_for(plain_url)
            lines += [f"{key} {video_id}" for key in self._archive_keys | ({extractor} if extractor else set())]
        return lines

    def recorded(self, archive_id: str) -> None:
        """Note a line just added to the archive: its extractor is now one that the archive names."""
        if self._archive_keys is not None:
            self._archive_keys.add(archive_id.partition(" ")[0])


def _url_shape(url: str) -> tuple[str, str]:
    """A URL's folder and extension: the URLs of a feed's enclosures that share them go to the same extractor."""
    folder, _, name = url.rpartition("/")
    return folder, name.rpartition(".")[2] if "." in name else ""
