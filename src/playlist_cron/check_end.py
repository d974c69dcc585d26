"""A check's one final event: logged, counted in the state, pinged and told, once, from whichever thread ends it."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from playlist_cron import clock, log, monitoring
from playlist_cron.check_records import apply_final_event, count_lost_log_lines
from playlist_cron.errors import DatabaseUnavailable, StateError
from playlist_cron.outcomes import Outcome
from playlist_cron.state import MAX_COOLDOWN_FACTOR

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron import outage
    from playlist_cron.config import Config
    from playlist_cron.console import Console
    from playlist_cron.outcomes import RanOutcome
    from playlist_cron.playlist_result import PlaylistResult
    from playlist_cron.records import PlaylistReadRecord, State
    from playlist_cron.storage import StateStorage
    from playlist_cron.watchdog import Watchdog

END_RETRY_S = 0.25  # between tries to write a check's end into a database that is restarting


class Ending:
    """The endings of a check that holds the run lock (a part of `check._Check`): DEFERRED, FAILED or COMPLETED."""

    config: Config
    store: StateStorage
    log_file: log.LogFile
    logger: FilteringBoundLogger
    console: Console
    watchdog: Watchdog
    pings: monitoring.Pings
    number: int
    run_id: str
    started_monotonic: float
    finished: bool
    streak: State
    worked: bool
    playlist_records: dict[str, PlaylistReadRecord]
    playlists_read: set[str]
    cooldown_until: float | None
    cooldown_level: int
    _finish_lock: threading.Lock
    writer: threading.RLock
    downloaded_titles: list[str]
    given_up_videos: list[tuple[str, str | None, int, str]]

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
        # No read writes while the final event is written: a reader stuck holding the writer lock is waited for
        # no longer than the watchdog's grace (the state file's own lock still keeps the two writes apart).
        holds_writer = self.writer.acquire(timeout=self.watchdog.grace_s)
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
                worked=self.worked,
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
            state = self._write_end(event, outcome, counts_streak=failing is not None or recovered is not None)
            remaining_s = self.config.max_runtime_seconds - (time.monotonic() - self.started_monotonic)
            monitoring.send_metrics(self.config, state, 0.0, self.logger, remaining_s)
            self._end_pings(outcome, fields, failing)
            alerts = self._tell(outcome, fields, duration_s, failing, recovered, alert=alert)
            if self.config.notify_urls:
                self._notify(outcome, fields, alerts)
            return Outcome(outcome, fields.get("reason"), check=self.number, run_id=self.run_id)
        finally:
            if holds_writer:
                self.writer.release()
            self._finish_lock.release()

    def _write_end(self, event: dict[str, Any], outcome: RanOutcome, *, counts_streak: bool) -> State:
        """Write the check's read records and its final event into the stored state; return the state written.

        A database restarted under the check (its end is often `lock_lost`, noticed as the server went) may still be
        down: the end is tried again until it is back, for at most database_connect_timeout_seconds (and half the
        watchdog's grace), so that the check ends as it logged it rather than as "cannot reach the database".
        """
        deadline_s = time.monotonic() + min(self.config.database_connect_timeout_seconds, self.watchdog.grace_s / 2)
        while True:
            try:
                self._keep_read_records()
                with self.store.update() as state:
                    apply_final_event(state, event)
                    if counts_streak:
                        state.update(self.streak)
                    count_lost_log_lines(state, self.log_file, self.number)
                    if outcome == "COMPLETED":
                        state["cooldown_level"] = 0
                        state["cooldown_until"] = None
                return state
            except DatabaseUnavailable:
                if time.monotonic() >= deadline_s:
                    raise
                time.sleep(END_RETRY_S)

    def _keep_read_records(self) -> None:
        """Write the read records of the playlists this check read into the stored ones, one by one (what `retry`
        changed meanwhile in others stays), and drop those of playlists no longer in the config (one put back is
        read whole first). A failure costs the next check full reads, not this one's outcome: it is logged."""
        if not self.playlists_read:
            return
        from playlist_cron.reads import record_key

        configured = {record_key(playlist.url) for playlist in self.config.playlists}
        with self.writer:
            changed = {key: self.playlist_records[key] for key in self.playlists_read}
        try:
            with self.store.update_reads() as records:
                records.update(changed)
                for key in [key for key in records if key not in configured]:
                    del records[key]
        except StateError as error:
            self.logger.warning("read_records_not_written", error=str(error))

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
    ) -> list[tuple[str, str, str]]:
        """Say how the check ended: on stderr when a human must act (cron mails it), else only on a terminal.

        Return what went to stderr, as (`alert` or `recovered`, a title, the line): the moments a notification is
        sent too.
        """
        from playlist_cron import outage

        alerts: list[tuple[str, str, str]] = []
        if recovered is not None and recovered.alerted:
            line = f"playlist-cron: check #{self.number}: {outage.recovery_words(recovered)}"
            alerts.append(("recovered", f"check #{self.number}: {outage.reached_again(recovered)}", line))
        if failing is not None:
            line = (
                f"playlist-cron: check #{self.number} FAILED ({fields.get('reason')}): {fields.get('error')}; failing "
                f"for {failing.failing_s:.0f} s since {failing.since} ({outage.checks(failing.failed_checks)}); "
                + ("" if failing.worked else "no check has completed yet, so this is not kept quiet as an outage; ")
                + f"the next check tries again (log: {self.config.log_name})"
            )
            if failing.alert:
                alerts.append(("alert", f"check #{self.number} FAILED ({fields.get('reason')})", line))
            else:
                self.console.say(line)
        elif outcome == "FAILED":
            if alert:
                alerts.append(
                    (
                        "alert",
                        f"check #{self.number} FAILED ({fields.get('reason')})",
                        f"playlist-cron: check #{self.number} FAILED ({fields.get('reason')}): {fields.get('error')} "
                        f"(log: {self.config.log_name})",
                    )
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
        for _, _, line in alerts:
            self.console.alert(line)
        return alerts

    def _notify(self, outcome: RanOutcome, fields: dict[str, Any], alerts: list[tuple[str, str, str]]) -> None:
        """Send the check's messages (`notify_urls`): its alerts first, then each video given up, then what it
        downloaded; within what is left of max_runtime_seconds, however the services answer. A URL Apprise does not
        take is a line on stderr: nobody would hear from that service otherwise."""
        from playlist_cron.monitoring import notify

        messages = [notify.alert(kind, title, line) for kind, title, line in alerts]
        # Copies, taken without the writer lock (a reader stuck holding it is not waited for): one still running
        # past the watchdog's grace may add to the lists.
        given_up, titles = list(self.given_up_videos), list(self.downloaded_titles)
        messages += [notify.given_up(self.number, *video) for video in given_up]
        if titles:
            messages.append(notify.downloaded(self.number, outcome, titles, fields))
        remaining_s = self.config.max_runtime_seconds - (time.monotonic() - self.started_monotonic)
        for problem in notify.send(self.config.notify_urls, messages, self.logger, remaining_s):
            self.console.alert(f"playlist-cron: check #{self.number}: {problem} (fix it in {self.config.path})")
