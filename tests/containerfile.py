"""Reading the Containerfile and .dockerignore as a container engine would, for tests that cannot build the image."""

from __future__ import annotations

import fnmatch
import json
import shlex
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).parent.parent
CONTAINERFILE = ROOT / "Containerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


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
            if words[:2] == ["pip", "install"] or words[1:3] == ["-m", "pip"]:
                commands.append(words)
    return commands


class Copy(NamedTuple):
    sources: list[str]
    destination: str  # absolute: a relative destination is resolved against the WORKDIR in force


def copies(path: Path = CONTAINERFILE) -> list[Copy]:
    """The COPY instructions from the build context (not `--from=` another stage), options such as --chown left out."""
    found = []
    workdir = "/"
    for instruction in instructions(path):
        if instruction.keyword == "WORKDIR":
            workdir = str(Path(workdir, instruction.arguments))
        if instruction.keyword != "COPY":
            continue
        words = shlex.split(instruction.arguments)
        if any(word.startswith("--from") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        assert len(words) >= 2, f"COPY needs a source and a destination: {instruction.arguments}"
        destination = str(Path(workdir, words[-1])) + ("/" if words[-1].endswith("/") else "")
        found.append(Copy(words[:-1], destination))
    return found


def workdir_at(keyword: str, containing: str, path: Path = CONTAINERFILE) -> str:
    """The WORKDIR in force at the first `keyword` instruction whose arguments contain `containing`."""
    workdir = "/"
    for instruction in instructions(path):
        if instruction.keyword == "WORKDIR":
            workdir = str(Path(workdir, instruction.arguments))
        if instruction.keyword == keyword and containing in instruction.arguments:
            return workdir
    raise AssertionError(f"{path.name} has no {keyword} with {containing!r}")


def ignore_patterns(path: Path = DOCKERIGNORE) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line.rstrip("/") for line in lines if line and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether a path of the build context (relative, `/`-separated) is left out by .dockerignore's patterns, as far
    as this project's patterns go: `name`, `dir/name`, `*.ext` (at the top only, as the engines read it), `**/name`
    (at any depth), and `!` exceptions, the last match winning. A path below a left-out folder is left out too."""
    parts = relative.split("/")
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").lstrip("/")
        anywhere = pattern.startswith("**/")
        wanted = pattern.removeprefix("**/").split("/")
        starts = range(len(parts) - len(wanted) + 1) if anywhere else range(1)
        if any(_segments_match(parts[start : start + len(wanted)], wanted) for start in starts):
            result = not negated
    return result


def _segments_match(parts: list[str], wanted: list[str]) -> bool:
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatchcase(part, want) for part, want in zip(parts, wanted, strict=True)
    )
