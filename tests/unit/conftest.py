"""Fixtures of the unit tests: no Redis, no processes, just files in a temporary folder."""

from __future__ import annotations

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
