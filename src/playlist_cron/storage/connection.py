"""Connections to a fleet's PostgreSQL database: opening them, naming the database without its password, and telling
what went wrong from the facts the server and libpq report (never from their words).

What a failure means, and which facts decide it:

- The server refused this host (a wrong or missing password, a role it does not know or that may not log in, a
  database that does not exist or may not be connected to): a config error, exit 78, said at once. Decided from the
  SQLSTATE the server sends (class 28, 3D000, 42501: `REFUSED_SQLSTATES`) when psycopg has it: it has it for every
  error of a statement. For an error while connecting, libpq keeps no SQLSTATE (psycopg 3.3 gives `sqlstate` None
  for all of them), so two facts libpq does keep decide: `needs_password` (the server asked for a password and the
  URL has none) and `used_password` (the server asked for one, libpq sent it, and the server still ended the
  connection: a wrong password, or, past it, an unknown database or no CONNECT right). With `trust` or `peer`
  authentication neither fact is set, and a database that does not exist cannot be told from an outage: it stays a
  `database` failure (exit 75), its message naming it.
- Anything else (refused, timed out, reset, the server restarting): the database could not be reached, a temporary
  failure, exit 75, kept quiet for `network_alert_after_seconds`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from playlist_cron.errors import ConfigError, DatabaseUnavailable
from playlist_cron.storage import schema

if TYPE_CHECKING:
    from playlist_cron.config import Config

Connection = psycopg.Connection[Any]

# The server's SQLSTATEs that mean "this host may not use this database as configured": invalid authorization
# (class 28: 28000, 28P01), invalid catalog name (3D000, no such database), insufficient privilege (42501).
REFUSED_SQLSTATES = ("28", "3D000", "42501")
# psycopg logs what it ignored while rolling back a broken transaction ("error ignored in rollback"); with no handler
# Python prints that on stderr, in cron's mail. The error itself reaches the caller as an exception all the same.
logging.getLogger("psycopg").addHandler(logging.NullHandler())


def host_name(config: Config) -> str:
    """The name this host goes by in the database: `host_name`, else the machine's."""
    return config.host_name or os.uname().nodename


def collection(config: Config) -> str:
    """The collection every row of this config is keyed by: `collection`, else the download folder."""
    return config.collection or str(config.download_dir)


def connect_lock(config: Config) -> Connection:
    """The lock connection: autocommit, its own session (its advisory locks are the host's claims), with TCP
    keepalives so that a peer that vanished is noticed in about 30 s even between heartbeats."""
    return connect(config, autocommit=True, keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)


def connect(config: Config, *, autocommit: bool = False, **options: Any) -> Connection:
    """Given a config with `database_url`, return a new connection (`options` are libpq's: keepalives and such).

    Raise DatabaseUnavailable when the server cannot be reached within `database_connect_timeout_seconds`, and
    ConfigError when the URL itself is wrong or the server refuses this host (see the module's docstring); no
    message holds the password.
    """
    url = _url(config)
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=config.database_connect_timeout_seconds,
            application_name=f"playlist-cron {host_name(config)}",
            **options,
        )
    except psycopg.OperationalError as error:
        raise failure(config, error, "cannot reach") from None
    except psycopg.ProgrammingError:  # libpq could not read the URL (a bad option, a bad %-escape)
        raise ConfigError(str(config.path), ["At 'database_url': libpq cannot read this URL"]) from None


def refused(error: psycopg.Error) -> bool:
    """Whether the server refused this host (a config error, not an outage), from the facts named in the module's
    docstring: the error's SQLSTATE, else libpq's `needs_password` and `used_password` of a failed connection."""
    if error.sqlstate is not None:
        return error.sqlstate.startswith(REFUSED_SQLSTATES)
    connection_facts = error.pgconn
    if connection_facts is None or connection_facts.status != psycopg.pq.ConnStatus.BAD:
        return False
    return bool(connection_facts.needs_password or connection_facts.used_password)


def failure(config: Config, error: psycopg.Error, verb: str) -> ConfigError | DatabaseUnavailable:
    """Given a psycopg error, return what to raise: ConfigError when the server refused this host, else
    DatabaseUnavailable (`verb`: "cannot reach", "lost"); the message is one line without the password."""
    detail = _one_line(error, _password(config.database_url or ""))
    if refused(error):
        code = f" (SQLSTATE {error.sqlstate})" if error.sqlstate else ""
        return ConfigError(
            str(config.path), [f"At 'database_url': the database {describe(config)} refused this host{code}: {detail}"]
        )
    return DatabaseUnavailable(f"playlist-cron: {verb} the database {describe(config)}: {detail}", detail=detail)


def describe(config: Config) -> str:
    """The config's database as a URL without its password or options: postgresql://user@host:port/dbname."""
    try:
        parts = conninfo_to_dict(_url(config))
    except psycopg.ProgrammingError:
        return "(an unreadable database_url)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host') or ''}{port}/{parts.get('dbname') or ''}"


def _url(config: Config) -> str:
    if not config.database_url:
        raise ConfigError(str(config.path), ["At 'database_url': not set, and this needs a database"])
    return config.database_url


def _password(url: str) -> str | None:
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        return None
    return str(password) if password else None


def _one_line(error: BaseException, password: str | None) -> str:
    """libpq's message (several indented lines) as one line, the password masked should libpq ever quote it."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return text.replace(password, "***") if password else text


@contextlib.contextmanager
def reachable(config: Config, database: Database | None = None) -> Iterator[None]:
    """Turn a psycopg error in the middle of a statement into DatabaseUnavailable (or ConfigError when the server
    refused this host), as a failed connect is. With `database`: a statement left running by anything else (the
    watchdog stopping the check in it) is cancelled and its connection dropped, so that the next use reconnects."""
    try:
        yield
    except psycopg.Error as error:
        if isinstance(error, psycopg.OperationalError) or refused(error):
            raise failure(config, error, "lost") from None
        raise
    except BaseException:
        if database is not None:
            database.drop_busy()
        raise


class Database:
    """One config's work connection (autocommit; several statements go in explicit transactions), opened on first use
    and checked once against the schema this release knows."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.host = host_name(config)
        self.collection = collection(config)
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        """Return the work connection, a new one when the last was lost while idle (the server restarted, the
        session was terminated); raise DatabaseUnavailable, ConfigError, SchemaMissing or SchemaNewer."""
        if self._connection is not None and (self._connection.closed or _lost_while_idle(self._connection)):
            self.close()
        if self._connection is None:
            connection = connect(self.config, autocommit=True)
            try:
                with reachable(self.config):
                    schema.require_current(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def guard(self) -> contextlib.AbstractContextManager[None]:
        """`reachable` for this database's statements."""
        return reachable(self.config, self)

    def drop_busy(self) -> None:
        """Cancel what the work connection is running, if anything, and drop it: a statement interrupted on our side
        (by the watchdog's signal) leaves it in the middle of a command that nothing will read the end of."""
        connection = self._connection
        if connection is None or connection.closed:
            return
        if connection.info.transaction_status != psycopg.pq.TransactionStatus.ACTIVE:
            return  # nothing left running: the connection goes on serving
        with contextlib.suppress(psycopg.Error):
            connection.cancel_safe(timeout=self.config.database_connect_timeout_seconds)
        self._connection = None
        with contextlib.suppress(psycopg.Error):
            connection.close()

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
            self._connection = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _lost_while_idle(connection: Connection) -> bool:
    """Whether an idle connection has been ended by the server: an idle session of ours gets nothing unasked (it
    listens to no channel), so anything to read (the server's goodbye, the end of the stream) means it is gone.
    Checked without a round trip."""
    if not connection.lock.acquire(blocking=False):
        return False  # another thread is using it: alive as far as anyone can tell
    try:
        if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return False
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    finally:
        connection.lock.release()
    # Dropping one that was only told something harmless (a setting reloaded) costs a new connection, nothing more.
    return bool(readable)
