"""The exit codes of `playlist-cron`, named; only `cli` returns them (and the watchdog's last-resort exit)."""

OK = 0
FAILED = 1  # a check that ran and failed; `status` when unhealthy
USAGE = 2
TEMPFAIL = 75  # EX_TEMPFAIL from sysexits.h: the site could not be reached; the next check tries again
CONFIG = 78  # EX_CONFIG from sysexits.h
SIGNAL_BASE = 128  # ended by signal N: 128 + N


def for_signal(signal_number: int) -> int:
    """Given a signal number, return the exit code a shell would report for it."""
    return SIGNAL_BASE + signal_number
