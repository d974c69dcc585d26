"""playlist-cron: keep a local copy of online playlists, one cron-started check at a time."""

__version__ = "0.1.0"
