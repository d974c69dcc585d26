"""The skip, not-due and status paths never import yt-dlp: proved in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import FlockHolder, Project

PROBE = (
    "import sys, json; from playlist_cron.cli import main; rc = main({arguments!r}); "
    "print(json.dumps([rc, sorted(m for m in sys.modules if m.split('.')[0] == 'yt_dlp')]))"
)


def run_in_fresh_process(arguments: list[str]) -> tuple[int, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(arguments=arguments)], capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    code, modules = json.loads(result.stdout.strip().splitlines()[-1])
    return code, modules


def test_skip_path_does_not_import_yt_dlp(project: Project) -> None:
    with FlockHolder(project.lock_file):
        code, modules = run_in_fresh_process(["check", "--now", "--config", str(project.config_path)])
    assert code == 0
    assert modules == []
    assert len(project.events("check_skipped")) == 1, "the probe really took the skip path"


def test_not_due_path_does_not_import_yt_dlp(project: Project) -> None:
    assert project.run("check").returncode == 0
    code, modules = run_in_fresh_process(["check", "--config", str(project.config_path)])
    assert code == 0
    assert modules == []
    assert project.status()["checks_total"] == 1, "the probe really took the not-due path"


def test_status_does_not_import_yt_dlp(project: Project) -> None:
    assert project.run("check").returncode == 0
    code, modules = run_in_fresh_process(["status", "--json", "--config", str(project.config_path)])
    assert (code, modules) == (0, [])


def test_a_check_that_downloads_does_import_yt_dlp(project: Project) -> None:
    # The probe can see an import: without this, the tests above could pass by looking in the wrong place.
    code, modules = run_in_fresh_process(["check", "--config", str(project.config_path)])
    assert code == 0
    assert "yt_dlp" in modules


def test_only_the_download_module_imports_yt_dlp_when_it_is_loaded() -> None:
    # Other modules that need yt-dlp import it inside their functions, which only a check that downloads calls.
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
            if any(name.split(".")[0] == "yt_dlp" for name in names):
                importers.add(str(path.relative_to(package)))
    assert importers == {"download.py"}
