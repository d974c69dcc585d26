"""The Prometheus metrics file for node_exporter's textfile collector, replaced atomically after every check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playlist_cron import atomic

if TYPE_CHECKING:
    from pathlib import Path

    from structlog.typing import FilteringBoundLogger

FILE_MODE = 0o644  # node_exporter usually runs as another user


def send(metrics_file: Path, text: str, logger: FilteringBoundLogger) -> None:
    """Replace `metrics_file` with `text`; log why when it cannot (a stale file is the collector's to notice).

    The textfile collector's folder is often writable by others: `atomic.replace` never writes or chmods another
    file through a link planted there, and replaces a link planted at `metrics_file` itself, its target left alone.
    The collector never reads half a file.
    """
    try:
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
        atomic.replace(metrics_file, text.encode("utf-8"), FILE_MODE)
    except OSError as error:  # monitoring must not fail a check; the log says why the file is stale
        logger.warning("metrics_failed", metrics_file=str(metrics_file), error=str(error))
