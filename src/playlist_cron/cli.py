"""The command line: one function per command, and the only place that turns errors into exit codes."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from playlist_cron import __version__, exit_codes
from playlist_cron.errors import (
    ConfigError,
    DatabaseUnavailable,
    NotARegularFile,
    PlaylistCronError,
    SchemaMissing,
    StateError,
)

if TYPE_CHECKING:
    import argparse

    from playlist_cron.config import Config
    from playlist_cron.outcomes import Outcome
    from playlist_cron.records import State


def _quick_check_arguments(argv: Sequence[str]) -> Any:
    """Parse the line cron runs 1,440 times a day, `check [--config PATH] [--now]`, without loading argparse.

    Return None for anything else (help, other commands, abbreviations, mistakes): argparse then parses it.
    """
    if not argv or argv[0] != "check":
        return None
    config, now = None, False
    words = list(argv[1:])
    while words:
        word = words.pop(0)
        if word == "--now":
            now = True
        elif word == "--config" and words and not words[0].startswith("-"):
            config = words.pop(0)
        elif word.startswith("--config=") and len(word) > len("--config="):
            config = word.split("=", 1)[1]
        else:
            return None
    return SimpleNamespace(command="check", config=config, now=now, mark_archived=False)


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="playlist-cron",
        description="Keep a local copy of online playlists; cron runs `playlist-cron check` every minute.",
    )

    class Version(argparse.Action):
        """`--version`: the versions are looked up only when asked for (yt-dlp's costs a fifth of a second)."""

        def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
            print(_version())
            parser.exit()

    parser.add_argument("--version", action=Version, nargs=0, help="show the versions of playlist-cron, yt-dlp, Python")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    config_help = "the config file (default: $PLAYLIST_CRON_CONFIG, then ./config.json)"

    check = commands.add_parser("check", help="run one check: the job cron starts every minute")
    check.add_argument("--config", metavar="PATH", help=config_help)
    check.add_argument("--now", action="store_true", help="check even if check_interval_seconds says it is not due")
    check.add_argument(
        "--mark-archived",
        action="store_true",
        help="record every video of the playlists in the archive without downloading it, for files you already "
        "have (implies --now)",
    )

    status = commands.add_parser(
        "status", help="counters, last check, lock holder, playlist reads and health (exit 1 when unhealthy)"
    )
    status.add_argument("--config", metavar="PATH", help=config_help)
    status.add_argument("--json", action="store_true", help="print one JSON object")

    report = commands.add_parser(
        "report", help="draw the log as one self-contained HTML page (timeline, skips, durations, downloads)"
    )
    report.add_argument("--config", metavar="PATH", help=config_help)
    report.add_argument(
        "--since", metavar="AGE", type=_since, default="7d", help="the period: 7d, 12h, 30m back from now (default 7d)"
    )
    report.add_argument(
        "--output", metavar="FILE", help="the page to write (default: report.html beside the log); - is stdout"
    )

    retry = commands.add_parser("retry", help="make failed or given-up videos due again at the next check")
    retry.add_argument("--config", metavar="PATH", help=config_help)
    retry.add_argument("video_ids", nargs="*", metavar="VIDEO_ID", help="the videos to retry (default: all)")

    database = commands.add_parser("db", help="the PostgreSQL database of a fleet (database_url): schema, archive")
    database_commands = database.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    migrate = database_commands.add_parser("migrate", help="create or upgrade the database's tables")
    migrate.add_argument("--config", metavar="PATH", help=config_help)
    import_archive = database_commands.add_parser(
        "import-archive", help="add the lines of a yt-dlp archive file to the database's archive (again is harmless)"
    )
    import_archive.add_argument("file", metavar="FILE", help="an archive.txt of `extractor id` lines; - reads stdin")
    import_archive.add_argument("--config", metavar="PATH", help=config_help)
    export_archive = database_commands.add_parser(
        "export-archive", help="write the database's archive as a yt-dlp archive file, sorted"
    )
    export_archive.add_argument("file", metavar="FILE", help="a new file (an existing one is refused); - is stdout")
    export_archive.add_argument("--config", metavar="PATH", help=config_help)

    demo = commands.add_parser("demo", help="an offline demo: a loopback feed, overlapping checks, SKIPPED live")
    demo.add_argument("--dir", metavar="PATH", help="where to keep the demo's files (default: a new temporary folder)")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="instead, keep the loopback feed running until Ctrl-C or SIGTERM, and write a config for it into --dir, "
        "to try a config or the commands against",
    )
    return parser


def _since(text: str) -> float:
    """argparse's type for `report --since`: seconds; a usage error (exit 2) for anything but `7d`, `12h`, `30m`."""
    import argparse

    from playlist_cron import report

    try:
        return report.parse_since(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _version() -> str:
    """The versions a bug report needs: users upgrade yt-dlp often, apart from playlist-cron."""
    import platform

    try:
        from yt_dlp.version import __version__ as yt_dlp_version  # yt-dlp's own spelling (2025.01.15)
    except ImportError:
        yt_dlp_version = "not installed"
    return f"playlist-cron {__version__} (yt-dlp {yt_dlp_version}, Python {platform.python_version()})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` and return the exit code."""
    try:
        code = _main(argv)
        if sys.stdout is not None:  # None when started with stdout closed
            sys.stdout.flush()  # here, not at exit, so that a reader gone away is noticed below
    except BrokenPipeError:  # `status | head -1`: the reader has what it wanted; say nothing, like cat or seq
        import signal

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's final flush would complain
        return exit_codes.for_signal(signal.SIGPIPE)
    return code


def _main(argv: Sequence[str] | None) -> int:
    arguments = _quick_check_arguments(sys.argv[1:] if argv is None else argv)
    if arguments is None:
        try:
            arguments = _parser().parse_args(argv)
        except SystemExit as exit_request:  # argparse: --help, --version, or a usage error (exit 2)
            return int(exit_request.code or 0)
    try:
        if arguments.command == "check":
            return _check(arguments)
        if arguments.command == "status":
            return _status(arguments)
        if arguments.command == "report":
            return _report(arguments)
        if arguments.command == "retry":
            return _retry(arguments)
        if arguments.command == "db":
            return _db(arguments)
        return _demo(arguments)
    except ConfigError as error:
        for problem in error.problems:
            print(f"playlist-cron: {error.path}: {problem}", file=sys.stderr)
        return exit_codes.CONFIG
    except NotARegularFile as error:  # a lock file's place derives from a setting (archive_file): the one to look at
        print(f"playlist-cron: {_config_path(arguments)}: At '{error.key}': {error.detail}", file=sys.stderr)
        return exit_codes.CONFIG
    except StateError as error:
        if error.unusable_folder:  # the config points at a folder that cannot be used: a config error
            path = _config_path(arguments)
            print(f"playlist-cron: {path}: At 'state_dir': {error.detail}", file=sys.stderr)
            return exit_codes.CONFIG
        print(str(error), file=sys.stderr)
        return exit_codes.FAILED
    except DatabaseUnavailable as error:  # the next run may reach it
        print(str(error), file=sys.stderr)
        return exit_codes.TEMPFAIL
    except SchemaMissing as error:  # the database is there but not set up: a config-type error
        print(str(error), file=sys.stderr)
        return exit_codes.CONFIG
    except PlaylistCronError as error:  # a schema newer than this release among them
        print(str(error), file=sys.stderr)
        return exit_codes.FAILED
    except KeyboardInterrupt:
        return exit_codes.for_signal(2)
    except BrokenPipeError:
        raise
    except Exception as error:  # a bug: one line for cron's mail rather than a traceback
        print(f"playlist-cron: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return exit_codes.FAILED


def _config_path(arguments: argparse.Namespace) -> str:
    from playlist_cron import config

    return str(config.config_path(getattr(arguments, "config", None)))


def _load(arguments: argparse.Namespace):  # type: ignore[no-untyped-def]
    from playlist_cron import config

    return config.load(config.config_path(arguments.config))


def _check(arguments: argparse.Namespace) -> int:
    from playlist_cron import config as config_module
    from playlist_cron.console import Console

    path = config_module.config_path(arguments.config)
    states_read: list[State] = []  # the state `config.load` asked for the digest: the due clock reads the same

    def sound_digest(settings: Config) -> str | None:
        state = _read_state(settings)
        if state is None:
            return None
        states_read.append(state)
        # A fleet's host keeps its checks' digest in the database; the config it last learned its collection's due
        # time under (`collection_due`) was found sound whole by that check as well.
        learned = state.get("collection_due")
        return state.get("config_digest") or (learned["config_digest"] if learned else None)

    config, console = config_module.load(path, sound_digest=sound_digest), Console()
    if not (arguments.now or arguments.mark_archived):
        from playlist_cron import due

        if due.not_due(config, console, states_read[-1] if states_read else None):
            return exit_codes.OK
    from playlist_cron import check  # structlog, portalocker and the rest: only for a check that is due

    outcome = check.run(config, console=console, mark_archived=arguments.mark_archived, now=arguments.now)
    if outcome.ran and config.report_file is not None:
        _rewrite_report(config, outcome)
    return exit_code(outcome, config.skip_exit_code)


def _read_state(settings: Config) -> State | None:
    """Given a config's settings, return its state, for the digest of the last config its checks found sound: for
    `config.load` to leave the playlists of an unchanged config unchecked on the not-due and skip paths. None when
    it cannot be read: the due clock or the check, which read it next, say why.

    A fleet's host keeps its checks' digest in the database, and in its local state file only the digest of the
    config it learned its collection's next due time under."""
    from playlist_cron.state import StateStore

    try:
        return StateStore.for_config(settings).read()
    except StateError:
        return None


def _rewrite_report(config: Config, outcome: Outcome) -> None:
    """Rewrite the `report` page after a check that ran, once it has ended; log why when it cannot.

    The page is a view: whatever goes wrong drawing or writing it, the check's outcome and exit code stand.
    """
    from playlist_cron import log, report

    assert config.report_file is not None
    try:
        report.write(config.report_file, report.build(config, report.parse_since(report.DEFAULT_SINCE)))
    except Exception as error:
        log.logger().bind(check=outcome.check, run_id=outcome.run_id).warning(
            "report_failed", report_file=str(config.report_file), error=f"{type(error).__name__}: {error}"
        )


def exit_code(outcome: Outcome, skip_exit_code: int) -> int:
    """Given how a check ended and the config's `skip_exit_code`, return the command's exit code.

    The one exception: a watchdog whose check cannot be stopped ends the process itself, with exit code 1.
    """
    if outcome.signal_number is not None:
        return exit_codes.for_signal(outcome.signal_number)
    if outcome.outcome == "SKIPPED":
        return skip_exit_code
    if outcome.outcome == "FAILED":
        return exit_codes.TEMPFAIL if outcome.reason in ("network", "database") else exit_codes.FAILED
    return exit_codes.OK  # COMPLETED, DEFERRED


def _status(arguments: argparse.Namespace) -> int:
    """`status`: printed a playlist at a time, as its playlists are read (10,000 records are never held at once)."""
    import gc

    # A short run whose objects hold no cycles to speak of, each playlist's freed as it is printed: the collector's
    # passes over the config's 10,000 playlists and the modules cost 5% of `status` and free nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        from playlist_cron import status

        report, playlists = status.stream(_load(arguments))
        try:
            if arguments.json:
                _write_pieces(status.json_pieces(report, playlists), "")
            else:
                _write_pieces(status.text_lines(report, playlists), "\n")
        finally:
            close = getattr(playlists, "close", None)  # a reader that left: the database's snapshot ends here
            if close is not None:
                close()
    finally:
        if collecting:
            gc.enable()
    return exit_codes.OK if report["healthy"] else exit_codes.FAILED


def _write_pieces(pieces: Iterator[str], separator: str) -> None:
    """Write `pieces`, joined by `separator` and ended by a newline, a few hundred at a time: the whole text of
    10,000 playlists, or the list of its pieces, is never held."""
    while batch := list(itertools.islice(pieces, 256)):
        sys.stdout.write(separator.join(batch))
        sys.stdout.write(separator)
    if not separator:
        sys.stdout.write("\n")


def _report(arguments: argparse.Namespace) -> int:
    """`report`: write the page to --output (`-`: stdout), by default beside the log, and say where."""
    from pathlib import Path

    from playlist_cron import report

    config = _load(arguments)
    page = report.build(config, arguments.since)
    if arguments.output == "-":
        _write_whole(page)
        return exit_codes.OK
    output = Path(arguments.output).absolute() if arguments.output else report.default_output(config)
    try:
        report.write(output, page)
    except OSError as error:
        print(f"playlist-cron: cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return exit_codes.FAILED
    print(f"Report written to {output}")
    return exit_codes.OK


def _write_whole(text: str) -> None:
    """Write `text` to stdout in UTF-8 (the page says so), whole, or raise BrokenPipeError when the reader has gone.

    Not one `sys.stdout.write`: a write larger than a pipe holds, whose reader leaves (`report --output - | head -1`),
    ends short without an error, and Python's buffered layer takes the short count for the whole: exit 0 after 64 KiB
    with the rest lost. `os.write` says how much it took; the write of the rest meets EPIPE.
    """
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (io.UnsupportedOperation is both of the last two)
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    rest = memoryview(text.encode("utf-8"))
    while rest:
        rest = rest[os.write(descriptor, rest) :]


def _retry(arguments: argparse.Namespace) -> int:
    from playlist_cron import retry

    unknown = retry.make_due(_load(arguments), arguments.video_ids)
    for video_id in unknown:
        print(f"playlist-cron: {video_id} is not among the failed videos (see `playlist-cron status`)", file=sys.stderr)
    return exit_codes.FAILED if unknown else exit_codes.OK


def _db(arguments: argparse.Namespace) -> int:
    """`db migrate | import-archive FILE | export-archive FILE`: the database of a config with `database_url`."""
    loaded = _load(arguments)
    from playlist_cron import storage

    if not storage.in_database(loaded):
        raise ConfigError(str(loaded.path), ["db commands need database_url in the config"])
    from playlist_cron.storage import database_commands

    if arguments.db_command == "migrate":
        print(database_commands.migrate(loaded))
        return exit_codes.OK
    if arguments.db_command == "import-archive":
        print(database_commands.import_archive(loaded, arguments.file))
        return exit_codes.OK
    said = database_commands.export_archive(loaded, arguments.file)
    if said:
        print(said)
    return exit_codes.OK


def _demo(arguments: argparse.Namespace) -> int:
    if arguments.serve:
        from playlist_cron.demo import serve

        return serve.main(arguments.dir)
    from playlist_cron.demo import run

    return run.main(arguments.dir)
