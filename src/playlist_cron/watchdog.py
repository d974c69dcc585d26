"""The watchdog of a running check: its maximum runtime, stall detection, and the signals that end it."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from playlist_cron import exit_codes
from playlist_cron.errors import CheckStopped, Interrupted, WatchdogFired

if TYPE_CHECKING:
    from playlist_cron.log import LogFile

TICK_S = 0.25
GRACE_S = 15.0  # after asking the main thread to stop, how long before the watchdog ends the process itself

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
WAKE_SIGNAL = signal.SIGUSR1  # how the watchdog thread makes the main thread raise


class Watchdog:
    """While entered: a signal raises `Interrupted` in the main thread, and a check that runs past `max_runtime_s`
    or reports no activity for `stall_timeout_s` gets `WatchdogFired` raised there.

    `is_finished` says when the check has begun its final event: from then on nothing is raised. Should the main
    thread not stop within GRACE_S, `last_resort` is called from the watchdog's thread and the process ends with
    exit code 1: the one place outside `cli` that decides an exit code, as nothing else is left to return it.
    """

    def __init__(
        self,
        max_runtime_s: float,
        stall_timeout_s: float,
        started_monotonic: float,
        *,
        is_finished: Callable[[], bool],
        last_resort: Callable[[CheckStopped], None],
    ) -> None:
        self.max_runtime_s = max_runtime_s
        self.stall_timeout_s = stall_timeout_s
        self.started_monotonic = started_monotonic
        self.last_activity = started_monotonic
        self.fired: CheckStopped | None = None
        self.grace_s = GRACE_S
        self._is_finished = is_finished
        self._last_resort = last_resort
        self._stopped = threading.Event()
        self._main_thread_id = threading.main_thread().ident or 0
        self._previous_handlers: dict[int, Any] = {}
        self._requested: WatchdogFired | None = None  # asked for by another thread: see stop()
        self._interrupted = False  # a signal ends the check
        self._dropped: CheckStopped | None = None  # a stop Python dropped where it was raised: to raise again
        self._previous_unraisablehook: Callable[[Any], object] | None = None

    def activity(self) -> None:
        """The check made progress: the stall clock starts again."""
        self.last_activity = time.monotonic()

    def stop(self, reason: str, detail: str) -> None:
        """From any thread: end the check now, FAILED with `reason` (the database lock was lost, say), as a timeout
        ends it."""
        self._requested = WatchdogFired(reason, detail)

    def watch_log(self, log_file: LogFile) -> None:
        """A stdout nobody reads holds the check as a stalled download does, from its first line (`LogFile.waits`)."""
        if log_file.waits:
            log_file.wait_until = self.write_deadline
            log_file.on_blocked = lambda: self.output_blocked(f"the log {log_file.name}")

    def write_deadline(self) -> float:
        """Until when (time.monotonic) a write that cannot go on (a stdout nobody reads) may wait: the moment this
        watchdog would fire; at once when the check is being ended."""
        if self.fired is not None or self._requested is not None or self._interrupted:
            return 0.0
        return min(self.started_monotonic + self.max_runtime_s, self.last_activity + self.stall_timeout_s)

    def output_blocked(self, what: str) -> None:
        """From any thread: `what` took nothing until `write_deadline`; end the check as that deadline says."""
        if time.monotonic() - self.started_monotonic > self.max_runtime_s:
            self.stop("timeout", f"the check ran longer than max_runtime_seconds ({self.max_runtime_s} s)")
        else:
            self.stop(
                "stalled",
                f"{what} took nothing for stall_timeout_seconds ({self.stall_timeout_s} s): its reader does not read",
            )

    def __enter__(self) -> Watchdog:
        self._install_signal_handlers()
        self._previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = self._on_unraisable
        threading.Thread(target=self._watch, name="playlist-cron-watchdog", daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stopped.set()
        for signal_number, handler in self._previous_handlers.items():
            signal.signal(signal_number, handler)
        if self._previous_unraisablehook is not None:
            sys.unraisablehook = self._previous_unraisablehook

    def _on_unraisable(self, unraisable: Any) -> None:
        """Python calls this for an exception it drops: one raised in a `__del__` or a weakref callback (importlib's
        module locks have one), where the signal handlers that raise the stops may run too. A stop dropped so is
        raised again (`_watch`), and not printed; anything else goes to the hook that was there before."""
        if isinstance(unraisable.exc_value, CheckStopped):
            self._dropped = unraisable.exc_value
        elif self._previous_unraisablehook is not None:
            self._previous_unraisablehook(unraisable)

    def _install_signal_handlers(self) -> None:
        def on_signal(signal_number: int, frame: object) -> None:
            if self._is_finished():
                return
            self._interrupted = True  # its final event does not wait for a stdout nobody reads
            raise Interrupted(f"received {signal.Signals(signal_number).name}", signal_number)

        def on_wake(signal_number: int, frame: object) -> None:
            if self._is_finished() or self.fired is None:
                return
            raise self.fired

        self._previous_handlers = {number: signal.getsignal(number) for number in (*HANDLED_SIGNALS, WAKE_SIGNAL)}
        for number in HANDLED_SIGNALS:
            signal.signal(number, on_signal)
        signal.signal(WAKE_SIGNAL, on_wake)

    def _watch(self) -> None:
        while not self._stopped.wait(TICK_S):
            now = time.monotonic()
            fired: CheckStopped
            if self._requested is not None:
                fired = self._requested
            elif self._dropped is not None:  # a signal's `Interrupted`, dropped where it was raised
                fired = self._dropped
            elif now - self.started_monotonic > self.max_runtime_s:
                fired = WatchdogFired(
                    "timeout", f"the check ran longer than max_runtime_seconds ({self.max_runtime_s} s)"
                )
            elif now - self.last_activity > self.stall_timeout_s:
                fired = WatchdogFired(
                    "stalled", f"no download progress for stall_timeout_seconds ({self.stall_timeout_s} s)"
                )
            else:
                continue
            self.fired = fired
            self._dropped = None
            self._raise_in_main_thread(fired)
            return

    def _raise_in_main_thread(self, fired: CheckStopped) -> None:
        """Have the main thread raise `fired` (`on_wake`), again whenever Python drops it where it landed; end the
        process from here when the main thread has not stopped within `grace_s`."""
        deadline = time.monotonic() + self.grace_s
        signal.pthread_kill(self._main_thread_id, WAKE_SIGNAL)
        while not self._stopped.wait(TICK_S):
            if self._dropped is not None:
                self._dropped = None
                signal.pthread_kill(self._main_thread_id, WAKE_SIGNAL)
            if time.monotonic() >= deadline:
                # The main thread is stuck somewhere a signal cannot reach: end the process from here.
                # Like kill -9, this loses nothing: the archive, the state and the log are only ever appended
                # to or replaced whole, and the partial file resumes next time.
                try:
                    self._last_resort(fired)
                finally:
                    os._exit(exit_codes.FAILED)
