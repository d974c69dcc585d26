"""What a check tells monitoring, one module per output: pings, the metrics file, the Pushgateway, notifications.

Each output module sends what it is given and never raises: a monitor that is down is logged as a warning and never
changes a check's outcome. `Pings` is a check's own (its run id); the metrics go to the file and the gateway alike.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from playlist_cron import metrics
from playlist_cron.monitoring import metrics_file
from playlist_cron.monitoring.pings import Pings

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron.config import Config
    from playlist_cron.records import State

__all__ = ["Pings", "send_metrics"]


def free_bytes(config: Config) -> int | None:
    """The free space in the download folder, as `min_free_bytes` counts it; None when it cannot be told."""
    try:
        usage = os.statvfs(config.download_dir)
    except OSError:  # not made yet (a check makes it before its first download), or gone
        return None
    return usage.f_bavail * usage.f_frsize


def send_metrics(
    config: Config,
    state: State,
    lock_held_s: float | None,
    logger: FilteringBoundLogger,
    remaining_s: float | None = None,
) -> None:
    """Give the counters of `state` to the metrics file and the Pushgateway, each where one is configured.

    `remaining_s`: what is left of the check's max_runtime_seconds, which bounds the push (None: a SKIPPED check).
    """
    if config.metrics_file is None and config.metrics_push_url is None:
        return
    text = metrics.render(config, state, lock_held_s, free_bytes(config))
    if config.metrics_file is not None:
        metrics_file.send(config.metrics_file, text, logger)
    if config.metrics_push_url is not None:
        from playlist_cron.monitoring import pushgateway  # only a config that pushes pays for urllib

        timeout_s = pushgateway.PUSH_TIMEOUT_S if remaining_s is None else remaining_s
        host_name = config.host_name or os.uname().nodename
        pushgateway.send(config.metrics_push_url, host_name, str(config.path), text, logger, timeout_s)
