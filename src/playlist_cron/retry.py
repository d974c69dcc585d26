"""`retry`: make failed or given-up videos due again at the next check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from playlist_cron.config import Config
from playlist_cron.state import StateStore
from playlist_cron.status import printed_id


def make_due(config: Config, video_ids: Sequence[str]) -> list[str]:
    """Forget the failures of the named videos (all, when none is named); return the names that matched none."""
    with StateStore.for_config(config).update() as state:
        failed = state["failed_videos"]
        if not video_ids:
            failed.clear()
            return []
        unknown = []
        for video_id in video_ids:
            matches = matching_keys(failed, video_id)
            for key in matches:
                del failed[key]
            if not matches:
                unknown.append(video_id)
        return unknown


def matching_keys(failed_videos: dict[str, Any], video_id: str) -> list[str]:
    """The keys of the failed videos that `video_id` names, by key or id, written as `status` prints them."""
    wanted = printed_id(video_id)
    return [
        key
        for key, record in failed_videos.items()
        if wanted in (printed_id(key), printed_id(str(record.get("video_id") or "")))
    ]
