"""The same metrics pushed to a Prometheus Pushgateway after every check, SKIPPED ones included (`metrics_push_url`).

Imported only when the key is set: the skip path of a config without it never loads urllib.
"""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

from playlist_cron import __version__
from playlist_cron.log import redact

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

JOB = "playlist-cron"
PUSH_TIMEOUT_S = 3.0  # the most a push may take, whatever the gateway does; a check's remaining time bounds it too
LEAST_TIMEOUT_S = 1.0  # a check at its max_runtime still pushes its FAILED metrics, briefly
JOIN_SLACK_S = 0.5  # the socket's own timeout normally ends a silent push first
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def group_url(base_url: str, host_name: str, config_path: str) -> str:
    """Given `metrics_push_url` (credentials taken out), the host name and the config's path, return the URL of the
    group this config pushes to: job and instance, and its `config` label (base64url, as the Pushgateway takes a
    value with slashes in it), which every sample carries already.

    A push replaces its group whole: a group per host alone would let each config of a host wipe out the others'.
    """
    config_value = base64.urlsafe_b64encode(config_path.encode("utf-8")).decode("ascii")
    return (
        f"{base_url.rstrip('/')}/metrics/job/{JOB}/instance/{urllib.parse.quote(host_name, safe='')}"
        f"/config@base64/{config_value}"
    )


def split_credentials(url: str) -> tuple[str, str | None]:
    """Given a URL that may hold `user:password@`, return it without them and the Basic Authorization header value.

    urllib sends no credentials from a URL: they go in a header, and the URL that is logged has none.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def plain(error: Exception) -> str:
    """Given what urllib raised, return it in a few plain words: the HTTP status and the gateway's reason, or the
    socket's error."""
    if isinstance(error, urllib.error.HTTPError):
        try:
            said = error.read(300).decode("utf-8", "replace").strip()
        except Exception:  # the body is a courtesy: the status says enough
            said = ""
        return f"HTTP {error.code} {error.reason}" + (f": {' '.join(said.split())}" if said else "")
    reason = getattr(error, "reason", None)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(reason, (str, Exception)):
        return str(reason)
    return f"{type(error).__name__}: {error}"


def send(
    push_url: str,
    host_name: str,
    config_path: str,
    text: str,
    logger: FilteringBoundLogger,
    timeout_s: float = PUSH_TIMEOUT_S,
) -> None:
    """PUT `text` (the metrics file's) as this config's group: it replaces what the config pushed before.

    Never raises and never takes longer than `timeout_s` (at least LEAST_TIMEOUT_S, at most PUSH_TIMEOUT_S): a
    Pushgateway that is down or hangs costs a `metrics_push_failed` warning, never the check's outcome.
    """
    timeout_s = min(PUSH_TIMEOUT_S, max(timeout_s, LEAST_TIMEOUT_S))
    outcome: dict[str, str] = {}
    try:
        base_url, authorization = split_credentials(push_url)
        url = group_url(base_url, host_name, config_path)
    except ValueError as error:  # a port out of range, say: config lets any URL through
        logger.warning("metrics_push_failed", url=redact(push_url), error=redact(f"not a usable URL: {error}"))
        return
    no_answer = f"no answer within {timeout_s:g} s"
    headers = {"User-Agent": f"playlist-cron/{__version__}", "Content-Type": CONTENT_TYPE}
    if authorization is not None:
        headers["Authorization"] = authorization

    def push() -> None:
        request = urllib.request.Request(url, data=text.encode("utf-8"), headers=headers, method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                outcome["status"] = str(response.status)
        except Exception as error:  # a gateway that is down must not fail the check
            timed_out = isinstance(error, TimeoutError) or isinstance(getattr(error, "reason", None), TimeoutError)
            outcome["error"] = no_answer if timed_out else plain(error)

    # A thread bounds the whole push (connect, a trickling answer) by the timeout, not each socket call.
    pusher = threading.Thread(target=push, name="metrics-push", daemon=True)
    pusher.start()
    pusher.join(timeout_s + JOIN_SLACK_S)
    if pusher.is_alive():
        outcome["error"] = no_answer
    if "error" in outcome:
        logger.warning("metrics_push_failed", url=redact(url), error=redact(outcome["error"]))
