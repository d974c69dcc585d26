"""The event log: structlog writing one JSON object per line, each line in a single write(2)."""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

from playlist_cron.errors import ConfigError

# The events users' scripts read; see the contract.
CHECK_STARTED = "check_started"
CHECK_SKIPPED = "check_skipped"
CHECK_DEFERRED = "check_deferred"
CHECK_COMPLETED = "check_completed"
CHECK_FAILED = "check_failed"
VIDEO_DOWNLOADED = "video_downloaded"
VIDEO_FAILED = "video_failed"
VIDEO_GIVEN_UP = "video_given_up"
FINAL_EVENTS = (CHECK_SKIPPED, CHECK_DEFERRED, CHECK_COMPLETED, CHECK_FAILED)

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
_FIRST_KEYS = ("timestamp", "level", "event", "check", "outcome")


def _in_reading_order(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """Put timestamp, level, event and check first, so a person reading the raw log sees them first."""
    ordered = {key: event_dict.pop(key) for key in _FIRST_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _dumps(event_dict: dict[str, Any], **kwargs: Any) -> bytes:
    return json.dumps(event_dict, ensure_ascii=False, default=str, separators=(",", ":")).encode("utf-8")


def open_log_file(log_file: Path, config_path: Path) -> Any:
    """Open the log for appending, unbuffered, creating it 0600 (and its folder 0700); a ConfigError if we can't."""
    try:
        log_file.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as error:
        raise ConfigError(
            str(config_path), [f"At 'log_file': cannot open {log_file} for writing: {error.strerror}"]
        ) from None
    return os.fdopen(fd, "ab", buffering=0)


def configure(log_file: Path, config_path: Path) -> structlog.typing.FilteringBoundLogger:
    """Send every event of this process to `log_file`, and return the logger to use."""
    file = open_log_file(log_file, config_path)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            _in_reading_order,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(file=file),
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=False,
    )
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger()
    return logger


def read_tail(log_file: Path, max_bytes: int = 256 * 1024) -> list[dict[str, Any]]:
    """Return the events in the last `max_bytes` of the log, oldest first; lines that do not parse are left out."""
    try:
        with open(log_file, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except OSError:
        return []
    events = []
    for line in data.splitlines()[1 if size > max_bytes else 0 :]:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
