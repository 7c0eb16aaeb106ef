"""Fixtures of the unit tests: no Redis, no processes, just files in a temporary folder.

The promise is enforced: starting a process from a unit test fails it (tests that need
one belong to tests/integration/).
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from .cli_runner import Workspace

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Workspace:
    """``tmp_path`` as the working directory, with helpers to write files and run the CLI."""
    monkeypatch.chdir(tmp_path)
    return Workspace(tmp_path, capsys)


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a unit test started a process: {args[1] if len(args) > 1 else args}")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
