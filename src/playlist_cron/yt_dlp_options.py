"""A playlist's `yt_dlp_args` read by yt-dlp's own parser: its params, or a ConfigError naming each refused option."""

from __future__ import annotations

import contextlib
import copy
import io
import optparse
import re
from typing import Any

from playlist_cron import yt_dlp_private
from playlist_cron.config import Config
from playlist_cron.errors import ConfigError
from playlist_cron.managed_options import MANAGED_DESTS, managed_message


def parse_yt_dlp_args(config: Config, key: str, arguments: tuple[str, ...]) -> dict[str, Any]:
    """Given the user's yt-dlp options, return yt-dlp's params for them; ConfigError where yt-dlp refuses them.

    Options that playlist-cron manages are refused before yt-dlp reads anything: it reads a `--batch-file` or a
    `--config-locations` file while it parses, and would show their lines in its complaints.
    """
    import yt_dlp  # only a check that downloads gets here (the yt-dlp rooms: ytdl, feed_read, full_read)

    _refuse_managed_options(config, key, arguments)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            parsed = yt_dlp.parse_options(list(arguments))
    except (SystemExit, optparse.OptParseError) as refusal:
        raise ConfigError(
            str(config.path), [f"At '{key}': yt-dlp says: {_refusal_reason(refusal, captured)}"]
        ) from None
    if parsed.urls:
        raise ConfigError(
            str(config.path), [f"At '{key}': {parsed.urls[0]!r} is not an option (URLs go in 'playlists')"]
        )
    params: dict[str, Any] = dict(parsed.ydl_opts)
    return params


def _refusal_reason(refusal: BaseException, captured: io.StringIO) -> str:
    said = (str(refusal) if isinstance(refusal, optparse.OptParseError) else captured.getvalue()).strip()
    reason = said.splitlines()[-1] if said else "rejected by yt-dlp"
    return re.sub(r"^[\w.-]+: error: ", "", reason)


def _refuse_managed_options(config: Config, key: str, arguments: tuple[str, ...]) -> None:
    """Raise ConfigError when yt-dlp's own parser reads one of `arguments` as an option playlist-cron manages.

    First each argument as yt-dlp resolves it (abbreviations, short-option clusters), to name it; then the
    options parsed into a values object, which also sees what an `--alias` expands to. Neither reads a file.
    """
    parser = yt_dlp_private.option_parser()
    problems = [f"At '{key}[{index}]': {said}" for index, said in _managed_arguments(parser, arguments)]
    if not problems:
        problems = _managed_by_aliases(parser, key, arguments)
    if problems:
        raise ConfigError(str(config.path), problems)


def _managed_by_aliases(parser: optparse.OptionParser, key: str, arguments: tuple[str, ...]) -> list[str]:
    """Parse `arguments` and return a problem for each managed option that they set (an `--alias` can), or the
    parser's own refusal."""
    defaults = copy.deepcopy(vars(parser.get_default_values()))
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            values, _ = parser.parse_args(list(arguments))
    except (SystemExit, optparse.OptParseError) as refusal:  # said before yt-dlp reads any file named here
        return [f"At '{key}': yt-dlp says: {_refusal_reason(refusal, captured)}"]
    return [
        f"At '{key}': an --alias sets {_spelling(parser, dest)}, which is managed by playlist-cron: "
        f"set '{config_key}' in the config instead"
        for dest, config_key in MANAGED_DESTS.items()
        if getattr(values, dest, None) != defaults.get(dest)
    ]


def _spelling(parser: optparse.OptionParser, dest: str) -> str:
    """Given a dest, return the long option a user knows it by (the one that takes a value, like --batch-file)."""
    named = sorted(
        (name, not option.takes_value()) for name, option in yt_dlp_private.long_options(parser) if option.dest == dest
    )
    return min(named, key=lambda pair: pair[1])[0] if named else dest


def _managed_arguments(parser: optparse.OptionParser, arguments: tuple[str, ...]) -> list[tuple[int, str]]:
    """Given yt-dlp's parser, return (index, what to say) for each argument that it reads as a managed option."""
    found: list[tuple[int, str]] = []
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if argument == "--":
            break
        if argument.startswith("--"):
            said, values_taken = _managed_long(parser, argument)
        elif argument.startswith("-") and argument != "-":
            said, values_taken = _managed_short_cluster(parser, argument)
        else:
            said, values_taken = [], 0
        found.extend((index, one) for one in said)
        index += 1 + values_taken
    return found


def _managed_long(parser: optparse.OptionParser, argument: str) -> tuple[list[str], int]:
    """Given a `--long` argument, return what to say if it is a managed option, and how many next arguments it
    takes as its values."""
    typed = argument.split("=", 1)[0]
    matched = yt_dlp_private.long_option(parser, typed)
    if matched is None:  # unknown or ambiguous: yt-dlp's parse says so
        return [], 0
    name, option = matched
    said = [managed_message(typed, name)] if option.dest in MANAGED_DESTS else []
    values_taken = (option.nargs or 1) if option.takes_value() and "=" not in argument else 0
    return said, values_taken


def _managed_short_cluster(parser: optparse.OptionParser, argument: str) -> tuple[list[str], int]:
    """Given a `-abc` cluster (-ia is -i -a), return what to say for each managed option in it, and how many next
    arguments its last option takes as values."""
    said: list[str] = []
    for position, letter in enumerate(argument[1:], start=1):
        option = yt_dlp_private.short_option(parser, "-" + letter)
        if option is None:
            break
        if option.dest in MANAGED_DESTS:
            said.append(managed_message(argument[: position + 1], "-" + letter))
        if option.takes_value():
            at_end = position == len(argument) - 1  # then the value is the next argument, not the rest of this one
            return said, (option.nargs or 1) if at_end else 0
    return said, 0
