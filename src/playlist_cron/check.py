"""One check's life: due? -> lock -> (skip | cooldown? | download) -> state, log; returns an `Outcome`.

Beside it: its skip (`check_skip`), its final event (`check_end`), the downloader's callbacks (`check_reporter`), what
it writes down (`check_records`) and what it makes sure of before downloading (`preflight`).
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from playlist_cron import clock, log, monitoring
from playlist_cron import state as state_module
from playlist_cron import storage as storages
from playlist_cron.check_end import Ending
from playlist_cron.check_records import (
    count_due_check,
    count_lost_log_lines,
    log_recovery,
    new_run_id,
    settle_orphan,
)
from playlist_cron.check_reporter import ReporterCallbacks
from playlist_cron.check_skip import skip
from playlist_cron.config import Config
from playlist_cron.console import Console
from playlist_cron.errors import CheckStopped, ConfigError, DatabaseUnavailable
from playlist_cron.outcomes import Outcome
from playlist_cron.storage import Storage

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron import download
    from playlist_cron.config import Playlist
    from playlist_cron.parallel_reads import Reads
    from playlist_cron.playlist_result import PlaylistResult
    from playlist_cron.records import State
    from playlist_cron.storage.interfaces import HeldRunLock

MAX_COOLDOWN_FACTOR = state_module.MAX_COOLDOWN_FACTOR


def run(config: Config, *, console: Console, mark_archived: bool = False, now: bool = False) -> Outcome:
    """Run one check for `config`, due or forced (`due.not_due` was asked before), and return its outcome.

    `now` (`check --now`): in a fleet, the playlists no host holds are claimed even when they are not due yet.
    """
    storage = storages.open_for(config)
    return run_due(
        config, storage, console=console, now_s=clock.now_s(), mark_archived=mark_archived, force=now or mark_archived
    )


def run_due(
    config: Config,
    storage: Storage,
    *,
    console: Console,
    now_s: float,
    mark_archived: bool = False,
    force: bool = False,
) -> Outcome:
    """Run one check that is due (or asked for) against `storage`: skip it when the run lock is held, else run it.

    A storage that is not on this host (a database) may be unreachable: the check then FAILS with reason `database`,
    kept quiet as network failures are (`reach`).
    """
    unreachable: DatabaseUnavailable | None = None
    try:
        storage.state.ensure_ready()
    except DatabaseUnavailable as error:
        unreachable = error
    log_file = _open_log(config, console)
    logger = log.configure(log_file)
    held: HeldRunLock | None = None
    if unreachable is None:
        try:
            storage.archive.ensure_ready()
            held = storage.run_lock.try_acquire(force=force)
        except DatabaseUnavailable as error:
            unreachable = error
    if storage.reach_state is not None:
        from playlist_cron import reach  # only for a storage on another machine: the skip path of files never pays

        if unreachable is not None:
            return reach.unreachable(config, storage.reach_state, logger, console, str(unreachable), now_s)
        reach.reachable(config, storage.reach_state, logger, console)
    elif unreachable is not None:
        raise unreachable
    if held is None:
        if storage.run_lock.nothing_due:  # the fleet's hosts have checked every playlist lately
            console.say("Not due yet: every playlist was checked less than check_interval_seconds ago.")
            return Outcome("NOT_DUE")
        return skip(config, storage, log_file, logger, console, now_s)
    try:
        return _Check(config, storage, log_file, logger, console, held, mark_archived=mark_archived).run()
    finally:
        held.release()


def _open_log(config: Config, console: Console) -> log.LogFile:
    """Open the log; a stdout that blocks is waited for no longer than a stall from now, until a running check's
    watchdog takes over (`Watchdog.write_deadline`): a skipped check, or one starting up, never hangs on it."""
    log_file = log.open_log_file(config.log_file, config.path, console.alert)
    if config.log_file is None and console.interactive:  # stdout and stderr may share a terminal
        log_file.before_line = console.end_progress
    if log_file.waits:
        deadline = time.monotonic() + min(config.stall_timeout_seconds, config.max_runtime_seconds)
        log_file.wait_until = lambda: deadline
    return log_file


class _Check(Ending, ReporterCallbacks):
    """A check that holds the run lock; also the `Reporter` the downloader tells what happens (`check_reporter`),
    ended by one final event (`check_end`).

    The modules only a running check needs (watchdog, failures, file_checks) are imported where they are used:
    the skip path, which shares this module, never pays for them.
    """

    def __init__(
        self,
        config: Config,
        storage: Storage,
        log_file: log.LogFile,
        logger: FilteringBoundLogger,
        console: Console,
        held: HeldRunLock,
        *,
        mark_archived: bool = False,
    ) -> None:
        self.config = config
        self.mark_archived = mark_archived
        self.held = held
        self.storage = storage
        self.store = storage.state
        self.log_file = log_file
        self.logger = logger
        self.console = console
        self.started_at = held.started_at
        self.started_monotonic = time.monotonic()
        self.number = 0
        self.run_id = new_run_id()
        self.failed_videos = {}
        self.playlist_records = {}  # how each playlist was read (`reads`), read when the first playlist is
        self.playlists_read: set[str] = set()  # the keys of the records this check changed: only they are written
        self.cooldown_until: float | None = None
        self.cooldown_level = 0
        self.config_writable_reported: str | None = None
        self.streak = cast("State", {})  # the network streak's fields, copied by _begin (outage.streak_of)
        self.worked = True  # whether a check of this config completed before this one (set by _begin)
        self.finished = False
        self.pings = monitoring.Pings(config.healthcheck_url, logger, self.run_id)
        from playlist_cron import watchdog

        self.watchdog = watchdog.Watchdog(
            config.max_runtime_seconds,
            config.stall_timeout_seconds,
            self.started_monotonic,
            is_finished=lambda: self.finished,
            last_resort=lambda stopped: self.finish_failed(stopped.reason, stopped.detail),
        )
        self.watchdog.watch_log(log_file)
        self._finish_lock = threading.Lock()
        # The one writer: every state change, log event and counter of the reads (from their threads) goes under it.
        self.writer = threading.RLock()
        self.reading: Reads | None = None
        self._titles = {}
        self.downloaded_titles = []
        self.given_up_videos = []

    # -- the check ----------------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        self._begin()
        self.held.watch(lambda detail: self.watchdog.stop("lock_lost", detail))  # a fleet's lock connection
        try:
            with self.pings, self.watchdog:
                try:
                    return self._work()
                except CheckStopped as stopped:
                    self.finish_failed(stopped.reason, stopped.detail)
                    return Outcome("FAILED", stopped.reason, stopped.signal_number, self.number, self.run_id)
                except DatabaseUnavailable as lost:  # between reads (a claim, a release): as in one, DatabaseLost
                    self.finish_failed("database", str(lost).removeprefix("playlist-cron: "))
                    return Outcome("FAILED", "database", check=self.number, run_id=self.run_id)
                except ConfigError as error:  # cli prints it: one line on stderr, exit 78
                    self.finish_failed("error", "; ".join(error.problems), alert=False)
                    raise
                except Exception as error:
                    import traceback  # only on this path: it costs start-up time on every check otherwise

                    self.logger.error("check_error", traceback=traceback.format_exc())
                    self.finish_failed("error", f"{type(error).__name__}: {error}")
                    return Outcome("FAILED", "error", check=self.number, run_id=self.run_id)
        finally:
            if self.log_file.uncounted_lines:  # what the log missed after the final count (a ping or metrics warning)
                with self.store.update() as state:
                    count_lost_log_lines(state, self.log_file, self.number)

    def _begin(self) -> None:
        """Count this check and note that it runs; first settle a check that died without a final event."""
        from playlist_cron import failures, outage  # only a check that runs: the skip path never needs them

        len(self.config.playlists)  # checked now, if `config.load` left them for first use: ConfigError, exit 78
        with self.store.update() as state:
            orphan = state.get("running")
            if orphan:
                settle_orphan(state, orphan, self.config.log_file, self.logger)
            self.number = count_due_check(state, self.started_at)
            state["running"] = {
                "check": self.number,
                "pid": os.getpid(),
                "started_at": clock.iso(self.started_at),
                "run_id": self.run_id,
            }
            self.failed_videos = state["failed_videos"]
            capped = failures.cap_retry_times(self.failed_videos, self.config.retry_backoff_seconds, self.started_at)
            state["config_digest"] = self.config.digest  # found sound, whole: the not-due path may trust it
            self.config_writable_reported = state.get("config_file_writable_reported")
            capped_from = state_module.cap_cooldown(state, self.config.cooldown_seconds, self.started_at)
            self.streak = outage.streak_of(state)
            self.worked = not outage.never_completed(state)
            self.cooldown_until = clock.parse_iso(state.get("cooldown_until"))
            self.cooldown_level = int(state.get("cooldown_level") or 0)
        self.logger = self.logger.bind(check=self.number, run_id=self.run_id)
        self.pings.logger = self.logger
        log_recovery(self.store, self.logger, self.console)
        if capped_from is not None:
            self.logger.warning(
                "cooldown_capped",
                cooldown_until_was=capped_from,
                cooldown_until=clock.iso(self.cooldown_until),
                message=f"the cooldown ran until {capped_from}, further ahead than {MAX_COOLDOWN_FACTOR} x "
                f"cooldown_seconds (was the clock wrong when it was set?); it now ends at "
                f"{clock.iso(self.cooldown_until)}",
            )
        failures.log_capped(self.logger, self.failed_videos, capped)
        self.logger.info(
            log.CHECK_STARTED,
            pid=os.getpid(),
            playlists=[playlist.url for playlist in self.config.playlists],
            message=f"Check #{self.number} - {clock.iso(self.started_at)}",
        )
        self.console.say(f"Check #{self.number} started")

    def _work(self) -> Outcome:
        now_s = clock.now_s()
        if self.cooldown_until is not None and now_s < self.cooldown_until:
            return self._finish_deferred("cooldown", "the site asked us to slow down; waiting out the cooldown")
        if self.config.notify_urls:
            from playlist_cron.monitoring import notify  # only now that the lock is held: the skip path never loads it

            notify.ensure_installed(str(self.config.path))
        self.pings.start()
        from playlist_cron import file_checks, preflight

        shortage = preflight.disk_shortage(self.config)
        if shortage:
            return self._finish("FAILED", reason="disk_space", error=shortage)
        self.playlist_records = self.store.read_reads()
        log_recovery(self.store, self.logger, self.console)
        preflight.tend_archive(self.storage, self.logger, self.console)
        file_checks.check_cookies_file(self.config, self.logger)
        self.config_writable_reported = file_checks.check_config_file(
            self.config, self.logger, self.console, self.store, self.config_writable_reported
        )
        # Only now that the lock is held: the skip path never pays for yt-dlp.
        from playlist_cron import download
        from playlist_cron.parallel_reads import Reads

        with download.Session(
            self.config,
            self.storage.archive,
            video_locks=self.held.video_locks,
            partial_dir=self.storage.partial_dir,
            writer=self.writer,
        ) as session:
            self.reading = Reads(
                self.held,
                self.config.playlists,
                lambda playlist: self._read(playlist, session),
                parallel=self.config.parallel_reads,
                writer=self.writer,
                done=self._done,
            )
            results = self.reading.run()
        if self.reading.rate_limited:
            return self._start_cooldown("; ".join(self.reading.rate_limited.values()), results)
        playlist_errors = [
            f"{result.url}: {result.error}"
            for result in results
            if result.error and result.error_kind != download.NETWORK
        ]
        network_errors = [result.error for result in results if result.error and result.error_kind == download.NETWORK]
        unreached = [failure for result in results for failure in result.network_failures]
        answered = any(result.downloaded or result.failed for result in results)
        # The site could not be reached: a playlist could not be read, or no video request got any answer. Then
        # the outage is the check's failure, and the videos it kept from us spend no retry step on it.
        is_outage = not playlist_errors and bool(network_errors or (unreached and not answered))
        if not is_outage:
            for result in results:
                for failure in result.network_failures:
                    result.failed += 1
                    self.video_failed(
                        failure.video_id, failure.key, failure.title, failure.url, failure.error, failure.playlist_url
                    )
                result.network_failures.clear()
        fields: dict[str, Any] = {
            "downloaded": sum(result.downloaded for result in results),
            "failed": sum(result.failed for result in results),
            "already_archived": sum(result.already_archived for result in results),
            "waiting_retry": sum(result.waiting_retry for result in results),
            "bytes": sum(result.bytes for result in results),
            "playlists": [result.summary() for result in results],
        }
        if self.mark_archived:
            fields["marked_archived"] = sum(result.marked_archived for result in results)
        if playlist_errors:
            return self._finish("FAILED", reason="playlist_error", error="; ".join(playlist_errors), **fields)
        if is_outage:
            words = dict.fromkeys(network_errors or [failure.error for failure in unreached])
            return self._finish("FAILED", reason="network", error="; ".join(words), **fields)
        return self._finish("COMPLETED", **fields)

    def _read(self, playlist: Playlist, session: download.Session) -> PlaylistResult:
        """Read one playlist as planned from its record (from a reader thread), and note how it was read."""
        from playlist_cron import download, reads

        key = reads.record_key(playlist.url)
        with self.writer:
            record = self.playlist_records.get(key)
        read = reads.plan(playlist, record, clock.now_s())
        with self.writer:
            self.console.say(
                f"Reading {playlist.url}" + (f" from its feed {read.feed_url}" if read.kind == "feed" else "")
            )
        read_started_at = clock.iso(clock.now_s())
        result = download.download_playlist(
            self.config, playlist, self, read=read, mark_archived=self.mark_archived, session=session
        )
        with self.writer:
            self.playlist_records[key] = reads.record_after(record, result, read_started_at, clock.iso(clock.now_s()))
            self.playlists_read.add(key)
        return result

    def _done(self, playlist: Playlist) -> None:
        """Tell the held lock a playlist is done (under the writer lock), with the record of how it was read: a
        storage that keeps it with the release (a fleet's) spares the check's end from writing it."""
        from playlist_cron.reads import record_key

        key = record_key(playlist.url)
        record = self.playlist_records.get(key) if key in self.playlists_read else None
        if self.held.done(playlist, record):
            self.playlists_read.discard(key)

    # -- endings ------------------------------------------------------------------------------------------------
