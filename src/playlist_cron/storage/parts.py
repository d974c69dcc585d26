"""A config's `Storage`: the parts a backend hands a check, each answering an interface of `interfaces.py`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from playlist_cron.storage.interfaces import Archive, RunLock, StateStorage
    from playlist_cron.storage.status_view import StatusSource


class Storage(NamedTuple):
    """Where one config keeps its run lock, its state and its archive."""

    run_lock: RunLock
    state: StateStorage
    archive: Archive
    status: StatusSource
    # The host's own state file, where a backend on another machine (a database) keeps the streak of checks that
    # could not reach it: that streak cannot be kept where it could not be reached. None when the state is local.
    reach_state: StateStorage | None = None
    # yt-dlp's folder for partial downloads when it must not be beside the files (a fleet sharing one download
    # folder: each host's own); None for yt-dlp's default.
    partial_dir: Path | None = None
