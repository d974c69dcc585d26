"""healthchecks.io-style pings: `/start?rid=` as a check starts work, `?rid=` on COMPLETED, `/fail?rid=` on FAILED."""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

from playlist_cron import __version__
from playlist_cron.log import redact

PING_TIMEOUT_S = 5.0  # per ping, whatever the endpoint does: a check pings at most twice
JOIN_SLACK_S = 0.5  # the socket's own timeout normally ends a silent ping first
SUFFIXES = {"start": "/start", "success": "", "fail": "/fail"}


class Pinger:
    """The pings of one check, sharing one run id; a ping never fails the check and never waits past its timeout."""

    def __init__(self, base_url: str | None, logger: Any, run_id: str) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.logger = logger
        self.run_id = run_id  # the check's own, also in its running record and on each event it logs
        self.started = False

    def start(self) -> None:
        if self.base_url:
            self.started = True
            self._send("start", None)

    def finish(self, kind: str, body: str) -> None:
        """Send `success` or `fail` for a check that sent `start`."""
        if self.base_url and self.started:
            self._send(kind, body)

    def _send(self, kind: str, body: str | None) -> None:
        url = f"{self.base_url}{SUFFIXES[kind]}?rid={self.run_id}"
        outcome: dict[str, Any] = {}
        no_answer = f"no answer within {PING_TIMEOUT_S:.0f} s"

        def send() -> None:
            request = urllib.request.Request(
                url,
                data=body.encode("utf-8") if body is not None else None,
                headers={"User-Agent": f"playlist-cron/{__version__}"},
                method="POST" if body is not None else "GET",
            )
            try:
                with urllib.request.urlopen(request, timeout=PING_TIMEOUT_S) as response:
                    outcome["status"] = response.status
            except Exception as error:  # a monitoring endpoint that is down must not fail the check
                timed_out = isinstance(error, TimeoutError) or isinstance(getattr(error, "reason", None), TimeoutError)
                outcome["error"] = no_answer if timed_out else f"{type(error).__name__}: {error}"

        # A thread bounds the whole ping (connect, a trickling answer) by the timeout, not each socket call.
        sender = threading.Thread(target=send, name=f"ping-{kind}", daemon=True)
        sender.start()
        sender.join(PING_TIMEOUT_S + JOIN_SLACK_S)
        if sender.is_alive():
            outcome["error"] = no_answer
        if "error" in outcome:
            self.logger.warning("ping_failed", ping=kind, url=redact(url), error=redact(outcome["error"]))
