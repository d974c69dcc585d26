"""The storage seam: a config's run lock, state and archive behind the interfaces of `base`, the backend chosen once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playlist_cron.storage.base import (
    Archive,
    ArchiveHealth,
    HeldRunLock,
    Note,
    RunLock,
    StateStorage,
    Storage,
    VideoLocks,
)

if TYPE_CHECKING:
    from playlist_cron.config import Config

__all__ = [
    "Archive",
    "ArchiveHealth",
    "HeldRunLock",
    "Note",
    "RunLock",
    "StateStorage",
    "Storage",
    "VideoLocks",
    "in_database",
    "open_for",
]


def in_database(config: Config) -> bool:
    """Whether the config keeps its storage in a database (`database_url`): the one place that asks."""
    return bool(config.database_url)


def open_for(config: Config) -> Storage:
    """Given a config, return its storage; the only place a backend is chosen: the database when `database_url` is
    set (psycopg is loaded then only), else files."""
    if in_database(config):
        from playlist_cron.storage import fleet

        return fleet.open_for(config)
    from playlist_cron.storage import files

    return files.open_for(config)
