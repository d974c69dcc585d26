"""The watchdog's stop reaches the check even when it lands where Python ignores exceptions.

Its stop is an exception raised in the main thread by a signal handler. Python runs that handler between any two
bytecodes of the main thread, inside a `__del__` or a weakref callback too (importlib's module locks have one),
where an exception is printed as "Exception ignored in ..." and dropped. Seen under load: a check whose stdout
nobody read went on and ended COMPLETED, exit 0, a traceback on stderr, instead of FAILED `stalled`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from playlist_cron.errors import CheckStopped, WatchdogFired
from playlist_cron.watchdog import Watchdog


class SlowToCollect:
    """An object whose `__del__` takes a while: a stop raised in it is dropped by Python."""

    def __del__(self) -> None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the stall fires in here, and its exception ends this loop
            time.sleep(0.01)


def test_a_stop_raised_where_python_drops_exceptions_is_raised_again_and_not_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ended: list[CheckStopped] = []
    watchdog = Watchdog(3600, 0.3, time.monotonic(), is_finished=lambda: False, last_resort=ended.append)
    watchdog.grace_s = 30  # the test ends long before: the process is never ended from the watchdog's thread
    dropped: list[Any] = []
    hook = sys.unraisablehook
    sys.unraisablehook = dropped.append  # what Python drops goes here while the watchdog is not entered
    try:
        with pytest.raises(WatchdogFired) as raised, watchdog:
            SlowToCollect()  # collected at once: its __del__ runs here, and the stall fires in it
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # the stop must arrive here, raised again
                time.sleep(0.01)
    finally:
        sys.unraisablehook = hook
    assert raised.value.reason == "stalled"
    assert ended == [], "raised in the main thread, not ended from the watchdog's"
    assert dropped == [], "the watchdog took the stop Python dropped: nothing for the hook that was there before"
    assert sys.unraisablehook is hook, "the hook is given back as it was"
    assert "Exception ignored" not in capsys.readouterr().err
