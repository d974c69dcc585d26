"""Every use of yt-dlp's private or undocumented parts, each behind one small function that a compat test checks.

yt-dlp may change any of these in a release without notice; tests/test_yt_dlp_private.py (marker `compat`) calls
each function against the installed yt-dlp and names the one that broke. Nothing here imports yt_dlp at module
level: the callers (ytdl.py, archive_ids.py, feed_read.py and yt_dlp_options.py) hand in yt-dlp's objects.

One use cannot be a function here: `bounded_http.py` subclasses yt-dlp's urllib request handler (private:
`yt_dlp.networking._urllib.UrllibRH`, its `_create_instance` and `_prepare_headers`,
`_helper.add_accept_encoding_header` and the director's `handlers`) to inflate and cap bodies as they are read,
and keeps a reader's connections alive with the TLS context and source address of yt-dlp's `HTTPHandler`
(`_context`, `_source_address`) and its `_urllib._create_http_connection`;
tests/test_yt_dlp_compat.py and the `compat` tests of tests/test_bounded_reads.py check it against each yt-dlp
release the project supports.
"""

from __future__ import annotations

import optparse
import threading
from collections.abc import Callable
from typing import Any

# yt-dlp compiles an extractor's pattern the first time the extractor is asked about a URL, and keeps it in the
# class: the first search of a process compiles ~1,750 of them (a quarter of a second of CPU). Reader threads that
# start their first playlists together would each search at once, racing through the same compiles and the GIL
# (nearly twice the CPU, measured); one search at a time costs them nothing, the searches being CPU alone.
_ONE_SEARCH = threading.Lock()
_EXTRACTORS_PICKED: dict[str, list[Any]] = {}  # by `allowed_extractors`: the extractors yt-dlp gave a client, in order
_EXTRACTORS_LOCK = threading.Lock()


def archive_id(ydl: Any, info: dict[str, Any]) -> str | None:
    """The archive line yt-dlp would write for `info` ("<extractor key> <id>"), or None when the entry does not say.

    Private: YoutubeDL._make_archive_id. It tells an entry's archive id from the playlist alone, with no request.
    """
    made = ydl._make_archive_id(info)
    return str(made) if made else None


def archive_holds(ydl: Any, line: str) -> bool:
    """Whether the download archive that yt-dlp loaded holds `line` ("<extractor key> <id>").

    Undocumented: YoutubeDL.archive. Asking it directly spares building the info dict in_download_archive wants.
    """
    return line in ydl.archive


def share_archive(ydl: Any, archive_file: str | None, lines: Any) -> None:
    """Make `ydl`, made without a download archive, use `archive_file` with `lines` as its loaded lines (anything
    with `in`, `add` and a truth value: `archive_view.LookedUpLines`): it adds to both as it records videos, and
    reads no file to start. With no file (the archive is in a database), it adds to `lines` alone.

    Undocumented: YoutubeDL.archive (asked with `in` unless it is false, added to with `add`), and
    `params["download_archive"]` read when a video is recorded, not at start (a value that is not a path is
    recorded to `archive` alone).
    """
    ydl.params["download_archive"] = archive_file if archive_file is not None else lines
    ydl.archive = lines


def reset_run(ydl: Any) -> None:
    """Forget what `ydl` counted while it ran the last playlist, as a new YoutubeDL would start (`--max-downloads`
    and `%(autonumber)s` count per playlist, as they did with one YoutubeDL each).

    Private: the counters YoutubeDL.__init__ sets (_num_downloads, _num_videos, _download_retcode, _playlist_level,
    _playlist_urls).
    """
    ydl._num_downloads = 0
    ydl._num_videos = 0
    ydl._download_retcode = 0
    ydl._playlist_level = 0
    ydl._playlist_urls = set()


def first_suitable_extractor(ydl: Any, url: str) -> str | None:
    """The key of the first extractor, in yt-dlp's own order, whose pattern takes `url`; None when none does.

    Private: YoutubeDL._ies. yt-dlp offers no public way to ask which extractor a URL goes to without extracting it.
    """
    with _ONE_SEARCH:
        return next((key for key, extractor in ydl._ies.items() if extractor.suitable(url)), None)


def add_default_extractors(ydl: Any, yt_dlp_s_own: Callable[[], None]) -> None:
    """Give `ydl` yt-dlp's extractors as `yt_dlp_s_own` (its YoutubeDL.add_default_info_extractors, bound) would:
    the same classes in the same order, and new instances of those it adds as instances.

    yt-dlp works out which extractors its `allowed_extractors` option picks at every YoutubeDL made (a search
    quadratic in their ~1,750 names: tens of milliseconds); a check makes one per reader thread. The first client
    made with a given option asks yt-dlp itself; the others get what it got.

    Private: YoutubeDL._ies (its extractors in order, each a class or an instance), add_info_extractor and
    write_debug's "Loaded N extractors".
    """
    allowed = ydl.params.get("allowed_extractors")
    key = repr(allowed)
    with _EXTRACTORS_LOCK:
        picked = _EXTRACTORS_PICKED.get(key)
        if picked is None:
            yt_dlp_s_own()
            _EXTRACTORS_PICKED[key] = list(ydl._ies.values())
            return
    for extractor in picked:
        ydl.add_info_extractor(extractor if isinstance(extractor, type) else type(extractor)())
    ydl.write_debug(f"Loaded {len(picked)} extractors")


def is_playlist_entry(extra_info: Any) -> bool:
    """Whether yt-dlp calls process_ie_result for one entry of a playlist: it then passes `playlist_autonumber`.

    Undocumented: the fields YoutubeDL.__process_playlist puts in `extra_info`.
    """
    return extra_info is not None and "playlist_autonumber" in extra_info


def smuggled_video_id(url: str) -> tuple[str, str | None]:
    """Given an entry's URL, return it without smuggled data, and the video id smuggled in it, if any.

    Undocumented: the generic extractor smuggles a feed item's guid into its enclosure's URL as `force_videoid`.
    """
    from yt_dlp.utils import unsmuggle_url

    plain_url, data = unsmuggle_url(url, {})
    video_id = data.get("force_videoid") if isinstance(data, dict) else None
    return plain_url, str(video_id) if video_id else None


def with_smuggled_video_id(url: str, video_id: str) -> str:
    """Given an entry's URL that smuggles a video id, return it smuggling `video_id` instead."""
    from yt_dlp.utils import smuggle_url, unsmuggle_url

    plain_url, data = unsmuggle_url(url, {})
    return str(smuggle_url(plain_url, {**(data if isinstance(data, dict) else {}), "force_videoid": video_id}))


def option_parser() -> optparse.OptionParser:
    """yt-dlp's own command-line parser (undocumented: yt_dlp.options.create_parser), an optparse.OptionParser."""
    from yt_dlp.options import create_parser

    parser: optparse.OptionParser = create_parser()
    return parser


def long_option(parser: optparse.OptionParser, typed: str) -> tuple[str, optparse.Option] | None:
    """The long option that `typed` means to the parser (a unique prefix, or the exact name), with its full name;
    None when it is unknown or ambiguous.

    Private: OptionParser._match_long_opt and _long_opt, which yt-dlp's parser overrides and optparse leaves private.
    """
    try:
        name: str = parser._match_long_opt(typed)
    except optparse.BadOptionError:
        return None
    option: optparse.Option = parser._long_opt[name]
    return name, option


def long_options(parser: optparse.OptionParser) -> list[tuple[str, optparse.Option]]:
    """Every long option name of the parser, with its option (private: OptionParser._long_opt)."""
    return list(parser._long_opt.items())


def short_option(parser: optparse.OptionParser, flag: str) -> optparse.Option | None:
    """The option that a short flag ("-i") names, or None (private: OptionParser._short_opt)."""
    option: optparse.Option | None = parser._short_opt.get(flag)
    return option
