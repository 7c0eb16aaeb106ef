"""Rules about entry names: safe under RedBeat's key prefix, visible, and unique across files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .cli_runner import assert_single_problem, assert_valid

if TYPE_CHECKING:
    from .cli_runner import Workspace


def _named(yaml_name: str) -> str:
    """A file whose only entry is called ``yaml_name`` (as written in YAML) at line 3, col 3."""
    return f"version: 1\nschedules:\n  {yaml_name}: {{task: app.tasks.job, every: 5m}}\n"


@pytest.mark.parametrize(
    ("yaml_name", "phrase"),
    [
        pytest.param('""', "schedule name is empty", id="empty"),
        pytest.param(
            r'"a\nb"',
            r"schedule name 'a\nb' contains the invisible or control character U+000A "
            "at position 2",
            id="newline",
        ),
        pytest.param(r'"a\tb"', "control character U+0009 at position 2", id="tab"),
        pytest.param(r'"a\rb"', "control character U+000D at position 2", id="carriage-return"),
        pytest.param(r'"\e[31mred"', "control character U+001B at position 1", id="escape"),
        pytest.param(r'"a\0b"', "control character U+0000 at position 2", id="nul"),
        pytest.param(r'"a\u200bb"', "character U+200B at position 2", id="zero-width-space"),
        pytest.param(r'"a\u200db"', "character U+200D at position 2", id="zero-width-joiner"),
        pytest.param(r'"ab\ufeff"', "character U+FEFF at position 3", id="zero-width-no-break"),
        pytest.param(r'"a\u202eb"', "character U+202E at position 2", id="bidi-override"),
        pytest.param(r'"a\u2066b"', "character U+2066 at position 2", id="bidi-isolate"),
        pytest.param(r'"a\u200fb"', "character U+200F at position 2", id="right-to-left-mark"),
        pytest.param(r'"a\Lb"', "character U+2028 at position 2", id="line-separator"),
        pytest.param(r'"a\Pb"', "character U+2029 at position 2", id="paragraph-separator"),
        pytest.param(r'"a\x85b"', "character U+0085 at position 2", id="next-line"),
        pytest.param(
            "x" * 201,
            "schedule name is 201 characters long; the limit is 200",
            id="201-characters",
        ),
        pytest.param(
            '":lock"',
            "schedule name ':lock' starts with ':', reserved for RedBeat's own keys "
            "(:schedule, :statics, :lock) and the reconciler's bookkeeping (:reconciler:...)",
            id="colon-lock",
        ),
        pytest.param(
            '":schedule"', "schedule name ':schedule' starts with ':'", id="colon-schedule"
        ),
        pytest.param('":statics"', "schedule name ':statics' starts with ':'", id="colon-statics"),
        pytest.param(
            '":reconciler:x"',
            "schedule name ':reconciler:x' starts with ':'",
            id="colon-reconciler",
        ),
        pytest.param('":"', "schedule name ':' starts with ':'", id="colon-only"),
        pytest.param(
            '" nightly"',
            "schedule name ' nightly' starts or ends with white space",
            id="leading-space",
        ),
        pytest.param(
            '"nightly "',
            "schedule name 'nightly ' starts or ends with white space",
            id="trailing-space",
        ),
        pytest.param(
            r'"nightly\u00a0"', "starts or ends with white space", id="trailing-no-break-space"
        ),
        pytest.param("123", 'schedule name 123 is not a string; quote it ("123")', id="integer"),
        pytest.param("1.5", "schedule name 1.5 is not a string", id="float"),
        pytest.param("true", "is not a string", id="boolean"),
        pytest.param("null", "is not a string", id="null"),
        pytest.param("2026-01-01", "is not a string", id="date"),
    ],
)
def test_invalid_schedule_name(workspace: Workspace, yaml_name: str, phrase: str) -> None:
    assert_single_problem(workspace.check(_named(yaml_name)), "s.yaml:3:3", phrase)


@pytest.mark.parametrize(
    "yaml_name",
    [
        pytest.param("y" * 200, id="200-characters"),
        pytest.param("nightly-report", id="dashes"),
        pytest.param("reports.nightly_v2", id="dots-underscores"),
        pytest.param("reports:nightly", id="colon-inside"),
        pytest.param('"nightly report"', id="inner-space"),
        pytest.param(r'"rapport-quotidien-\u00e9t\u00e9"', id="accented"),
        pytest.param('"123"', id="quoted-number"),
    ],
)
def test_valid_schedule_name(workspace: Workspace, yaml_name: str) -> None:
    assert_valid(workspace.check(_named(yaml_name)))


def test_duplicate_name_across_two_files_names_the_other_place(workspace: Workspace) -> None:
    workspace.write(
        "schedules/a.yaml",
        """
        version: 1
        schedules:
          unique-a: {task: app.tasks.a, every: 5m}
          nightly: {task: app.tasks.a, cron: "0 3 * * *"}
        """,
    )
    workspace.write(
        "schedules/team/b.yml",
        """
        version: 1
        schedules:

          unique-b: {task: app.tasks.b, every: 5m}
          nightly: {task: app.tasks.b, cron: "0 4 * * *"}
        """,
    )
    run = workspace.validate("schedules")
    assert_single_problem(
        run,
        "schedules/team/b.yml:5:3",
        "duplicate schedule name 'nightly': already defined at schedules/a.yaml:4:3; "
        "names must be unique across all files",
    )
    assert run.summary == "1 problem in 1 file"


def test_duplicate_name_is_reported_even_when_an_entry_is_invalid(workspace: Workspace) -> None:
    workspace.write("a.yaml", "version: 1\nschedules:\n  nightly: {task: app.tasks.a, every: 0}\n")
    workspace.write("b.yaml", "version: 1\nschedules:\n  nightly: {task: app.tasks.b, every: 5}\n")
    run = workspace.validate("a.yaml", "b.yaml")
    assert run.exit_code == 1
    assert run.problems == [
        "a.yaml:3:39: 'every' must be a positive duration, got 0",
        "b.yaml:3:3: duplicate schedule name 'nightly': already defined at a.yaml:3:3; "
        "names must be unique across all files",
    ]


def test_duplicate_name_in_three_files_is_reported_for_each_later_one(
    workspace: Workspace,
) -> None:
    for name in ("a", "b", "c"):
        workspace.write(
            f"{name}.yaml", "version: 1\nschedules:\n  nightly: {task: app.tasks.x, every: 5}\n"
        )
    run = workspace.validate(".")
    assert run.problems == [
        "b.yaml:3:3: duplicate schedule name 'nightly': already defined at a.yaml:3:3; "
        "names must be unique across all files",
        "c.yaml:3:3: duplicate schedule name 'nightly': already defined at a.yaml:3:3; "
        "names must be unique across all files",
    ]


def test_same_name_in_two_files_differing_only_by_case_is_allowed(workspace: Workspace) -> None:
    workspace.write("a.yaml", "version: 1\nschedules:\n  Nightly: {task: app.tasks.a, every: 5}\n")
    workspace.write("b.yaml", "version: 1\nschedules:\n  nightly: {task: app.tasks.b, every: 5}\n")
    run = workspace.validate(".")
    assert_valid(run)
    assert run.summary == "2 schedules in 2 files are valid"
