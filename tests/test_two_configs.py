"""Two configs in one folder, run as cron runs them: each keeps its own state and settles only its own checks."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import COMMAND, Project, clean_env, read_events, wait_for
from playlist_cron.demo.feed import FeedItem

FINAL_EVENTS = ("check_skipped", "check_deferred", "check_completed", "check_failed")


def write_named_config(project: Project, name: str, **overrides: Any) -> Path:
    """A second config file beside `project`'s, with its own archive and downloads (the default state_dir)."""
    values: dict[str, Any] = {
        "playlist_url": project.feed.feed_url,
        "min_free_bytes": 0,
        "archive_file": f"{name}/archive.txt",
        "download_dir": f"{name}/downloads",
        "log_file": f"{name}/events.log",
    }
    values.update(overrides)
    path = project.root / f"{name}.json"
    path.write_text(json.dumps(values, indent=2))
    return path


def start(config_path: Path, *arguments: str, held: bool = False) -> subprocess.Popen[str]:
    """Start the installed command as cron would; `held`: it waits for a line on stdin first (see `release`)."""
    command = [COMMAND, *arguments, "--config", str(config_path)]
    if held:
        command = ["sh", "-c", 'read line; exec "$0" "$@" </dev/null', *command]
    return subprocess.Popen(
        command,
        stdin=subprocess.PIPE if held else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd="/",
    )


def release(processes: list[subprocess.Popen[str]]) -> None:
    """Let held processes go, one line each written back to back: as near the same instant as cron's minute."""
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()  # `communicate` closes it later


def run(config_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    process = start(config_path, *arguments)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def status_of(config_path: Path) -> dict[str, Any]:
    result = run(config_path, "status", "--json")
    assert result.returncode in (0, 1), result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def test_two_configs_started_together_each_run_every_round_and_count_only_their_own(
    project: Project, reliability: Callable[[str], None]
) -> None:
    feed = project.feed
    feed.settings.items = []
    feed.settings.bytes_per_second = 200_000  # 300 kB: each check runs 1.5 s, longer than the 1 s interval
    names = ("music", "talks")
    configs = {name: write_named_config(project, name, check_interval_seconds=1) for name in names}
    rounds = 6
    for round_number in range(rounds):
        feed.settings.items.insert(
            0, FeedItem(guid=f"new-{round_number:03d}", title=f"New {round_number}", size_bytes=300_000)
        )
        processes = {name: start(path, "check", held=True) for name, path in configs.items()}
        release(list(processes.values()))
        outputs = {name: process.communicate(timeout=120) for name, process in processes.items()}
        for name, process in processes.items():
            assert (process.returncode, outputs[name]) == (0, ("", "")), f"round {round_number}, {name}"
    said = []
    wrong = []
    for name, path in configs.items():
        events = read_events(project.root / name / "events.log")
        started = sum(event["event"] == "check_started" for event in events)
        finals = Counter(event["event"] for event in events if event["event"] in FINAL_EVENTS)
        status = status_of(path)
        counters = {key: status[key] for key in ("checks_total", "completed_total", "failed_total")}
        archived = len((project.root / name / "archive.txt").read_text().splitlines())
        said.append(
            f"{name}: {started} of {rounds} rounds ran, finals {dict(finals)}, status {counters}, {archived} archived"
        )
        if (started, dict(finals), counters, archived) != (
            rounds,
            {"check_completed": rounds},
            {"checks_total": rounds, "completed_total": rounds, "failed_total": 0},
            rounds,
        ):
            wrong.append(name)
    assert not wrong, "; ".join(said)
    reliability(
        f"two configs, one folder (own archive_file, default state_dir), {rounds} rounds started at "
        "the same instant -> " + "; ".join(said)
    )


@pytest.mark.parametrize("state_dirs", ["default", "own"])
def test_a_killed_check_is_not_settled_by_another_configs_check_with_the_same_number(
    project: Project, state_dirs: str, reliability: Callable[[str], None]
) -> None:
    feed = project.feed
    victim_item, _, _ = feed.settings.items
    victim_item.size_bytes = 1_000_000
    feed.settings.bytes_per_second = 200_000
    shared_log = project.root / "logs" / "shared.log"
    extra = {"log_file": "logs/shared.log"}
    victim = write_named_config(
        project, "victim", **extra, **({"state_dir": "victim-state"} if state_dirs == "own" else {})
    )
    other = write_named_config(
        project, "other", **extra, **({"state_dir": "other-state"} if state_dirs == "own" else {})
    )

    check = start(victim, "check")
    wait_for(lambda: read_events(shared_log, "check_started"), what="the victim's check_started")
    [victim_started] = read_events(shared_log, "check_started")
    check.send_signal(signal.SIGKILL)
    check.wait(30)

    feed.settings.bytes_per_second = None
    result = run(other, "check", "--now")
    assert result.returncode == 0, result.stderr
    [other_completed] = read_events(shared_log, "check_completed")

    result = run(victim, "check", "--now")
    assert result.returncode == 0, result.stderr
    victim_status = status_of(victim)
    other_status = status_of(other)
    counters = ("checks_total", "completed_total", "failed_total")
    said = (
        f"victim {dict((key, victim_status[key]) for key in counters)}, "
        f"other {dict((key, other_status[key]) for key in counters)}"
    )
    interrupted = [e for e in read_events(shared_log, "check_failed") if e.get("reason") == "interrupted"]
    assert [(victim_status[key], other_status[key]) for key in counters] == [(2, 1), (1, 1), (1, 0)], said
    assert other_completed["check"] == victim_started["check"] == 1, "both were their own config's check #1"
    assert len(interrupted) == 1, interrupted
    assert interrupted[0].get("run_id") == victim_started.get("run_id") is not None, (interrupted, victim_started)
    if state_dirs == "default":
        reliability(
            "two configs sharing one log_file: one's check #1 killed with kill -9 while the other's check #1 "
            f"COMPLETED -> the killed one settled as interrupted by its own config's next check only ({said})"
        )


def test_the_state_file_configs_once_shared_is_adopted_by_exactly_one_of_them(
    project: Project, reliability: Callable[[str], None]
) -> None:
    # The state file as releases before this one kept it: state/state.json (and its .prev), from three checks.
    for _ in range(3):
        assert project.run("check", "--now").returncode == 0
    state_dir = project.state_file.parent
    legacy, legacy_previous = state_dir / "state.json", state_dir / "state.json.prev"
    legacy_text = project.state_file.read_text()
    legacy_previous_text = Path(f"{project.state_file}.prev").read_text()
    names = ("music", "talks")
    configs = {name: write_named_config(project, name) for name in names}
    project.state_file.unlink()
    Path(f"{project.state_file}.prev").unlink()
    trials = 4
    adopters = []
    for _trial in range(trials):
        for name in names:
            for path in state_dir.glob(f"{name}.state.json*"):
                path.unlink()
            for path in (project.root / name).glob("*"):
                if path.is_file():
                    path.unlink()  # a fresh archive and log: each trial downloads the three videos again
        legacy.write_text(legacy_text)
        legacy_previous.write_text(legacy_previous_text)
        before = status_of(configs["music"])
        assert before["checks_total"] == 3, "until a check adopts it, status reads the shared file"
        assert any(str(legacy) in note for note in before["notes"]), before["notes"]

        # --now: the shared file's last check was moments ago, so cron's plain `check` would not be due yet.
        processes = {name: start(path, "check", "--now", held=True) for name, path in configs.items()}
        release(list(processes.values()))
        for name, process in processes.items():
            assert process.communicate(timeout=120) == ("", ""), name
            assert process.returncode == 0, name
        totals = {name: status_of(path)["checks_total"] for name, path in configs.items()}
        migrated = {name: read_events(project.root / name / "events.log", "state_migrated") for name in names}
        [adopter] = [name for name in names if migrated[name]]
        [other] = [name for name in names if name != adopter]
        assert (totals[adopter], totals[other]) == (4, 1), totals
        [event] = migrated[adopter]
        assert (event["legacy_state_file"], event["state_file"]) == (
            str(legacy),
            str(state_dir / f"{adopter}.state.json"),
        )
        assert not legacy.exists() and not legacy_previous.exists()
        assert json.loads((state_dir / f"{adopter}.state.json.prev").read_text())["checks_total"] >= 3
        adopters.append(adopter)
    reliability(
        f"upgrade: the shared state/state.json (3 checks) met by two configs started together, {trials} times -> "
        f"adopted by exactly one each time ({', '.join(adopters)}), its counters kept (4 after its check), "
        "the other started at 1, state_migrated logged once"
    )
