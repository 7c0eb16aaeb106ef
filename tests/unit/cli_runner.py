"""Running the reconciler CLI in-process on schedule files written into a temporary folder."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


@dataclass(frozen=True)
class CliRun:
    """What one ``reconciler ...`` invocation returned and printed."""

    exit_code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def problems(self) -> list[str]:
        """The problem lines of text or github output: everything but the summary line."""
        return self.lines[:-1]

    @property
    def summary(self) -> str:
        return self.lines[-1] if self.lines else ""

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass(frozen=True)
class Workspace:
    """A temporary working directory (the cwd, so displayed paths are relative)."""

    root: Path
    capsys: pytest.CaptureFixture[str]

    def write(self, name: str, text: str) -> Path:
        """Write ``text`` (dedented, leading newline dropped) to ``name`` under the root."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def run(self, *argv: str) -> CliRun:
        self.capsys.readouterr()  # drop anything printed before the command
        exit_code = main(list(argv))
        captured = self.capsys.readouterr()
        return CliRun(exit_code, captured.out, captured.err)

    def validate(self, *argv: str) -> CliRun:
        return self.run("validate", *argv)

    def check(self, text: str, *options: str, name: str = "s.yaml") -> CliRun:
        """Write one schedule file and validate just that file."""
        self.write(name, text)
        return self.validate(name, *options)


def job(body: str, *, task: str | None = "app.tasks.job") -> str:
    """A file with one entry 'job' (its name on line 3, column 3); ``body`` starts on line 5.

    With ``task=None`` line 4 is a comment, so ``body`` still starts on line 5, where a key
    is at column 5 and the value of ``key: value`` at column ``len(key) + 7``.
    """
    task_line = f"task: {task}" if task is not None else "# no task"
    indented = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return f"version: 1\nschedules:\n  job:\n    {task_line}\n{indented}\n"


def only_problem(run: CliRun) -> str:
    """The single problem line of a failed validation (fails unless there is exactly one)."""
    assert run.exit_code == 1, f"exit code {run.exit_code}\n{run.out}{run.err}"
    assert len(run.problems) == 1, f"expected exactly one problem, got:\n{run.out}"
    return run.problems[0]


def assert_single_problem(run: CliRun, where: str, phrase: str) -> None:
    """Exit code 1 and exactly one problem, at ``where`` (path:line:column), saying ``phrase``."""
    problem = only_problem(run)
    assert problem.startswith(f"{where}: "), f"expected at {where}:\n{problem}"
    assert phrase in problem, f"expected {phrase!r} in:\n{problem}"


def assert_valid(run: CliRun) -> None:
    assert run.exit_code == 0, run.out + run.err
    assert run.problems == [], run.out
    assert run.summary.endswith(("are valid", "is valid")), run.out
