"""The image, built by deploy/container/build-image with podman on a base of Debian packages, and run as a pod runs.

Skipped, saying why, where podman, mmdebstrap or runc is missing or the suite does not run as root, but failed in CI
(`CI` set); skipped in the nox session that `PLAYLIST_CRON_TEST_IMAGE=0` marks, as another one builds it (noxfile.py).
The base is made once and kept in podman's store (build-image makes it again when its recipe changes); the image is
built once per run of this module and removed after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from conftest import clean_env, skip_or_fail, wait_for
from playlist_cron import __version__
from playlist_cron.demo.feed import FeedServer, make_items

ROOT = Path(__file__).resolve().parent.parent
BUILD_IMAGE = ROOT / "deploy" / "container" / "build-image"
CONTAINERS_CONF = ROOT / "deploy" / "container" / "containers.conf"
# "0": this nox session leaves the image to another (the image's Python is the base's, whatever Python runs pytest).
ONLY_ELSEWHERE = "PLAYLIST_CRON_TEST_IMAGE"
UID = 10001  # the Containerfile's USER
SIGTERM_EXIT = 143  # 128 + SIGTERM: a check ended by SIGTERM (FAILED `interrupted`)

# The first test waits for the image: from nothing, on a loaded 2-core machine, build-image took 165 s.
pytestmark = [pytest.mark.slow, pytest.mark.image, pytest.mark.timeout(600)]


def podman_env() -> dict[str, str]:
    """podman with deploy/container/containers.conf (runc, cgroupfs, lowered ulimits: see the file), and build-image's
    pip run by this Python."""
    return clean_env(CONTAINERS_CONF=str(CONTAINERS_CONF), PYTHON=sys.executable)


def podman(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *arguments],
        env=podman_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def skip_unless_ci(reason: str) -> NoReturn:
    skip_or_fail(reason, "CI must build and run the image")


def dist_wheel() -> list[str]:
    """build-image's `--wheel` option for the wheel nox made (PLAYLIST_CRON_TEST_DIST), the one the suite tests;
    none outside nox, and build-image builds one from the checkout."""
    dist = os.environ.get("PLAYLIST_CRON_TEST_DIST")
    if not dist:
        return []
    [wheel] = Path(dist).glob("playlist_cron-*-py3-none-any.whl")
    return ["--wheel", str(wheel)]


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    if os.environ.get(ONLY_ELSEWHERE) == "0":
        pytest.skip(f"{ONLY_ELSEWHERE}=0: another nox session builds and runs the image (noxfile.py)")
    missing = [program for program in ("podman", "mmdebstrap", "runc") if shutil.which(program) is None]
    if missing:
        skip_unless_ci(f"{', '.join(missing)} missing (.ci/run installs them from Debian's packages)")
    if os.geteuid() != 0:
        skip_unless_ci("not root: podman runs the image and mmdebstrap makes its base as root here")
    tag = f"localhost/playlist-cron-test:{os.getpid()}"
    built = subprocess.run(
        [str(BUILD_IMAGE), *dist_wheel(), tag],
        env=podman_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stdout + built.stderr[-5000:]
    assert built.stdout.strip() == tag
    yield tag
    podman("rmi", "--force", tag)


def run_args(image: str, config: Path, downloads: Path, *, name: str) -> list[str]:
    """`podman run` as the CronJob runs the pod: the image's own user, a read-only root file system with a writable
    /tmp (the pod's emptyDir), every capability dropped, no privilege escalation, the config folder mounted read-only
    and the downloads read-write; --network=host reaches the test's loopback feed."""
    return [
        "podman", "run", "--rm", "--name", name, "--network=host",
        "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp",
        "--cap-drop=all", "--security-opt=no-new-privileges",
        "--volume", f"{config}:/config:ro", "--volume", f"{downloads}:/downloads",
        image,
    ]  # fmt: skip


def pod_folders(tmp_path: Path, feed: FeedServer) -> tuple[Path, Path]:
    """A config folder with the ConfigMap's paths (the archive and its lock on the downloads volume, state_dir on
    /tmp, the log on stdout), and a downloads folder owned by the image's user, as an NFS export must be."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps(
            {
                "playlist_url": feed.feed_url,
                "download_dir": "/downloads",
                "archive_file": "/downloads/archive.txt",
                "state_dir": "/tmp/playlist-cron",
                "log_file": "-",
                "min_free_bytes": 0,
            }
        )
    )
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    os.chown(downloads, UID, UID)
    return config, downloads


def stdout_events(stdout: str, name: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [event for event in events if event.get("event") == name]


def test_the_image_runs_as_its_non_root_user_with_its_version_and_ffmpeg(image: str) -> None:
    version = podman("run", "--rm", "--network=none", image, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"playlist-cron {__version__} (yt-dlp "), version.stdout
    inside = podman("run", "--rm", "--network=none", "--entrypoint", "sh", image, "-c", "id -u; id -g; ffmpeg -version")
    assert inside.returncode == 0, inside.stderr
    uid, gid, ffmpeg = inside.stdout.splitlines()[:3]
    assert (uid, gid) == (str(UID), str(UID))
    assert ffmpeg.startswith("ffmpeg version "), ffmpeg  # what yt-dlp merges video and audio streams with
    user = podman("image", "inspect", "--format", "{{.Config.User}}", image)
    assert user.stdout.strip() == f"{UID}:{UID}", "numeric, for Kubernetes' runAsNonRoot"


def test_a_check_in_the_image_downloads_from_a_loopback_feed_into_the_mounted_folder(
    image: str, tmp_path: Path
) -> None:
    with FeedServer(make_items(2, size_bytes=50_000)) as feed:
        config, downloads = pod_folders(tmp_path, feed)
        check = subprocess.run(
            run_args(image, config, downloads, name=f"playlist-cron-test-check-{os.getpid()}"),
            env=podman_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert check.returncode == 0, check.stdout + check.stderr
    [completed] = stdout_events(check.stdout, "check_completed")
    assert completed["downloaded"] == 2
    media = sorted(downloads.rglob("*.mp4"))  # in the output template's folder, the channel's title
    assert len(media) == 2 and all(path.stat().st_size == 50_000 for path in media), media
    assert all(path.stat().st_uid == UID for path in media)
    assert len((downloads / "archive.txt").read_text().splitlines()) == 2


def test_a_second_container_is_skipped_while_the_first_holds_the_lock_and_sigterm_ends_the_first_interrupted(
    image: str, tmp_path: Path
) -> None:
    with FeedServer(make_items(1, size_bytes=50_000)) as feed:
        config, downloads = pod_folders(tmp_path, feed)
        feed.settings.sending.clear()  # the first container's download is held where it is
        first_name = f"playlist-cron-test-first-{os.getpid()}"
        first = subprocess.Popen(
            run_args(image, config, downloads, name=first_name),
            env=podman_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                lambda: feed.counts().in_flight and any(path.startswith("/media/") for path in feed.counts().by_path),
                timeout=120,
                what="the first container's download to start",
            )
            second = subprocess.run(
                run_args(image, config, downloads, name=f"playlist-cron-test-second-{os.getpid()}"),
                env=podman_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert second.returncode == 0, second.stdout + second.stderr  # SKIPPED: skip_exit_code is 0
            [skipped] = stdout_events(second.stdout, "check_skipped")
            assert skipped["reason"] == "previous download still in progress"
            # podman stop sends SIGTERM to the container's PID 1, the check, and SIGKILL (exit 137) if it is still
            # running 2 s later: 143 says the check ended on the SIGTERM alone, within those 2 s.
            stopped = podman("stop", "--time", "2", first_name)
            assert stopped.returncode == 0, stopped.stderr
            stdout, stderr = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate()
            feed.settings.sending.set()
    assert first.returncode == SIGTERM_EXIT, stdout + stderr
    [failed] = stdout_events(stdout, "check_failed")
    assert failed["reason"] == "interrupted"
    assert not list(downloads.rglob("*.mp4")), "a cut-off download is never whole"
