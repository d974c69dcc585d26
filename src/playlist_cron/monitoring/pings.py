"""healthchecks.io-style pings: `/start` as a check starts work, then success or `/fail` with its final event."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

from playlist_cron import __version__
from playlist_cron.log import redact

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger


PING_TIMEOUT_S = 5.0  # per ping, whatever the endpoint does: a check pings at most twice
JOIN_SLACK_S = 0.5  # the socket's own timeout normally ends a silent ping first
SUFFIXES = {"start": "/start", "success": "", "fail": "/fail"}


class Pings:
    """The pings of one check, sharing its run id: `/start?rid=` as it starts work, then `?rid=` or `/fail?rid=`.

    Used as a context manager around the check: `start()` when work begins (a check that waits out a cooldown
    sends nothing), `end()` with its final event; a run that started and got no end is closed with `fail` on
    exit, so the endpoint never waits out its grace time for nothing. A ping never fails the check and never
    waits past its timeout.
    """

    def __init__(self, base_url: str | None, logger: FilteringBoundLogger, run_id: str) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.logger = logger
        self.run_id = run_id  # the check's own, also in its running record and on each event it logs
        self.started = False
        self.ended = False

    def __enter__(self) -> Pings:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.started and not self.ended:
            self.end("fail", "the check ended before its final event could be counted (see its log)")

    def start(self) -> None:
        if self.base_url:
            self.started = True
            self._send("start", None)

    def end(self, kind: str, body: str) -> None:
        """Send `success` or `fail` for a check that sent `start`; once."""
        if self.base_url and self.started and not self.ended:
            self.ended = True
            self._send(kind, body)

    def _send(self, kind: str, body: str | None) -> None:
        import urllib.request  # here, in the main thread: the skip path never pings, and never pays for urllib

        url = f"{self.base_url}{SUFFIXES[kind]}?rid={self.run_id}"
        outcome: dict[str, str] = {}
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
                    outcome["status"] = str(response.status)
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
