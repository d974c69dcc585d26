"""Messages through Apprise to the services people already use (`notify_urls`): what a check downloaded, each video it
gave up on, and each alert it prints for cron's mail.

Imported only by a check that holds the run lock and has `notify_urls`, and Apprise (the `notify` extra) only when
that check has something to say: loading it and its services costs about 0.2 s, which a check with nothing to tell
never pays. A message that cannot be delivered costs a `notify_failed` warning, never the check's outcome, and never
more than NOTIFY_TIMEOUT_S of its time. A URL is never logged (a service's token is often in its path): each is named
by its place, `notify_urls[N]`, and Apprise's name of its service.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from playlist_cron import __version__
from playlist_cron.errors import ConfigError
from playlist_cron.log import redact

if TYPE_CHECKING:
    from collections.abc import Sequence

    from structlog.typing import FilteringBoundLogger

INSTALL_HINT = "pip install 'playlist-cron[notify]'"
NOTIFY_TIMEOUT_S = 5.0  # all the messages of one check, whatever the services do; a check's remaining time bounds it
LEAST_TIMEOUT_S = 1.0  # a check at its max_runtime still sends the alert of its timeout, briefly
JOIN_SLACK_S = 0.5  # Apprise's own timeout normally ends a silent service first
MAX_TITLES = 20  # the titles one download message lists; the rest are counted
MAX_ERROR_CHARS = 300
TAG_PREFIX = "notify_url_"  # each URL's tag, with its place: Apprise splits tags at punctuation (`notify_urls[0]`)
REFUSED = "Apprise does not take this URL (an unknown service, or a part it needs is missing)"


class Message(NamedTuple):
    """One message: what it is about (`downloaded`, `given_up`, `alert`, `recovered`: the `notify_failed` event
    names it), its title and body, and Apprise's notify type (`info`, `success`, `warning`, `failure`)."""

    kind: str
    title: str
    body: str
    notify_type: str


def ensure_installed(config_path: str) -> None:
    """Raise ConfigError when Apprise is not installed; without loading it (a check may have nothing to tell)."""
    if importlib.util.find_spec("apprise") is None:
        raise ConfigError(
            config_path,
            [f"At 'notify_urls': sending notifications needs Apprise, which is not installed: {INSTALL_HINT}"],
        )


def downloaded(check: int, outcome: str, titles: Sequence[str], fields: dict[str, Any]) -> Message:
    """Given a check's number, outcome, the titles it downloaded and its final event's fields, return its message."""
    count = len(titles)
    listed = [f"- {title}" for title in titles[:MAX_TITLES]]
    if count > MAX_TITLES:
        listed.append(f"- and {count - MAX_TITLES} more")
    if "downloaded" in fields:  # the check counted what its reads came to
        counts = (
            f"{videos(fields['downloaded'])} downloaded ({size(int(fields.get('bytes') or 0))}), "
            f"{videos(fields.get('failed', 0))} failed, {fields.get('already_archived', 0)} already archived"
        )
    else:  # ended before it could count (a timeout, a signal): the titles are what is known
        counts = f"{videos(count)} downloaded"
    ending = "" if outcome == "COMPLETED" else f"; the check ended {outcome} ({fields.get('reason')})"
    return Message(
        "downloaded",
        f"playlist-cron: {videos(count)} downloaded",
        "\n".join([*listed, "", f"Check #{check}: {counts}{ending}."]),
        "success" if outcome == "COMPLETED" else "warning",
    )


def given_up(check: int, video_id: str, title: str | None, attempts: int, error: str) -> Message:
    """Given a video that failed through every retry step, return its message."""
    return Message(
        "given_up",
        f"playlist-cron: gave up on {title or video_id}",
        f"{title or video_id} [{video_id}] failed {attempts} times; the last error: {error}\n\n"
        f"Given up by check #{check}: no check tries it again until `playlist-cron retry {video_id}` makes it due.",
        "warning",
    )


def alert(kind: str, title: str, line: str) -> Message:
    """Given a line a check printed on stderr for a human (`alert`; `recovered`: an outage it alerted about is over)
    and a title for it, return its message."""
    return Message(kind, f"playlist-cron: {title}", line, "failure" if kind == "alert" else "success")


def videos(count: int) -> str:
    return f"{count} video" if count == 1 else f"{count} videos"


def size(size_bytes: int) -> str:
    """Given a size, return it as people read one: `850 bytes`, `12.3 MB`."""
    if size_bytes < 1000:
        return f"{size_bytes} bytes"
    scaled = size_bytes / 1000
    for unit in ("KB", "MB", "GB"):
        if scaled < 1000 or unit == "GB":
            break
        scaled /= 1000
    return f"{scaled:.1f} {unit}"


class _Delivery:
    """What the sending thread found, read by the check's thread under `lock` (the sender may outlive the wait)."""

    def __init__(self, urls: Sequence[str], messages: Sequence[Message]) -> None:
        self.lock = threading.Lock()
        self.urls = urls
        self.messages = messages
        self.attempted = 0  # the messages handed to Apprise
        self.failed: dict[int, list[str]] = {}  # a URL's place: the kinds of the messages it did not take
        self.names: dict[int, str] = {}  # a URL's place: Apprise's name of its service (`JSON`, `Telegram`)
        self.errors: dict[int, str] = {}  # a URL's place: the last words on why
        self.refused: list[int] = []  # the places of the URLs Apprise does not take (or all: it cannot be loaded)

    def fail(self, index: int, kinds: list[str], error: str) -> None:
        self.failed.setdefault(index, []).extend(kinds)
        self.errors[index] = error


def send(urls: Sequence[str], messages: Sequence[Message], logger: FilteringBoundLogger, timeout_s: float) -> list[str]:
    """Send `messages` to every service of `urls`, in order; never raise, and never take longer than `timeout_s` (at
    least LEAST_TIMEOUT_S, at most NOTIFY_TIMEOUT_S) in all. Each service that missed any is logged: `notify_failed`.

    Return what a human must fix, one line each: a URL that Apprise does not take, or Apprise that cannot be loaded.
    """
    if not messages:
        return []
    timeout_s = min(NOTIFY_TIMEOUT_S, max(timeout_s, LEAST_TIMEOUT_S))
    deadline = time.monotonic() + timeout_s
    delivery = _Delivery(urls, messages)
    # A thread bounds the whole (loading Apprise, DNS, connect, a trickling answer) by the deadline.
    sender = threading.Thread(target=_deliver, args=(delivery, deadline), name="notify", daemon=True)
    sender.start()
    sender.join(timeout_s + JOIN_SLACK_S)
    with delivery.lock:
        # Those never handed to Apprise, and the one it is still sending when the wait ends.
        unsent = len(messages) - delivery.attempted + (1 if sender.is_alive() and delivery.attempted else 0)
        unsent_kinds = [message.kind for message in messages[len(messages) - unsent :]]
        for index in range(len(urls)):
            failed = delivery.failed.get(index, [])
            unsent_here = 0 if index in delivery.refused else unsent  # a refused URL was never going to be sent to
            if not failed and not unsent_here:
                continue
            words = [delivery.errors[index]] if index in delivery.errors else []
            if unsent_here:
                words.append(f"no answer within {timeout_s:g} s: {unsent} of {len(messages)} not delivered")
            logger.warning(
                "notify_failed",
                notify_url=f"notify_urls[{index}]",
                service=delivery.names.get(index),
                messages=len(messages),
                failed=len(failed) + unsent_here,
                kinds=sorted({*failed, *(unsent_kinds if unsent_here else [])}),
                error=_masked("; ".join(words), urls),
            )
        return [f"notify_urls[{index}]: {delivery.errors[index]}" for index in delivery.refused]


def _deliver(delivery: _Delivery, deadline: float) -> None:
    """Load Apprise and the services, then hand each message to Apprise in turn (from the sending thread), noting
    what each service did with it."""
    everything = [message.kind for message in delivery.messages]
    try:
        import apprise
    except ImportError as error:  # installed (ensure_installed found it) but broken: a dependency missing, say
        with delivery.lock:
            for index in range(len(delivery.urls)):
                delivery.fail(index, everything, f"Apprise cannot be loaded ({error}): {INSTALL_HINT}")
            delivery.refused = list(range(len(delivery.urls)))
            delivery.attempted = len(delivery.messages)
        return
    services = apprise.Apprise(
        asset=apprise.AppriseAsset(app_id="playlist-cron", app_desc=f"playlist-cron {__version__}")
    )
    for index, url in enumerate(delivery.urls):
        if not services.add(url, tag=_tag(index)):
            with delivery.lock:
                delivery.fail(index, everything, REFUSED)
                delivery.refused.append(index)
    for message in delivery.messages:
        left_s = deadline - time.monotonic()
        if left_s <= 0 or not len(services):
            return
        with delivery.lock:
            delivery.attempted += 1
        # Apprise's own wait gives up at its timeout, but the request it abandons runs on in its thread pool, which
        # the interpreter waits for at exit: each socket wait is bounded too, so that the process ends by the deadline.
        for service in services:
            service.socket_connect_timeout = service.socket_read_timeout = left_s / 2
        try:
            result = services.notify(
                body=redact(message.body), title=redact(message.title), notify_type=message.notify_type, timeout=left_s
            )
        except Exception as error:  # a service's bug must not fail the check: every service missed this one
            with delivery.lock:
                for index in range(len(delivery.urls)):
                    if index not in delivery.refused:
                        delivery.fail(index, [message.kind], f"Apprise raised {type(error).__name__}: {error}")
            continue
        with delivery.lock:
            for outcome in result.results:
                place = next((_place(tag) for tag in outcome.tag if tag.startswith(TAG_PREFIX)), None)
                if place is None:
                    continue
                delivery.names[place] = outcome.name
                if not outcome:
                    delivery.fail(place, [message.kind], _said(outcome, left_s))


def _tag(index: int) -> str:
    return f"{TAG_PREFIX}{index}"


def _place(tag: str) -> int:
    return int(tag.removeprefix(TAG_PREFIX))


def _said(service: Any, left_s: float) -> str:
    """Given Apprise's result of one service that did not take a message, return why in a few words."""
    if service.status.name == "TIMEOUT":
        return f"no answer within {left_s:.1f} s"
    said = [entry.message for entry in service.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
    words = " ".join(" ".join(said).split()) or f"{service.name} did not take the message"
    # Apprise says "a connection error" alike for a refused connection and for no answer: the time tells them apart.
    return f"{words} (after {service.elapsed:.1f} s)"


def _masked(text: str, urls: Sequence[str]) -> str:
    """Given words about a failure, return them without any configured URL, nor a password or token in another."""
    for index, url in enumerate(urls):
        text = text.replace(url, f"notify_urls[{index}]")
    return redact(text)[:MAX_ERROR_CHARS]
