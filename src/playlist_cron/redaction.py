"""Passwords in URLs and secret query values masked, for everything written or shown: the log, the state, `status`."""

from __future__ import annotations

import re
from typing import Any

_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@:]+:[^/\s@]*@")
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&](?:token|key|api_key|apikey|password|passwd|secret|sig|signature)=)[^&\s]+", re.IGNORECASE
)


def redact(text: str) -> str:
    """Given text that may hold a URL, return it with `user:password@` and secret query values masked."""
    if "@" in text:
        text = _CREDENTIALS_IN_URL.sub(r"\g<scheme>***:***@", text)
    if "=" in text:
        text = _SECRET_QUERY.sub(r"\g<name>***", text)
    return text


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value
