"""Each file a download writes, held to the size its server announced: one that disagrees is removed, never archived."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from playlist_cron.failure_kinds import SIZE_MISMATCH, SizeMismatch


class AnnouncedSizes:
    """What the server announced for each file being downloaded (yt-dlp's `total_bytes`: the Content-Length, with
    the part a resumed download already had), from yt-dlp's progress reports.

    Only a plain HTTP download announces one; a download in fragments (HLS, DASH) gives an estimate, which says
    nothing, and is not held to it.
    """

    def __init__(self) -> None:
        self._announced: dict[str, int] = {}

    def downloading(self, progress: dict[str, Any]) -> None:
        """Note the size announced for the file `progress` reports on."""
        filename, total_bytes = progress.get("filename"), progress.get("total_bytes")
        if isinstance(filename, str) and isinstance(total_bytes, int) and total_bytes > 0:
            self._announced[filename] = total_bytes

    def finished(self, progress: dict[str, Any]) -> None:
        """Hold the finished file to the size announced for it: raise SizeMismatch, once it is removed, when the two
        differ (another process wrote into it too); yt-dlp then records no archive line for it."""
        filename = progress.get("filename")
        if not isinstance(filename, str):
            return
        announced = self._announced.pop(filename, None)
        if announced is None:
            return
        try:
            size_bytes = os.stat(filename).st_size
        except OSError:
            return  # gone already: yt-dlp says so itself
        if size_bytes == announced:
            return
        with contextlib.suppress(OSError):
            os.unlink(filename)  # its bytes cannot be trusted, and yt-dlp would take a file left there as done
        raise SizeMismatch(
            f"{SIZE_MISMATCH}: the downloaded file had {size_bytes} bytes where the server announced {announced} "
            f"(did another process write into it?); it was removed, and the video is downloaded again at its next "
            f"retry: {os.path.basename(filename)}"
        )
