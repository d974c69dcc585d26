"""Prometheus text format for node_exporter's textfile collector, replaced atomically after every check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from playlist_cron import atomic, clock

if TYPE_CHECKING:
    from playlist_cron.config import Config
    from playlist_cron.outcomes import CounterName, OutcomeName
    from playlist_cron.records import State

FILE_MODE = 0o644  # node_exporter usually runs as another user

OUTCOMES: dict[OutcomeName, CounterName] = {
    "COMPLETED": "completed_total",
    "SKIPPED": "skipped_total",
    "FAILED": "failed_total",
    "DEFERRED": "deferred_total",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(config: Config, state: State, lock_held_s: float | None) -> str:
    """Given the state after a check, return the metrics file's text.

    The config's thresholds are samples too, so that alert rules compare with them instead of numbers of their own.
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
        "When the last COMPLETED check ended, in seconds since the epoch (0: never).",
        [("", round(clock.parse_iso(state["last_completed_at"]) or 0, 3))],
    )
    metric(
        "playlist_cron_last_check_timestamp_seconds",
        "gauge",
        "When the last due check started, in seconds since the epoch (0: never).",
        [("", round(clock.parse_iso(state["last_check_at"]) or 0, 3))],
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
    for key, help_text in (
        ("check_interval_seconds", "The config's check_interval_seconds: how often each playlist is checked."),
        ("max_runtime_seconds", "The config's max_runtime_seconds: a check that runs longer is stopped."),
        ("network_alert_after_seconds", "The config's network_alert_after_seconds: how long an outage stays quiet."),
    ):
        metric(f"playlist_cron_{key}", "gauge", help_text, [("", getattr(config, key))])
    metric(
        "playlist_cron_last_outcome",
        "gauge",
        "1 for the outcome of the last check, 0 for the others.",
        [(f',outcome="{outcome}"', int(state["last_outcome"] == outcome)) for outcome in OUTCOMES],
    )
    return "\n".join(lines) + "\n"


def write(metrics_file: Path, text: str) -> None:
    """Replace `metrics_file` with `text` atomically: the collector never reads half a file.

    The textfile collector's folder is often writable by others: `atomic.replace` never writes or chmods another
    file through a link planted there, and replaces a link planted at `metrics_file` itself, its target left alone.
    """
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    atomic.replace(metrics_file, text.encode("utf-8"), FILE_MODE)
