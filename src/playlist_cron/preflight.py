"""What a check makes sure of before it downloads: room on the disk, and an archive yt-dlp can append to."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron.config import Config
    from playlist_cron.console import Console
    from playlist_cron.storage import Storage


def tend_archive(storage: Storage, logger: FilteringBoundLogger, console: Console) -> None:
    """Mend a last line cut short by a crash, and say so when the archive holds lines yt-dlp cannot use."""
    health = storage.archive.tend()
    name = storage.archive.name
    if health.repaired:
        logger.warning(
            "archive_repaired",
            archive_file=name,
            message="the archive's last line had no line break (a crash while it was written?); one was added",
        )
    bad_lines = health.bad_line_numbers
    if not bad_lines:
        return
    logger.warning(
        "archive_garbage",
        archive_file=name,
        bad_lines=len(bad_lines),
        first_bad_line_numbers=list(bad_lines[:10]),
        message=f"{len(bad_lines)} lines of the archive are not 'extractor id' lines; yt-dlp ignores them",
    )
    with storage.state.update() as state:
        reported = state.get("archive_garbage_reported", 0)
        state["archive_garbage_reported"] = len(bad_lines)
    if len(bad_lines) > reported:
        console.alert(
            f"playlist-cron: {name} has {len(bad_lines)} lines that are not 'extractor id' lines "
            f"(first at line {bad_lines[0]}); yt-dlp ignores them, but you may want to look"
        )


def disk_shortage(config: Config) -> str | None:
    directory = config.download_dir
    directory.mkdir(parents=True, exist_ok=True)
    free_bytes = shutil.disk_usage(directory).free
    if free_bytes < config.min_free_bytes:
        return (
            f"only {free_bytes} bytes free in {directory}, below min_free_bytes ({config.min_free_bytes}); "
            "no download was started"
        )
    return None
