"""A check's readers keep their connections to a site alive between requests, and open a new one when the site has
closed an idle one."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Project
from playlist_cron.demo.feed import FeedServer, make_items, rss_xml


def check(project: Project, *options: str) -> dict[str, Any]:
    result = project.run("check", "--now", *options)
    assert result.returncode == 0, result.stderr
    final: dict[str, Any] = [e for e in project.events() if e["event"].startswith("check_")][-1]
    return final


@pytest.mark.compat
def test_an_unchanged_check_polls_twenty_feeds_of_one_site_on_as_many_connections_as_readers(
    project: Project,
) -> None:
    with FeedServer(channels=20) as server:
        project.write_config(playlist_url=None, playlists=server.channel_urls, parallel_reads=2)
        result = project.run("check", "--mark-archived")
        assert result.returncode == 0, result.stderr
        server.reset_counts()
        final = check(project)
        counts = server.counts()
    assert final["outcome"] == "COMPLETED"
    assert [playlist["feed_status"] for playlist in final["playlists"]] == [304] * 20
    assert counts.total == 20, counts
    assert counts.connections <= 2, f"{counts.connections} connections for {counts.total} requests"


class _ClosingAfterEachAnswer(http.server.BaseHTTPRequestHandler):
    """Answers over HTTP/1.1 without `Connection: close`, then closes the connection anyway, as a site does with a
    connection it has kept idle too long."""

    protocol_version = "HTTP/1.1"
    body = b""
    connections = 0
    lock = threading.Lock()

    def setup(self) -> None:
        with self.lock:
            type(self).connections += 1
        super().setup()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def closing_site(feed: FeedServer) -> Iterator[str]:
    items = make_items(2, size_bytes=1000)
    handler = type("Handler", (_ClosingAfterEachAnswer,), {"connections": 0, "lock": threading.Lock()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.body = rss_xml("Closing", "http://127.0.0.1/", items, lambda guid: f"{feed.base_url}/media/{guid}.mp4")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
    handler_connections = handler.connections
    assert handler_connections >= 3, "each feed read asked for on a connection of its own, the first reused in vain"


@pytest.mark.compat
def test_a_connection_the_site_closed_while_idle_is_replaced_by_a_new_one(project: Project, closing_site: str) -> None:
    urls = [f"{closing_site}/feed.xml?n={number}" for number in range(3)]
    project.write_config(playlist_url=None, playlists=urls, parallel_reads=1)
    final = check(project, "--mark-archived")
    assert final["outcome"] == "COMPLETED", json.dumps(final)
    assert all(playlist["error"] is None for playlist in final["playlists"]), final["playlists"]


def test_the_loopback_server_counts_connections(tmp_path: Path) -> None:
    import urllib.request

    with FeedServer(channels=2) as server:
        for url in server.channel_urls:
            with urllib.request.urlopen(url) as answer:
                answer.read()
        assert server.counts().connections == 2, "urllib closes each connection"
