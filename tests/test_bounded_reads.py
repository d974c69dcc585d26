"""Bounded memory whatever a site sends: gzip bombs and huge pages, read by a real check against a loopback server.

Each check runs in a process of its own, as cron runs it, and its peak resident memory is the kernel's count for that
process (`os.wait4`). The bombs are made once per session, compressed as they are made, and the huge page is
generated as it is sent: neither is ever whole in the test's memory.
"""

from __future__ import annotations

import os
import subprocess
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Project, clean_env
from hostile_site import Answer, HostileSite, filler_html
from playlist_cron import bounded_http, ytdl

PEAK_RSS_LIMIT_MIB = 150
ONE_GIB = 1024**3
HUGE_PAGE_BYTES = 200 * 1000 * 1000
XML_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Bomb</title>'
HTML_HEAD = b"<!DOCTYPE html><html><head><title>Bomb</title></head><body>"


def gzip_bomb(head: bytes, size_bytes: int, *, raw_deflate: bool = False) -> bytes:
    """`head`, then spaces to `size_bytes` in all, compressed as it is made: about a thousandth of its size."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS | 16)
    parts = [compressor.compress(head)]
    block = b" " * (1024 * 1024)
    left = size_bytes - len(head)
    while left > 0:
        parts.append(compressor.compress(block[:left]))
        left -= len(block)
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="session")
def xml_bomb() -> bytes:
    return gzip_bomb(XML_HEAD, ONE_GIB)


@pytest.fixture(scope="session")
def html_bomb() -> bytes:
    return gzip_bomb(HTML_HEAD, ONE_GIB)


@pytest.fixture(scope="session")
def deflate_html_bomb() -> bytes:
    return gzip_bomb(HTML_HEAD, ONE_GIB, raw_deflate=True)


@pytest.fixture
def site() -> Iterator[HostileSite]:
    with HostileSite() as server:
        yield server


def check_with_peak_rss(project: Project) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run one check as cron would; return it and its peak resident memory in MiB (the kernel's ru_maxrss)."""
    out, err = project.root / "check.out", project.root / "check.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            project.command("check", "--now"), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=clean_env()
        )
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            raise
    process.returncode = os.waitstatus_to_exitcode(status)
    completed = subprocess.CompletedProcess(process.args, process.returncode, out.read_text(), err.read_text())
    peak_mib = usage.ru_maxrss / 1024  # KiB on Linux
    print(f"peak resident memory of the check: {peak_mib:.0f} MiB")
    return completed, peak_mib


def final_event(project: Project) -> dict[str, Any]:
    finals = [event for event in project.events() if event["event"].startswith("check_")]
    assert finals, "the log has no final event"
    return finals[-1]


@pytest.mark.compat
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_feed_that_inflates_to_a_gigabyte_fails_too_large_and_the_playlist_is_read_whole(
    project: Project, site: HostileSite, xml_bomb: bytes, encoding: str
) -> None:
    body = xml_bomb if encoding == "gzip" else gzip_bomb(XML_HEAD, ONE_GIB, raw_deflate=True)
    feed_url = site.serve(
        "/bomb.xml", Answer(200, {"Content-Type": "application/rss+xml", "Content-Encoding": encoding}, body)
    )
    project.write_config(
        playlist_url=None,
        playlists=[{"url": project.feed.feed_url, "feed_url": feed_url, "full_scan_interval_seconds": 0}],
    )

    result, peak_mib = check_with_peak_rss(project)

    assert result.returncode == 0, result.stderr
    [failed] = project.events("feed_failed")
    assert failed["reason"] == "too_large", failed
    final = final_event(project)
    assert (final["outcome"], final["downloaded"]) == ("COMPLETED", 3), "the playlist was read whole instead"
    assert peak_mib < PEAK_RSS_LIMIT_MIB, f"the check's peak memory was {peak_mib:.0f} MiB"


@pytest.mark.compat
@pytest.mark.parametrize("answer", ["xml gzip bomb", "html gzip bomb", "html deflate bomb", "200 MB html page"])
def test_a_playlist_url_answering_something_huge_fails_the_playlist_in_bounded_memory(
    project: Project,
    site: HostileSite,
    answer: str,
    request: pytest.FixtureRequest,
) -> None:
    if answer == "200 MB html page":
        served = Answer(200, {"Content-Type": "text/html"}, filler_html(HUGE_PAGE_BYTES), length=HUGE_PAGE_BYTES)
    else:
        kind, encoding, _ = answer.split()
        body = request.getfixturevalue(f"{'deflate_' if encoding == 'deflate' else ''}{kind}_bomb")
        content_type = "application/rss+xml" if kind == "xml" else "text/html; charset=utf-8"
        served = Answer(200, {"Content-Type": content_type, "Content-Encoding": encoding}, body)
    project.write_config(playlist_url=site.serve("/playlist", served))

    result, peak_mib = check_with_peak_rss(project)

    final = final_event(project)
    assert (result.returncode, final["outcome"], final["reason"]) == (1, "FAILED", "playlist_error"), result.stderr
    [playlist] = final["playlists"]
    assert "larger than" in playlist["error"], playlist
    assert "Traceback" not in result.stderr
    assert peak_mib < PEAK_RSS_LIMIT_MIB, f"the check's peak memory was {peak_mib:.0f} MiB"


@pytest.mark.compat
def test_a_client_sends_through_the_bounded_handler_in_place_of_yt_dlps_urllib_one(site: HostileSite) -> None:
    # bounded_http subclasses yt-dlp's private urllib handler and adds to the opener it makes (_create_instance).
    url = site.serve(
        "/page.bin",
        Answer(
            200,
            {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
            gzip_bomb(HTML_HEAD, 3 * bounded_http.MAX_WHOLE_ANSWER_BYTES),
        ),
    )
    with ytdl.Fetcher({"quiet": True}, auto_init=False) as client:
        response = client.urlopen(url)
        assert response.headers.get("Content-Encoding") is None, "inflated by bounded_http, not by yt-dlp"
        assert response.read(len(HTML_HEAD)) == HTML_HEAD
        with pytest.raises(bounded_http.AnswerTooLarge):
            response.read()
