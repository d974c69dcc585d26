"""Config values within bounds, and yt-dlp options matched the way yt-dlp matches them (abbreviations too)."""

from __future__ import annotations

import json
import optparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from yt_dlp.options import create_parser

from conftest import Project
from playlist_cron import config
from playlist_cron.errors import ConfigError
from playlist_cron.managed_options import MANAGED_DESTS, MANAGED_OPTIONS, managed_option

URL = "https://www.youtube.com/playlist?list=PL123"
HUGE = 1_000_000_000_000  # seconds: 31,700 years, past any date Python (or yt-dlp) can hold
A_YEAR = "from 1 to 31536000 (one year)"


def _failing_video(project: Project) -> None:
    project.feed.settings.items[0].media_status = 404  # a failed video: its next retry is a backoff step ahead


def _rate_limited(project: Project) -> None:
    project.feed.settings.media_status_override = 429  # the site says to slow down: a cooldown starts


def _nothing(project: Project) -> None:
    pass


@pytest.mark.parametrize(
    ("overrides", "situation", "problem"),
    [
        ({"check_interval_seconds": HUGE}, _nothing, f"At 'check_interval_seconds': expected a whole number {A_YEAR}"),
        ({"retry_backoff_seconds": [900, HUGE]}, _failing_video, "At 'retry_backoff_seconds': expected a non-empty"),
        (
            {"retry_backoff_seconds": [HUGE]},
            _failing_video,
            f"At 'retry_backoff_seconds': expected a non-empty list of whole numbers of seconds, each {A_YEAR}, "
            f"got [{HUGE}]",
        ),
        (
            {"cooldown_seconds": HUGE},
            _rate_limited,
            "At 'cooldown_seconds': expected a whole number from 0 to 31536000",
        ),
        ({"max_runtime_seconds": HUGE}, _nothing, f"At 'max_runtime_seconds': expected a whole number {A_YEAR}"),
        ({"stall_timeout_seconds": HUGE}, _nothing, f"At 'stall_timeout_seconds': expected a whole number {A_YEAR}"),
        ({"min_free_bytes": 10**30}, _nothing, "At 'min_free_bytes': expected a whole number from 0 to 2**60"),
        (
            {"max_downloads_per_check": 10**30},
            _nothing,
            f"At 'max_downloads_per_check': expected a whole number from 1 to 1000000 (a million), got {10**30}",
        ),
        ({"date_after": "20261399"}, _nothing, "At 'date_after': \"20261399\" is not a day between the years"),
        ({"date_after": "now-99999999years"}, _nothing, "At 'date_after': \"now-99999999years\" is not a day"),
        ({"date_after": "now-99999999days"}, _nothing, "At 'date_after': \"now-99999999days\" is not a day"),
        ({"date_after": "now+1day"}, _nothing, "At 'date_after': expected a date as YYYYMMDD"),
    ],
)
def test_values_that_would_overflow_a_date_are_config_errors_naming_the_range(
    project: Project, overrides: dict[str, Any], situation: Callable[[Project], None], problem: str
) -> None:
    situation(project)
    project.write_config(**overrides)
    problem = problem.replace("2**60", f"{2**60} (1 EiB)")
    # Today each of these is accepted, and the first or second run ends in "internal error" or a FAILED check.
    for arguments in (("check", "--now"), ("check", "--now"), ("status",)):
        result = project.run_here(*arguments)
        assert (result.returncode, result.stdout) == (78, ""), f"{arguments}: {result.stderr}"
        assert result.stderr.startswith(f"playlist-cron: {project.config_path}: {problem}"), result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not project.log_file.exists(), "a config error runs no check"


@pytest.mark.parametrize(
    ("key", "largest"),
    [
        ("check_interval_seconds", 31_536_000),
        ("max_runtime_seconds", 31_536_000),
        ("stall_timeout_seconds", 31_536_000),
        ("cooldown_seconds", 31_536_000),
        ("min_free_bytes", 2**60),
        ("max_downloads_per_check", 1_000_000),
    ],
)
def test_each_bound_is_inclusive(tmp_path: Path, key: str, largest: int) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"playlist_url": URL, key: largest, "retry_backoff_seconds": [31_536_000]}))
    config.load(path)
    path.write_text(json.dumps({"playlist_url": URL, key: largest + 1}))
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    [problem] = raised.value.problems
    assert problem.startswith(f"At '{key}': expected a whole number from ") and problem.endswith(f", got {largest + 1}")


def test_a_number_too_long_for_python_is_a_config_error_not_a_crash(project: Project) -> None:
    project.config_path.write_text(f'{{"playlist_url": "{URL}",\n "check_interval_seconds": {"9" * 5000}}}')
    result = project.run_here("check")
    assert result.returncode == 78, result.stderr
    assert result.stderr == (
        f"playlist-cron: {project.config_path}: At 'check_interval_seconds': expected a whole number, "
        "got a number of 5000 digits\n"
    )


# -- yt_dlp_args: what yt-dlp's own parser would read ---------------------------------------------------------


def managed_problem(tmp_path: Path, arguments: list[str]) -> list[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"playlist_url": URL, "yt_dlp_args": arguments}))
    try:
        config.load(path)
    except ConfigError as error:
        return error.problems
    return []


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--download-archiv", "a.txt"], "--download-archiv (yt-dlp reads it as --download-archive)"),
        (["--config-locat", "x.conf"], "--config-locat (yt-dlp reads it as --config-locations)"),
        (["--batch-fil", "list.txt"], "--batch-fil (yt-dlp reads it as --batch-file)"),
        (["--batch-fil=list.txt"], "--batch-fil (yt-dlp reads it as --batch-file)"),
        (["--max-down", "3"], "--max-down (yt-dlp reads it as --max-downloads)"),
        (["--force-write-download-archive"], "--force-write-download-archive"),
        (["--no-cookies"], "--no-cookies"),
    ],
)
def test_abbreviations_of_managed_options_are_refused(tmp_path: Path, arguments: list[str], said: str) -> None:
    [problem] = managed_problem(tmp_path, ["-f", "best", *arguments])
    assert problem.startswith(f"At 'yt_dlp_args[2]': {said} is managed by playlist-cron: set '")
    assert "list.txt" not in problem and "x.conf" not in problem


@pytest.mark.parametrize(
    "arguments", [["--no-download"], ["--no-config"], ["--datebefore", "20260101"], ["--cookies-from-browser", "x"]]
)
def test_options_whose_names_begin_a_managed_one_are_not_refused(tmp_path: Path, arguments: list[str]) -> None:
    assert managed_problem(tmp_path, arguments) == []


def _yt_dlp_reads(parser: optparse.OptionParser, name: str) -> str | None:
    """The dest yt-dlp's parser resolves a long option (or its abbreviation) to; "?" when it refuses it."""
    try:
        return str(parser._long_opt[parser._match_long_opt(name)].dest)  # type: ignore[attr-defined]
    except optparse.BadOptionError:  # unknown or ambiguous: yt-dlp refuses it itself
        return "?"


def test_the_config_check_agrees_with_yt_dlp_s_parser_on_every_option_and_abbreviation() -> None:
    parser = create_parser()
    options = [option for group in [parser, *parser.option_groups] for option in group.option_list]
    spellings = {name: option.dest for option in options for name in option._short_opts + option._long_opts}
    managed_spellings = {name for name, dest in spellings.items() if dest in MANAGED_DESTS}
    assert set(MANAGED_OPTIONS) == managed_spellings, "yt-dlp changed its options: update MANAGED_OPTIONS"
    for name, dest in spellings.items():
        assert (managed_option(name) is not None) == (dest in MANAGED_DESTS), name
    for name in [name for name in managed_spellings if name.startswith("--")]:
        for end in range(3, len(name)):
            prefix = name[:end]
            dest = _yt_dlp_reads(parser, prefix)
            refused = managed_option(prefix) is not None
            # Refused by us exactly when yt-dlp reads a managed option there; either of us may refuse an ambiguous one.
            assert refused == (dest in MANAGED_DESTS) or dest == "?", (prefix, dest)


SECRET = "s3cr3t-line-in-a-private-file"  # noqa: S105 - a marker to look for, not a password


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--batch-fil", "{secret}"], "--batch-fil (yt-dlp reads it as --batch-file) is managed by playlist-cron"),
        (["--batch-fil={secret}"], "--batch-fil (yt-dlp reads it as --batch-file) is managed by playlist-cron"),
        (["--config-locat", "{secret}"], "--config-locat (yt-dlp reads it as --config-locations) is managed"),
        (["-ia", "{secret}"], "-ia (yt-dlp reads it as -a) is managed by playlist-cron: set 'playlist_url'"),
        (["-i", "--alias", "get-list", "--batch-file {0}", "--get-list", "{secret}"], "an --alias sets --batch-file"),
    ],
)
def test_a_refused_option_never_shows_what_its_file_holds(
    project: Project, tmp_path: Path, arguments: list[str], said: str
) -> None:
    secret_file = tmp_path / "private.txt"
    secret_file.write_text(f"--{SECRET}\n{SECRET}\n")
    project.write_config(yt_dlp_args=[argument.replace("{secret}", str(secret_file)) for argument in arguments])
    result = project.run_here("check", "--now")
    assert result.returncode == 78, result.stderr
    assert said in result.stderr
    log = project.log_file.read_text() if project.log_file.exists() else ""
    for output in (result.stdout, result.stderr, log):
        assert SECRET not in output
        assert str(secret_file) not in output, "not even the path of a file-taking option is repeated"
    assert project.feed.requests_for("/") == [], "refused before anything is read"
