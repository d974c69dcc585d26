"""What users install: the sdist and the wheel as `python -m build` makes them (nox's build session also runs
`twine check --strict` on both, as PyPI would).

Under nox (noxfile.py) PLAYLIST_CRON_TEST_DIST names the dist/ folder whose wheel this run installed and tests;
otherwise (the editable checkout) this module builds its own pair in a temporary folder with `python -m build` (about
ten seconds; its isolated build fetches setuptools from the package registry).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import yt_dlp.version

import playlist_cron
from conftest import COMMAND, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "src" / "playlist_cron"
DIST_VARIABLE = "PLAYLIST_CRON_TEST_DIST"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder with the one sdist and the one wheel under test."""
    given = os.environ.get(DIST_VARIABLE)
    if given:
        return Path(given)
    folder = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(folder), str(ROOT)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return folder


def only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {[path.name for path in found]}"
    return found[0]


def wheel_names(dist: Path) -> list[str]:
    with zipfile.ZipFile(only(dist, "playlist_cron-*.whl")) as archive:
        return archive.namelist()


def wheel_text(dist: Path, name: str) -> str:
    with zipfile.ZipFile(only(dist, "playlist_cron-*.whl")) as archive:
        return archive.read(name).decode()


def source_version() -> str:
    """`__version__` as src/playlist_cron/__init__.py writes it: the one place the version is set."""
    match = re.search(r'^__version__ = "([^"]+)"$', (PACKAGE_DIR / "__init__.py").read_text(), re.MULTILINE)
    assert match, 'src/playlist_cron/__init__.py has no `__version__ = "..."` line'
    return match.group(1)


def test_the_wheel_holds_the_package_and_its_metadata_and_nothing_else(dist: Path) -> None:
    names = wheel_names(dist)
    package = sorted(name for name in names if not name.startswith("playlist_cron-"))
    expected = sorted(
        path.relative_to(PACKAGE_DIR.parent).as_posix()
        for path in PACKAGE_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    assert package == expected  # every module, demo/ and storage/ with them, py.typed; no tests, no benchmarks
    assert "playlist_cron/py.typed" in package
    assert "playlist_cron/demo/feed.py" in package  # the demo's loopback feed server, which the tests use too
    metadata = sorted(name.split("/", 1)[1] for name in names if name.startswith("playlist_cron-"))
    assert metadata == ["METADATA", "RECORD", "WHEEL", "entry_points.txt", "licenses/LICENSE", "top_level.txt"]
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/")) or name.endswith(".pyc")]


def test_the_wheel_says_what_pyproject_says(dist: Path) -> None:
    version = source_version()
    assert only(dist, "*.whl").name == f"playlist_cron-{version}-py3-none-any.whl"
    metadata = Parser().parsestr(wheel_text(dist, f"playlist_cron-{version}.dist-info/METADATA"))
    assert metadata["Name"] == "playlist-cron"
    assert metadata["Version"] == version
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["License-Expression"] == "MIT"
    requirements = metadata.get_all("Requires-Dist")
    runtime = {re.split(r"[<>=\[; ]", requirement)[0] for requirement in requirements if "extra ==" not in requirement}
    assert runtime == {"yt-dlp", "portalocker", "structlog"}
    assert 'psycopg[binary]>=3.1; extra == "postgres"' in requirements
    nox_pythons = re.search(r"^PYTHONS = \[(.*)\]$", (ROOT / "noxfile.py").read_text(), re.MULTILINE)
    assert nox_pythons, "noxfile.py has no PYTHONS = [...] line"
    claimed = re.findall(r'"(3\.\d+)"', nox_pythons.group(1))
    classified = [
        line.rsplit(" ", 1)[1]
        for line in metadata.get_all("Classifier")
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", line)
    ]
    assert classified == claimed  # the Pythons the release claims are the ones CI tests
    assert claimed[0] == metadata["Requires-Python"].removeprefix(">=")
    entry_points = wheel_text(dist, f"playlist_cron-{version}.dist-info/entry_points.txt")
    assert "playlist-cron = playlist_cron.cli:main" in entry_points.splitlines()
    assert metadata.get_payload().startswith("# playlist-cron\n")  # the README, as PyPI shows it


def test_the_sdist_holds_every_file_git_tracks(dist: Path) -> None:
    listed = subprocess.run(
        ["git", "-c", f"safe.directory={ROOT}", "ls-files"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode != 0:
        skip_or_fail(
            f"not a git checkout ({listed.stderr.strip()}): nothing to compare the sdist with", "CI runs from a clone"
        )
    tracked = set(listed.stdout.splitlines())
    sdist = only(dist, "playlist_cron-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = sorted(name for name in tracked - names if (ROOT / name).exists())  # not a file deleted, uncommitted
    assert not missing, f"MANIFEST.in leaves out of the sdist: {missing}"
    assert {"PKG-INFO", "LICENSE", "noxfile.py", "tests/conftest.py", "src/playlist_cron/py.typed"} <= names
    assert not [name for name in names if "__pycache__" in name or name.startswith((".venv/", ".nox/", "dist/"))]


def test_under_nox_the_suite_imports_the_installed_wheel_not_the_checkout() -> None:
    given = os.environ.get(DIST_VARIABLE)
    module_file = Path(playlist_cron.__file__).resolve()
    if not given:
        reason = f"not run by nox: the tests import {module_file.parent}"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    # Installed where pip puts it: in a site-packages folder (nox's are under .nox/ in the checkout), not src/.
    assert module_file.parent.parent.name == "site-packages", f"told to test the wheel, the suite imports {module_file}"
    assert PACKAGE_DIR.resolve() not in module_file.parents
    distribution = importlib.metadata.distribution("playlist-cron")
    origin = json.loads(distribution.read_text("direct_url.json") or "{}")
    assert "archive_info" in origin, origin  # installed from an archive, not `pip install -e` ({"dir_info": ...})
    assert origin["url"].endswith("/" + only(Path(given), "playlist_cron-*.whl").name), origin
    assert Path(sys.executable).parent / "playlist-cron" == Path(COMMAND)  # the command the tests run is its own


@pytest.mark.smoke
def test_version_is_written_once_and_shown_by_version() -> None:
    version = source_version()
    assert playlist_cron.__version__ == version
    assert importlib.metadata.version("playlist-cron") == version
    assert not re.search(r"^version\s*=\s*\"", (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    expected = f"playlist-cron {version} (yt-dlp {yt_dlp.version.__version__}, Python {platform.python_version()})\n"
    for command in ([COMMAND, "--version"], [sys.executable, "-m", "playlist_cron", "--version"]):
        shown = subprocess.run(command, capture_output=True, text=True, cwd="/")
        assert (shown.returncode, shown.stdout, shown.stderr) == (0, expected, ""), command
