"""The event log: structlog writing one JSON object per line, each line in a single write(2)."""

from __future__ import annotations

import json
import os
import re
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

_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@:]+:[^/\s@]*@")
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&](?:token|key|api_key|apikey|password|passwd|secret|sig|signature)=)[^&\s]+", re.IGNORECASE
)

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
_FIRST_KEYS = ("timestamp", "level", "event", "check", "outcome")


def redact(text: str) -> str:
    """Given text that may hold a URL, return it with `user:password@` and secret query values masked."""
    text = _CREDENTIALS_IN_URL.sub(r"\g<scheme>***:***@", text)
    return _SECRET_QUERY.sub(r"\g<name>***", text)


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value


def _redact_secrets(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """No password in a URL, and no token in a query string, ever reaches the log."""
    for key, value in event_dict.items():
        event_dict[key] = redact_value(value)
    return event_dict


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
            _redact_secrets,
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
