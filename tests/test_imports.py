"""The not-due path loads the standard library alone; the skip and status paths never load yt-dlp: fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import FlockHolder, Project

# What a fresh process loads while `cli.main` runs one command: the modules new since the probe began.
PROBE = (
    "import sys, json; before = set(sys.modules); from playlist_cron.cli import main; rc = main({arguments!r}); "
    "print(json.dumps([rc, sorted(set(sys.modules) - before)]))"
)
HEAVY = {"structlog", "portalocker", "yt_dlp"}
# Parts of the standard library that the not-due path has no need of and that cost it most (`dataclasses` imports
# `inspect`: about 9 ms and 1.3 MiB, a tenth of the budget the benchmark allows it above Python's own start-up).
COSTLY_STDLIB = {"argparse", "dataclasses", "inspect", "logging", "subprocess", "uuid"}
# The feed parser (expat, loaded by `feeds.parse_feed` alone) is for checks that read a feed.
FEED_PARSER = {"pyexpat", "xml"}


def run_in_fresh_process(arguments: list[str]) -> tuple[int, set[str]]:
    """Run `cli.main(arguments)` in a new interpreter; return its exit code and the packages it loaded (top level)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(arguments=arguments)], capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    code, modules = json.loads(result.stdout.strip().splitlines()[-1])
    return code, {name.split(".")[0] for name in modules}


def test_not_due_path_loads_the_standard_library_alone(project: Project) -> None:
    assert project.run("check").returncode == 0
    code, packages = run_in_fresh_process(["check", "--config", str(project.config_path)])
    assert code == 0
    assert project.status()["checks_total"] == 1, "the probe really took the not-due path"
    assert packages & HEAVY == set()
    assert sorted(packages - set(sys.stdlib_module_names) - {"playlist_cron"}) == []
    assert packages & COSTLY_STDLIB == set()
    assert packages & FEED_PARSER == set()
    assert "psycopg" not in packages


def test_skip_path_does_not_import_yt_dlp(project: Project) -> None:
    with FlockHolder(project.lock_file):
        code, packages = run_in_fresh_process(["check", "--now", "--config", str(project.config_path)])
    assert code == 0
    assert len(project.events("check_skipped")) == 1, "the probe really took the skip path"
    assert "yt_dlp" not in packages
    assert packages & FEED_PARSER == set()
    assert "psycopg" not in packages, "a file config never loads the database driver"
    # The probe sees what a path loads: without this, the tests here could pass by looking in the wrong place.
    assert {"structlog", "portalocker"} <= packages


def test_status_does_not_import_yt_dlp(project: Project) -> None:
    assert project.run("check").returncode == 0
    code, packages = run_in_fresh_process(["status", "--json", "--config", str(project.config_path)])
    assert (code, "yt_dlp" in packages) == (0, False)


def test_a_check_that_downloads_does_import_yt_dlp(project: Project) -> None:
    code, packages = run_in_fresh_process(["check", "--config", str(project.config_path)])
    assert code == 0
    assert packages >= HEAVY


def module_level_importers(package_name: str) -> set[str]:
    """The modules of playlist_cron that import `package_name` when they are loaded (not inside a function)."""
    import ast
    from pathlib import Path

    import playlist_cron

    package = Path(playlist_cron.__file__).parent
    importers = set()
    for path in sorted(package.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:  # module level: not inside a function
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == package_name for name in names):
                importers.add(str(path.relative_to(package)))
    return importers


def test_only_the_download_modules_import_yt_dlp_when_they_are_loaded() -> None:
    # ytdl.py subclasses YoutubeDL, bounded_http.py its urllib request handler; the feed read and the full read catch
    # its errors. Only download.py imports them,
    # after the lock is held. Other modules that need yt-dlp import it inside their functions, which only a check that
    # downloads calls.
    assert module_level_importers("yt_dlp") == {"bounded_http.py", "feed_read.py", "full_read.py", "ytdl.py"}


def test_only_the_database_storage_imports_psycopg_when_it_is_loaded() -> None:
    # `storage.open_for` loads them only for a config with database_url; `cli` only for a `db` command.
    assert module_level_importers("psycopg") == {"storage/connection.py", "storage/postgres.py", "storage/schema.py"}


def loaded_modules(arguments: list[str]) -> set[str]:
    """The full names of the modules a fresh process loads while `cli.main(arguments)` runs."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(arguments=arguments)], capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1])[1])


def test_the_skip_path_loads_the_push_module_and_urllib_only_when_metrics_push_url_is_set(project: Project) -> None:
    arguments = ["check", "--now", "--config", str(project.config_path)]
    with FlockHolder(project.lock_file):
        without = loaded_modules(arguments)
        project.write_config(metrics_push_url="http://127.0.0.1:9/")  # the discard port: a failed push, logged
        with_push = loaded_modules(arguments)
    assert len(project.events("check_skipped")) == 2, "the probe really took the skip path"
    assert "playlist_cron.monitoring.pushgateway" not in without
    assert "urllib.request" not in without
    assert "playlist_cron.monitoring.pushgateway" in with_push
    new_packages = {name.split(".")[0] for name in with_push - without}
    assert new_packages - set(sys.stdlib_module_names) == {"playlist_cron"}, "no new dependency: urllib alone"
