"""Reading the Containerfile's instructions as a container engine would, for the tests that check what it says."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).parent.parent
CONTAINERFILE = ROOT / "Containerfile"


class Instruction(NamedTuple):
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str  # the rest of the instruction, continuation lines joined


def instructions(path: Path = CONTAINERFILE) -> list[Instruction]:
    """Given a Containerfile, return its instructions in order; comments and blank lines are left out, and lines
    ending in a backslash are joined to the next (comment lines inside a continued instruction are dropped, as the
    engines drop them)."""
    found: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        if whole:
            keyword, _, arguments = whole.partition(" ")
            found.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, f"{path.name} ends inside a continued instruction"
    return found


def only(keyword: str, path: Path = CONTAINERFILE) -> Instruction:
    matching = [instruction for instruction in instructions(path) if instruction.keyword == keyword]
    assert len(matching) == 1, f"{path.name} should have exactly one {keyword}, found {matching}"
    return matching[0]


def exec_form(arguments: str) -> list[str]:
    """Given the arguments of ENTRYPOINT or CMD, return the JSON list (the exec form); fail on the shell form, which
    would run the command under /bin/sh -c, where it would not get the signals Kubernetes sends."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), f"not the exec form: {arguments}"
    return value


def pip_installs(path: Path = CONTAINERFILE) -> list[list[str]]:
    """The `pip install ...` commands of the RUN instructions, each as its words (`&&`-joined commands split)."""
    commands = []
    for instruction in instructions(path):
        if instruction.keyword != "RUN":
            continue
        for command in instruction.arguments.split("&&"):
            words = shlex.split(command)
            if words[:2] and Path(words[0]).name == "pip" and words[1] == "install":
                commands.append(words)
    return commands
