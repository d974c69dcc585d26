"""The headless-browser helper (tests/browser.py) on small pages of its own, so that a failure of the report's browser
tests is the report's and not the helper's."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

import browser

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="light dark">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>helper page</title><link rel="icon" href="data:,">
<style>
body { background: #ffffff; color: #111111; margin: 0; font: 16px sans-serif; }
@media (prefers-color-scheme: dark) { body { background: #101010; color: #eeeeee; } }
.bar { width: 60%; height: 120px; background: #1f77b4; margin: 20px; }
</style></head>
<body><h1 id="greeting">Hello from a file</h1><div class="bar" data-check="7"></div>
<svg viewBox="0 0 100 10" width="100%" role="img"><rect class="check" data-check="8" width="50" height="10"/></svg>
</body></html>
"""


@pytest.fixture
def chromium() -> str:
    return browser.find_chromium()


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path / "page.html"
    path.write_text(PAGE)
    return path


def test_a_served_page_is_drawn_and_dumped_and_asks_for_nothing_but_itself(
    chromium: str, page: Path, tmp_path: Path
) -> None:
    with browser.PageServer(page) as server:
        shot = browser.screenshot(chromium, server.url, tmp_path / "wide.png", width=1280, height=600)
        dom = browser.dump_dom(chromium, server.url)
    server.assert_only_the_page(loads=2)  # strict: the page names its icon, so not even /favicon.ico
    image = browser.read_png(shot)
    assert (image.width, image.height) == (1280, 600)
    found = browser.assert_not_blank(image)
    assert found.background == (255, 255, 255)
    assert image.pixel(100, 150)[:3] == (0x1F, 0x77, 0xB4)  # inside the bar
    assert 'id="greeting"' in dom and "Hello from a file" in dom
    assert 'data-check="8"' in dom


def test_a_page_from_a_file_url_gets_no_network(chromium: str, tmp_path: Path) -> None:
    """Under `offline_flags()` a request to the loopback server itself fails: nothing the page asks for gets out."""
    probe_page = tmp_path / "probe.html"
    probe_page.write_text("<p>probe target</p>")
    with browser.PageServer(probe_page) as probe:
        page = tmp_path / "page.html"
        page.write_text(
            PAGE.replace(
                "</body>",
                f'<img src="{probe.url}image.png" alt=""><img src="http://playlist-cron.invalid/x.png" alt="">'
                f'<link rel="stylesheet" href="{probe.url}style.css"></body>',
            )
        )
        dom = browser.dump_dom(chromium, page.as_uri(), flags=browser.offline_flags())
        assert probe.requests == []
        browser.dump_dom(chromium, page.as_uri())  # and without the flags the same page does reach it: the probe works
        assert "/image.png" in probe.paths()
    assert "Hello from a file" in dom


def test_the_dark_scheme_flag_changes_the_background(chromium: str, page: Path, tmp_path: Path) -> None:
    light = browser.read_png(
        browser.screenshot(
            chromium, page.as_uri(), tmp_path / "light.png", width=360, height=640, flags=browser.LIGHT_FLAGS
        )
    )
    dark = browser.read_png(
        browser.screenshot(
            chromium, page.as_uri(), tmp_path / "dark.png", width=360, height=640, flags=browser.DARK_FLAGS
        )
    )
    assert light.pixel(355, 635)[:3] == (255, 255, 255)
    assert dark.pixel(355, 635)[:3] == (0x10, 0x10, 0x10)
    assert browser.luminance(browser.colours(dark).background) < browser.luminance(browser.colours(light).background)


def png(width: int, height: int, channels: int, rows: list[tuple[int, bytes]]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2 if channels == 3 else 6, 0, 0, 0)
    raw = b"".join(bytes([kind]) + row for kind, row in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [3, 4])
def test_read_png_undoes_every_filter_type(tmp_path: Path, channels: int) -> None:
    """Rows made with each filter type (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) by hand decode to the pixels."""
    width = 3
    want = [bytes((10 * row + 3 * i) % 256 for i in range(width * channels)) for row in range(6)]
    bpp = channels

    def filtered(kind: int, row: bytes, previous: bytes) -> bytes:
        out = bytearray()
        for i, value in enumerate(row):
            left = row[i - bpp] if i >= bpp else 0
            up = previous[i]
            up_left = previous[i - bpp] if i >= bpp else 0
            estimate = left + up - up_left
            paeth = min(
                (abs(estimate - left), 0, left), (abs(estimate - up), 1, up), (abs(estimate - up_left), 2, up_left)
            )
            predictor = [0, left, up, (left + up) // 2, paeth[2]][kind]
            out.append((value - predictor) % 256)
        return bytes(out)

    rows, previous = [], bytes(width * channels)
    for kind, row in zip([0, 1, 2, 3, 4, 4], want, strict=True):
        rows.append((kind, filtered(kind, row, previous)))
        previous = row
    path = tmp_path / "made.png"
    path.write_bytes(png(width, len(want), channels, rows))
    image = browser.read_png(path)
    assert (image.width, image.height, image.channels) == (width, len(want), channels)
    assert image.pixels == b"".join(want)
