"""Benchmarks: whole processes against a loopback feed, each case as a ratio to a baseline measured in the same run.

    .venv/bin/python benchmarks/bench.py            # every case, 7 runs each after a warm-up
    .venv/bin/python benchmarks/bench.py --runs 5 --only skip,not_due
    .venv/bin/python benchmarks/bench.py --runs 5 --only report
    .venv/bin/python benchmarks/bench.py --runs 1 --only channels --channels 200   # not in the default run
    .venv/bin/python benchmarks/bench.py --runs 7 --only big    # 10,000 playlists in one config
    .venv/bin/python benchmarks/bench.py --runs 5 --only fleet_records    # status and archive look-ups in a database
    .venv/bin/python benchmarks/bench.py --runs 5 --only claims # EXPLAIN of a check's statements, 10,000 playlists

Prints a Markdown table: median, min and max wall time, the ratio of medians to the case's baseline, peak memory
(maximum resident set size of the process, from wait4) and its ratio, and the target from the benchmarks issue.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from playlist_cron.demo.feed import FeedItem, FeedServer, FeedSettings, RequestRecord, make_items

BIN_DIR = Path(sys.executable).parent
COMMAND = str(BIN_DIR / "playlist-cron")
YT_DLP = str(BIN_DIR / "yt-dlp")
TEMPLATE = "%(playlist_title)s/%(title)s [%(id)s].%(ext)s"
NOT_DUE_PEAK_MIB = 14
FEED_ITEMS = 15  # a YouTube channel's feed lists its 15 newest videos
FULL_SCAN_INTERVAL_S = 7 * 24 * 3600  # long enough that no full read falls due while measuring


@dataclass
class Measurement:
    """Wall times (s) and peak memory (KiB) of repeated runs of one command."""

    name: str
    wall_s: list[float] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)
    requests: int | None = None
    per_channel: str | None = None  # requests per channel per check: "1", or "min-max" when they differ
    max_in_flight: int | None = None  # the most requests its server saw in flight at once

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def median_kib(self) -> float:
        return statistics.median(self.peak_kib)


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_once(argv: list[str], cwd: Path, cpu_s: list[float] | None = None) -> tuple[float, int, int]:
    """Run a command; return (wall seconds, peak RSS KiB, exit code). Add its CPU seconds (user and system, its
    children's included) to `cpu_s` when given.

    A child forked from this (large) Python process counts this process's pages in its peak RSS until it execs,
    so the peak comes from GNU time, a small process that forks the command itself.
    """
    report = cwd / ".bench-time"
    launcher = [GNU_TIME, "-q", "-f", "%M", "-o", str(report)] if GNU_TIME else []
    started = time.perf_counter()
    process = subprocess.Popen(
        [*launcher, *argv], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall_s = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if cpu_s is not None:
        cpu_s.append(usage.ru_utime + usage.ru_stime)
    peak_kib = int(report.read_text().split()[-1]) if GNU_TIME else usage.ru_maxrss
    return wall_s, peak_kib, code


def measure(
    name: str,
    argv: list[str],
    cwd: Path,
    runs: int,
    *,
    before_each: Callable[[], None] | None = None,
    expect_code: int = 0,
) -> Measurement:
    measurement = Measurement(name)
    for attempt in range(runs + 1):  # the first run warms the page cache and is not counted
        if before_each:
            before_each()
        wall_s, peak_kib, code = run_once(argv, cwd)
        if code != expect_code:
            raise SystemExit(f"{name}: {' '.join(argv)} exited {code}, expected {expect_code}")
        if attempt:
            measurement.wall_s.append(wall_s)
            measurement.peak_kib.append(peak_kib)
    return measurement


def measure_interleaved(
    commands: dict[str, list[str]],
    cwd: Path,
    runs: int,
    expect_codes: dict[str, int] | None = None,
    before_each: dict[str, Callable[[], None]] | None = None,
) -> dict[str, Measurement]:
    """Measure several commands round-robin, so that the machine's drift falls on all of them alike."""
    measurements = {name: Measurement(name) for name in commands}
    for attempt in range(runs + 1):  # the first round warms the page cache and is not counted
        for name, argv in commands.items():
            if before_each and name in before_each:
                before_each[name]()
            wall_s, peak_kib, code = run_once(argv, cwd)
            expected = (expect_codes or {}).get(name, 0)
            if code != expected:
                raise SystemExit(f"{name}: {' '.join(argv)} exited {code}, expected {expected}")
            if attempt:
                measurements[name].wall_s.append(wall_s)
                measurements[name].peak_kib.append(peak_kib)
    return measurements


def bare_yt_dlp(folder: Path, feed_url: str) -> list[str]:
    """The yt-dlp command line doing what a check does: same archive file name, output template and feed."""
    archive, downloads = str(folder / "archive.txt"), str(folder / "downloads")
    return [
        YT_DLP,
        "--quiet",
        "--no-warnings",
        "--download-archive",
        archive,
        "-o",
        TEMPLATE,
        "-P",
        downloads,
        feed_url,
    ]


def write_config(folder: Path, feed_url: str, **extra: object) -> Path:
    config = folder / "config.json"
    config.write_text(json.dumps({"playlist_url": feed_url, "min_free_bytes": 0, "output_template": TEMPLATE, **extra}))
    return config


def archive_all(folder: Path, feed: FeedServer, filler_lines: int = 0) -> None:
    """An archive holding every item of the feed, after `filler_lines` lines of other videos."""
    with open(folder / "archive.txt", "w") as archive:
        for number in range(filler_lines):
            archive.write(f"youtube filler{number:07d}\n")
        for item in feed.settings.items:
            archive.write(f"generic {item.guid}\n")


@dataclass
class Row:
    case: str
    measurement: Measurement
    baseline: Measurement | None
    target: str
    limit: float | None  # the ratio the target allows, or None for a reference row
    peak_limit_mib: float | None = None  # the peak memory the target allows, when it names a size
    time_limit_s: float | None = None  # the wall time the target allows, when it names one (not a ratio)


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table; with the columns of requests per channel and max in flight when a row has them."""
    in_flight = any(row.measurement.max_in_flight is not None for row in rows)
    extra_names, extra_rule = (" requests per channel | max in flight |", "---|---|") if in_flight else ("", "")
    names = f"| case | median s | min s | max s | time ratio | peak MiB | memory ratio | requests |{extra_names}"
    lines = [f"{names} target | met |", f"|---|---|---|---|---|---|---|---|{extra_rule}---|---|"]
    for row in rows:
        m, b = row.measurement, row.baseline
        time_ratio = m.median_s / b.median_s if b else None
        memory_ratio = m.median_kib / b.median_kib if b and b.median_kib else None
        met = ""
        if row.limit is not None and time_ratio is not None:
            memory_ok = memory_ratio is None or "memory" not in row.target or memory_ratio <= row.limit
            if row.peak_limit_mib is not None:
                memory_ok = m.median_kib / 1024 <= row.peak_limit_mib
            met = "yes" if time_ratio <= row.limit and memory_ok else "NO"
        if row.time_limit_s is not None:
            memory_ok = row.peak_limit_mib is None or m.median_kib / 1024 <= row.peak_limit_mib
            met = "yes" if m.median_s <= row.time_limit_s and memory_ok and "NOT MET" not in row.target else "NO"
        elif row.limit is None and row.peak_limit_mib is not None:  # a target on memory alone
            met = "yes" if m.median_kib / 1024 <= row.peak_limit_mib else "NO"
        extra = ""
        if in_flight:
            extra = f" {m.per_channel or ''} | {m.max_in_flight if m.max_in_flight is not None else ''} |"
        lines.append(
            f"| {row.case} | {m.median_s:.3f} | {min(m.wall_s):.3f} | {max(m.wall_s):.3f} | "
            f"{f'{time_ratio:.2f}x' if time_ratio is not None else 'baseline'} | {m.median_kib / 1024:.1f} | "
            f"{f'{memory_ratio:.2f}x' if memory_ratio is not None else ''} | "
            f"{m.requests if m.requests is not None else ''} |{extra} {row.target} | {met} |"
        )
    return "\n".join(lines)


def bench_skip_and_not_due(root: Path, runs: int) -> list[Row]:
    folder = root / "skip"
    folder.mkdir()
    lock_file = str(folder / "archive.txt.lock")
    with FeedServer(make_items(1, size_bytes=50_000_000), bytes_per_second=20_000) as feed:
        config = write_config(folder, feed.feed_url, check_interval_seconds=3600)
        floor_argv = [sys.executable, "-c", "import structlog, portalocker"]
        check_argv = [COMMAND, "check", "--now", "--config", str(config)]
        (folder / "archive.txt").write_text(f"generic {feed.settings.items[0].guid}\n")
        subprocess.run([COMMAND, "check", "--config", str(config)], check=True, cwd=folder)  # the due clock starts
        (folder / "archive.txt").write_text("")
        # That check kept the feed's ETag: the holder's read would get a 304 and download nothing, and the wait for its
        # `.part` file below would never end. Forget how the feed was read, so that the holder reads it afresh.
        state_file = folder / "state" / "config.state.json"
        state = json.loads(state_file.read_text())
        state["playlists"] = {}
        state_file.write_text(json.dumps(state))
        # The usual holder: a check that is downloading (a 50 MB video at 20 kB/s).
        running = subprocess.Popen(check_argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not list((folder / "downloads").rglob("*.part")):
                if running.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("skip: the holder check never started downloading; see skip/logs/downloader.log")
                time.sleep(0.05)
            time.sleep(1)  # let it settle into downloading
            first = measure_interleaved(
                {
                    "floor": floor_argv,
                    "skip": check_argv,
                    "not due": [COMMAND, "check", "--config", str(config)],
                    "python": [sys.executable, "-c", "pass"],
                },
                folder,
                runs,
            )
        finally:
            running.kill()
            running.wait()
        holder = subprocess.Popen(
            ["flock", "-n", lock_file, "sh", "-c", "echo held; sleep 600"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert holder.stdout and holder.stdout.readline() == "held\n"
        try:
            second = measure_interleaved(
                {"floor": floor_argv, "flock": ["flock", "-n", lock_file, "true"], "foreign": check_argv},
                folder,
                runs,
                expect_codes={"flock": 1},
            )
        finally:
            os.killpg(holder.pid, 9)
            holder.wait()
    return [
        Row("floor: python -c 'import structlog, portalocker'", first["floor"], None, "baseline", None),
        Row(
            "skip path (lock held by a downloading check)",
            first["skip"],
            first["floor"],
            "<= 1.10x time and memory",
            1.10,
        ),
        Row(
            "not-due path (check_interval_seconds 3600, checked moments ago)",
            first["not due"],
            first["floor"],
            f"<= 0.35x time, <= {NOT_DUE_PEAK_MIB} MiB",
            0.35,
            NOT_DUE_PEAK_MIB,
        ),
        Row("reference: python -c pass (Python start-up)", first["python"], first["floor"], "for reference", None),
        Row("floor, measured again beside flock(1)", second["floor"], None, "baseline", None),
        Row("reference: flock -n (lock held)", second["flock"], second["floor"], "for reference", None),
        Row(
            "skip path (lock held by flock(1): reads /proc/locks)",
            second["foreign"],
            second["floor"],
            "for reference",
            None,
        ),
    ]


def bench_all_archived(root: Path, runs: int) -> list[Row]:
    rows = []
    with FeedServer(make_items(200, size_bytes=1000)) as feed:
        bare_folder, ours_folder = root / "bare-200", root / "ours-200"
        for folder in (bare_folder, ours_folder):
            folder.mkdir()
            archive_all(folder, feed)
        config = write_config(ours_folder, feed.feed_url)
        bare_argv = bare_yt_dlp(bare_folder, feed.feed_url)
        feed.requests.clear()
        bare = measure("bare", bare_argv, bare_folder, runs)
        bare.requests = len(feed.requests) // (runs + 1)
        feed.requests.clear()
        ours = measure("ours", [COMMAND, "check", "--now", "--config", str(config)], ours_folder, runs)
        ours.requests = len(feed.requests) // (runs + 1)
        rows.append(Row("bare yt-dlp, 200-item feed, all archived", bare, None, "baseline", None))
        rows.append(Row("playlist-cron check, same feed, all archived", ours, bare, "<= 1.10x time", 1.10))

        growth: dict[int, Measurement] = {}
        for lines in (1_000, 10_000, 100_000):
            folder = root / f"growth-{lines}"
            folder.mkdir()
            archive_all(folder, feed, filler_lines=lines - 200)
            config = write_config(folder, feed.feed_url)
            growth[lines] = measure(f"{lines}", [COMMAND, "check", "--now", "--config", str(config)], folder, runs)
        rows.append(Row("growth: all archived, 1,000-line archive", growth[1_000], None, "baseline", None))
        rows.append(Row("growth: 10,000-line archive", growth[10_000], growth[1_000], "for reference", None))
        rows.append(Row("growth: 100,000-line archive", growth[100_000], growth[1_000], "<= 1.5x time", 1.5))
    return rows


def bench_downloads(root: Path, runs: int) -> list[Row]:
    with FeedServer(make_items(20, size_bytes=5_000_000)) as feed:
        bare_folder, ours_folder = root / "bare-dl", root / "ours-dl"
        bare_folder.mkdir()
        ours_folder.mkdir()
        config = write_config(ours_folder, feed.feed_url)

        def fresh(folder: Path) -> Callable[[], None]:
            def clean() -> None:
                for name in ("downloads", "archive.txt", "state", "logs"):
                    path = folder / name
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif path.exists():
                        path.unlink()

            return clean

        bare_argv = bare_yt_dlp(bare_folder, feed.feed_url)
        measured = measure_interleaved(
            {"bare": bare_argv, "ours": [COMMAND, "check", "--now", "--config", str(config)]},
            root,
            runs,
            before_each={"bare": fresh(bare_folder), "ours": fresh(ours_folder)},
        )
        bare, ours = measured["bare"], measured["ours"]
    return [
        Row("bare yt-dlp, 20 x 5 MB downloads", bare, None, "baseline", None),
        Row("playlist-cron check, 20 x 5 MB downloads", ours, bare, "<= 1.10x time", 1.10),
    ]


def bench_stop_at_first_archived(root: Path, runs: int) -> list[Row]:
    with FeedServer(make_items(1000, size_bytes=1000)) as feed:
        rows = []
        measured: dict[str, Measurement] = {}
        bare_folder = root / "bare-1000"
        bare_folder.mkdir()
        archive_all(bare_folder, feed)
        bare_argv = bare_yt_dlp(bare_folder, feed.feed_url)
        feed.requests.clear()
        measured["bare"] = measure("bare", bare_argv, bare_folder, runs)
        measured["bare"].requests = len(feed.requests) // (runs + 1)
        for name, stop in (("plain", False), ("stop", True)):
            folder = root / f"{name}-1000"
            folder.mkdir()
            archive_all(folder, feed)
            config = write_config(folder, feed.feed_url, stop_at_first_archived=stop)
            feed.requests.clear()
            measured[name] = measure(name, [COMMAND, "check", "--now", "--config", str(config)], folder, runs)
            measured[name].requests = len(feed.requests) // (runs + 1)
        rows.append(
            Row(
                "bare yt-dlp, 1,000-item newest-first feed, all archived",
                measured["bare"],
                None,
                "baseline (requests: one per item)",
                None,
            )
        )
        rows.append(Row("playlist-cron check, same", measured["plain"], measured["bare"], "for reference", None))
        rows.append(
            Row(
                "playlist-cron check, stop_at_first_archived", measured["stop"], measured["bare"], "<= 2 requests", None
            )
        )
        stop_requests = measured["stop"].requests or 0
        if stop_requests > 2:
            rows[-1].target += f" (NOT MET: {stop_requests})"
    return rows


class ValidatingFeed:
    """The script's stand-in for a feed server that sends validators, for as long as FeedServer sends none.

    Serves `source`'s feed at every path with an ETag (a digest of the body) and a Last-Modified, and answers 304
    when If-None-Match (or, without it, an equal If-Modified-Since) matches; records requests as FeedServer does.
    """

    LAST_MODIFIED = "Sun, 01 Nov 2026 12:00:00 GMT"

    def __init__(self, source: FeedServer) -> None:
        self.source = source
        self.requests: list[RequestRecord] = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="validating-feed", daemon=True).start()

    @property
    def feed_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/feed.xml"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

            def do_GET(self) -> None:
                body = stand_in.source.feed_xml()
                etag = f'"{hashlib.sha256(body).hexdigest()[:24]}"'
                if_none_match, if_modified_since = (
                    self.headers.get("If-None-Match"),
                    self.headers.get("If-Modified-Since"),
                )
                unchanged = (
                    etag in (if_none_match or "").split(", ")
                    if if_none_match
                    else (if_modified_since == stand_in.LAST_MODIFIED)
                )
                status = 304 if unchanged else 200
                stand_in.requests.append(RequestRecord("GET", self.path, None, status, time.time()))
                self.send_response(status)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", stand_in.LAST_MODIFIED)
                if unchanged:
                    self.end_headers()
                    return
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def sends_validators(feed: FeedServer) -> bool:
    """Whether FeedServer answers its feed with an ETag (it sends none before it learns validators)."""
    with urllib.request.urlopen(feed.feed_url, timeout=10) as response:
        response.read()
        answered = "ETag" in response.headers
    feed.requests.clear()
    return answered


def without_validators() -> dict[str, bool]:
    """FeedServer's setting that turns its validators off, where it has them."""
    names = {setting.name for setting in dataclasses.fields(FeedSettings)}
    return {"feed_validators": False} if "feed_validators" in names else {}


def bench_feeds(root: Path, runs: int) -> list[Row]:
    """Full reads against feed reads: one 15-item playlist, then 50 playlists with nothing new."""
    rows: list[Row] = []
    for playlists in (1, 50):
        rows.extend(_full_against_feed(root, runs, playlists))
    return rows


def _full_against_feed(root: Path, runs: int, playlists: int) -> list[Row]:
    """One config per side, each with its own loopback server (so that its requests are its own), all archived.

    full: `feed_url` false, so every check reads each playlist with yt-dlp (a playlist URL that is an RSS feed
    would otherwise be read with the feed parser). feed: `feed_url` a second URL of the same items, the full read
    done (by a check before measuring) and not due again. 304: the same, against a server sending validators.
    """
    items = make_items(FEED_ITEMS, size_bytes=1000)
    with ExitStack() as stack:
        servers: dict[str, FeedServer | ValidatingFeed] = {
            "full": stack.enter_context(FeedServer(items, **without_validators())),
            "feed": stack.enter_context(FeedServer(items, **without_validators())),
        }
        validating = stack.enter_context(FeedServer(items))
        if sends_validators(validating):
            servers["304"], validators_from = validating, "FeedServer's ETag"
        else:
            stand_in = ValidatingFeed(validating)
            stack.callback(stand_in.stop)
            servers["304"], validators_from = stand_in, "the script's stand-in server's ETag"
        commands: dict[str, list[str]] = {}
        for side, server in servers.items():
            folder = root / f"feeds-{playlists}-{side}"
            folder.mkdir()
            _archive_items(folder, items)
            config = _feeds_config(folder, server.feed_url, playlists, with_feed=side != "full")
            commands[side] = [COMMAND, "check", "--now", "--config", str(config)]
            # feed and 304: the first check is the full read; the second reads the feed and learns its validators.
            for _ in range(1 if side == "full" else 2):
                subprocess.run(commands[side], check=True, cwd=folder, stdout=subprocess.DEVNULL)
            server.requests.clear()
        measured = measure_interleaved(commands, root, runs)
        for side, server in servers.items():
            measured[side].requests = _requests_per_check(side, server.requests, playlists, runs + 1)
    what = f"{playlists} playlists of {FEED_ITEMS} items" if playlists > 1 else f"one {FEED_ITEMS}-item playlist"
    return [
        Row(
            f"full read, {what}, all archived: yt-dlp reads each (`feed_url` false)",
            measured["full"],
            None,
            "baseline",
            None,
        ),
        Row(
            f"feed read, same: 200, {FEED_ITEMS} entries parsed (full read done, not due)",
            measured["feed"],
            measured["full"],
            "for reference",
            None,
        ),
        Row(
            f"feed read, same, unchanged: 304 ({validators_from})",
            measured["304"],
            measured["full"],
            "for reference",
            None,
        ),
    ]


def _archive_items(folder: Path, items: list[FeedItem]) -> None:
    (folder / "archive.txt").write_text("".join(f"generic {item.guid}\n" for item in items))


def _feeds_config(folder: Path, feed_url: str, playlists: int, *, with_feed: bool) -> Path:
    """A config of `playlists` playlists on one server (it serves the same feed whatever the query)."""
    entries = [
        {"url": f"{feed_url}?playlist={number}", "feed_url": f"{feed_url}?feed={number}" if with_feed else False}
        for number in range(1, playlists + 1)
    ]
    config = folder / "config.json"
    config.write_text(
        json.dumps(
            {
                "playlists": entries,
                "full_scan_interval_seconds": FULL_SCAN_INTERVAL_S,
                "min_free_bytes": 0,
                "output_template": TEMPLATE,
            }
        )
    )
    return config


def _requests_per_check(side: str, requests: list[RequestRecord], playlists: int, checks: int) -> int:
    """The requests one check made; exit when a side did not read as it should (a full read, a 200, a 304)."""
    wanted_path, wanted_status = {"full": ("?playlist=", 200), "feed": ("?feed=", 200), "304": ("?feed=", 304)}[side]
    unexpected = [r for r in requests if wanted_path not in r.path or r.status != wanted_status]
    if unexpected or len(requests) != playlists * checks:
        seen = sorted({(r.path.partition("=")[0], r.status) for r in requests})
        raise SystemExit(f"feeds, {side}: {len(requests)} requests in {checks} checks of {playlists} playlists: {seen}")
    return len(requests) // checks


FLEET_PLAYLISTS = 40
FLEET_HOSTS = (1, 2, 4)
FLEET_ROUNDS = 2  # at most: one round of the three drains takes about a minute


def _postgres_server() -> object | None:
    """A PostgreSQL server of the benchmark's own (tests/postgres_server.py, loaded by path), started; None, said on
    stderr, when psycopg or the server programs are missing."""
    import importlib.util

    try:
        import psycopg  # noqa: F401 - the postgres extra
    except ImportError:
        print("fleet: skipped, psycopg is not installed (pip install 'playlist-cron[postgres]')", file=sys.stderr)
        return None
    path = Path(__file__).parent.parent / "tests" / "postgres_server.py"
    spec = importlib.util.spec_from_file_location("postgres_server", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        server = module.PostgresServer()
    except module.PostgresUnavailable as unavailable:
        print(f"fleet: skipped, no PostgreSQL server to run: {unavailable}", file=sys.stderr)
        return None
    return server.__enter__()  # type: ignore[no-any-return]


def _fleet_config(folder: Path, database_url: str, name: str, downloads: Path, playlists: list[str]) -> Path:
    folder.mkdir(parents=True)
    config = folder / "config.json"
    values = {
        "database_url": database_url,
        "host_name": name,
        "download_dir": str(downloads),
        "playlists": playlists,
        "min_free_bytes": 0,
        "output_template": TEMPLATE,
        "check_interval_seconds": FULL_SCAN_INTERVAL_S,  # each playlist is done once
    }
    config.write_text(json.dumps(values))
    return config


def _drain(
    server: object, root: Path, urls: list[str], hosts: int, number: int, cpu_s: list[float]
) -> tuple[float, int]:
    """`hosts` host processes, each running plain checks back to back (as cron would, without waiting a minute)
    until one completes nothing (nothing due, or every due playlist held by another host), on a new database;
    return (wall seconds until all 40 playlists are done, the largest peak RSS KiB of a check); add the CPU seconds
    of each check that completed playlists to `cpu_s`.

    Not `check --now`: it claims playlists that are not due, so every host would go on completing checks of
    playlists already done."""
    name = f"drain_{hosts}_{number}"
    url = server.create_database(name)  # type: ignore[attr-defined]
    folder = root / name
    downloads = folder / "downloads"
    configs = [_fleet_config(folder / f"host{n}", url, f"host{n}", downloads, urls) for n in range(hosts)]
    subprocess.run([COMMAND, "db", "migrate", "--config", str(configs[0])], check=True, capture_output=True)
    peaks: list[int] = []

    def host(config: Path) -> None:
        log = config.parent / "logs" / "downloader.log"
        while True:
            lines = len(log.read_text().splitlines()) if log.exists() else 0
            used: list[float] = []
            _, peak_kib, code = run_once([COMMAND, "check", "--config", str(config)], config.parent, used)
            peaks.append(peak_kib)
            if code != 0:
                raise SystemExit(f"fleet: a check exited {code}: see {log}")
            new = [json.loads(line) for line in log.read_text().splitlines()[lines:]] if log.exists() else []
            if not any(event["event"] == "check_completed" for event in new):  # nothing due, or all held: done
                return
            cpu_s.extend(used)

    started = time.perf_counter()
    threads = [threading.Thread(target=host, args=(config,)) for config in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started
    [(done,)] = server.execute(  # type: ignore[attr-defined]
        "SELECT count(*) FROM playlist_cron_playlists WHERE last_checked_at IS NOT NULL", database=name
    )
    files = [path for path in downloads.rglob("*.mp4")]
    if done != len(urls) or len(files) != len(urls):
        raise SystemExit(f"fleet: {hosts} hosts did {done} playlists and downloaded {len(files)} files of {len(urls)}")
    server.drop_database(name)  # type: ignore[attr-defined]
    return wall_s, max(peaks)


def bench_fleet(root: Path, runs: int) -> list[Row]:
    """Hosts draining one collection of 40 throttled playlists side by side; the skip path with a database."""
    server = _postgres_server()
    if server is None:
        return []
    try:
        return _bench_fleet(server, root, runs)
    finally:
        server.__exit__(None, None, None)  # type: ignore[attr-defined]


def _bench_fleet(server: object, root: Path, runs: int) -> list[Row]:
    with ExitStack() as stack:
        feeds = [
            stack.enter_context(
                FeedServer(make_items(1, size_bytes=100_000, prefix=f"p{n:02d}"), bytes_per_second=200_000)
            )
            for n in range(FLEET_PLAYLISTS)
        ]
        urls = [feed.feed_url for feed in feeds]
        drains = {hosts: Measurement(f"{hosts} hosts") for hosts in FLEET_HOSTS}
        loads: dict[int, list[float]] = {hosts: [] for hosts in FLEET_HOSTS}
        cpu_s: dict[int, list[float]] = {hosts: [] for hosts in FLEET_HOSTS}  # of each check that did playlists
        for number in range(min(runs, FLEET_ROUNDS)):
            for hosts in FLEET_HOSTS:
                wall_s, peak_kib = _drain(server, root, urls, hosts, number, cpu_s[hosts])
                drains[hosts].wall_s.append(wall_s)
                drains[hosts].peak_kib.append(peak_kib)
                loads[hosts].append(os.getloadavg()[0])  # the machine's load over the last minute: the drain's

        def load(hosts: int) -> str:
            cpu = f"{statistics.median(cpu_s[hosts]):.2f}" if cpu_s[hosts] else "-"
            return f"load average {', '.join(f'{value:.1f}' for value in loads[hosts])}; CPU s a check {cpu}"

        skips = _fleet_skip(server, root, runs)
    one = drains[1]
    return [
        Row(
            f"fleet: 1 host drains {FLEET_PLAYLISTS} playlists (1 x 100 kB at 200 kB/s each; {load(1)})",
            one,
            None,
            "baseline",
            None,
        ),
        Row(f"fleet: 2 hosts drain the same ({load(2)})", drains[2], one, "for reference", None),
        Row(
            f"fleet: 4 hosts drain the same ({load(4)})",
            drains[4],
            one,
            "<= 0.29x time (4 hosts >= 3.5x faster)",
            1 / 3.5,
        ),
        Row("floor: python -c 'import structlog, portalocker'", skips["floor"], None, "baseline", None),
        Row(
            "skip path, files (lock held by a downloading check)", skips["file"], skips["floor"], "for reference", None
        ),
        Row(
            "skip path, database (every due playlist held by another host's check)",
            skips["database"],
            skips["floor"],
            "for reference (pays for psycopg)",
            None,
        ),
        Row(
            "not-due path, database (checked moments ago: answered from the host's state file)",
            skips["not due"],
            skips["floor"],
            f"<= 0.35x time, <= {NOT_DUE_PEAK_MIB} MiB",
            0.35,
            NOT_DUE_PEAK_MIB,
        ),
    ]


def _fleet_skip(server: object, root: Path, runs: int) -> dict[str, Measurement]:
    """The file skip path and the database skip path side by side, each behind a check downloading 50 MB."""
    folder = root / "fleet-skip"
    url = server.create_database("fleet_skip")  # type: ignore[attr-defined]
    with (
        FeedServer(make_items(1, size_bytes=50_000_000), bytes_per_second=20_000) as feed,
        FeedServer(make_items(1, size_bytes=10_000, prefix="quiet")) as quiet_feed,
    ):
        file_folder = folder / "file"
        file_folder.mkdir(parents=True)
        file_config = write_config(file_folder, feed.feed_url)
        downloads = folder / "downloads"
        holder_config = _fleet_config(folder / "holder", url, "holder", downloads, [feed.feed_url])
        skipper_config = _fleet_config(folder / "skipper", url, "skipper", downloads, [feed.feed_url])
        subprocess.run([COMMAND, "db", "migrate", "--config", str(holder_config)], check=True, capture_output=True)
        # A host of a collection of its own (another download folder) that checked it moments ago: not due.
        quiet_config = _fleet_config(folder / "quiet", url, "quiet", folder / "quiet-downloads", [quiet_feed.feed_url])
        subprocess.run([COMMAND, "check", "--config", str(quiet_config)], check=True, capture_output=True)
        holders = [
            subprocess.Popen(
                [COMMAND, "check", "--now", "--config", str(config)],
                cwd=config.parent,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for config in (file_config, holder_config)
        ]
        try:
            while len(feed.requests_for("/media/")) < 2:  # both are downloading
                time.sleep(0.05)
            time.sleep(1)  # let them settle into downloading
            return measure_interleaved(
                {
                    "floor": [sys.executable, "-c", "import structlog, portalocker"],
                    "file": [COMMAND, "check", "--now", "--config", str(file_config)],
                    "database": [COMMAND, "check", "--now", "--config", str(skipper_config)],
                    "not due": [COMMAND, "check", "--config", str(quiet_config)],
                },
                folder,
                runs,
            )
        finally:
            for holder in holders:
                holder.kill()
                holder.wait()


RECORDS_PLAYLISTS = 10_000
ARCHIVE_ROWS = 1_000_000
ARCHIVED_FEED_ITEMS = 200
STATUS_TIME_S = 0.5
STATUS_PEAK_MIB = 50
ARCHIVE_PEAK_MARGIN_MIB = 20


def bench_fleet_records(root: Path, runs: int) -> list[Row]:
    """A fleet's records in their rows: `status` of 10,000 playlists, and a check against a 1,000,000-row archive
    side by side with the file backend (the same archive, and one holding the feed's lines alone)."""
    server = _postgres_server()
    if server is None:
        return []
    try:
        return _fleet_status(server, root, runs) + _fleet_archive(server, root, runs)
    finally:
        server.__exit__(None, None, None)  # type: ignore[attr-defined]


def _fleet_status(server: object, root: Path, runs: int) -> list[Row]:
    """`status` of a collection of 10,000 playlists, each with its read record in its row, and 100 failed videos."""
    url = server.create_database("fleet_status")  # type: ignore[attr-defined]
    urls = [f"https://example.com/playlist/{n:05d}" for n in range(RECORDS_PLAYLISTS)]
    config = _fleet_config(root / "fleet-status", url, "host0", root / "fleet-status-downloads", urls)
    subprocess.run([COMMAND, "db", "migrate", "--config", str(config)], check=True, capture_output=True)
    collection = str(root / "fleet-status-downloads")
    now_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    # A record as a feed read leaves it (about 550 bytes of JSON, as measured in the issue: 5.5 MB for 10,000).
    server.execute(  # type: ignore[attr-defined]
        "INSERT INTO playlist_cron_playlists (collection, url, due_at, last_checked_at, read_record) "
        "SELECT %(collection)s, 'https://example.com/playlist/' || lpad(n::text, 5, '0'), now() + interval '1 hour', "
        "now(), jsonb_build_object('version', 1, 'record', jsonb_build_object("
        "'feed_url', 'https://www.youtube.com/feeds/videos.xml?channel_id=UC' || md5(n::text), "
        "'etag', '\"' || md5(n::text) || '\"', 'last_modified', 'Mon, 01 Dec 2026 12:00:00 GMT', "
        "'last_feed_read_at', %(now_at)s::text, 'last_full_read_at', %(now_at)s::text, 'last_feed_error', null, "
        "'channel_id', 'UC' || md5(n::text), 'is_feed', false, 'playlist_fields', jsonb_build_object("
        "'playlist', 'Uploads from channel ' || n, 'playlist_title', 'Uploads from channel ' || n, "
        "'playlist_id', 'UU' || md5(n::text), 'channel', 'Channel ' || n, 'uploader', 'Channel ' || n))) "
        "FROM generate_series(0, %(last)s) AS n",
        {"collection": collection, "now_at": now_at, "last": RECORDS_PLAYLISTS - 1},
        database="fleet_status",
    )
    server.execute(  # type: ignore[attr-defined]
        "INSERT INTO playlist_cron_failed_videos (collection, video, record) "
        "SELECT %(collection)s, 'youtube v' || n, jsonb_build_object('version', 1, 'record', jsonb_build_object("
        "'video_id', 'v' || n, 'attempts', 1, 'first_failed_at', %(now_at)s::text, 'last_failed_at', %(now_at)s::text, "
        "'next_retry_at', %(now_at)s::text, 'error', 'HTTP Error 404', 'given_up', false)) "
        "FROM generate_series(1, 100) AS n",
        {"collection": collection, "now_at": now_at},
        database="fleet_status",
    )
    status = [COMMAND, "status", "--json", "--config", str(config)]
    code = run_once(status, config.parent)[2]
    if code not in (0, 1):
        raise SystemExit(f"fleet status: exited {code}")
    measured = measure_interleaved(
        {"floor": [sys.executable, "-c", "import structlog, portalocker"], "status": status},
        config.parent,
        runs,
        expect_codes={"status": code},
    )
    server.drop_database("fleet_status")  # type: ignore[attr-defined]
    return [
        Row("floor: python -c 'import structlog, portalocker'", measured["floor"], None, "baseline", None),
        Row(
            f"fleet: status, {RECORDS_PLAYLISTS:,} playlists' records in their rows, 100 failed videos",
            measured["status"],
            measured["floor"],
            f"< {STATUS_TIME_S} s and {STATUS_PEAK_MIB} MiB",
            None,
            peak_limit_mib=STATUS_PEAK_MIB,
            time_limit_s=STATUS_TIME_S,
        ),
    ]


def _fleet_archive(server: object, root: Path, runs: int) -> list[Row]:
    """A check reading a 200-item feed, every item archived: the file backend with the feed's lines alone, the file
    backend with 1,000,000 lines, the database with 1,000,000 rows (looked up by key, one batch)."""
    url = server.create_database("fleet_archive")  # type: ignore[attr-defined]
    items = make_items(ARCHIVED_FEED_ITEMS, size_bytes=1000)
    with FeedServer(items, **without_validators()) as feed:  # a 200 at every read: its entries are looked up
        commands: dict[str, list[str]] = {}
        for side in ("file-small", "file-big"):
            folder = root / f"archive-{side}"
            folder.mkdir()
            with open(folder / "archive.txt", "w") as archive:
                for number in range(ARCHIVE_ROWS - ARCHIVED_FEED_ITEMS if side == "file-big" else 0):
                    archive.write(f"youtube filler{number:07d}\n")
                archive.write("".join(f"generic {item.guid}\n" for item in items))
            config = write_config(folder, feed.feed_url, check_interval_seconds=FULL_SCAN_INTERVAL_S)
            commands[side] = [COMMAND, "check", "--now", "--config", str(config)]
        downloads = root / "archive-database-downloads"
        config = _fleet_config(root / "archive-database", url, "host0", downloads, [feed.feed_url])
        subprocess.run([COMMAND, "db", "migrate", "--config", str(config)], check=True, capture_output=True)
        collection = str(downloads)
        server.execute(  # type: ignore[attr-defined]
            "INSERT INTO playlist_cron_archive (collection, extractor, video_id) "
            "SELECT %s, 'youtube', 'filler' || lpad(n::text, 7, '0') FROM generate_series(0, %s) AS n",
            (collection, ARCHIVE_ROWS - ARCHIVED_FEED_ITEMS - 1),
            database="fleet_archive",
        )
        lines = root / "archive-database" / "feed-lines.txt"
        lines.write_text("".join(f"generic {item.guid}\n" for item in items))
        subprocess.run(
            [COMMAND, "db", "import-archive", str(lines), "--config", str(config)], check=True, capture_output=True
        )
        server.execute("VACUUM ANALYZE playlist_cron_archive", database="fleet_archive")  # type: ignore[attr-defined]
        commands["database"] = [COMMAND, "check", "--now", "--config", str(config)]
        measured = measure_interleaved(commands, root, runs)
    for argv in commands.values():  # each check read the feed whole and found every entry archived
        log = Path(argv[-1]).parent / "logs" / "downloader.log"
        last = [json.loads(line) for line in log.read_text().splitlines() if '"check_completed"' in line][-1]
        [read] = last["playlists"]
        if (read["read"], read["already_archived"], read["downloaded"]) != ("feed", ARCHIVED_FEED_ITEMS, 0):
            raise SystemExit(f"fleet archive: a check did not read as measured: {read}")
    server.drop_database("fleet_archive")  # type: ignore[attr-defined]
    small, big, database = measured["file-small"], measured["file-big"], measured["database"]
    limit_mib = small.median_kib / 1024 + ARCHIVE_PEAK_MARGIN_MIB
    return [
        Row(
            f"check, files: a {ARCHIVED_FEED_ITEMS}-item feed all archived, archive of those lines alone",
            small,
            None,
            "baseline (memory)",
            None,
        ),
        Row(f"check, files: the same, {ARCHIVE_ROWS:,}-line archive", big, None, "baseline (time)", None),
        Row(
            f"check, database: the same, {ARCHIVE_ROWS:,}-row archive (vs files, same archive)",
            database,
            big,
            f"<= 1.2x time, peak <= {limit_mib:.0f} MiB (files' with no archive + {ARCHIVE_PEAK_MARGIN_MIB})",
            1.2,
            peak_limit_mib=limit_mib,
        ),
    ]


CLAIM_PLAYLISTS = int(os.environ.get("BENCH_CLAIM_PLAYLISTS", "10000"))
CLAIM_ARCHIVE_ROWS = int(os.environ.get("BENCH_CLAIM_ARCHIVE_ROWS", "1000000"))
CLAIM_FAILED_VIDEOS = 500
CLAIM_BATCH = 8  # parallel_reads
CLAIM_ENTRIES = 200  # a playlist's entries looked up in the archive at once, three in four of them archived
# Below this, a statement's time at the last claim meets the target whatever its ratio to the first: 0.02 ms
# against 0.05 ms is the server's noise, not growth.
CLAIM_FLOOR_MS = 0.1


def bench_claims(root: Path, runs: int) -> list[Row]:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement a fleet's check sends (tests/fleet_statements.py lists them),
    with 10,000 playlists and a 1,000,000-row archive, at the check's first claim and at its last, after it has
    claimed and released all the others: each one's plan and time; no statement sent per claim, playlist or video
    scans a big table, and each sent at the last claim takes at most 2x its time at the first (or under the floor)."""
    server = _postgres_server()
    if server is None:
        return []
    try:
        return _bench_claims(server, runs)
    finally:
        server.__exit__(None, None, None)  # type: ignore[attr-defined]


def _bench_claims(server: object, runs: int) -> list[Row]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import fleet_statements

    url = server.create_database("claims")  # type: ignore[attr-defined]
    started_s = time.perf_counter()
    loaded = fleet_statements.load(url, "bench", CLAIM_PLAYLISTS, CLAIM_ARCHIVE_ROWS, CLAIM_FAILED_VIDEOS)
    loaded_s = time.perf_counter() - started_s
    _, last, at_first, at_last = fleet_statements.first_and_last(loaded, CLAIM_BATCH, CLAIM_ENTRIES, runs)
    server.drop_database("claims")  # type: ignore[attr-defined]
    print(
        f"claims: {CLAIM_PLAYLISTS:,} playlists, {CLAIM_ARCHIVE_ROWS:,} archive rows and {CLAIM_FAILED_VIDEOS} "
        f"failed videos loaded in {loaded_s:.1f} s; the whole case {time.perf_counter() - started_s:.1f} s",
        file=sys.stderr,
    )
    sent_last = fleet_statements.names_of([last])
    rows = []
    for statement in fleet_statements.STATEMENTS:
        if statement.name not in at_first or statement.name in fleet_statements.NOT_EXPLAINABLE:
            continue  # ANALYZE, after the list's rows are made: EXPLAIN takes no utility statement
        explained_first, explained_last = at_first[statement.name], at_last[statement.name]
        first_ms, last_ms = explained_first.median_ms, explained_last.median_ms
        flagged = {**explained_first.scanned, **explained_last.scanned}
        few = fleet_statements.FEW_ROWS
        named = [f"{table} ({rows:,} rows)" for table, rows in sorted(flagged.items()) if rows > few]
        scans = f"; Seq Scan of {', '.join(named)}" if named else ""
        at_first_row = Measurement(statement.name, [ms / 1000 for ms in explained_first.times_ms], [0] * runs)
        at_last_row = Measurement(statement.name, [ms / 1000 for ms in explained_last.times_ms], [0] * runs)
        rows.append(
            Row(
                f"{statement.name} ({statement.sent}), first claim ({first_ms:.3f} ms): {explained_first.shape}",
                at_first_row,
                None,
                "baseline",
                None,
            )
        )
        plan = "the same plan" if explained_last.shape == explained_first.shape else explained_last.shape
        case = f"{statement.name}, last claim, {last.done:,} done ({last_ms:.3f} ms{scans}): {plan}"
        if statement.name not in sent_last:  # sent at a check's start, or when its list changes: not at its last claim
            rows.append(Row(case, at_last_row, at_first_row, "for reference (not sent at the last claim)", None))
            continue
        target = f"<= 2x time (or <= {CLAIM_FLOOR_MS} ms)"
        problems = explained_first.problems() + explained_last.problems()
        if problems:
            target += f", NOT MET: {'; '.join(sorted(set(problems)))}"
        limit = max(2.0, CLAIM_FLOOR_MS / first_ms) if first_ms else 2.0
        rows.append(Row(case, at_last_row, at_first_row, target, limit))
    return rows


CHANNELS = 1000
CHANNEL_DELAY_S = 0.1  # a far server's round trip
CHANNEL_RUNS = 3  # at most, after the warm-up: at 1,000 channels one unchanged check takes about two minutes today
PARALLEL_READS = 8
UNCHANGED_S_PER_1000 = 20.0  # the target for an unchanged check of 1,000 channels with parallel_reads 8
NEW_UPLOADS = 10  # published across the channels, spread over them, before each check of the new-uploads case
NEW_UPLOAD_BYTES = 500_000
ONE_HOUR = timedelta(hours=1)


def accepts_parallel_reads() -> bool:
    """Whether the installed playlist-cron's config has the key `parallel_reads` (reads of playlists in parallel)."""
    from playlist_cron import config

    return "parallel_reads" in getattr(config, "KEYS", {})


def bench_channels(root: Path, runs: int, channels: int = CHANNELS, delay_s: float = CHANNEL_DELAY_S) -> list[Row]:
    """Many RSS channel feeds: the first check (`--mark-archived`) against yt-dlp's listing of the same feeds, with
    the server answering at once; then checks where nothing changed, each request held `delay_s`, against the same
    check of one channel."""
    runs = min(runs, CHANNEL_RUNS)
    return [*_first_check(root, runs, channels), *_unchanged_checks(root, runs, channels, delay_s)]


def _first_check(root: Path, runs: int, channels: int) -> list[Row]:
    with ExitStack() as stack:
        servers = {side: stack.enter_context(FeedServer(channels=channels)) for side in ("listing", "first")}
        listing_folder, first_folder = root / "channels-listing", root / "channels-first"
        listing_folder.mkdir()
        (listing_folder / "urls.txt").write_text("\n".join(servers["listing"].channel_urls) + "\n")
        config = _channels_config(first_folder, servers["first"].channel_urls)

        def fresh() -> None:
            for name in ("archive.txt", "state", "logs", "downloads"):
                path = first_folder / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()

        print(f"channels: the first check of {channels} feeds, and yt-dlp listing them ...", file=sys.stderr)
        measured = measure_interleaved(
            {
                "listing": [YT_DLP, "--flat-playlist", "-a", "urls.txt"],
                "first": [COMMAND, "check", "--mark-archived", "--config", str(config)],
            },
            listing_folder,
            runs,
            before_each={"first": fresh},
        )
        for side, server in servers.items():
            _count_channel_requests(measured[side], server, runs + 1)
    return [
        Row(
            f"yt-dlp --flat-playlist -a urls.txt: {channels:,} channel feeds, answered at once",
            measured["listing"],
            None,
            "baseline",
            None,
        ),
        Row(
            "first check (--mark-archived) of the same feeds",
            measured["first"],
            measured["listing"],
            "<= 1.0x time",
            1.0,
        ),
    ]


def _unchanged_checks(root: Path, runs: int, channels: int, delay_s: float) -> list[Row]:
    parallel = accepts_parallel_reads()
    sides = {"one": 1, "default": channels, **({"parallel": channels} if parallel else {})}
    with ExitStack() as stack:
        servers = {side: stack.enter_context(FeedServer(channels=count)) for side, count in sides.items()}
        commands = {}
        for side, count in sides.items():
            server, folder = servers[side], root / f"channels-{side}"
            extra = {"parallel_reads": PARALLEL_READS} if side == "parallel" else {}
            config = _channels_config(folder, server.channel_urls, **extra)
            # Answered at once: the check that records every video as archived and learns each feed's validators.
            print(f"channels: a first check of {count} feeds to start from ({side}) ...", file=sys.stderr)
            argv = [COMMAND, "check", "--mark-archived", "--config", str(config)]
            subprocess.run(argv, check=True, cwd=folder, stdout=subprocess.DEVNULL)
            commands[side] = [COMMAND, "check", "--now", "--config", str(config)]
            server.settings.delay_s = delay_s
            server.reset_counts()
            server.requests.clear()
        print(
            f"channels: checks of {channels} feeds, nothing new, {delay_s * 1000:g} ms a request ...", file=sys.stderr
        )
        measured = measure_interleaved(commands, root, runs)
        checks = runs + 1
        for side, server in servers.items():
            _count_channel_requests(measured[side], server, checks)
    delay = f"{delay_s * 1000:g} ms a request"
    rows = [
        Row(f"unchanged check, 1 channel, {delay}", measured["one"], None, "baseline", None),
        Row(
            f"unchanged check, {channels:,} channels, {delay}, default settings",
            measured["default"],
            measured["one"],
            "for reference: 1 request per channel",
            None,
        ),
    ]
    if parallel:
        limit_s = UNCHANGED_S_PER_1000 * channels / 1000
        rows.append(
            Row(
                f"unchanged check, same, parallel_reads {PARALLEL_READS}",
                measured["parallel"],
                measured["one"],
                f"<= {limit_s:g} s ({UNCHANGED_S_PER_1000:g} s per 1,000 channels), 1 request per channel, "
                f"<= {PARALLEL_READS} in flight",
                None,
                time_limit_s=limit_s,
            )
        )
    else:
        print("channels: this playlist-cron has no parallel_reads: the row with it is left out", file=sys.stderr)
    for row, side in zip(rows, sides, strict=True):
        misses = _unchanged_misses(servers[side], measured[side], PARALLEL_READS if side == "parallel" else None)
        if misses:
            row.target += f" (NOT MET: {misses})"
    if parallel:
        with FeedServer(channels=channels, delay_s=delay_s) as server:
            rows += _new_uploads(root, runs, server, measured["parallel"], measured["one"])
    return rows


def _new_uploads(root: Path, runs: int, server: FeedServer, unchanged: Measurement, one: Measurement) -> list[Row]:
    """NEW_UPLOADS new videos, one in each of as many channels spread over `server`'s, published before each round:
    a check of every channel (`parallel_reads` PARALLEL_READS) downloads them all, and so does a check of those
    channels alone, in the same round, whose time less an unchanged check of one channel is the downloads' own."""
    count = len(server.channel_urls)
    chosen = [1 + index * count // NEW_UPLOADS for index in range(NEW_UPLOADS)]
    folders = {"ten": root / "channels-new-ten", "all": root / "channels-new-all"}
    urls = {"ten": [server.channel_url(number) for number in chosen], "all": server.channel_urls}
    commands = {}
    print(
        f"channels: {NEW_UPLOADS} new uploads across {count} channels, a first check of each side ...", file=sys.stderr
    )
    delay_s, server.settings.delay_s = server.settings.delay_s, 0.0
    for side, folder in folders.items():
        config = _channels_config(folder, urls[side], parallel_reads=PARALLEL_READS)
        subprocess.run([COMMAND, "check", "--mark-archived", "--config", str(config)], check=True, cwd=folder)
        commands[side] = [COMMAND, "check", "--now", "--config", str(config)]
    server.settings.delay_s = delay_s
    published = [0]

    def publish() -> None:
        published[0] += 1
        for number in chosen:
            channel = server.channel(number)
            newest = max(item.published for item in channel.items if item.published)
            channel.items.insert(
                0,
                FeedItem(
                    guid=f"channel{number:05d}-new-{published[0]:03d}",
                    title=f"New upload {published[0]}",
                    size_bytes=NEW_UPLOAD_BYTES,
                    published=newest + ONE_HOUR,
                ),
            )

    lines_before = {side: _archive_count(folder) for side, folder in folders.items()}
    measured = measure_interleaved(commands, root, runs, before_each={"ten": publish})
    misses = [
        f"{side}: {_archive_count(folder) - lines_before[side]} downloaded, expected {NEW_UPLOADS * (runs + 1)}"
        for side, folder in folders.items()
        if _archive_count(folder) - lines_before[side] != NEW_UPLOADS * (runs + 1)
    ]
    own_s = max(measured["ten"].median_s - one.median_s, 0.0)
    limit_s = (unchanged.median_s + own_s) * 1.10
    target = f"<= {limit_s:.1f} s: unchanged {unchanged.median_s:.1f} s + the downloads' own {own_s:.1f} s, + 10%"
    return [
        Row(
            f"{NEW_UPLOADS} new uploads ({NEW_UPLOAD_BYTES // 1000} kB each), their {NEW_UPLOADS} channels alone",
            measured["ten"],
            None,
            "the downloads' own cost (less the unchanged check of one channel)",
            None,
        ),
        Row(
            f"{NEW_UPLOADS} new uploads across {count:,} channels, parallel_reads {PARALLEL_READS}",
            measured["all"],
            None,
            target + (f" (NOT MET: {'; '.join(misses)})" if misses else ""),
            None,
            time_limit_s=limit_s,
        ),
    ]


def _archive_count(folder: Path) -> int:
    archive = folder / "archive.txt"
    return len(archive.read_text().splitlines()) if archive.exists() else 0


def _channels_config(folder: Path, urls: list[str], **extra: object) -> Path:
    """A config of one playlist per channel feed, the paths to their defaults in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.json"
    config.write_text(json.dumps({"playlists": urls, "min_free_bytes": 0, "output_template": TEMPLATE, **extra}))
    return config


def _count_channel_requests(measurement: Measurement, server: FeedServer, checks: int) -> None:
    """Put into the measurement the requests per check, per channel, and the most in flight, as the server saw."""
    counts = server.counts()
    per_channel = [
        counts.by_path.get(f"/channel/{number}/feed", 0) / checks for number in range(1, len(server.channel_urls) + 1)
    ]
    low, high = min(per_channel), max(per_channel)
    measurement.requests = counts.total // checks
    measurement.per_channel = f"{low:g}" if low == high else f"{low:g}-{high:g}"
    measurement.max_in_flight = counts.max_in_flight


def _unchanged_misses(server: FeedServer, measurement: Measurement, bound: int | None) -> str:
    """What an unchanged check did that it should not: more or fewer than one request per channel, an answer
    other than 304, more than `bound` in flight; empty when nothing."""
    misses = []
    if measurement.per_channel != "1" or measurement.requests != len(server.channel_urls):
        misses.append(f"{measurement.per_channel} requests per channel, {measurement.requests} in all")
    statuses = sorted({record.status for record in server.requests})
    if statuses != [304]:
        misses.append(f"answers {statuses}")
    if bound is not None and (measurement.max_in_flight or 0) > bound:
        misses.append(f"{measurement.max_in_flight} in flight")
    return "; ".join(misses)


REPORT_TIME_S = 2.0
REPORT_PEAK_MIB = 150
REPORT_PAGE_BYTES = 2_000_000


def bench_report(root: Path, runs: int) -> list[Row]:
    """`report` of a generated 30-day log (tests/report_logs.py), against reading the same file with json.loads."""
    import importlib.util

    if importlib.util.find_spec("playlist_cron.report") is None:
        print("report: playlist_cron.report is not installed here; nothing measured", file=sys.stderr)
        return []
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from report_logs import write_month_log

    folder = root / "report"
    folder.mkdir()
    month = write_month_log(folder / "logs" / "downloader.log")
    config = folder / "config.json"
    config.write_text(json.dumps({"playlist_url": "http://127.0.0.1:9/feed.xml", "min_free_bytes": 0}))
    page = folder / "report.html"
    reader = "import json, gzip, sys\nwith open(sys.argv[1]) as log:\n    for line in log:\n        json.loads(line)"
    measured = measure_interleaved(
        {
            "floor": [sys.executable, "-c", reader, str(month.path)],
            "report": [COMMAND, "report", "--since", "31d", "--output", str(page), "--config", str(config)],
        },
        folder,
        runs,
    )
    size = page.stat().st_size
    log_mb = month.path.stat().st_size / 1e6
    target = f"<= {REPORT_TIME_S:g} s, <= {REPORT_PEAK_MIB} MiB, page < 2 MB"
    if size >= REPORT_PAGE_BYTES:
        target += " (page NOT MET)"
    return [
        Row(
            f"floor: json.loads of every line of a 30-day log ({month.lines:,} lines, {log_mb:.1f} MB)",
            measured["floor"],
            None,
            "baseline",
            None,
        ),
        Row(
            f"report of the same ({month.checks:,} checks, --since 31d): page {size / 1e6:.2f} MB",
            measured["report"],
            measured["floor"],
            target,
            None,
            peak_limit_mib=REPORT_PEAK_MIB,
            time_limit_s=REPORT_TIME_S,
        ),
    ]


BIG_PLAYLISTS = 10_000
BIG_PEAK_MIB = 200
# In a fresh process, as a check would: load the config, read the state, change it once (read, validate, write).
BIG_PROBE = """
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from playlist_cron import config, state
imported = time.perf_counter()
loaded = config.load(Path(sys.argv[1]))
configured = time.perf_counter()
store = state.StateStore.for_config(loaded)
store.read()
read = time.perf_counter()
with store.update() as changed:
    changed["completed_total"] += 1
    if hasattr(loaded, "digest"):  # as a check notes it: the config's bytes found sound
        changed["config_digest"] = loaded.digest
written = time.perf_counter()
timings = {"config": configured - imported, "read": read - configured, "update": written - read}
if hasattr(store, "update_reads"):  # the read records in a file of their own (state version 2)
    store.read_reads()
    records_read = time.perf_counter()
    with store.update_reads() as records:
        next(iter(records.values()))["last_feed_read_at"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    timings |= {"reads read": records_read - written, "reads update": time.perf_counter() - records_read}
print(json.dumps(timings | {"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
# Holds the run lock as a check does (the lock file names its pid and start), until its stdin closes.
LOCK_HOLDER = (
    "import sys; from pathlib import Path; from playlist_cron import lock; "
    "held = lock.try_lock(Path(sys.argv[1])); print('held' if held else 'busy', flush=True); sys.stdin.read()"
)


def _youtube_channels(count: int, now_s: float) -> tuple[list[str], dict[str, dict[str, object]]]:
    """`count` YouTube channel URLs and the records a check leaves for each after a full read and a feed read."""
    from playlist_cron import clock

    urls, records = [], {}
    for number in range(count):
        channel_id = f"UC{number:022d}"
        url = f"https://www.youtube.com/channel/{channel_id}"
        title = f"Channel number {number}"
        urls.append(url)
        records[url] = {
            "feed_url": f"https://www.youtube.com/feeds/videos.xml?channel_id={channel_id}",
            "etag": f'"{number:08x}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"',
            "last_modified": "Tue, 01 Dec 2026 12:00:00 GMT",
            "last_feed_read_at": clock.iso(now_s - 30),
            "last_feed_error": None,
            "last_full_read_at": clock.iso(now_s - number % 360 * 60),
            "channel_id": channel_id,
            "is_feed": None,
            "playlist_fields": {
                "playlist": f"{title} - Videos",
                "playlist_id": channel_id,
                "playlist_title": f"{title} - Videos",
                "playlist_uploader": title,
                "playlist_uploader_id": f"@channel{number}",
                "playlist_channel": title,
                "playlist_channel_id": channel_id,
                "playlist_webpage_url": f"{url}/videos",
            },
        }
    return urls, records


def _big_folder(folder: Path, playlists: list[object], records: dict[str, dict[str, object]], **extra: object) -> Path:
    """A config of these playlists and its state as after a check moments ago: a record for each playlist."""
    from playlist_cron import clock, state

    folder.mkdir()
    config = folder / "config.json"
    config.write_text(json.dumps({"playlists": playlists, "min_free_bytes": 0, **extra}, indent=2))
    (folder / "state").mkdir(mode=0o700)
    now_at = clock.iso(time.time() - 5)
    counters = {"checks_total": 1, "completed_total": 1, "last_check_at": now_at, "last_outcome": "COMPLETED"}
    # In the layout of the state's version 1 (its records inside), which every release reads: written once by the
    # code under test, so that the files are as a check leaves them (their layout, the `.prev`, the config's digest).
    full = state.empty() | counters | {"last_completed_at": now_at, "playlists": records, "version": 1}
    (folder / "state" / "config.state.json").write_text(json.dumps(full))
    subprocess.run([sys.executable, "-c", BIG_PROBE, str(config)], check=True, stdout=subprocess.DEVNULL)
    return config


def _probe_measurements(config: Path, runs: int) -> dict[str, Measurement]:
    """Run BIG_PROBE `runs` times after a warm-up; its timings, each with the probe's peak memory."""
    measured = {name: Measurement(name) for name in ("config", "read", "update", "reads read", "reads update")}
    for attempt in range(runs + 1):
        result = subprocess.run(
            [sys.executable, "-c", BIG_PROBE, str(config)], check=True, capture_output=True, text=True
        )
        timings = json.loads(result.stdout)
        if attempt:
            for name, measurement in measured.items():
                if name in timings:
                    measurement.wall_s.append(timings[name])
                    measurement.peak_kib.append(timings["peak_kib"])
    return measured


def bench_big(root: Path, runs: int) -> list[Row]:
    """10,000 playlists in one config, with a state record for each: the not-due and skip paths beside the floor
    (and beside the same paths with one playlist), the state's read and change, the config's load, and a check."""
    now_s = time.time()
    urls, records = _youtube_channels(BIG_PLAYLISTS, now_s)
    big = _big_folder(root / "big-10000", urls, records, check_interval_seconds=3600)
    one = _big_folder(root / "big-1", urls[:1], {urls[0]: records[urls[0]]}, check_interval_seconds=3600)
    state_mib = (
        sum(path.stat().st_size for path in (big.parent / "state").glob("config.*.json")) / 2**20
    )  # the state file, and the read records' file beside it when the installed version has one
    with ExitStack() as stack:
        for config in (big, one):
            holder = subprocess.Popen(
                [sys.executable, "-c", LOCK_HOLDER, str(config.parent / "archive.txt.lock")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            stack.callback(holder.wait)
            stack.callback(holder.stdin.close)  # type: ignore[union-attr]
            if holder.stdout is None or holder.stdout.readline() != "held\n":
                raise SystemExit("big: the lock holder could not take the lock")
        measured = measure_interleaved(
            {
                "floor": [sys.executable, "-c", "import structlog, portalocker"],
                "not due": [COMMAND, "check", "--config", str(big)],
                "skip": [COMMAND, "check", "--now", "--config", str(big)],
                "not due, 1": [COMMAND, "check", "--config", str(one)],
                "skip, 1": [COMMAND, "check", "--now", "--config", str(one)],
            },
            root,
            runs,
        )
    probe = _probe_measurements(big, runs)
    floor = measured["floor"]
    rows = [
        Row("floor: python -c 'import structlog, portalocker'", floor, None, "baseline", None),
        Row(
            f"not-due path, {BIG_PLAYLISTS:,} playlists (state file {state_mib:.1f} MiB)",
            measured["not due"],
            floor,
            f"<= 0.35x time, <= {NOT_DUE_PEAK_MIB} MiB",
            0.35,
            NOT_DUE_PEAK_MIB,
        ),
        Row("not-due path, 1 playlist, same rounds", measured["not due, 1"], floor, "for reference", None),
        Row(
            f"skip path, {BIG_PLAYLISTS:,} playlists (lock held by a check's record)",
            measured["skip"],
            floor,
            "<= 1.10x time and memory",
            1.10,
        ),
        Row("skip path, 1 playlist, same rounds", measured["skip, 1"], floor, "for reference", None),
        Row(f"in-process: config load, {BIG_PLAYLISTS:,} playlists", probe["config"], None, "for reference", None),
        Row("in-process: state read (parse, validate)", probe["read"], None, "for reference", None),
        Row(
            "in-process: state change (read, validate, write, fsync)",
            probe["update"],
            None,
            "<= 0.5 s",
            None,
            time_limit_s=0.5,
        ),
    ]
    if probe["reads update"].wall_s:
        rows += [
            Row("in-process: read records' read (parse, validate)", probe["reads read"], None, "for reference", None),
            Row(
                "in-process: read records' change, once per check (read, validate, write, fsync)",
                probe["reads update"],
                None,
                "<= 0.5 s",
                None,
                time_limit_s=0.5,
            ),
        ]
    return rows + _big_check(root, runs)


def _big_check(root: Path, runs: int) -> list[Row]:
    """A check of 10,000 loopback playlists whose feeds answer 304 (nothing new): its time and peak memory."""
    from playlist_cron import clock

    items = make_items(FEED_ITEMS, size_bytes=1000)
    with FeedServer(items) as server:
        with urllib.request.urlopen(f"{server.feed_url}?feed=0") as answer:
            etag, last_modified = answer.headers["ETag"], answer.headers["Last-Modified"]
        entries, records = [], {}
        for number in range(BIG_PLAYLISTS):
            url, feed_url = f"{server.feed_url}?playlist={number}", f"{server.feed_url}?feed={number}"
            entries.append({"url": url, "feed_url": feed_url})
            records[url] = {
                "feed_url": feed_url,
                "etag": etag,
                "last_modified": last_modified,
                "last_feed_read_at": clock.iso(time.time() - 60),
                "last_full_read_at": clock.iso(time.time() - 60),
                "playlist_fields": {"playlist_title": "Loopback Channel"},
            }
        # The feed alone (no full read falls due while measuring), as after a check of each.
        config = _big_folder(root / "big-check", entries, records, full_scan_interval_seconds=0)
        _archive_items(config.parent, items)
        checks = runs if runs <= 3 else 3  # about 15 s each
        server.requests.clear()
        measured = measure(
            f"check, {BIG_PLAYLISTS:,} playlists", [COMMAND, "check", "--now", "--config", str(config)], root, checks
        )
        statuses = {record.status for record in server.requests}
        if len(server.requests) != BIG_PLAYLISTS * (checks + 1) or statuses != {304}:
            raise SystemExit(f"big: {len(server.requests)} requests in {checks + 1} checks, statuses {statuses}")
        measured.requests = BIG_PLAYLISTS
    return [
        Row(
            f"check of {BIG_PLAYLISTS:,} loopback playlists, feeds unchanged (304), {checks} runs",
            measured,
            None,
            f"peak <= {BIG_PEAK_MIB} MiB",
            None,
            peak_limit_mib=BIG_PEAK_MIB,
        ),
    ]


CASES = {
    "skip": bench_skip_and_not_due,
    "archived": bench_all_archived,
    "downloads": bench_downloads,
    "stop": bench_stop_at_first_archived,
    "feeds": bench_feeds,
    "fleet": bench_fleet,
    "fleet_records": bench_fleet_records,
    "report": bench_report,
    "channels": bench_channels,
    "big": bench_big,
    "claims": bench_claims,
}
# Not in the default run: at 1,000 channels the case takes about a quarter of an hour (`--channels` makes it shorter).
DEFAULT_CASES = [name for name in CASES if name != "channels"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="measured runs of each command, after one warm-up")
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_CASES),
        help=f"a comma-separated subset of {', '.join(CASES)} (default: all but channels)",
    )
    parser.add_argument("--channels", type=int, default=CHANNELS, help="the channels case's number of channel feeds")
    parser.add_argument(
        "--delay-ms", type=float, default=CHANNEL_DELAY_S * 1000, help="the channels case's wait before each answer"
    )
    arguments = parser.parse_args()
    if not shutil.which("flock"):
        raise SystemExit("flock(1) (util-linux) is needed")
    # As a regular install would, compile the package first: without bytecode (PYTHONDONTWRITEBYTECODE, or an
    # editable install never run before) every run would compile it from source.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).parent.parent / "src")], check=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="playlist-cron-bench-") as temporary:
        root = Path(temporary)
        for name in arguments.only.split(","):
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            if name == "channels":
                rows.extend(bench_channels(root, arguments.runs, arguments.channels, arguments.delay_ms / 1000))
            else:
                rows.extend(CASES[name](root, arguments.runs))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"playlist-cron benchmarks, {stamp}, {arguments.runs} runs per command after a warm-up, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n"
    )
    print(table(rows))
    missed = [row.case for row in rows if "| NO |" in table([row])]
    missed += [row.case for row in rows if "NOT MET" in row.target and row.case not in missed]
    if missed:
        print(f"\nTargets missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
