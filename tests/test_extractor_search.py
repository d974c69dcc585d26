"""The search for a URL's extractor among yt-dlp's ~1,750: its patterns compiled once a process, threads or not."""

from __future__ import annotations

import json
import subprocess
import sys

# Four reader threads start their first playlists together, and each first search compiles every extractor's
# pattern (yt-dlp caches one in its class once compiled). A fresh process, so that none is compiled yet; every
# `re.compile` counted (the real one runs), and the threads switched as often as the interpreter allows.
SEARCHES_IN_THREADS = """
import json, re, sys, threading

import yt_dlp

from playlist_cron import yt_dlp_private

clients = [yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True}) for _ in range(4)]
compiled = []
real_compile = re.compile


def counting_compile(pattern, flags=0):
    compiled.append((pattern, flags))
    return real_compile(pattern, flags)


re.compile = counting_compile
sys.setswitchinterval(1e-6)
start = threading.Barrier(len(clients))
answers = {}


def search(number):
    start.wait()
    url = f"http://127.0.0.1:9/playlist-{number}/feed.xml"
    answers[url] = yt_dlp_private.first_suitable_extractor(clients[number], url)
    answers["https://www.youtube.com/watch?v=BaW_jenozKc"] = yt_dlp_private.first_suitable_extractor(
        clients[number], "https://www.youtube.com/watch?v=BaW_jenozKc"
    )


threads = [threading.Thread(target=search, args=(number,)) for number in range(len(clients))]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"compiled": len(compiled), "patterns": len(set(compiled)), "answers": answers}))
"""


def test_threads_searching_at_once_compile_each_extractor_pattern_once() -> None:
    done = subprocess.run([sys.executable, "-c", SEARCHES_IN_THREADS], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert seen["patterns"] > 1000, seen  # every extractor's pattern was tried: the search was a full one
    assert seen["compiled"] == seen["patterns"], "threads compiled the same extractor patterns again"
    assert seen["answers"] == {
        **{f"http://127.0.0.1:9/playlist-{number}/feed.xml": "Generic" for number in range(4)},
        "https://www.youtube.com/watch?v=BaW_jenozKc": "Youtube",
    }


# Each reader thread makes its own client, and yt-dlp works out which of its extractors a client gets (the names
# the `allowed_extractors` option picks, a search quadratic in their number) at every one.
CLIENTS_MADE = """
import json

import yt_dlp

from playlist_cron import ytdl

worked_out = []
yt_dlp_own = yt_dlp.YoutubeDL.add_default_info_extractors


def counting(self):
    worked_out.append(self)
    return yt_dlp_own(self)


yt_dlp.YoutubeDL.add_default_info_extractors = counting
made = {}
for allowed in (None, ["default", "-generic"], ["youtube.*", "generic"]):
    extra = {} if allowed is None else {"allowed_extractors": allowed}
    ours = [ytdl.Fetcher({"quiet": True, **extra}) for _ in range(3)]
    theirs = yt_dlp_own.__get__(yt_dlp.YoutubeDL({"quiet": True, **extra}, auto_init=False))
    theirs()
    plain = theirs.__self__
    made[str(allowed)] = {
        "same order": all(list(client._ies) == list(plain._ies) for client in ours),
        "same extractors": all(list(client._ies.values())[:-1] == list(plain._ies.values())[:-1] for client in ours),
        "own instances": all(
            {key: type(ie) for key, ie in client._ies_instances.items()}
            == {key: type(ie) for key, ie in plain._ies_instances.items()}
            and all(ie._downloader is client for ie in client._ies_instances.values())
            for client in ours
        ),
        "count": len(plain._ies),
    }
print(json.dumps({"worked out by yt-dlp": len(worked_out), "made": made}))
"""


def test_clients_made_alike_get_yt_dlp_s_extractors_worked_out_once() -> None:
    done = subprocess.run([sys.executable, "-c", CLIENTS_MADE], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    for allowed, made in seen["made"].items():
        assert made["same order"] and made["same extractors"] and made["own instances"], (allowed, made)
    counts = {allowed: made["count"] for allowed, made in seen["made"].items()}
    assert counts["None"] > 1000 and counts["['default', '-generic']"] == counts["None"] - 1, counts
    assert 1 < counts["['youtube.*', 'generic']"] < 200, counts
    assert seen["worked out by yt-dlp"] == 3, "each client worked its extractors out again"  # once per options
