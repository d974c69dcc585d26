"""Unit: the one way files are written whole — short write(2)s finished, a file replaced atomically or left alone."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from playlist_cron import atomic

Write = Callable[[int, bytes], int]


def taking_at_most(monkeypatch: pytest.MonkeyPatch, size: int) -> list[int]:
    """Make os.write take at most `size` bytes a call, as write(2) may; return the list of counts it took."""
    real_write: Write = os.write
    taken: list[int] = []

    def short_write(fd: int, data: bytes) -> int:
        written = real_write(fd, bytes(data[:size]))
        taken.append(written)
        return written

    monkeypatch.setattr(os, "write", short_write)
    return taken


def test_write_all_goes_on_where_a_short_write_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 40
    fd = os.open(tmp_path / "file", os.O_WRONLY | os.O_CREAT, 0o600)
    taken = taking_at_most(monkeypatch, 1000)
    try:
        atomic.write_all(fd, data)
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert (tmp_path / "file").read_bytes() == data
    assert taken == [1000] * 10 + [240], "each write took part of the data: the loop, not one write, wrote it"


def test_write_all_through_a_pipe_delivers_every_byte() -> None:
    reader, writer = os.pipe()
    try:
        atomic.write_all(writer, b"one line\n")
        os.close(writer)
        assert os.read(reader, 100) == b"one line\n"
    finally:
        os.close(reader)


def test_a_write_that_takes_nothing_is_an_error_not_an_endless_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fd = os.open(tmp_path / "file", os.O_WRONLY | os.O_CREAT, 0o600)
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    try:
        with pytest.raises(OSError) as raised:
            atomic.write_all(fd, b"data")
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert raised.value.errno == errno.ENOSPC


def test_replace_writes_every_byte_even_when_each_write_takes_a_few(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    path.write_text("old\n")
    data = b'{"checks_total": 12345}\n' * 100
    taken = taking_at_most(monkeypatch, 7)
    atomic.replace(path, data, 0o600)
    monkeypatch.undo()
    assert path.read_bytes() == data
    assert len(taken) > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"], "no temporary file left"


def test_replace_gives_the_mode_asked_for_whatever_the_umask(tmp_path: Path) -> None:
    previous_umask = os.umask(0o077)
    try:
        atomic.replace(tmp_path / "public.prom", b"x 1\n", 0o644)
        atomic.replace(tmp_path / "private.json", b"{}\n", 0o600)
    finally:
        os.umask(previous_umask)
    assert (tmp_path / "public.prom").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    path.write_text("old\n")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        atomic.replace(path, b"new\n", 0o600)
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_before_replace_runs_with_the_new_file_written_and_the_old_one_still_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old\n")
    seen: list[tuple[str, list[bytes]]] = []

    def look() -> None:
        beside = [p.read_bytes() for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        seen.append((path.read_text(), beside))

    atomic.replace(path, b"new\n", 0o600, before_replace=look)
    assert seen == [("old\n", [b"new\n"])]
    assert path.read_text() == "new\n"


def test_an_error_before_replace_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old\n")

    def fail() -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(OSError):
        atomic.replace(path, b"new\n", 0o600, before_replace=fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_link_planted_at_the_path_is_replaced_and_its_target_left_alone(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    path = tmp_path / "metrics.prom"
    path.symlink_to(victim)
    atomic.replace(path, b"x 1\n", 0o644)
    assert victim.read_text() == "keep\n"
    assert not path.is_symlink()
    assert path.read_text() == "x 1\n"


def test_a_taken_temporary_name_is_drawn_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([b"\0" * 8, b"\1" * 8])
    monkeypatch.setattr(os, "urandom", lambda size: next(draws))
    planted = tmp_path / f".file.{'00' * 8}.tmp"
    planted.symlink_to(tmp_path / "elsewhere")
    atomic.replace(tmp_path / "file", b"data\n", 0o600)
    monkeypatch.undo()
    assert (tmp_path / "file").read_bytes() == b"data\n"
    assert planted.is_symlink() and not (tmp_path / "elsewhere").exists(), "the planted link was not followed"
