"""`retry`: make failed or given-up videos due again at the next check."""

from __future__ import annotations

from collections.abc import Sequence

from playlist_cron import failures, storage
from playlist_cron.config import Config


def make_due(config: Config, video_ids: Sequence[str]) -> list[str]:
    """Forget the failures of the named videos (all, when none is named); return the names that matched none."""
    stored = storage.open_for(config).state
    with stored.update() as state:
        unknown = failures.forget(state["failed_videos"], video_ids)
    # A forgotten video is a new one to the next check, and an unchanged feed would answer 304 and hide it:
    # each feed is read whole once more.
    with stored.update_reads() as records:
        for record in records.values():
            record["etag"] = record["last_modified"] = None
    return unknown
