"""Due? The question most cron minutes end at, answered from the state file with the standard library alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playlist_cron import clock
from playlist_cron.state import StateStore, collection_is_due, is_due

if TYPE_CHECKING:
    from playlist_cron.config import Config
    from playlist_cron.console import Console
    from playlist_cron.records import State


def not_due(config: Config, console: Console, state: State | None = None) -> bool:
    """Whether `check_interval_seconds` has not yet passed since the last check; if so, say on a terminal when it will.

    A damaged state file is recovered from its previous copy here as in every read; the notes are logged by the
    next check that runs, which reads it again. No lock, no log: this path must cost little more than Python's
    start-up, so it loads neither structlog nor portalocker (a test proves it). `state`: the state as the config's
    load just read it, not read again.
    """
    now_s = clock.now_s()
    if state is None:
        state = StateStore.for_config(config).read()
    due, due_at = is_due(state, config.check_interval_seconds, now_s)
    if due:  # a fleet's host: when its collection is due next, as the database last said (a file config has none)
        due, due_at = collection_is_due(state, config.digest, config.check_interval_seconds, now_s) or (due, due_at)
    if not due:
        console.say(
            f"Not due yet: the next check is due at {clock.iso(due_at)} (in {due_at - now_s:.0f} s); "
            "run with --now to check anyway."
        )
    return not due
