"""The test matrix, run with nox: every session tests what users install, never the checkout.

`build` makes the sdist and the wheel into dist/ (the wheel from the sdist, as `python -m build` does), checks both
with twine and lists the wheel; every test session installs that wheel with its extras into a fresh virtual
environment of its own Python, and tells the suite so (PLAYLIST_CRON_TEST_DIST), which then checks that it imports
the wheel and not src/.

    nox                          the whole suite on the Python that runs nox (the README's test command)
    nox -s suite smoke compat notify
                                 what .ci/run runs: the whole suite on the oldest and the newest Python this release
                                 claims, the smoke selection on those between, the `compat` tests against the oldest
                                 yt-dlp pyproject.toml allows and the newest release, the `notify` tests with Apprise
    nox -s suite-3.13 -- -k feed arguments after `--` go to pytest
    nox -s docs                  the documentation site, `mkdocs build --strict`; then `.nox/docs/bin/mkdocs serve`

A Python that cannot be found fails the run rather than being skipped, and none is downloaded. With pyenv, the newest
installed release of each is selected (PYENV_VERSION, unless already set), since pyenv's `python3.X` shims run only
the versions selected. Sessions run one after the other: the suite keeps two cores busy on its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"

# The Pythons this release claims: pyproject.toml's requires-python and classifiers say the same (tested).
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
OLDEST, *BETWEEN, NEWEST = PYTHONS

# What the suite is told: test the wheel in DIST, and the sdist beside it (tests/test_packaging.py).
SUITE_ENV = {"PLAYLIST_CRON_TEST_DIST": str(DIST)}
# The docs session's own venv holds MkDocs, out of the suite's (mkdocs-material brings requests, which yt-dlp would
# use instead of urllib); the suite is told where its mkdocs is (tests/test_docs.py).
MKDOCS_VARIABLE = "PLAYLIST_CRON_TEST_MKDOCS"
# tests/test_image.py builds the image with podman and runs it (about a minute and a half from nothing): once per
# `nox -s suite`, in the newest Python's session. The image's Python is its base's (Debian's), not the session's.
IMAGE_VARIABLE = "PLAYLIST_CRON_TEST_IMAGE"

# The `notify` extra's tests run in a session of their own: Apprise brings requests, which yt-dlp would then use
# instead of urllib everywhere else, unlike a plain `pip install playlist-cron`.
NOTIFY_VARIABLE = "PLAYLIST_CRON_TEST_NOTIFY"

nox.options.sessions = ["tests", "notify"]
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"


def select_pyenv_versions() -> None:
    """Make each of PYTHONS that pyenv has findable as `python3.X`: its default first, then the newest installed
    release of each (`pyenv latest 3.X`)."""
    pyenv = shutil.which("pyenv")
    if pyenv is None or "PYENV_VERSION" in os.environ:
        return
    selected = []
    for arguments in (["version-name"], *(["latest", python] for python in PYTHONS)):
        found = subprocess.run([pyenv, *arguments], capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            selected += found.stdout.strip().split(":")
    os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys(selected))


select_pyenv_versions()


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and the wheel afresh into dist/, check them as PyPI would, and list what the wheel holds."""
    shutil.rmtree(DIST, ignore_errors=True)
    session.install("build>=1.2", "twine>=5")
    session.run("python", "-m", "build", "--outdir", str(DIST), str(ROOT))
    session.run("python", "-m", "twine", "check", "--strict", *(str(path) for path in sorted(DIST.iterdir())))
    with zipfile.ZipFile(wheel()) as archive:
        for info in archive.infolist():
            session.log(f"{info.file_size:>9}  {info.filename}")


@nox.session(requires=["build"])
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly, with MkDocs installed here from the `docs` extra.

    A broken link or anchor, or a page left out of mkdocs.yml's nav, fails. The test sessions' tests/test_docs.py
    builds the site again with this session's mkdocs.
    """
    session.install(f"{wheel()}[docs]")
    site = Path(session.create_tmp()) / "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site), env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(requires=["build", "docs"])
def tests(session: nox.Session) -> None:
    """The whole suite against the wheel, on the Python that runs nox."""
    run_suite(session)


@nox.session(python=[OLDEST, NEWEST], requires=["build", "docs"])
def suite(session: nox.Session) -> None:
    """The whole suite against the wheel, on the oldest and the newest Python claimed."""
    run_suite(session)


@nox.session(python=BETWEEN, requires=["build"])
def smoke(session: nox.Session) -> None:
    """The tests marked `smoke` against the wheel, on the Pythons between the oldest and the newest."""
    run_suite(session, "smoke")


@nox.session(requires=["build"])
@nox.parametrize("yt_dlp", ["oldest", "newest"])
def compat(session: nox.Session, yt_dlp: str) -> None:
    """The tests marked `compat` against the oldest yt-dlp pyproject.toml allows, and the newest release.

    A yt-dlp release that breaks one of ytdl.py's overrides fails here the day it ships.
    """
    lowest = lower_bound()
    install_wheel(session)
    if yt_dlp == "oldest":
        session.install(f"yt-dlp=={lowest}")
    else:  # what `pip install --upgrade yt-dlp` gives a user today
        session.install("--upgrade", "yt-dlp")
    probe = "import yt_dlp.version; print(yt_dlp.version.__version__)"
    version = str(session.run("python", "-c", probe, silent=True)).strip()
    if yt_dlp == "oldest" and release(version) != release(lowest):
        session.error(f"pip installed yt-dlp {version} for yt-dlp=={lowest}")
    session.log(f"yt-dlp {version} ({yt_dlp}; pyproject.toml allows yt-dlp>={lowest})")
    session.run(
        "python", "-m", "pytest", "-m", "compat", "-n", "2", "-p", "no:cacheprovider", *session.posargs, env=SUITE_ENV
    )
    session.log(f"compat: passed: yt-dlp {version} ({yt_dlp})")


@nox.session(requires=["build"])
def notify(session: nox.Session) -> None:
    """The tests marked `notify` against the wheel installed with its `notify` extra (Apprise), which the suite's
    sessions leave out; here a test that finds Apprise missing fails instead of being skipped."""
    session.install(f"{wheel()}[test,postgres,notify]")
    session.run("python", "-m", "pytest", "-m", "notify", *session.posargs, env={**SUITE_ENV, NOTIFY_VARIABLE: "1"})


def run_suite(session: nox.Session, marker: str | None = None) -> None:
    """Run pytest against the installed wheel on the tests `marker` selects (all by default), less those another
    session runs: deselected, not skipped, so that a skip in CI's output always means a missing program."""
    install_wheel(session)
    mkdocs = docs_mkdocs(session)
    env = {**SUITE_ENV, MKDOCS_VARIABLE: str(mkdocs)} if mkdocs.is_file() else dict(SUITE_ENV)  # smoke needs none
    elsewhere = ["notify"]  # the notify session's
    if session.python == OLDEST:
        env[IMAGE_VARIABLE] = "0"  # the newest Python's session builds and runs the image
        elsewhere.append("image")
    selection = " and ".join([*([f"({marker})"] if marker else []), *(f"not {name}" for name in elsewhere)])
    session.run("python", "-m", "pytest", "-m", selection, *session.posargs, env=env)


def docs_mkdocs(session: nox.Session) -> Path:
    """The mkdocs that the `docs` session installed: its venv lies beside this session's."""
    return Path(session.virtualenv.location).parent / "docs" / "bin" / "mkdocs"


def install_wheel(session: nox.Session) -> None:
    session.install(f"{wheel()}[test,postgres]")


def wheel() -> Path:
    wheels = sorted(DIST.glob("playlist_cron-*-py3-none-any.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {DIST}, found {len(wheels)}: run `nox -s build`")
    return wheels[0]


def lower_bound() -> str:
    """The X of pyproject.toml's `yt-dlp>=X`: the oldest yt-dlp this release says it works with."""
    match = re.search(r'"yt-dlp>=([0-9][0-9a-z.]*)"', (ROOT / "pyproject.toml").read_text())
    if match is None:
        raise RuntimeError("pyproject.toml has no `yt-dlp>=VERSION` requirement: nothing says which is the oldest")
    return match.group(1)


def release(version: str) -> list[int | str]:
    """A version as comparable parts: yt-dlp says 2025.01.12 where pip says 2025.1.12."""
    return [int(part) if part.isdigit() else part for part in version.split(".")]
