"""One check, end to end: due? -> lock -> (skip | cooldown? | download) -> state, log; yt-dlp only after the lock."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import threading
import time
from typing import Any

from playlist_cron import clock, exit_codes, lock, log, metrics, outage
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


def run(config: Config, *, console: Console, mark_archived: bool = False) -> int:
    """Run one check for `config`, due or forced (`due.not_due` asked before), and return its exit code."""
    store = StateStore.for_config(config)
    now_s = clock.now_s()
    store.ensure_directory()
    log_file = log.open_log_file(config.log_file, config.path, console.alert)
    logger = log.configure(log_file)
    try:
        config.archive_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            str(config.path), [f"At 'archive_file': cannot create its folder: {error.strerror}"]
        ) from None
    held = lock.try_lock(config.lock_file)
    if held is None:
        return _skip(config, store, log_file, logger, console, now_s)
    try:
        return _Check(config, store, log_file, logger, console, held, mark_archived=mark_archived).run()
    finally:
        held.release()


def new_run_id() -> str:
    """A random UUID (version 4) for one check: in its `running` record, on each event it logs, and in its pings.

    Made from os.urandom rather than the uuid module, whose import would cost the skip path 15 ms.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _skip(config: Config, store: StateStore, log_file: log.LogFile, logger: Any, console: Console, now_s: float) -> int:
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
    if log_file.uncounted_lines:
        with store.update() as state:
            _count_lost_log_lines(state, log_file, number)
    return config.skip_exit_code


def _count_lost_log_lines(state: dict[str, Any], log_file: log.LogFile, number: int) -> None:
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


def _is_private_group(uid: int, gid: int) -> bool:
    """Whether `gid` is the user private group of `uid` (same name, no other member): group write is no risk then.

    Where each user has such a group (Debian's usergroups), the umask is often 002 and files are group-writable.
    """
    import grp
    import pwd

    try:
        user = pwd.getpwuid(uid)
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return user.pw_gid == gid and group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}


def _recovery_words(recovered: outage.Recovered) -> str:
    return (
        f"the site can be reached again after {recovered.failing_s:.0f} s of network failures "
        f"({outage.checks(recovered.failed_checks)} since {recovered.since}; the last: {recovered.error})"
    )


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
        log_file: log.LogFile,
        logger: Any,
        console: Console,
        held: lock.HeldLock,
        *,
        mark_archived: bool = False,
    ) -> None:
        self.config = config
        self.mark_archived = mark_archived
        self.store = store
        self.log_file = log_file
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
        self.config_writable_reported: str | None = None
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
            if self.log_file.uncounted_lines:  # what the log missed after the final count (a ping or metrics warning)
                with self.store.update() as state:
                    _count_lost_log_lines(state, self.log_file, self.number)

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
            self.config_writable_reported = state.get("config_file_writable_reported")
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
        self._check_config_file()
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

    def _check_config_file(self) -> None:
        """Warn when others can change the config: its yt_dlp_args can hold --exec, run as this user.

        Logged at every check like a readable cookies file; told on stderr once (a human must act, and cron
        would mail it every minute otherwise), and again when it changes, or comes back after a fix.
        """
        path = self.config.path
        try:
            file_stat = os.stat(path)  # through a link: what matters is the file that was read
        except OSError:
            return  # it was read a moment ago: an editor replacing it now is no reason to stop a check
        mode = stat.S_IMODE(file_stat.st_mode)
        owner_uid = file_stat.st_uid
        reasons, hints = [], []
        if mode & 0o002 or (mode & 0o020 and not _is_private_group(owner_uid, file_stat.st_gid)):
            reasons.append(f"mode {mode:04o}")
            hints.append(f"chmod go-w {path}")
        if owner_uid not in (os.geteuid(), 0):  # its owner can chmod it at will; root is trusted anyway
            import pwd  # only here: the skip path never needs it

            try:
                owner = f"uid {owner_uid} ({pwd.getpwuid(owner_uid).pw_name})"
            except KeyError:
                owner = f"uid {owner_uid}"
            reasons.append(f"owned by {owner}")
            hints.append(f"chown it to the user that runs the check ({os.geteuid()})")
        signature = f"{mode:04o}:{owner_uid}" if reasons else None
        changed = signature != self.config_writable_reported
        if changed:  # a state write only when it changes: a safe config costs a check one stat(2)
            with self.store.update() as state:
                state["config_file_writable_reported"] = signature
            self.config_writable_reported = signature
        if signature is None:
            return
        message = (
            f"other users can change the config {path} ({', '.join(reasons)}), and its yt_dlp_args can run "
            f"commands (--exec) as this user: {'; '.join(hints)}"
        )
        self.logger.warning(
            "config_file_writable", config_file=str(path), mode=f"{mode:04o}", owner_uid=owner_uid, message=message
        )
        if changed:
            self.console.alert(f"playlist-cron: {message}")

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
            failing, recovered = self._track_outage(outcome, fields)
            if failing is not None:
                fields["network_failing_s"] = round(failing.failing_s, 3)
                fields["network_failed_checks"] = failing.failed_checks
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
                _count_lost_log_lines(state, self.log_file, self.number)
                if outcome == "COMPLETED":
                    state["cooldown_level"] = 0
                    state["cooldown_until"] = None
            _write_metrics(self.config, state, 0.0, self.logger)
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
            self.pinger.finish(ping, summary_line)
            if recovered is not None and recovered.alerted:
                self.console.alert(f"playlist-cron: check #{self.number}: {_recovery_words(recovered)}")
            if failing is not None:
                line = (
                    f"playlist-cron: check #{self.number} FAILED (network): {fields.get('error')}; failing for "
                    f"{failing.failing_s:.0f} s since {failing.since} ({outage.checks(failing.failed_checks)}); "
                    f"the next check tries again (log: {self.config.log_file})"
                )
                (self.console.alert if failing.alert else self.console.say)(line)
                return exit_codes.TEMPFAIL
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

    def _track_outage(
        self, outcome: str, fields: dict[str, Any]
    ) -> tuple[outage.Failing | None, outage.Recovered | None]:
        """Extend the streak of network failures with this outcome, or end it; log its end before the final event."""
        now_s = clock.now_s()
        reason = fields.get("reason")
        if outcome == "FAILED" and reason == "network":
            with self.store.update() as state:
                failing = outage.record_failure(
                    state, now_s, self.config.network_alert_after_seconds, str(fields.get("error"))
                )
            return failing, None
        if self.store.read().get("network_failing_since") is None:  # the usual case: no streak to end
            return None, None
        with self.store.update() as state:
            recovered = outage.record_outcome(state, now_s, outcome, reason)
        if recovered is not None:
            self.logger.info(
                "network_recovered",
                failing_s=round(recovered.failing_s, 3),
                failed_checks=recovered.failed_checks,
                since=recovered.since,
                alerted=recovered.alerted,
                message=_recovery_words(recovered),
            )
        return None, recovered

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
