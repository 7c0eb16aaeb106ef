"""``reconciler validate`` on a GitHub runner: annotations without asking, unless a --format
is given explicitly.

GitHub sets ``GITHUB_ACTIONS=true`` in every workflow step; the tests set it themselves (the
suite's conftest removes an inherited one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .cli_runner import Workspace

BROKEN = """
    version: 1
    schedules:
      heartbeat: {task: app.tasks.ping, every: 0}
      nightly: {task: app.tasks.report, cron: "61 3 * * *"}
    """
VALID = """
    version: 1
    schedules:
      heartbeat: {task: app.tasks.ping, every: 30s}
    """
ANNOTATIONS = [
    "::error file=schedules/ops.yaml,line=3,col=44,title=reconciler validate::"
    "'every' must be a positive duration, got 0",
    "::error file=schedules/ops.yaml,line=4,col=43,title=reconciler validate::"
    "cron minute field '61' is invalid: Invalid end range: 61 > 59 (valid: 0-59, '*', "
    "lists a,b, ranges a-b and steps */n)",
    "2 problems in 1 file",
]


@pytest.fixture
def on_github(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")


@pytest.mark.usefixtures("on_github")
def test_annotations_without_a_format_under_github_actions(workspace: Workspace) -> None:
    workspace.write("schedules/ops.yaml", BROKEN)
    run = workspace.validate()
    assert run.exit_code == 1
    assert run.lines == ANNOTATIONS
    assert run.err == ""


@pytest.mark.usefixtures("on_github")
def test_valid_files_under_github_actions_print_the_summary(workspace: Workspace) -> None:
    workspace.write("schedules/ops.yaml", VALID)
    run = workspace.validate("schedules")
    assert (run.exit_code, run.out) == (0, "1 schedule in 1 file is valid\n")


@pytest.mark.usefixtures("on_github")
@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(("--format", "text"), id="format-text"),
        pytest.param(("--format=text",), id="format-equals-text"),
    ],
)
def test_an_explicit_text_format_wins(workspace: Workspace, argv: tuple[str, ...]) -> None:
    workspace.write("schedules/ops.yaml", BROKEN)
    run = workspace.validate(*argv)
    assert run.exit_code == 1
    assert run.problems[0].startswith("schedules/ops.yaml:3:44: 'every' must be a positive")
    assert not any(line.startswith("::") for line in run.lines), run.out


@pytest.mark.usefixtures("on_github")
def test_an_explicit_json_format_wins(workspace: Workspace) -> None:
    workspace.write("schedules/ops.yaml", BROKEN)
    run = workspace.validate("--format", "json")
    assert run.exit_code == 1
    assert [problem["line"] for problem in run.json()["problems"]] == [3, 4]


@pytest.mark.parametrize("value", [None, "", "false", "1", "TRUE"])
def test_text_unless_github_actions_is_exactly_true(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    # GitHub's runner sets the string "true"; anything else is not a GitHub runner.
    if value is not None:
        monkeypatch.setenv("GITHUB_ACTIONS", value)
    workspace.write("schedules/ops.yaml", BROKEN)
    run = workspace.validate()
    assert run.exit_code == 1
    assert run.problems[0].startswith("schedules/ops.yaml:3:44: ")


def test_explicit_github_format_works_anywhere(workspace: Workspace) -> None:
    workspace.write("schedules/ops.yaml", BROKEN)
    run = workspace.validate("--format", "github")
    assert (run.exit_code, run.lines) == (1, ANNOTATIONS)


@pytest.mark.usefixtures("on_github")
def test_only_validate_switches_format(workspace: Workspace) -> None:
    # plan and apply read the same files; under GITHUB_ACTIONS their invalid-file errors stay
    # path:line:column text on stderr (the workflows annotate through validate).
    workspace.write("schedules/ops.yaml", BROKEN)
    run = workspace.run("plan", "--redis-url", "redis://127.0.0.1:1/0")
    assert run.exit_code == 1
    assert run.err.splitlines()[0].startswith("schedules/ops.yaml:3:44: ")


def test_help_names_the_automatic_default(workspace: Workspace) -> None:
    run = workspace.run("validate", "--help")
    assert run.exit_code == 0
    assert "GITHUB_ACTIONS" in " ".join(run.out.split())
