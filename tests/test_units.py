"""Unit: pure pieces — exit-code mapping, the due clock, the feed server's Range parsing, state validation."""

from __future__ import annotations

import errno
import io
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from playlist_cron import clock, exit_codes, state
from playlist_cron.check_records import same_run
from playlist_cron.cli import main
from playlist_cron.demo.feed import _parse_range


def test_named_exit_codes_match_the_contract() -> None:
    assert (exit_codes.OK, exit_codes.FAILED, exit_codes.USAGE, exit_codes.CONFIG) == (0, 1, 2, 78)
    assert exit_codes.TEMPFAIL == 75
    assert exit_codes.for_signal(15) == 143
    assert exit_codes.for_signal(2) == 130


def test_cli_maps_usage_errors_to_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert main(["status", "--jsn"]) == 2
    assert main(["--version"]) == 0
    assert "playlist-cron" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("seconds_ago", "interval", "due"),
    [
        (None, 60, True),
        (61, 60, True),
        (60, 60, True),
        (55, 60, True),
        (53, 60, False),
        (1, 60, False),
        (290, 300, True),
        (289, 300, False),
        (0.95, 1, True),
        (0.85, 1, False),
        (-10_000, 60, True),
    ],
)
def test_due_clock_tolerates_cron_jitter(seconds_ago: float | None, interval: int, due: bool) -> None:
    now = time.time()
    saved = state.empty()
    if seconds_ago is not None:
        saved["last_check_at"] = clock.iso(now - seconds_ago)
    assert state.is_due(saved, interval, now)[0] is due


@pytest.mark.parametrize(
    ("config_name", "state_file_name"),
    [("config.json", "config.state.json"), ("foo.conf", "foo.conf.state.json"), ("music.json", "music.state.json")],
)
def test_each_config_has_a_state_file_named_after_it(config_name: str, state_file_name: str) -> None:
    assert state.state_file_name(Path("/srv") / config_name) == state_file_name


def test_iso_timestamps_round_trip_in_utc() -> None:
    moment = 1795929194.5
    text = clock.iso(moment)
    assert text == "2026-11-29T05:13:14.500Z"
    assert clock.parse_iso(text) == moment


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-", (0, 99)),
        ("bytes=10-19", (10, 19)),
        ("bytes=90-200", (90, 99)),
        ("bytes=-5", (95, 99)),
        ("items=1-2", None),
        ("bytes=x-", None),
    ],
)
def test_feed_server_parses_range_headers(header: str | None, expected: tuple[int, int] | None) -> None:
    assert _parse_range(header, 100) == expected


def test_state_validation_names_what_is_wrong() -> None:
    assert state.validate(state.empty()) == []
    broken = state.empty() | {"checks_total": -1, "version": 9, "failed_videos": [], "last_check_at": "noon"}
    del broken["completed_total"]
    broken["running"] = {"check": 0, "pid": 7}
    assert state.validate(broken) == [
        "version is 9, expected 2",
        "checks_total is -1, expected a whole number >= 0",
        "completed_total is missing",
        "last_check_at is 'noon', expected null or an ISO 8601 time with its offset (2026-01-31T12:00:00.000Z)",
        "running.check is 0, expected a check number >= 1",
        "running.started_at is missing",
        "failed_videos is [], expected an object of failed-video records",
    ]
    assert state.validate([]) == ["not a JSON object"]
    streak = state.empty() | {"network_failing_since": "last night", "network_failed_checks": True}
    assert state.validate(streak) == [
        "network_failing_since is 'last night', expected null or an ISO 8601 time with its offset "
        "(2026-01-31T12:00:00.000Z)",
        "network_failed_checks is True, expected a whole number >= 0",
    ]
    older_file = {key: value for key, value in state.empty().items() if not key.startswith("network_")}
    assert state.validate(older_file) == [], "a state file from before the streak fields is sound"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["check"], (None, False)),
        (["check", "--now"], (None, True)),
        (["check", "--config", "/x/c.json", "--now"], ("/x/c.json", True)),
        (["check", "--now", "--config=/x/c.json"], ("/x/c.json", True)),
        (["check", "--conf", "x"], None),  # an abbreviation: argparse decides
        (["check", "--config"], None),  # a mistake: argparse explains it
        (["check", "--mark-archived"], None),
        (["status"], None),
        (["check", "-h"], None),
    ],
)
def test_the_cron_line_is_parsed_without_argparse_and_anything_else_with_it(
    argv: list[str], expected: tuple[str | None, bool] | None
) -> None:
    from playlist_cron.cli import _parser, _quick_check_arguments

    quick = _quick_check_arguments(argv)
    if expected is None:
        assert quick is None
        return
    assert (quick.config, quick.now) == expected
    full = _parser().parse_args(argv)
    assert (full.config, full.now, full.mark_archived) == (quick.config, quick.now, quick.mark_archived)


def _raised(
    error: BaseException, wrapped_in: Callable[[BaseException], BaseException], *, chain: bool
) -> BaseException:
    """`error` wrapped the way yt-dlp wraps it, raised and caught for real, so that its chain is Python's own."""
    try:
        try:
            raise error
        except BaseException as inner:
            if chain:
                raise wrapped_in(inner) from inner
            raise wrapped_in(inner) from None
    except BaseException as outer:
        return outer


def _http_error(status: int, url: str = "https://www.youtube.com/watch?v=abc") -> BaseException:
    from yt_dlp.networking import Response
    from yt_dlp.networking.exceptions import HTTPError

    return HTTPError(Response(io.BytesIO(b""), url, {}, status=status))


@pytest.mark.parametrize(
    ("make_error", "kind", "message"),
    [
        (lambda: _http_error(429), "rate_limited", "HTTP 429 Too Many Requests from www.youtube.com"),
        (lambda: _http_error(404), "other", None),
        (lambda: _http_error(503), "network", "cannot reach www.youtube.com: it answered HTTP 503 Service Unavailable"),
        (lambda: OSError(errno.ENOSPC, "No space left on device"), "no_space", "No space left on device"),
        (lambda: OSError(errno.EDQUOT, "Disk quota exceeded"), "no_space", "Disk quota exceeded"),
        (
            lambda: ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
            "network",
            "cannot reach h.example: connection refused",
        ),
        (
            lambda: socket.gaierror(socket.EAI_NONAME, "nope"),
            "network",
            "cannot reach h.example: the name does not resolve",
        ),
        (lambda: TimeoutError("timed out"), "network", "cannot reach h.example: timed out"),
        (lambda: OSError(errno.ENETUNREACH, "x"), "network", "cannot reach h.example: the network is unreachable"),
        (lambda: ValueError("nginx-rate-limiting-guide-1: HTTP Error 429 Too Many Requests"), "other", None),
    ],
)
@pytest.mark.parametrize("wrapping", ["bare", "download_error", "extractor_error_cause", "raise_from"])
def test_failures_are_classified_from_types_statuses_and_errnos_however_wrapped(
    make_error: Callable[[], BaseException], kind: str, message: str | None, wrapping: str
) -> None:
    from yt_dlp.utils import DownloadError, ExtractorError

    from playlist_cron.failure_kinds import classify

    wrap: dict[str, Callable[[BaseException], BaseException]] = {
        "bare": lambda error: error,
        "download_error": lambda error: DownloadError("ERROR: no space left? rate limit!", sys.exc_info()),
        "extractor_error_cause": lambda error: ExtractorError("Unable to download webpage", cause=error),
        "raise_from": lambda error: RuntimeError("rate limit: no space left"),
    }
    error = make_error()
    if wrapping != "bare":
        error = _raised(error, wrap[wrapping], chain=wrapping == "raise_from")
    failure = classify(error, "h.example")
    assert failure.kind == kind, (failure, wrapping)
    if message is not None:
        assert failure.message == message


def test_words_in_a_message_never_make_a_rate_limit_or_a_full_disk() -> None:
    from yt_dlp.utils import DownloadError

    from playlist_cron.failure_kinds import classify

    said = "ERROR: [generic] nginx-rate-limiting-guide-1: HTTP Error 429: Too Many Requests; No space left on device"
    assert classify(DownloadError(said)).kind == "other"


def test_an_answer_met_while_handling_an_earlier_failure_is_what_counts() -> None:
    from playlist_cron.failure_kinds import classify

    def not_found_after_unavailable() -> None:
        try:
            raise _http_error(503)
        except Exception:
            raise _http_error(404)  # noqa: B904 - as yt-dlp's fallbacks do: the 503 stays as __context__

    with pytest.raises(Exception) as raised:
        not_found_after_unavailable()
    assert getattr(raised.value.__context__, "status", None) == 503
    assert classify(raised.value).kind == "other"


@pytest.mark.parametrize(
    ("running", "event", "same"),
    [
        ({"check": 7, "run_id": "a"}, {"check": 7, "run_id": "a"}, True),
        ({"check": 7, "run_id": "a"}, {"check": 7, "run_id": "b"}, False),  # another config's check #7
        ({"check": 7, "run_id": "a"}, {"check": 7}, False),
        ({"check": 7, "run_id": "a"}, {"check": 8, "run_id": "a"}, True),
        ({"check": 7}, {"check": 7}, True),  # both from before run ids
        ({"check": 7}, {"check": 7, "run_id": "b"}, False),
        ({"check": 7}, {"check": 6}, False),
    ],
)
def test_a_killed_check_is_matched_by_its_run_id_never_by_its_number_alone(
    running: dict[str, object], event: dict[str, object], same: bool
) -> None:
    assert same_run(running, event) is same
