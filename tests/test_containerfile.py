"""The Containerfile, without a container engine: what it copies exists and is not left out by .dockerignore, its
`pip install` line installs a working command in a fresh virtual environment, and it runs as a fixed non-root user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import containerfile
from conftest import clean_env, read_events
from playlist_cron import __version__
from playlist_cron.demo.feed import FeedServer, make_items

ROOT = containerfile.ROOT
# What must never reach the image or the build context: a developer's virtual environment (hundreds of MB, and
# another machine's paths), the repository itself, caches, and a local config, archive or downloads.
MUST_BE_IGNORED = [
    ".venv",
    ".git",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".nox",
    "dist",
    "src/playlist_cron/__pycache__",
    "src/playlist_cron.egg-info",
    "build",
    "config.json",
    "archive.txt",
    "downloads",
    "state",
    "logs",
]


def build_context_files() -> list[str]:
    """Every file of the repository's working tree that a `COPY` from the build context could see."""
    patterns = containerfile.ignore_patterns()
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        relative_folder = Path(folder).relative_to(ROOT)
        subfolders[:] = [
            name for name in subfolders if not containerfile.ignored((relative_folder / name).as_posix(), patterns)
        ]
        files += [(relative_folder / name).as_posix() for name in names]
    return [name for name in files if not containerfile.ignored(name, patterns)]


def copied_files() -> dict[str, str]:
    """{source file in the repository: its path in the image} for every COPY from the build context, as an engine
    would copy them: a folder's files below the destination folder, .dockerignore's files left out."""
    context = build_context_files()
    copied: dict[str, str] = {}
    for copy in containerfile.copies():
        into_folder = copy.destination.endswith("/") or len(copy.sources) > 1
        for source in copy.sources:
            source = source.rstrip("/")
            if (ROOT / source).is_dir():
                for relative in context:
                    if relative.startswith(source + "/"):
                        copied[relative] = str(Path(copy.destination, relative.removeprefix(source + "/")))
            else:
                copied[source] = str(Path(copy.destination, Path(source).name)) if into_folder else copy.destination
    return copied


def test_every_copy_source_exists_in_the_repository_and_is_not_ignored() -> None:
    copies = containerfile.copies()
    assert copies, "the Containerfile copies nothing from the build context"
    patterns = containerfile.ignore_patterns()
    for copy in copies:
        for source in copy.sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file or folder in the repository"
            assert not containerfile.ignored(source.rstrip("/"), patterns), (
                f"COPY {source}: .dockerignore leaves it out"
            )
    tracked = subprocess.run(["git", "ls-files", "src"], cwd=ROOT, capture_output=True, text=True, check=True)
    copied = copied_files()
    missing = [name for name in tracked.stdout.split() if name not in copied]
    assert not missing, f"files of the package the image would not get: {missing}"


def test_dockerignore_leaves_out_the_venv_the_repository_and_caches() -> None:
    patterns = containerfile.ignore_patterns()
    kept = [name for name in MUST_BE_IGNORED if not containerfile.ignored(name, patterns)]
    assert not kept, f".dockerignore lets these into the build context: {kept}"
    assert containerfile.ignored("src/playlist_cron/storage/__pycache__/fleet.cpython-312.pyc", patterns)


def test_image_runs_the_check_as_a_fixed_non_root_user_with_the_config_and_downloads_mounted() -> None:
    uid, gid = image_user()
    assert uid != 0 and gid != 0
    assert containerfile.exec_form(containerfile.only("ENTRYPOINT").arguments) == ["playlist-cron"]
    assert containerfile.exec_form(containerfile.only("CMD").arguments) == ["check"]
    environment = image_environment()
    assert environment["PLAYLIST_CRON_CONFIG"] == "/config/config.json"
    [base] = [instruction.arguments for instruction in containerfile.instructions() if instruction.keyword == "FROM"]
    assert base.startswith("python:3.12-slim"), base
    runs = " ".join(
        instruction.arguments for instruction in containerfile.instructions() if instruction.keyword == "RUN"
    )
    assert "apt-get install" in runs and "--no-install-recommends" in runs and " ffmpeg" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs, "the apt lists would stay in the image"
    assert f"--uid {uid}" in runs and f"--gid {gid}" in runs, "the user is made with the uid and gid USER names"
    assert "chown" in runs and "/downloads" in runs, "/downloads must be writable by the user when nothing is mounted"


def image_user() -> tuple[int, int]:
    """The numeric `USER uid:gid` of the image: Kubernetes can check `runAsNonRoot` only against a numeric user."""
    user = containerfile.only("USER").arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), f"USER should be numeric uid:gid, found {user!r}"
    return int(uid), int(gid)


def image_environment() -> dict[str, str]:
    environment = {}
    for instruction in containerfile.instructions():
        if instruction.keyword == "ENV":
            for word in instruction.arguments.split():
                name, equals, value = word.partition("=")
                assert equals, f"ENV in the NAME=value form, please: {instruction.arguments}"
                environment[name] = value
    return environment


@pytest.mark.slow
def test_the_containerfile_pip_install_gives_a_working_command_in_a_fresh_venv(tmp_path: Path) -> None:
    """The image's install steps, in a fresh venv instead of an image: its COPY lines copied to a build folder as the
    engine would copy them, then its very `pip install` line run there (from PyPI, so this needs the network)."""
    [install] = containerfile.pip_installs()
    assert "--no-cache-dir" in install
    workdir = containerfile.workdir_at("RUN", "pip install")
    build = tmp_path / "image"
    for source, destination in copied_files().items():
        target = build / destination.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / source, target)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    pip = [str(venv / "bin" / "python"), "-m", *install[install.index("pip") :]]
    # PIP_ options of this machine stay (its index settings); a PYTHONPATH would import the tests' sources instead.
    environment = {key: value for key, value in clean_env().items() if key != "PYTHONPATH"}
    installed = subprocess.run(
        pip, cwd=build / workdir.lstrip("/"), env=environment, capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    command = venv / "bin" / "playlist-cron"

    version = subprocess.run([command, "--version"], env=environment, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"playlist-cron {__version__} (yt-dlp "), version.stdout
    imports = subprocess.run(  # the [postgres] extra came along: the fleet's driver
        [venv / "bin" / "python", "-c", "import psycopg, playlist_cron; print(playlist_cron.__file__)"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imports.returncode == 0, imports.stderr
    assert imports.stdout.startswith(str(venv)), f"imported from {imports.stdout}, not from the fresh venv"

    with FeedServer(make_items(2, size_bytes=50_000)) as feed:
        config = tmp_path / "config" / "config.json"
        config.parent.mkdir()
        config.write_text(json.dumps({"playlist_url": feed.feed_url, "min_free_bytes": 0}))
        check = subprocess.run(
            [command, "check", "--config", str(config)],
            env=environment,
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert check.returncode == 0, check.stdout + check.stderr
    [completed] = read_events(config.parent / "logs" / "downloader.log", "check_completed")
    assert completed["downloaded"] == 2


def test_the_config_variable_is_the_one_the_command_reads() -> None:
    from playlist_cron.config import ENVIRONMENT_VARIABLE

    assert ENVIRONMENT_VARIABLE in image_environment()
    assert os.path.isabs(image_environment()[ENVIRONMENT_VARIABLE])
