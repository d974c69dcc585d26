"""Warnings about files others can read or change: the cookies file, and the config file with its yt_dlp_args."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from playlist_cron.config import Config
from playlist_cron.console import Console
from playlist_cron.errors import ConfigError

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from playlist_cron.storage.interfaces import StateStorage


def check_cookies_file(config: Config, logger: FilteringBoundLogger) -> None:
    """Log a warning when other users can read the cookies file; raise ConfigError when it cannot be looked at."""
    path = config.cookies_file
    if path is None:
        return
    try:
        mode = path.stat().st_mode & 0o777
    except OSError as error:
        raise ConfigError(str(config.path), [f"At 'cookies_file': {path}: {error.strerror}"]) from None
    if mode & 0o077:
        logger.warning(
            "cookies_file_readable",
            cookies_file=str(path),
            mode=f"{mode:04o}",
            message=f"other users can read the cookies in {path} (mode {mode:04o}): chmod 600 it",
        )


def check_config_file(
    config: Config, logger: FilteringBoundLogger, console: Console, state: StateStorage, reported: str | None
) -> str | None:
    """Warn when others can change the config: its yt_dlp_args can hold --exec, run as this user.

    Logged at every check like a readable cookies file; told on stderr once (a human must act, and cron
    would mail it every minute otherwise), and again when it changes, or comes back after a fix. Given what
    was last `reported` ("mode:uid", or None), return what is reported now, kept in the state.
    """
    path = config.path
    try:
        file_stat = os.stat(path)  # through a link: what matters is the file that was read
    except OSError:
        return reported  # it was read a moment ago: an editor replacing it now is no reason to stop a check
    mode = stat.S_IMODE(file_stat.st_mode)
    owner_uid = file_stat.st_uid
    reasons, hints = [], []
    if mode & 0o002 or (mode & 0o020 and not _is_private_group(owner_uid, file_stat.st_gid)):
        reasons.append(f"mode {mode:04o}")
        hints.append(f"chmod go-w {path}")
    if owner_uid not in (os.geteuid(), 0):  # its owner can chmod it at will; root is trusted anyway
        import pwd  # only here: the skip path never needs it

        try:
            owner = f"uid {owner_uid} ({pwd.getpwuid(owner_uid).pw_name})"
        except KeyError:
            owner = f"uid {owner_uid}"
        reasons.append(f"owned by {owner}")
        hints.append(f"chown it to the user that runs the check ({os.geteuid()})")
    signature = f"{mode:04o}:{owner_uid}" if reasons else None
    changed = signature != reported
    if changed:  # a state write only when it changes: a safe config costs a check one stat(2)
        with state.update() as state_now:
            state_now["config_file_writable_reported"] = signature
    if signature is None:
        return signature
    message = (
        f"other users can change the config {path} ({', '.join(reasons)}), and its yt_dlp_args can run "
        f"commands (--exec) as this user: {'; '.join(hints)}"
    )
    logger.warning(
        "config_file_writable", config_file=str(path), mode=f"{mode:04o}", owner_uid=owner_uid, message=message
    )
    if changed:
        console.alert(f"playlist-cron: {message}")
    return signature


def _is_private_group(uid: int, gid: int) -> bool:
    """Whether `gid` is the user private group of `uid` (same name, no other member): group write is no risk then.

    Where each user has such a group (Debian's usergroups), the umask is often 002 and files are group-writable.
    """
    import grp
    import pwd

    try:
        user = pwd.getpwuid(uid)
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return user.pw_gid == gid and group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}
