"""The one mapping from a check's outcome to the command's exit code (`cli.exit_code`)."""

from __future__ import annotations

import signal

import pytest

from playlist_cron.cli import exit_code
from playlist_cron.outcomes import Outcome

SKIP_EXIT_CODE = 3


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome("COMPLETED"), 0),
        (Outcome("DEFERRED", "cooldown"), 0),
        (Outcome("DEFERRED", "rate_limited"), 0),
        (Outcome("SKIPPED", "previous download still in progress"), SKIP_EXIT_CODE),
        (Outcome("FAILED", "playlist_error"), 1),
        (Outcome("FAILED", "disk_space"), 1),
        (Outcome("FAILED", "timeout"), 1),
        (Outcome("FAILED", "stalled"), 1),
        (Outcome("FAILED", "error"), 1),
        (Outcome("FAILED"), 1),
        (Outcome("FAILED", "network"), 75),
        (Outcome("FAILED", "interrupted", signal.SIGTERM), 143),
        (Outcome("FAILED", "interrupted", signal.SIGINT), 130),
        (Outcome("FAILED", "interrupted", signal.SIGHUP), 129),
    ],
)
def test_each_outcome_has_its_exit_code(outcome: Outcome, expected: int) -> None:
    assert exit_code(outcome, SKIP_EXIT_CODE) == expected
