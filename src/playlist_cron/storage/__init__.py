"""The storage seam: a config's run lock, state and archive behind the interfaces of `interfaces.py`, chosen once.

The interfaces are named here for the type checker alone (`from playlist_cron.storage import HeldRunLock` under
`TYPE_CHECKING`); the records (`Storage`, `Note`, `ArchiveHealth`) are real at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from playlist_cron.storage.base import ArchiveHealth, Note
from playlist_cron.storage.parts import Storage

if TYPE_CHECKING:
    from playlist_cron.config import Config
    from playlist_cron.storage.interfaces import Archive, HeldRunLock, RunLock, StateStorage, VideoLocks
    from playlist_cron.storage.status_view import StatusSource

__all__ = ["ArchiveHealth", "Note", "Storage", "in_database", "open_for", "status_for"]
if TYPE_CHECKING:
    __all__ += ["Archive", "HeldRunLock", "RunLock", "StateStorage", "VideoLocks"]


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


def status_for(config: Config) -> StatusSource:
    """Given a config, return what `status` reads its storage through (`open_for(config).status`), without loading
    what only a check needs of a database: its claims and run lock, and the local files' lock (portalocker)."""
    if in_database(config):
        from playlist_cron.storage.fleet_view import FleetStatus

        return FleetStatus(config)
    return open_for(config).status
