"""Headless Chromium as a real browser for the tests: screenshots, the DOM after layout, and the requests a page makes.

    chromium = find_chromium()                    # skips (or fails in CI) when Chromium is missing
    with PageServer(html_path) as server:         # a loopback server of one page, logging every request
        shot = screenshot(chromium, server.url, tmp_path / "page.png", width=1280, height=900)
        dom = dump_dom(chromium, server.url)
    assert server.paths() == ["/"]                # nothing else was fetched
    assert not is_blank(read_png(shot))

A page opened from a file URL is loaded with `offline_flags()`: a proxy on a closed loopback port and host rules
that map every name to nothing, so any request the page tries fails instead of leaving the machine.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from conftest import skip_or_fail

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# A browser with nothing of its own to do: no first-run page, no background updates or sync, no QUIC, no GPU, a new
# profile per run. `--no-sandbox`: the sandbox needs user namespaces, which containers and root often lack.
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)

# `prefers-color-scheme` in headless Chromium: Blink's own setting (0 dark, 1 light).
DARK_FLAGS = ("--blink-settings=preferredColorScheme=0",)
LIGHT_FLAGS = ("--blink-settings=preferredColorScheme=1",)


def find_chromium() -> str:
    """The Chromium executable; skips the test, saying why, where there is none, but fails it in CI (`CI` set)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    skip_or_fail(
        f"no headless browser to render the page with (none of {', '.join(CHROMIUM_NAMES)} on PATH)",
        "CI must run the browser tests (.ci/run installs Debian's chromium)",
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def offline_flags() -> tuple[str, ...]:
    """Flags under which any network request fails: every host maps to nothing, every proxy is a closed port."""
    return (
        f"--proxy-server=127.0.0.1:{closed_port()}",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    )


def run_chromium(chromium: str, url: str, *flags: str, timeout_s: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run headless Chromium once on `url` with `flags`, in a new profile folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="playlist-cron-chromium-") as profile:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("http_", "https_", "HTTP"))}
        env["HOME"] = profile  # fontconfig and friends write their caches here, not in the user's home
        result = subprocess.run(
            [chromium, *BASE_FLAGS, f"--user-data-dir={profile}", *flags, url],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            env=env,
            cwd=profile,
        )
    assert result.returncode == 0, (
        f"chromium exit {result.returncode}: {result.stderr.decode(errors='replace')[-2000:]}"
    )
    return result


def screenshot(
    chromium: str, url: str, path: Path, *, width: int = 1280, height: int = 900, flags: Sequence[str] = ()
) -> Path:
    """A PNG screenshot of `url` in a window `width` x `height` CSS pixels; returns `path`."""
    run_chromium(chromium, url, f"--screenshot={path}", f"--window-size={width},{height}", *flags)
    assert path.is_file() and path.stat().st_size > 0, f"chromium wrote no screenshot at {path}"
    return path


def dump_dom(chromium: str, url: str, *, flags: Sequence[str] = ()) -> str:
    """The DOM of `url` after it loaded, serialised as HTML (`--dump-dom`)."""
    return run_chromium(chromium, url, "--dump-dom", *flags).stdout.decode()


class Request(NamedTuple):
    method: str
    path: str
    status: int


class PageServer:
    """A loopback HTTP server that answers `/` with one HTML file (404 for anything else) and logs every request."""

    def __init__(self, page: Path) -> None:
        self.page = page
        self.requests: list[Request] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/":
                    body, status, kind = server.page.read_bytes(), 200, "text/html; charset=utf-8"
                else:
                    body, status, kind = b"not found", 404, "text/plain"
                server.requests.append(Request(self.command, self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                server.requests.append(Request(self.command, self.path, 405))
                self.send_error(405)

            do_POST = do_PUT = do_OPTIONS = do_HEAD

            def log_message(self, *args: object) -> None:
                pass  # the requests are in `server.requests`

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="page-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def paths(self) -> list[str]:
        """The paths asked for, in order, whatever the method (a browser's favicon request included)."""
        return [request.path for request in self.requests]

    def assert_only_the_page(self, loads: int, *, browser_favicon: bool = False) -> None:
        """Each of `loads` browser runs asked for the page and nothing else (no image, no style, no font).

        With `browser_favicon`, the browser's own `GET /favicon.ico` is let through: Chromium asks for it by itself
        when a page names no icon (a page that names one, e.g. `<link rel="icon" href="data:,">`, is not asked).
        """
        requests = self.requests
        if browser_favicon:
            requests = [request for request in requests if request != Request("GET", "/favicon.ico", 404)]
        assert requests == [Request("GET", "/", 200)] * loads, self.requests

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


class Image(NamedTuple):
    width: int
    height: int
    channels: int  # 3 (RGB) or 4 (RGBA)
    pixels: bytes  # rows top to bottom, no filter bytes

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        start = (y * self.width + x) * self.channels
        return tuple(self.pixels[start : start + self.channels])

    def rgb_pixels(self) -> Iterator[tuple[int, int, int]]:
        step = self.channels
        data = self.pixels
        for start in range(0, len(data), step):
            yield data[start], data[start + 1], data[start + 2]


def read_png(path: Path) -> Image:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes) with zlib and struct alone."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    offset, idat, header = 8, bytearray(), b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _compression, _filter, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type, interlace)
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    previous = bytearray(stride)
    out = bytearray()
    position = 0
    for _ in range(height):
        kind = raw[position]
        row = bytearray(raw[position + 1 : position + 1 + stride])
        position += 1 + stride
        unfilter(kind, row, previous, channels)
        out += row
        previous = row
    return Image(width, height, channels, bytes(out))


def unfilter(kind: int, row: bytearray, previous: bytearray, bpp: int) -> None:
    """Undo one scanline's PNG filter (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) in place."""
    if kind == 0:
        return
    if kind == 2:
        for i in range(len(row)):
            row[i] = (row[i] + previous[i]) & 0xFF
        return
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            up = previous[i]
            up_left = previous[i - bpp] if i >= bpp else 0
            estimate = left + up - up_left
            distance_left, distance_up, distance_up_left = (
                abs(estimate - left),
                abs(estimate - up),
                abs(estimate - up_left),
            )
            if distance_left <= distance_up and distance_left <= distance_up_left:
                predictor = left
            elif distance_up <= distance_up_left:
                predictor = up
            else:
                predictor = up_left
            row[i] = (row[i] + predictor) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter type {kind}")


class Colours(NamedTuple):
    background: tuple[int, int, int]  # the most common colour
    distinct: int  # how many colours
    foreground_share: float  # the share of pixels not of the background colour


def colours(image: Image) -> Colours:
    counts: dict[tuple[int, int, int], int] = {}
    for rgb in image.rgb_pixels():
        counts[rgb] = counts.get(rgb, 0) + 1
    background, most = max(counts.items(), key=lambda item: item[1])
    total = image.width * image.height
    return Colours(background, len(counts), (total - most) / total)


def assert_not_blank(image: Image, min_share: float = 0.02) -> Colours:
    """The screenshot shows something: more than one colour, and at least `min_share` of it not background."""
    found = colours(image)
    assert found.distinct > 1, f"the screenshot is one colour only: {found.background}"
    assert found.foreground_share >= min_share, f"only {found.foreground_share:.2%} of the screenshot is not background"
    return found


def luminance(rgb: tuple[int, int, int]) -> float:
    red, green, blue = rgb
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue
