"""A playlist that is an HTML page: the page that the bot-check look read whole still reaches yt-dlp whole."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator

import pytest

from conftest import Project

pytestmark = pytest.mark.compat  # yt-dlp's responses changed how they read once read whole


@pytest.fixture
def html_page(project: Project) -> Iterator[str]:
    """A loopback page embedding the feed's videos as HTML5 <video> elements, as many sites' pages do."""
    videos = "".join(
        f'<video src="{project.feed.media_url(item.guid)}"></video>' for item in project.feed.settings.items
    )
    page = f"<html><head><title>Videos of the week</title></head><body>{videos}</body></html>".encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass  # the test's output stays for its own assertions

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/week.html"
    finally:
        server.shutdown()
        server.server_close()


def test_an_html_page_read_for_a_bot_check_is_handed_to_yt_dlp_whole(
    project: Project, html_page: str, reliability: Callable[[str], None]
) -> None:
    project.write_config(playlist_url=html_page)
    result = project.run("check", "--now")
    assert result.returncode == 0, result.stderr
    [completed] = project.events("check_completed")
    assert project.events("playlist_error") == []
    expected = len(project.feed.settings.items)
    assert (completed["downloaded"], completed["failed"]) == (expected, 0), completed
    contents = sorted(path.read_bytes() for path in project.downloaded_files())
    assert contents == sorted(item.content for item in project.feed.settings.items)
    reliability(
        f"HTML page as a playlist: a page embedding {expected} <video> elements, read whole to look for a bot "
        f"check -> {completed['downloaded']} downloaded, no playlist error"
    )
