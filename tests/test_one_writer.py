"""Two checks never write one file, whatever the config says meanwhile; a file of the wrong size is never archived.

Each test runs real check processes against the loopback feed, the config edited between them as a user edits it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Project, clean_env, flock_busy, wait_for


def growing_part_file(project: Project, download_dir: Path | None = None) -> Path:
    """Wait until a check has written into a `.part` file in the download folder, and return it."""
    folder = download_dir or project.download_dir

    def part_with_bytes() -> Path | None:
        parts = [path for path in folder.rglob("*.part") if path.stat().st_size > 0]
        return parts[0] if parts else None

    found: Path = wait_for(part_with_bytes, what="a .part file with bytes in it")
    return found


def config_values(project: Project) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(project.config_path.read_text())
    return values


def test_check_of_a_renamed_archive_is_skipped_while_a_check_downloads_into_the_same_folder(
    project: Project, reliability: Callable[[str], None]
) -> None:
    item = project.only_item(2_000_000)
    project.feed.settings.bytes_per_second = 250_000  # 8 s: the second check starts while the first downloads
    first = project.start("check", "--now")
    growing_part_file(project)
    project.write_config(**{**config_values(project), "archive_file": "renamed-archive.txt"})

    second = project.run("check", "--now")
    project.feed.settings.bytes_per_second = None
    _, first_stderr = first.communicate(timeout=120)

    assert second.returncode == 0, second.stderr
    assert first.returncode == 0, first_stderr
    events = project.events()
    finals = {(event["check"], event["event"]) for event in events if event["event"].startswith("check_")}
    assert (2, "check_skipped") in finals, finals
    [skipped] = project.events("check_skipped")
    assert skipped["holder_pid"] == first.pid
    assert not [event for event in events if event.get("reason") == "interrupted"], "the live check was settled"
    [completed] = project.events("check_completed")
    assert completed["check"] == 1 and completed["downloaded"] == 1
    assert project.file_for(item.guid).read_bytes() == item.content
    assert project.archive_lines() == [f"generic {item.guid}"]
    assert not (project.root / "renamed-archive.txt").exists()
    state = project.state()
    assert (state["completed_total"], state["skipped_total"], state["failed_total"]) == (1, 1, 0)
    assert not flock_busy(project.download_dir / ".playlist-cron.lock")
    reliability(
        "archive_file renamed while a check downloads 2 MB: the next check SKIPPED (the download folder's lock, "
        f"held by pid {first.pid}); the live check not settled as interrupted; the file byte-identical, archived once"
    )


def test_a_live_check_is_not_settled_as_interrupted_by_a_check_of_a_moved_config(project: Project) -> None:
    """archive_file and download_dir both changed: no lock is shared, and the running record names a live check."""
    item = project.only_item(2_000_000)
    project.feed.settings.bytes_per_second = 250_000
    first = project.start("check", "--now")
    growing_part_file(project)
    project.write_config(
        **{**config_values(project), "archive_file": "moved/archive.txt", "download_dir": "moved/downloads"}
    )

    second = project.run("check", "--now")
    project.feed.settings.bytes_per_second = None
    _, first_stderr = first.communicate(timeout=120)

    assert second.returncode == 0, second.stderr
    assert first.returncode == 0, first_stderr
    events = project.events()
    assert not [event for event in events if event.get("reason") == "interrupted"], "the live check was settled"
    completed = sorted(event["check"] for event in project.events("check_completed"))
    assert completed == [1, 2]
    state = project.state()
    assert (state["completed_total"], state["failed_total"], state["running"]) == (2, 0, None)
    assert project.file_for(item.guid).read_bytes() == item.content


def test_a_file_whose_size_disagrees_with_the_server_is_not_archived(
    project: Project, reliability: Callable[[str], None]
) -> None:
    """Another writer (not a check: those exclude each other) puts bytes into the file while it downloads."""
    item = project.only_item(1_000_000)
    project.feed.settings.bytes_per_second = 250_000
    check = project.start("check", "--now")
    part = growing_part_file(project)
    project.feed.settings.sending.clear()  # hold the download where it is while the other writer writes
    with open(part, "r+b") as other_writer:
        other_writer.seek(item.size_bytes + 1000)
        other_writer.write(b"x" * 4096)
    project.feed.settings.sending.set()
    _, stderr = check.communicate(timeout=120)

    assert check.returncode == 0, stderr
    [failed] = project.events("video_failed")
    assert failed["reason"] == "size_mismatch" and failed["error"].startswith("size_mismatch: ")
    assert failed["video_id"] == item.guid
    assert f"{item.size_bytes + 1000 + 4096}" in failed["error"] and f"{item.size_bytes}" in failed["error"]
    assert failed["next_retry_at"] is not None
    [completed] = project.events("check_completed")
    assert (completed["downloaded"], completed["failed"]) == (0, 1)
    assert project.archive_lines() == []
    assert [path for path in project.downloaded_files() if item.guid in path.name] == [], "the file was removed"
    # Tried again when its retry is due: downloaded whole, archived.
    assert project.run("retry", item.guid).returncode == 0
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    assert project.file_for(item.guid).read_bytes() == item.content
    assert project.archive_lines() == [f"generic {item.guid}"]
    reliability(
        "a file that grew past the size the server announced (another writer): video_failed size_mismatch, "
        "no archive line, the file removed; the retry downloaded it whole"
    )


def test_download_folder_lock_is_a_private_regular_file(project: Project) -> None:
    assert project.run("check").returncode == 0
    lock_file = project.download_dir / ".playlist-cron.lock"
    assert lock_file.is_file() and not lock_file.is_symlink()
    assert lock_file.stat().st_mode & 0o777 == 0o600


def test_symlink_at_the_download_folder_lock_is_refused(project: Project, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("untouched")
    project.download_dir.mkdir()
    (project.download_dir / ".playlist-cron.lock").symlink_to(target)

    result = subprocess.run(
        project.command("check"), capture_output=True, text=True, timeout=120, env=clean_env(), cwd="/"
    )

    assert result.returncode == 1
    assert "symbolic link" in result.stderr
    assert target.read_text() == "untouched"
    assert project.feed.requests == []
