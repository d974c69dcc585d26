"""The code stays ruff- and mypy-clean: checked by the suite so that CI holds the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
BIN_DIR = Path(sys.executable).parent


PYTHON_FILES = ["src", "tests", "benchmarks", "noxfile.py"]


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([str(BIN_DIR / "ruff"), "check", *PYTHON_FILES], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_would_change_nothing() -> None:
    result = subprocess.run(
        [str(BIN_DIR / "ruff"), "format", "--check", *PYTHON_FILES], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = subprocess.run([str(BIN_DIR / "mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
