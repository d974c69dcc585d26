"""`retry`: make failed or given-up videos due again at the next check."""

from __future__ import annotations

from collections.abc import Sequence

from playlist_cron.config import Config
from playlist_cron.state import StateStore


def make_due(config: Config, video_ids: Sequence[str]) -> list[str]:
    """Forget the failures of the named videos (all, when none is named); return the names that matched none."""
    with StateStore.for_config(config).update() as state:
        failed = state["failed_videos"]
        if not video_ids:
            failed.clear()
            return []
        unknown = []
        for video_id in video_ids:
            matches = [key for key, record in failed.items() if video_id in (key, record.get("video_id"))]
            for key in matches:
                del failed[key]
            if not matches:
                unknown.append(video_id)
        return unknown
