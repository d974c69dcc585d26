"""The metrics of a config in Prometheus's text format: what the metrics file holds and the Pushgateway is sent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playlist_cron import clock

if TYPE_CHECKING:
    from playlist_cron.config import Config
    from playlist_cron.outcomes import CounterName, OutcomeName
    from playlist_cron.records import State

OUTCOMES: dict[OutcomeName, CounterName] = {
    "COMPLETED": "completed_total",
    "SKIPPED": "skipped_total",
    "FAILED": "failed_total",
    "DEFERRED": "deferred_total",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _timestamp(value: str | None) -> list[tuple[str, float]]:
    """The one sample of a timestamp metric, or none for "never": a 0 would read as 1970 in every alert."""
    seconds = clock.parse_iso(value)
    return [] if seconds is None else [("", round(seconds, 3))]


def render(config: Config, state: State, lock_held_s: float | None, free_bytes: int | None = None) -> str:
    """Given the state after a check (and the free space in the download folder), return the metrics' text.

    The config's thresholds are samples too, so that alert rules compare with them instead of numbers of their own.
    A time that has not happened yet ("never") has no sample at all.
    """
    config_label = f'config="{_label(str(config.path))}"'
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{{{config_label}{labels}}} {value}")  # repr: a timestamp keeps every digit

    metric(
        "playlist_cron_checks_total",
        "counter",
        "Checks that were due, by outcome.",
        [(f',outcome="{outcome}"', state[key]) for outcome, key in OUTCOMES.items()],
    )
    metric("playlist_cron_videos_downloaded_total", "counter", "Videos downloaded.", [("", state["downloaded_total"])])
    metric(
        "playlist_cron_last_success_timestamp_seconds",
        "gauge",
        "When the last COMPLETED check ended, in seconds since the epoch (no sample: never).",
        _timestamp(state["last_completed_at"]),
    )
    metric(
        "playlist_cron_first_check_timestamp_seconds",
        "gauge",
        "When the first due check of this config started, in seconds since the epoch.",
        _timestamp(state.get("first_check_at")),
    )
    metric(
        "playlist_cron_last_check_timestamp_seconds",
        "gauge",
        "When the last due check started, in seconds since the epoch.",
        _timestamp(state["last_check_at"]),
    )
    metric(
        "playlist_cron_last_duration_seconds",
        "gauge",
        "How long the last check that ran took.",
        [("", float(state["last_duration_s"] or 0))],
    )
    metric(
        "playlist_cron_consecutive_skipped",
        "gauge",
        "Checks SKIPPED in a row, behind a lock that stays held.",
        [("", state["consecutive_skipped"])],
    )
    metric(
        "playlist_cron_consecutive_failed_checks",
        "gauge",
        "Checks FAILED in a row since the last COMPLETED one (SKIPPED and DEFERRED checks neither add nor reset).",
        [("", int(state.get("consecutive_failed") or 0))],
    )
    metric(
        "playlist_cron_lock_held_seconds",
        "gauge",
        "How long the lock's holder has held it (0: free).",
        [("", float(lock_held_s or 0))],
    )
    failed = state["failed_videos"].values()
    metric(
        "playlist_cron_failed_videos",
        "gauge",
        "Videos waiting for a retry, or given up.",
        [
            (',given_up="false"', sum(1 for v in failed if not v.get("given_up"))),
            (',given_up="true"', sum(1 for v in failed if v.get("given_up"))),
        ],
    )
    metric(
        "playlist_cron_cooldown_until_timestamp_seconds",
        "gauge",
        "Until when checks are DEFERRED after the site said to slow down (0: no cooldown).",
        [("", round(clock.parse_iso(state.get("cooldown_until")) or 0, 3))],
    )
    metric(
        "playlist_cron_network_failing_since_timestamp_seconds",
        "gauge",
        "When the current streak of network failures began (0: none).",
        [("", round(clock.parse_iso(state.get("network_failing_since")) or 0, 3))],
    )
    metric(
        "playlist_cron_network_failed_checks",
        "gauge",
        "Checks of the current streak of network failures.",
        [("", int(state.get("network_failed_checks") or 0))],
    )
    metric(
        "playlist_cron_log_write_failures_total",
        "counter",
        "Log lines that could not be written (a full or read-only disk, a closed stdout).",
        [("", int(state.get("log_write_failures_total") or 0))],
    )
    log_failure = state.get("last_log_write_failure")
    metric(
        "playlist_cron_last_log_write_failure_timestamp_seconds",
        "gauge",
        "When the last log line that could not be written was counted (no sample: never).",
        _timestamp(log_failure["at"] if log_failure else None),
    )
    metric(
        "playlist_cron_download_dir_free_bytes",
        "gauge",
        "Free space in the download folder, as min_free_bytes counts it (no sample: the folder is not there).",
        [] if free_bytes is None else [("", free_bytes)],
    )
    for key, help_text in (
        ("check_interval_seconds", "The config's check_interval_seconds: how often each playlist is checked."),
        ("max_runtime_seconds", "The config's max_runtime_seconds: a check that runs longer is stopped."),
        ("network_alert_after_seconds", "The config's network_alert_after_seconds: how long an outage stays quiet."),
        ("min_free_bytes", "The config's min_free_bytes: below this free space no download starts."),
    ):
        metric(f"playlist_cron_{key}", "gauge", help_text, [("", getattr(config, key))])
    metric(
        "playlist_cron_last_outcome",
        "gauge",
        "1 for the outcome of the last check, 0 for the others.",
        [(f',outcome="{outcome}"', int(state["last_outcome"] == outcome)) for outcome in OUTCOMES],
    )
    return "\n".join(lines) + "\n"
