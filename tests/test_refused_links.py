"""No reaching inward: a feed's links to a cloud's metadata address, to files, or (from a public playlist) to this
machine are refused before any request, each a `video_failed` that says why; redirects included.

The check runs as cron runs it, with yt-dlp's `--proxy` pointing at a loopback server that stands in for every host
(tests/hostile_site.py): the playlist is on a public-looking name, and the server sees every request the check makes,
so a request for 169.254.169.254 would be seen, and answered as the metadata service would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Project
from hostile_site import Answer, HostileSite, rss

SITE = "http://videos.example"
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/role"
SECRET = b'{"AccessKeyId": "ASIA-NOT-FOR-FEEDS", "SecretAccessKey": "do-not-download"}'
MEDIA = b"\x00\x00\x00\x18ftypmp42" + bytes(50_000)


@pytest.fixture
def internet() -> Iterator[HostileSite]:
    """The stand-in for every host: a public site with a feed of good and hostile links, and the metadata service."""
    with HostileSite() as site:
        site.serve(f"{SITE}/media/good.mp4", Answer(200, {"Content-Type": "video/mp4"}, MEDIA))
        site.serve(f"{SITE}/media/moved.mp4", Answer(302, {"Location": METADATA}, b""))
        site.serve("/media/local.mp4", Answer(200, {"Content-Type": "video/mp4"}, MEDIA))
        site.serve(METADATA, Answer(200, {"Content-Type": "application/json"}, SECRET))
        site.serve("http://169.254.169.254/latest/meta-data/", Answer(200, {"Content-Type": "text/plain"}, SECRET))
        items = [
            {"guid": "good", "title": "A good video", "enclosure": f"{SITE}/media/good.mp4"},
            {"guid": "metadata", "title": "Credentials", "enclosure": METADATA},
            {"guid": "metadata-link", "title": "A link only", "link": "http://169.254.169.254/latest/meta-data/"},
            {"guid": "redirected", "title": "Moved", "enclosure": f"{SITE}/media/moved.mp4"},
            {"guid": "file", "title": "A file", "enclosure": "file:///etc/passwd"},
            {"guid": "local", "title": "On this machine", "enclosure": site.url("/media/local.mp4")},
        ]
        site.serve(f"{SITE}/feed.xml", Answer(200, {"Content-Type": "application/rss+xml"}, rss("Videos", items)))
        site.serve(f"{SITE}/other.xml", Answer(200, {"Content-Type": "application/rss+xml"}, rss("Other", [])))
        yield site


def run_check(project: Project) -> dict[str, Any]:
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    final: dict[str, Any] = [e for e in project.events() if e["event"].startswith("check_")][-1]
    return final


@pytest.mark.compat
@pytest.mark.parametrize("read", ["feed", "full"])
@pytest.mark.parametrize("allow_private_addresses", [False, True])
def test_links_to_the_metadata_service_files_and_inward_addresses_are_refused_without_a_request(
    project: Project, internet: HostileSite, read: str, allow_private_addresses: bool
) -> None:
    # "feed": the playlist's URL is the feed, read by playlist-cron's own parser; "full": read whole by yt-dlp's
    # generic extractor, as a playlist with a feed of its own is on its first check.
    playlist: dict[str, Any] = {"url": f"{SITE}/feed.xml"}
    if read == "full":
        playlist["feed_url"] = f"{SITE}/other.xml"
    project.write_config(
        playlist_url=None,
        playlists=[playlist],
        yt_dlp_args=["--proxy", internet.base_url],
        allow_private_addresses=allow_private_addresses or None,  # absent: its default, false
    )

    final = run_check(project)

    assert final["playlists"][0]["read"] == read
    assert internet.asked("http://169.254.169.254") == [], "a request went to the metadata address"
    assert not any(SECRET in path.read_bytes() for path in project.downloaded_files()), "credentials were saved"
    failed = {event["video_id"]: event["error"] for event in project.events("video_failed")}
    refused = {"metadata", "metadata-link", "redirected", "file"} | (set() if allow_private_addresses else {"local"})
    assert set(failed) == refused, failed
    assert all(error.startswith("refused_address: not requested: ") for error in failed.values()), failed
    assert "169.254.169.254, a link-local address" in failed["metadata"]
    assert "169.254.169.254, a link-local address" in failed["redirected"]
    assert "file:///etc/passwd is a file: link" in failed["file"]
    downloaded = {event["video_id"] for event in project.events("video_downloaded")}
    assert downloaded == {"good"} | ({"local"} if allow_private_addresses else set())
    if not allow_private_addresses:
        assert "127.0.0.1" in failed["local"] and "allow_private_addresses" in failed["local"]
        assert internet.asked(internet.url("/media/local.mp4")) == [], "a request went to this machine"
    assert (final["outcome"], final["downloaded"], final["failed"]) == ("COMPLETED", len(downloaded), len(refused))


def test_a_playlist_on_a_loopback_address_may_lead_to_loopback_media(project: Project) -> None:
    final = run_check(project)  # the loopback feed's enclosures are on 127.0.0.1, as the feed is
    assert (final["outcome"], final["downloaded"], final["failed"]) == ("COMPLETED", 3, 0)
