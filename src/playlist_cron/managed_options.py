"""The yt-dlp options that playlist-cron sets itself, and how a user's copy of one is found in `yt_dlp_args`."""

from __future__ import annotations

from collections.abc import Iterator

# yt-dlp's options that playlist-cron sets itself, by the `dest` yt-dlp's parser stores them in: a user's copy
# would fight ours. `yt_dlp_options.parse_yt_dlp_args` asks yt-dlp's own parser which dest each argument sets.
MANAGED_DESTS = {
    "outtmpl": "output_template",
    "paths": "download_dir",
    "download_archive": "archive_file",
    "force_write_download_archive": "archive_file",
    "batchfile": "playlist_url",
    "config_locations": "yt_dlp_args",
    "cookiefile": "cookies_file",
    "max_downloads": "max_downloads_per_check",
    "dateafter": "date_after",
    "date": "date_after",
}
# Every spelling yt-dlp has for those dests (a test keeps this equal to yt-dlp's parser), so that the config
# check needs no yt-dlp: it runs on every cron minute, where importing yt-dlp costs a second.
MANAGED_OPTIONS = {
    "-o": "output_template",
    "--output": "output_template",
    "-P": "download_dir",
    "--paths": "download_dir",
    "--download-archive": "archive_file",
    "--no-download-archive": "archive_file",
    "--force-download-archive": "archive_file",
    "--force-write-archive": "archive_file",
    "--force-write-download-archive": "archive_file",
    "-a": "playlist_url",
    "--batch-file": "playlist_url",
    "--no-batch-file": "playlist_url",
    "--config-locations": "yt_dlp_args",
    "--no-config-locations": "yt_dlp_args",
    "--cookies": "cookies_file",
    "--no-cookies": "cookies_file",
    "--max-downloads": "max_downloads_per_check",
    "--dateafter": "date_after",
    "--date": "date_after",
}
# yt-dlp's own options whose names begin a managed one's: optparse takes an exact name before an abbreviation.
UNMANAGED_PREFIXES = frozenset({"--no-config", "--no-download"})


def refused(arguments: list[str]) -> Iterator[tuple[int, str]]:
    """Given `yt_dlp_args`, yield the index and the message of each argument that spells a managed option.

    The arguments after `--` are not options (yt-dlp reads them as URLs, and refuses them).
    """
    for index, argument in enumerate(arguments):
        if argument == "--":
            return
        managed = managed_option(argument)
        if managed:
            yield index, managed_message(typed_option(argument), managed)


def managed_option(argument: str) -> str | None:
    """Given one of `yt_dlp_args`, return the managed option it spells or abbreviates (yt-dlp takes any unique
    prefix of a long option), else None.

    A prefix of several managed options (`--dat`) is returned too: yt-dlp refuses an ambiguous one anyway.
    Only the first letter of a short-option cluster is looked at: which letters take a value is yt-dlp's to say.
    """
    typed = typed_option(argument)
    if typed in MANAGED_OPTIONS:
        return typed
    if not typed.startswith("--") or len(typed) <= 2 or typed in UNMANAGED_PREFIXES:
        return None
    return next((option for option in MANAGED_OPTIONS if option.startswith(typed)), None)


def typed_option(argument: str) -> str:
    """The option part of an argument as typed: `--batch-fil` of `--batch-fil=x`, `-o` of `-oX`."""
    return argument.split("=", 1)[0] if argument.startswith("--") else argument[:2]


def managed_message(typed: str, option: str) -> str:
    """Given an option as typed and the managed option yt-dlp reads it as, say so; never with its value (a path)."""
    spelled = typed if typed == option else f"{typed} (yt-dlp reads it as {option})"
    return f"{spelled} is managed by playlist-cron: set '{MANAGED_OPTIONS[option]}' in the config instead"
