"""One check's life: due? -> lock -> (skip | cooldown? | download) -> state, log; returns an `Outcome`."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from playlist_cron import clock, log, monitoring
from playlist_cron import state as state_module
from playlist_cron import storage as storages
from playlist_cron.config import Config
from playlist_cron.console import Console
from playlist_cron.errors import CheckStopped, ConfigError
from playlist_cron.storage import HeldRunLock, StateStorage, Storage

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron import outage
    from playlist_cron.outcomes import CounterName, OutcomeName, RanOutcome
    from playlist_cron.playlist_result import PlaylistResult
    from playlist_cron.records import FailedVideoRecord, PlaylistReadRecord, RunningRecord, State
    from playlist_cron.watchdog import Watchdog

SKIP_REASON = "previous download still in progress"
MAX_COOLDOWN_FACTOR = state_module.MAX_COOLDOWN_FACTOR


class Outcome(NamedTuple):
    """How one check ended, for `cli` to turn into an exit code: the outcome of its final event, and why."""

    outcome: OutcomeName | Literal["NOT_DUE"]  # NOT_DUE: a fleet's check that found no playlist due
    reason: str | None = None  # the final event's reason: network, timeout, interrupted, ...
    signal_number: int | None = None  # the signal that ended it, if one did


def run(config: Config, *, console: Console, mark_archived: bool = False, now: bool = False) -> Outcome:
    """Run one check for `config`, due or forced (`due.not_due` was asked before), and return its outcome.

    `now` (`check --now`): in a fleet, the playlists no host holds are claimed even when they are not due yet.
    """
    storage = storages.open_for(config)
    if (now or mark_archived) and hasattr(storage.run_lock, "force"):
        storage.run_lock.force = True
    return run_due(config, storage, console=console, now_s=clock.now_s(), mark_archived=mark_archived)


def run_due(
    config: Config, storage: Storage, *, console: Console, now_s: float, mark_archived: bool = False
) -> Outcome:
    """Run one check that is due (or asked for) against `storage`: skip it when the run lock is held, else run it."""
    if config.database_url is not None:
        log_file = _open_log(config, console)
        logger = log.configure(log_file)
        from playlist_cron.errors import DatabaseUnavailable

        try:
            storage.state.ensure_ready()
            storage.archive.ensure_ready()
            held = storage.run_lock.try_acquire()
        except DatabaseUnavailable as error:
            return _database_unreachable(config, logger, console, str(error), now_s)
        _database_reachable(config, logger, console)
    else:
        storage.state.ensure_ready()
        log_file = _open_log(config, console)
        logger = log.configure(log_file)
        storage.archive.ensure_ready()
        held = storage.run_lock.try_acquire()
    if held is None:
        if getattr(storage.run_lock, "nothing_due", False):  # the fleet's hosts have checked every playlist lately
            console.say("Not due yet: every playlist was checked less than check_interval_seconds ago.")
            return Outcome("NOT_DUE")
        return _skip(config, storage, log_file, logger, console, now_s)
    try:
        return _Check(config, storage, log_file, logger, console, held, mark_archived=mark_archived).run()
    finally:
        held.release()


def _open_log(config: Config, console: Console) -> log.LogFile:
    log_file = log.open_log_file(config.log_file, config.path, console.alert)
    if config.log_file is None and console.interactive:  # stdout and stderr may share a terminal
        log_file.before_line = console.end_progress
    return log_file


def _database_unreachable(
    config: Config, logger: FilteringBoundLogger, console: Console, error: str, now_s: float
) -> Outcome:
    """The database could not be reached: FAILED `database` (exit 75), nothing downloaded. Its streak is kept in the
    host's own state file (the database cannot keep it), quiet until `network_alert_after_seconds`."""
    from playlist_cron import outage

    local = state_module.StateStore.for_config(config)
    with local.update() as state:
        state["last_check_at"] = clock.iso(now_s)
        streak = outage.streak_of(state)
        failing, _ = outage.track(streak, logger, "FAILED", "database", error, config.network_alert_after_seconds)
        state.update(streak)
    logger = logger.bind(run_id=new_run_id())
    fields: dict[str, Any] = {"reason": "database", "error": error, "duration_s": round(clock.now_s() - now_s, 3)}
    if failing is not None:
        fields["network_failing_s"] = round(failing.failing_s, 3)
        fields["network_failed_checks"] = failing.failed_checks
    logger.error(log.CHECK_FAILED, outcome="FAILED", **fields)
    line = f"playlist-cron: FAILED (database): {error} (log: {config.log_name})"
    (console.alert if failing is None or failing.alert else console.say)(line)
    return Outcome("FAILED", "database")


def _database_reachable(config: Config, logger: FilteringBoundLogger, console: Console) -> None:
    """The database answers: end a streak of failures to reach it, if the host's state file holds one."""
    local = state_module.StateStore.for_config(config)
    if not local.read().get("network_failing_since"):
        return
    from playlist_cron import outage

    with local.update() as state:
        streak = outage.streak_of(state)
        _, recovered = outage.track(streak, logger, "COMPLETED", None, "", config.network_alert_after_seconds)
        state.update(streak)
    if recovered is not None and recovered.alerted:
        console.alert(f"playlist-cron: {outage.recovery_words(recovered)}")


def new_run_id() -> str:
    """A random UUID (version 4) for one check: in its `running` record, on each event it logs, and in its pings.

    Made from os.urandom rather than the uuid module, whose import would cost the skip path 15 ms.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _skip(
    config: Config,
    storage: Storage,
    log_file: log.LogFile,
    logger: FilteringBoundLogger,
    console: Console,
    now_s: float,
) -> Outcome:
    holder = storage.run_lock.holder()
    with storage.state.update() as state:
        state["checks_total"] += 1
        state["skipped_total"] += 1
        state["consecutive_skipped"] += 1
        state["last_check_at"] = clock.iso(now_s)
        state["last_outcome"] = "SKIPPED"
        number = state["checks_total"]
        state["last_outcome_check"] = number
    logger = logger.bind(check=number, run_id=new_run_id())
    _log_recovery(storage.state, logger, console)
    held_s = holder.held_s(now_s) if holder else None
    monitoring.write_metrics(config, state, held_s, logger)
    overdue = held_s is not None and held_s > config.max_runtime_seconds
    holder_pid = holder.pid if holder else None
    (logger.error if overdue else logger.warning)(
        log.CHECK_SKIPPED,
        outcome="SKIPPED",
        reason=SKIP_REASON,
        skipped_total=state["skipped_total"],
        consecutive_skipped=state["consecutive_skipped"],
        holder_pid=holder_pid,
        **({"holder_host": holder.host} if holder is not None and holder.host is not None else {}),
        lock_held_s=held_s,
        message=f"Check #{number} - SKIPPED ({SKIP_REASON}) - Total skipped: {state['skipped_total']}",
    )
    if overdue:
        console.alert(
            f"playlist-cron: the lock {storage.run_lock.name} has been held by pid {holder_pid} for {held_s:.0f} s, "
            f"longer than max_runtime_seconds ({config.max_runtime_seconds}); is a download stuck?"
        )
    else:
        console.say(f"Check #{number} SKIPPED: {SKIP_REASON} (pid {holder_pid}, for {held_s or 0:.0f} s)")
    if log_file.uncounted_lines:
        with storage.state.update() as state:
            _count_lost_log_lines(state, log_file, number)
    return Outcome("SKIPPED", SKIP_REASON)


def _count_lost_log_lines(state: State, log_file: log.LogFile, number: int) -> None:
    """Count in the state the lines the log could not record, so that no counter counts what the log lacks unsaid."""
    lost = log_file.take_uncounted()
    if not lost:
        return
    state["log_write_failures_total"] = state.get("log_write_failures_total", 0) + lost
    state["last_log_write_failure"] = {
        "check": number,
        "at": clock.iso(clock.now_s()),
        "error": log.describe(log_file.error) if log_file.error else None,
    }


def _log_recovery(state: StateStorage, logger: FilteringBoundLogger, console: Console) -> None:
    """Log what the state storage did on its own (adopted an old file, recovered a damaged one)."""
    for note in state.take_notes():
        (logger.warning if note.alert else logger.info)(note.event, **(note.fields or {}), message=note.message)
        (console.alert if note.alert else console.say)(f"playlist-cron: {note.message}")


def same_run(running: RunningRecord, event: Mapping[str, Any]) -> bool:
    """Whether `event` is a final event of the check that the `running` record names: by its run id.

    Never by check number alone: another config logging to the same file counts its own checks. A record
    written before run ids existed is matched by number among the events that carry no run id either.
    """
    run_id = running.get("run_id")
    if run_id is not None:
        return bool(event.get("run_id") == run_id)
    return event.get("run_id") is None and event.get("check") == running.get("check")


# The counter each outcome of a check that ran adds one to.
RAN_COUNTERS: dict[str, CounterName] = {
    "COMPLETED": "completed_total",
    "FAILED": "failed_total",
    "DEFERRED": "deferred_total",
}


def apply_final_event(state: State, event: Mapping[str, Any]) -> None:
    """Given the state and a check's final event (as logged), count it; shared by a check and its recovery."""
    outcome: RanOutcome = event["outcome"]
    state[RAN_COUNTERS[outcome]] += 1
    state["last_outcome"] = outcome
    state["last_outcome_check"] = event.get("check")
    state["last_ran_outcome"] = outcome
    state["last_duration_s"] = event.get("duration_s")
    state["consecutive_skipped"] = 0
    running = state.get("running")
    if running and same_run(running, event):
        state["running"] = None
    if outcome == "COMPLETED":
        state["last_completed_at"] = event.get("timestamp")
    elif outcome == "FAILED":
        state["last_failure_reason"] = event.get("reason")
        state["last_error"] = event.get("error")


class _Check:
    """A check that holds the run lock; also the `Reporter` the downloader tells what happens.

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
        self.failed_videos: dict[str, FailedVideoRecord] = {}
        self.playlist_records: dict[str, PlaylistReadRecord] = {}  # how each playlist was read: `reads`
        self.cooldown_until: float | None = None
        self.cooldown_level = 0
        self.config_writable_reported: str | None = None
        self.streak: State = cast("State", {})  # the network streak's fields, copied by _begin (outage.streak_of)
        self.finished = False
        self.pings = monitoring.Pings(config.healthcheck_url, logger, self.run_id)
        from playlist_cron import watchdog

        self.watchdog: Watchdog = watchdog.Watchdog(
            config.max_runtime_seconds,
            config.stall_timeout_seconds,
            self.started_monotonic,
            is_finished=lambda: self.finished,
            last_resort=lambda stopped: self.finish_failed(stopped.reason, stopped.detail),
        )
        self._finish_lock = threading.Lock()
        self._titles: dict[str, str] = {}

    # -- the check ----------------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        self._begin()
        watch = getattr(self.held, "watch", None)  # a fleet's claims: their lock connection must stay alive
        if watch is not None:
            watch(lambda detail: self.watchdog.stop("lock_lost", detail))
        try:
            with self.pings, self.watchdog:
                try:
                    return self._work()
                except CheckStopped as stopped:
                    self.finish_failed(stopped.reason, stopped.detail)
                    return Outcome("FAILED", stopped.reason, stopped.signal_number)
                except ConfigError as error:  # cli prints it: one line on stderr, exit 78
                    self.finish_failed("error", "; ".join(error.problems), alert=False)
                    raise
                except Exception as error:
                    import traceback  # only on this path: it costs start-up time on every check otherwise

                    self.logger.error("check_error", traceback=traceback.format_exc())
                    self.finish_failed("error", f"{type(error).__name__}: {error}")
                    return Outcome("FAILED", "error")
        finally:
            if self.log_file.uncounted_lines:  # what the log missed after the final count (a ping or metrics warning)
                with self.store.update() as state:
                    _count_lost_log_lines(state, self.log_file, self.number)

    def _begin(self) -> None:
        """Count this check and note that it runs; first settle a check that died without a final event."""
        from playlist_cron import outage  # only a check that runs: the skip path never needs it

        with self.store.update() as state:
            orphan = state.get("running")
            if orphan:
                self._settle_orphan(state, orphan)
            state["checks_total"] += 1
            self.number = state["checks_total"]
            state["last_check_at"] = clock.iso(self.started_at)
            state["running"] = {
                "check": self.number,
                "pid": os.getpid(),
                "started_at": clock.iso(self.started_at),
                "run_id": self.run_id,
            }
            self.failed_videos = state["failed_videos"]
            self.playlist_records = dict(state.get("playlists") or {})
            self.config_writable_reported = state.get("config_file_writable_reported")
            capped_from = state_module.cap_cooldown(state, self.config.cooldown_seconds, self.started_at)
            self.streak = outage.streak_of(state)
            self.cooldown_until = clock.parse_iso(state.get("cooldown_until"))
            self.cooldown_level = int(state.get("cooldown_level") or 0)
        self.logger = self.logger.bind(check=self.number, run_id=self.run_id)
        self.pings.logger = self.logger
        _log_recovery(self.store, self.logger, self.console)
        if capped_from is not None:
            self.logger.warning(
                "cooldown_capped",
                cooldown_until_was=capped_from,
                cooldown_until=clock.iso(self.cooldown_until),
                message=f"the cooldown ran until {capped_from}, further ahead than {MAX_COOLDOWN_FACTOR} x "
                f"cooldown_seconds (was the clock wrong when it was set?); it now ends at "
                f"{clock.iso(self.cooldown_until)}",
            )
        self.logger.info(
            log.CHECK_STARTED,
            pid=os.getpid(),
            playlists=[playlist.url for playlist in self.config.playlists],
            message=f"Check #{self.number} - {clock.iso(self.started_at)}",
        )
        self.console.say(f"Check #{self.number} started")

    def _settle_orphan(self, state: State, orphan: RunningRecord) -> None:
        """The check `orphan` was killed: count its final event if it got one into the log, else log one for it.

        A log on stdout cannot be read back: there a killed check is always settled as interrupted, even one killed
        after its final event went out and before the state counted it (stdout then holds two final events for it).
        """
        for event in reversed(log.read_tail(self.config.log_file)):
            if event.get("event") in log.FINAL_EVENTS and same_run(orphan, event):
                apply_final_event(state, event)
                return
        event = {
            "check": orphan["check"],
            **({"run_id": orphan["run_id"]} if orphan.get("run_id") else {}),
            "outcome": "FAILED",
            "reason": "interrupted",
            "error": f"the check (pid {orphan.get('pid')}) ended without a final event: it was killed",
            "duration_s": None,
            "started_at": orphan.get("started_at"),
        }
        self.logger.error(log.CHECK_FAILED, **event)
        event["timestamp"] = clock.iso(clock.now_s())
        apply_final_event(state, event)

    def _work(self) -> Outcome:
        now_s = clock.now_s()
        if self.cooldown_until is not None and now_s < self.cooldown_until:
            return self._finish_deferred("cooldown", "the site asked us to slow down; waiting out the cooldown")
        self.pings.start()
        shortage = self._disk_shortage()
        if shortage:
            return self._finish("FAILED", reason="disk_space", error=shortage)
        self._tend_archive()
        from playlist_cron import file_checks

        file_checks.check_cookies_file(self.config, self.logger)
        self.config_writable_reported = file_checks.check_config_file(
            self.config, self.logger, self.console, self.store, self.config_writable_reported
        )
        # Only now that the lock is held: the skip path never pays for yt-dlp.
        from playlist_cron import download, reads

        results = []
        try:
            fleet = getattr(self.held, "fleet", None)
            database_archive = self.storage.archive if fleet is not None else None
            claimed = getattr(self.held, "playlists", None)
            playlists = claimed() if claimed is not None else iter(self.config.playlists)
            with download.Session(self.config, database_archive=database_archive, fleet=fleet) as session:
                for playlist in playlists:
                    record = self.playlist_records.get(reads.record_key(playlist.url))
                    read = reads.plan(playlist, record, clock.now_s())
                    self.console.say(
                        f"Reading {playlist.url}" + (f" from its feed {read.feed_url}" if read.kind == "feed" else "")
                    )
                    read_started_at = clock.iso(clock.now_s())
                    result = download.download_playlist(
                        self.config, playlist, self, read=read, mark_archived=self.mark_archived, session=session
                    )
                    results.append(result)
                    self.playlist_records[reads.record_key(playlist.url)] = reads.record_after(
                        record, result, read_started_at, clock.iso(clock.now_s())
                    )
        except download.RateLimited as limited:
            return self._start_cooldown(str(limited), results)
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

    def _tend_archive(self) -> None:
        """Mend a last line cut short by a crash, and say so when the archive holds lines yt-dlp cannot use."""
        health = self.storage.archive.tend()
        name = self.storage.archive.name
        if health.repaired:
            self.logger.warning(
                "archive_repaired",
                archive_file=name,
                message="the archive's last line had no line break (a crash while it was written?); one was added",
            )
        bad_lines = health.bad_line_numbers
        if not bad_lines:
            return
        self.logger.warning(
            "archive_garbage",
            archive_file=name,
            bad_lines=len(bad_lines),
            first_bad_line_numbers=list(bad_lines[:10]),
            message=f"{len(bad_lines)} lines of the archive are not 'extractor id' lines; yt-dlp ignores them",
        )
        with self.store.update() as state:
            reported = state.get("archive_garbage_reported", 0)
            state["archive_garbage_reported"] = len(bad_lines)
        if len(bad_lines) > reported:
            self.console.alert(
                f"playlist-cron: {name} has {len(bad_lines)} lines that are not 'extractor id' lines "
                f"(first at line {bad_lines[0]}); yt-dlp ignores them, but you may want to look"
            )

    def _disk_shortage(self) -> str | None:
        directory = self.config.download_dir
        directory.mkdir(parents=True, exist_ok=True)
        free_bytes = shutil.disk_usage(directory).free
        if free_bytes < self.config.min_free_bytes:
            return (
                f"only {free_bytes} bytes free in {directory}, below min_free_bytes ({self.config.min_free_bytes}); "
                "no download was started"
            )
        return None

    # -- endings ------------------------------------------------------------------------------------------------

    def _start_cooldown(self, message: str, results: list[PlaylistResult]) -> Outcome:
        level = self.cooldown_level + 1
        # The exponent is bounded first: a level read from the state may be any whole number.
        cooldown_s = self.config.cooldown_seconds * min(2 ** min(level - 1, 16), MAX_COOLDOWN_FACTOR)
        until = clock.now_s() + cooldown_s
        with self.store.update() as state:
            state["cooldown_until"] = clock.iso(until)
            state["cooldown_level"] = level
        self.cooldown_until = until
        return self._finish_deferred(
            "rate_limited",
            f"the site said to slow down ({message}); no request until {clock.iso(until)}",
            downloaded=sum(result.downloaded for result in results),
        )

    def _finish_deferred(self, reason: str, error: str, **fields: Any) -> Outcome:
        return self._finish(
            "DEFERRED", reason=reason, error=error, cooldown_until=clock.iso(self.cooldown_until), **fields
        )

    def finish_failed(self, reason: str, detail: str, *, alert: bool = True) -> None:
        self._finish("FAILED", alert=alert, reason=reason, error=" ".join(detail.split()))

    def _finish(self, outcome: RanOutcome, *, alert: bool = True, **fields: Any) -> Outcome:
        """Log the one final event of this check, then count it in the state; safe to call from two threads."""
        # The watchdog may call this while the main thread is stuck in it: it must not wait forever.
        if not self._finish_lock.acquire(timeout=self.watchdog.grace_s):
            return Outcome("FAILED")
        try:
            if self.finished:
                return Outcome(outcome)  # the other thread's final event stands; this one is not logged
            self.finished = True
            fields = log.redact_value(fields)  # the state file keeps these too, and `status` shows them
            duration_s = round(time.monotonic() - self.started_monotonic, 3)
            event_name = {
                "COMPLETED": log.CHECK_COMPLETED,
                "FAILED": log.CHECK_FAILED,
                "DEFERRED": log.CHECK_DEFERRED,
            }[outcome]
            if outcome == "COMPLETED":
                fields["message"] = f"Check completed in {duration_s:.1f} seconds"
            from playlist_cron import outage

            failing, recovered = outage.track(
                self.streak,
                self.logger,
                outcome,
                fields.get("reason"),
                str(fields.get("error")),
                self.config.network_alert_after_seconds,
            )
            if failing is not None:
                fields["network_failing_s"] = round(failing.failing_s, 3)
                fields["network_failed_checks"] = failing.failed_checks
            level = {"COMPLETED": "info", "FAILED": "error", "DEFERRED": "warning"}[outcome]
            getattr(self.logger, level)(event_name, outcome=outcome, duration_s=duration_s, **fields)
            event: dict[str, Any] = {
                "check": self.number,
                "run_id": self.run_id,
                "outcome": outcome,
                "duration_s": duration_s,
                **fields,
            }
            event["timestamp"] = clock.iso(clock.now_s())
            from playlist_cron.reads import record_key

            configured = {record_key(playlist.url) for playlist in self.config.playlists}
            with self.store.update() as state:
                apply_final_event(state, event)
                # Of the playlists no longer in the config, nothing is kept: one put back is read whole first.
                state["playlists"] = {
                    url: record for url, record in dict(self.playlist_records).items() if url in configured
                }
                if failing is not None or recovered is not None:
                    state.update(self.streak)
                _count_lost_log_lines(state, self.log_file, self.number)
                if outcome == "COMPLETED":
                    state["cooldown_level"] = 0
                    state["cooldown_until"] = None
            monitoring.write_metrics(self.config, state, 0.0, self.logger)
            monitoring.write_report(self.config, self.logger)
            self._end_pings(outcome, fields, failing)
            self._tell(outcome, fields, duration_s, failing, recovered, alert=alert)
            return Outcome(outcome, fields.get("reason"))
        finally:
            self._finish_lock.release()

    def _end_pings(self, outcome: RanOutcome, fields: dict[str, Any], failing: outage.Failing | None) -> None:
        summary_line = fields.get("message") or f"{outcome} ({fields.get('reason')}): {fields.get('error')}"
        # A started run is closed either way: a ban that DEFERRED it needs a human as much as a failure.
        ping = "success" if outcome == "COMPLETED" else "fail"
        if failing is not None and not failing.past_threshold:
            # An outage younger than network_alert_after_seconds needs nobody yet: the run ended as the user
            # configured it to, and a /start left without an end would be reported down after its grace time.
            ping = "success"
            summary_line += (
                f"; not alerting yet: failing for {failing.failing_s:.0f} s, network_alert_after_seconds is "
                f"{self.config.network_alert_after_seconds}"
            )
        self.pings.end(ping, summary_line)

    def _tell(
        self,
        outcome: RanOutcome,
        fields: dict[str, Any],
        duration_s: float,
        failing: outage.Failing | None,
        recovered: outage.Recovered | None,
        *,
        alert: bool,
    ) -> None:
        """Say how the check ended: on stderr when a human must act (cron mails it), else only on a terminal."""
        from playlist_cron import outage

        if recovered is not None and recovered.alerted:
            self.console.alert(f"playlist-cron: check #{self.number}: {outage.recovery_words(recovered)}")
        if failing is not None:
            line = (
                f"playlist-cron: check #{self.number} FAILED (network): {fields.get('error')}; failing for "
                f"{failing.failing_s:.0f} s since {failing.since} ({outage.checks(failing.failed_checks)}); "
                f"the next check tries again (log: {self.config.log_name})"
            )
            (self.console.alert if failing.alert else self.console.say)(line)
        elif outcome == "FAILED":
            if alert:
                self.console.alert(
                    f"playlist-cron: check #{self.number} FAILED ({fields.get('reason')}): {fields.get('error')} "
                    f"(log: {self.config.log_name})"
                )
        else:
            summary = (
                f"Check #{self.number} {outcome} in {duration_s:.1f} s: {fields.get('downloaded', 0)} downloaded, "
                f"{fields.get('failed', 0)} failed, {fields.get('already_archived', 0)} already archived"
                + (f", {fields['marked_archived']} marked as archived" if "marked_archived" in fields else "")
            )
            self.console.say(
                summary if outcome == "COMPLETED" else f"Check #{self.number} {outcome}: {fields['error']}"
            )

    # -- the Reporter the downloader talks to -------------------------------------------------------------------

    def activity(self) -> None:
        self.watchdog.activity()

    def retry_is_due(self, key: str) -> bool:
        from playlist_cron import failures

        return failures.is_due(self.failed_videos.get(key), clock.now_s())

    def video_started(self, video_id: str, title: str | None) -> None:
        self.activity()
        self._titles[video_id] = title or video_id
        self.console.say(f"Downloading {title or video_id}")

    def video_progress(
        self,
        video_id: str,
        downloaded_bytes: int,
        total_bytes: int | None,
        speed_bps: float | None,
        eta_s: float | None,
    ) -> None:
        self.activity()
        self.console.progress(self._titles.get(video_id, video_id), downloaded_bytes, total_bytes, speed_bps, eta_s)

    def video_downloaded(
        self,
        video_id: str,
        key: str,
        title: str | None,
        filename: str,
        size_bytes: int,
        duration_s: float,
        archive_line: str | None = None,
    ) -> None:
        """A video was downloaded: count it. `archive_line` is given when the archive is the check's to write (in a
        database): its row goes in with the counters, one transaction, so that neither is ever without the other."""
        self.activity()
        with self.store.update() as state:
            if archive_line is not None:
                cast("Any", self.storage.archive).add(archive_line)
            state["downloaded_total"] += 1
            state["failed_videos"].pop(key, None)
            self.failed_videos = state["failed_videos"]
        self.logger.info(
            log.VIDEO_DOWNLOADED,
            video_id=video_id,
            title=title,
            filename=filename,
            bytes=size_bytes,
            duration_s=round(duration_s, 3),
        )
        self.console.say(f"Downloaded {title or video_id} ({size_bytes} bytes) in {duration_s:.1f} s")

    def due_retries(self, playlist_url: str) -> list[tuple[str, str | None]]:
        """The failed videos of a playlist that are due for another try and whose URL is known: (url, title)."""
        from playlist_cron import failures

        return failures.due_retries(self.failed_videos, playlist_url, clock.now_s())

    def waiting_retries(self, playlist_url: str) -> int:
        """How many failed videos of a playlist wait for a later retry: what a 304 counts as waiting."""
        from playlist_cron import failures

        return failures.waiting_count(self.failed_videos, playlist_url, clock.now_s())

    def video_failed(
        self, video_id: str, key: str, title: str | None, url: str | None, error: str, playlist_url: str
    ) -> None:
        from playlist_cron import failures

        self.activity()
        with self.store.update() as state:
            record = failures.record_failure(
                state["failed_videos"],
                key,
                video_id=video_id,
                title=title,
                url=url,
                error=error,
                playlist_url=playlist_url,
                now_s=clock.now_s(),
                backoff_s=self.config.retry_backoff_seconds,
            )
            self.failed_videos = state["failed_videos"]
        self.logger.warning(
            log.VIDEO_FAILED,
            video_id=video_id,
            title=title,
            error=error,
            attempts=record["attempts"],
            next_retry_at=record["next_retry_at"],
        )
        if record["given_up"]:
            self.logger.error(
                log.VIDEO_GIVEN_UP,
                video_id=video_id,
                title=title,
                attempts=record["attempts"],
                error=error,
                message=(
                    f"gave up on {video_id} after {record['attempts']} attempts; "
                    f"`playlist-cron retry {video_id}` tries again"
                ),
            )
        self.console.say(f"Failed {title or video_id}: {error}")

    def warning(self, message: str) -> None:
        self.logger.warning("yt_dlp_warning", message=message)

    def feed_failed(self, playlist_url: str, feed_url: str, reason: str, error: str, then: str) -> None:
        self.activity()
        self.logger.warning(
            "feed_failed",
            playlist_url=playlist_url,
            feed_url=feed_url,
            reason=reason,
            error=error,
            message=f"the feed {feed_url} of {playlist_url} could not be read ({error}); {then}",
        )
        self.console.say(f"The feed {feed_url} could not be read ({error}); {then}")
