"""One check, end to end: due? -> lock -> (skip | cooldown? | download) -> state, log; yt-dlp only after the lock."""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from typing import Any

from playlist_cron import clock, exit_codes, lock, log, metrics
from playlist_cron import state as state_module
from playlist_cron.config import Config
from playlist_cron.console import Console
from playlist_cron.errors import ConfigError, Interrupted
from playlist_cron.state import StateStore

SKIP_REASON = "previous download still in progress"
ARCHIVE_LINE = re.compile(rb"[A-Za-z0-9_.:-]+ \S+")
WHOLE_ARCHIVE = re.compile(rb"(?:[A-Za-z0-9_.:-]+ [^\s]+\n)*")
WATCHDOG_TICK_S = 0.25
WATCHDOG_GRACE_S = 15.0  # after asking the main thread to stop, how long before the watchdog ends the process itself
MAX_COOLDOWN_FACTOR = state_module.MAX_COOLDOWN_FACTOR
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run(config: Config, *, force: bool, console: Console, mark_archived: bool = False) -> int:
    """Run one check for `config` and return its exit code."""
    store = StateStore.for_config(config)
    now_s = clock.now_s()
    if not force:
        due, due_at = state_module.is_due(store.read(), config.check_interval_seconds, now_s)
        if not due:
            console.say(
                f"Not due yet: the next check is due at {clock.iso(due_at)} (in {due_at - now_s:.0f} s); "
                "run with --now to check anyway."
            )
            return exit_codes.OK
    store.ensure_directory()
    logger = log.configure(config.log_file, config.path)
    try:
        config.archive_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            str(config.path), [f"At 'archive_file': cannot create its folder: {error.strerror}"]
        ) from None
    held = lock.try_lock(config.lock_file)
    if held is None:
        return _skip(config, store, logger, console, now_s)
    try:
        return _Check(config, store, logger, console, held, mark_archived=mark_archived).run()
    finally:
        held.release()


def new_run_id() -> str:
    """A random id for one check: in its `running` record, on each event it logs, and in its pings (`rid`)."""
    import uuid  # 15 ms of imports: only for a check that is due

    return str(uuid.uuid4())


def _skip(config: Config, store: StateStore, logger: Any, console: Console, now_s: float) -> int:
    holder = lock.holder(config.lock_file)
    with store.update() as state:
        state["checks_total"] += 1
        state["skipped_total"] += 1
        state["consecutive_skipped"] += 1
        state["last_check_at"] = clock.iso(now_s)
        state["last_outcome"] = "SKIPPED"
        number = state["checks_total"]
        state["last_outcome_check"] = number
    logger = logger.bind(check=number, run_id=new_run_id())
    _log_recovery(store, logger, console)
    held_s = holder.held_s(now_s) if holder else None
    _write_metrics(config, state, held_s, logger)
    overdue = held_s is not None and held_s > config.max_runtime_seconds
    holder_pid = holder.pid if holder else None
    (logger.error if overdue else logger.warning)(
        log.CHECK_SKIPPED,
        outcome="SKIPPED",
        reason=SKIP_REASON,
        skipped_total=state["skipped_total"],
        consecutive_skipped=state["consecutive_skipped"],
        holder_pid=holder_pid,
        lock_held_s=held_s,
        message=f"Check #{number} - SKIPPED ({SKIP_REASON}) - Total skipped: {state['skipped_total']}",
    )
    if overdue:
        console.alert(
            f"playlist-cron: the lock {config.lock_file} has been held by pid {holder_pid} for {held_s:.0f} s, "
            f"longer than max_runtime_seconds ({config.max_runtime_seconds}); is a download stuck?"
        )
    else:
        console.say(f"Check #{number} SKIPPED: {SKIP_REASON} (pid {holder_pid}, for {held_s or 0:.0f} s)")
    return config.skip_exit_code


def _write_metrics(config: Config, state: dict[str, Any], lock_held_s: float | None, logger: Any) -> None:
    if config.metrics_file is None:
        return
    try:
        metrics.write(config.metrics_file, metrics.render(config.path, state, lock_held_s))
    except OSError as error:  # monitoring must not fail a check; the log says why the file is stale
        logger.warning("metrics_failed", metrics_file=str(config.metrics_file), error=str(error))


def _log_recovery(store: StateStore, logger: Any, console: Console) -> None:
    for note in store.migration_notes:
        logger.info(
            "state_migrated", legacy_state_file=str(store.legacy_path), state_file=str(store.path), message=note
        )
        console.say(f"playlist-cron: {note}")
    store.migration_notes.clear()
    for note in dict.fromkeys(store.recovery_notes):
        logger.warning("state_recovered", message=note)
        console.alert(f"playlist-cron: {note}")
    store.recovery_notes.clear()


def same_run(running: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether `event` is a final event of the check that the `running` record names: by its run id.

    Never by check number alone: another config logging to the same file counts its own checks. A record
    written before run ids existed is matched by number among the events that carry no run id either.
    """
    run_id = running.get("run_id")
    if run_id is not None:
        return bool(event.get("run_id") == run_id)
    return event.get("run_id") is None and event.get("check") == running.get("check")


def apply_final_event(state: dict[str, Any], event: dict[str, Any]) -> None:
    """Given the state and a check's final event (as logged), count it; shared by a check and its recovery."""
    outcome = event["outcome"]
    state[{"COMPLETED": "completed_total", "FAILED": "failed_total", "DEFERRED": "deferred_total"}[outcome]] += 1
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


class _Watchdog(threading.Thread):
    """Ends a check that runs past `max_runtime_seconds` or makes no progress for `stall_timeout_seconds`."""

    def __init__(self, check: _Check) -> None:
        super().__init__(name="playlist-cron-watchdog", daemon=True)
        self.check = check
        self.stopped = threading.Event()
        self.fired: Interrupted | None = None
        self.main_thread_id = threading.main_thread().ident or 0

    def run(self) -> None:
        config = self.check.config
        while not self.stopped.wait(WATCHDOG_TICK_S):
            now = time.monotonic()
            if now - self.check.started_monotonic > config.max_runtime_seconds:
                self.fired = Interrupted(
                    "timeout", f"the check ran longer than max_runtime_seconds ({config.max_runtime_seconds} s)"
                )
            elif now - self.check.last_activity > config.stall_timeout_seconds:
                self.fired = Interrupted(
                    "stalled", f"no download progress for stall_timeout_seconds ({config.stall_timeout_seconds} s)"
                )
            else:
                continue
            signal.pthread_kill(self.main_thread_id, signal.SIGUSR1)
            if not self.stopped.wait(WATCHDOG_GRACE_S):
                # The main thread is stuck somewhere a signal cannot reach: end the process from here.
                # Like kill -9, this loses nothing: the archive, the state and the log are only ever appended
                # to or replaced whole, and the partial file resumes next time.
                try:
                    self.check.finish_failed(self.fired)
                finally:
                    os._exit(exit_codes.FAILED)
            return


class _Check:
    """A check that holds the run lock; also the `Reporter` the downloader tells what happens."""

    def __init__(
        self,
        config: Config,
        store: StateStore,
        logger: Any,
        console: Console,
        held: lock.HeldLock,
        *,
        mark_archived: bool = False,
    ) -> None:
        self.config = config
        self.mark_archived = mark_archived
        self.store = store
        self.logger = logger
        self.console = console
        self.started_at = held.started_at
        self.started_monotonic = time.monotonic()
        self.last_activity = self.started_monotonic
        self.number = 0
        self.run_id = new_run_id()
        self.failed_videos: dict[str, Any] = {}
        self.cooldown_until: float | None = None
        self.cooldown_level = 0
        self.finished = False
        self.pinger: Any = None
        self._finish_lock = threading.Lock()
        self._titles: dict[str, str] = {}

    # -- the check ----------------------------------------------------------------------------------------------

    def run(self) -> int:
        self._begin()
        watchdog = _Watchdog(self)
        previous_handlers = self._install_signal_handlers(watchdog)
        watchdog.start()
        try:
            return self._work()
        except Interrupted as interrupted:
            self.finish_failed(interrupted)
            if interrupted.signal_number is not None:
                return exit_codes.for_signal(interrupted.signal_number)
            return exit_codes.FAILED
        except ConfigError as error:  # cli prints it: one line on stderr, exit 78
            self.finish_failed(Interrupted("error", "; ".join(error.problems)), alert=False)
            raise
        except Exception as error:
            import traceback  # only on this path: it costs start-up time on every check otherwise

            self.logger.error("check_error", traceback=traceback.format_exc())
            self.finish_failed(Interrupted("error", f"{type(error).__name__}: {error}"))
            return exit_codes.FAILED
        finally:
            watchdog.stopped.set()
            for signal_number, handler in previous_handlers.items():
                signal.signal(signal_number, handler)

    def _begin(self) -> None:
        """Count this check and note that it runs; first settle a check that died without a final event."""
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
            capped_from = state_module.cap_cooldown(state, self.config.cooldown_seconds, self.started_at)
            self.cooldown_until = clock.parse_iso(state.get("cooldown_until"))
            self.cooldown_level = int(state.get("cooldown_level") or 0)
        self.logger = self.logger.bind(check=self.number, run_id=self.run_id)
        from playlist_cron.ping import Pinger  # urllib is not needed on the skip path

        self.pinger = Pinger(self.config.healthcheck_url, self.logger, self.run_id)
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

    def _settle_orphan(self, state: dict[str, Any], orphan: dict[str, Any]) -> None:
        """The check `orphan` was killed: count its final event if it got one into the log, else log one for it."""
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

    def _work(self) -> int:
        now_s = clock.now_s()
        if self.cooldown_until is not None and now_s < self.cooldown_until:
            return self._finish_deferred("cooldown", "the site asked us to slow down; waiting out the cooldown")
        self.pinger.start()
        shortage = self._disk_shortage()
        if shortage:
            return self._finish("FAILED", reason="disk_space", error=shortage)
        self._tend_archive()
        self._check_cookies_file()
        from playlist_cron import download  # only now that the lock is held: the skip path never pays for yt-dlp

        results = []
        try:
            for playlist in self.config.playlists:
                self.console.say(f"Reading {playlist.url}")
                results.append(
                    download.download_playlist(self.config, playlist, self, mark_archived=self.mark_archived)
                )
        except download.RateLimited as limited:
            return self._start_cooldown(str(limited), results)
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
        errors = [f"{result.url}: {result.error}" for result in results if result.error]
        if errors:
            return self._finish("FAILED", reason="playlist_error", error="; ".join(errors), **fields)
        return self._finish("COMPLETED", **fields)

    def _check_cookies_file(self) -> None:
        path = self.config.cookies_file
        if path is None:
            return
        try:
            mode = path.stat().st_mode & 0o777
        except OSError as error:
            raise ConfigError(str(self.config.path), [f"At 'cookies_file': {path}: {error.strerror}"]) from None
        if mode & 0o077:
            self.logger.warning(
                "cookies_file_readable",
                cookies_file=str(path),
                mode=f"{mode:04o}",
                message=f"other users can read the cookies in {path} (mode {mode:04o}): chmod 600 it",
            )

    def _tend_archive(self) -> None:
        """Mend a last line cut short by a crash, and say so when the archive holds lines yt-dlp cannot use."""
        path = self.config.archive_file
        try:
            with open(path, "rb+") as archive:
                data = archive.read()
                if data and not data.endswith(b"\n"):
                    # yt-dlp appends "id\n": without this, the next id would be glued to the cut-short line.
                    archive.write(b"\n")
                    data += b"\n"
                    self.logger.warning(
                        "archive_repaired",
                        archive_file=str(path),
                        message="the archive's last line had no line break (a crash while it was written?); "
                        "one was added",
                    )
        except FileNotFoundError:
            return
        # One regular-expression pass over the whole archive (100,000 lines in about 25 ms); only when it
        # finds something else than "extractor id" lines are they looked at one by one.
        if WHOLE_ARCHIVE.fullmatch(data):
            return
        bad_lines = [
            number
            for number, line in enumerate(data.split(b"\n")[:-1], start=1)
            if line.strip() and not ARCHIVE_LINE.fullmatch(line.strip())
        ]
        if not bad_lines:
            return
        self.logger.warning(
            "archive_garbage",
            archive_file=str(path),
            bad_lines=len(bad_lines),
            first_bad_line_numbers=bad_lines[:10],
            message=f"{len(bad_lines)} lines of the archive are not 'extractor id' lines; yt-dlp ignores them",
        )
        with self.store.update() as state:
            reported = state.get("archive_garbage_reported", 0)
            state["archive_garbage_reported"] = len(bad_lines)
        if len(bad_lines) > reported:
            self.console.alert(
                f"playlist-cron: {path} has {len(bad_lines)} lines that are not 'extractor id' lines "
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

    def _start_cooldown(self, message: str, results: list[Any]) -> int:
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

    def _finish_deferred(self, reason: str, error: str, **fields: Any) -> int:
        return self._finish(
            "DEFERRED", reason=reason, error=error, cooldown_until=clock.iso(self.cooldown_until), **fields
        )

    def finish_failed(self, interrupted: Interrupted, *, alert: bool = True) -> None:
        self._finish("FAILED", alert=alert, reason=interrupted.reason, error=" ".join(interrupted.detail.split()))

    def _finish(self, outcome: str, *, alert: bool = True, **fields: Any) -> int:
        """Log the one final event of this check, then count it in the state; safe to call from two threads."""
        # The watchdog may call this while the main thread is stuck in it: it must not wait forever.
        if not self._finish_lock.acquire(timeout=WATCHDOG_GRACE_S):
            return exit_codes.FAILED
        try:
            if self.finished:
                return exit_codes.FAILED if outcome == "FAILED" else exit_codes.OK
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
            level = {"COMPLETED": "info", "FAILED": "error", "DEFERRED": "warning"}[outcome]
            getattr(self.logger, level)(event_name, outcome=outcome, duration_s=duration_s, **fields)
            event = {
                "check": self.number,
                "run_id": self.run_id,
                "outcome": outcome,
                "duration_s": duration_s,
                **fields,
            }
            event["timestamp"] = clock.iso(clock.now_s())
            with self.store.update() as state:
                apply_final_event(state, event)
                if outcome == "COMPLETED":
                    state["cooldown_level"] = 0
                    state["cooldown_until"] = None
            _write_metrics(self.config, state, 0.0, self.logger)
            # A started run is closed either way: a ban that DEFERRED it needs a human as much as a failure.
            summary_line = fields.get("message") or f"{outcome} ({fields.get('reason')}): {fields.get('error')}"
            self.pinger.finish("success" if outcome == "COMPLETED" else "fail", summary_line)
            if outcome == "FAILED":
                if alert:
                    self.console.alert(
                        f"playlist-cron: check #{self.number} FAILED ({fields.get('reason')}): {fields.get('error')} "
                        f"(log: {self.config.log_file})"
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
            return exit_codes.FAILED if outcome == "FAILED" else exit_codes.OK
        finally:
            self._finish_lock.release()

    # -- signals ------------------------------------------------------------------------------------------------

    def _install_signal_handlers(self, watchdog: _Watchdog) -> dict[int, Any]:
        def on_signal(signal_number: int, frame: object) -> None:
            if self.finished:
                return
            name = signal.Signals(signal_number).name
            raise Interrupted("interrupted", f"received {name}", signal_number)

        def on_watchdog(signal_number: int, frame: object) -> None:
            if self.finished or watchdog.fired is None:
                return
            raise watchdog.fired

        previous: dict[int, Any] = {number: signal.getsignal(number) for number in (*HANDLED_SIGNALS, signal.SIGUSR1)}
        for number in HANDLED_SIGNALS:
            signal.signal(number, on_signal)
        signal.signal(signal.SIGUSR1, on_watchdog)
        return previous

    # -- the Reporter the downloader talks to -------------------------------------------------------------------

    def activity(self) -> None:
        self.last_activity = time.monotonic()

    def retry_is_due(self, key: str) -> bool:
        record = self.failed_videos.get(key)
        if record is None:
            return True
        if record.get("given_up"):
            return False
        next_retry_s = clock.parse_iso(record.get("next_retry_at"))
        return next_retry_s is None or next_retry_s <= clock.now_s()

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
    ) -> None:
        self.activity()
        with self.store.update() as state:
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
        return [
            (record["url"], record.get("title"))
            for key, record in self.failed_videos.items()
            if record.get("playlist_url") == log.redact(playlist_url) and record.get("url") and self.retry_is_due(key)
        ]

    def video_failed(
        self, video_id: str, key: str, title: str | None, url: str | None, error: str, playlist_url: str
    ) -> None:
        self.activity()
        now_s = clock.now_s()
        steps = self.config.retry_backoff_seconds
        with self.store.update() as state:
            record = state["failed_videos"].get(key) or {
                "video_id": video_id,
                "attempts": 0,
                "first_failed_at": clock.iso(now_s),
            }
            record["attempts"] += 1
            record["error"] = log.redact(error)
            record["title"] = title
            record["url"] = log.redact(url) if url else None
            record["playlist_url"] = log.redact(playlist_url)
            record["last_failed_at"] = clock.iso(now_s)
            record["given_up"] = record["attempts"] > len(steps)
            record["next_retry_at"] = None if record["given_up"] else clock.iso(now_s + steps[record["attempts"] - 1])
            state["failed_videos"][key] = record
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
