"""Which files are read, in which order, and how problems of several files are reported."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cli_runner import assert_single_problem, assert_valid

if TYPE_CHECKING:
    from .cli_runner import Workspace

VALID = "version: 1\nschedules:\n  {name}: {{task: app.tasks.{name}, every: 5m}}\n"
BROKEN = "version: 1\nschedules: [this file must not be read\n"


def _valid(name: str) -> str:
    return VALID.format(name=name)


def test_missing_path_fails(workspace: Workspace) -> None:
    run = workspace.validate("nowhere")
    assert_single_problem(run, "nowhere:1:1", "no such file or folder")
    assert run.summary == "1 problem"


def test_missing_path_is_reported_beside_the_problems_of_other_paths(
    workspace: Workspace,
) -> None:
    workspace.write("a.yaml", "version: 1\nschedules:\n  a: {task: t, every: 0}\n")
    run = workspace.validate("a.yaml", "missing.yaml")
    assert run.exit_code == 1
    assert [line.split(": ", 1)[0] for line in run.problems] == ["missing.yaml:1:1", "a.yaml:3:23"]


def test_folder_without_yaml_files_fails(workspace: Workspace) -> None:
    workspace.write("schedules/README.md", "# schedules\n")
    workspace.write("schedules/notes.txt", "version: 1\n")
    workspace.write("schedules/.hidden.yaml", _valid("hidden"))
    run = workspace.validate("schedules")
    assert_single_problem(
        run,
        "schedules:1:1",
        "no schedule files (*.yaml, *.yml) found; an empty set of schedules must be declared "
        "explicitly with a file holding 'schedules: {}'",
    )


def test_default_path_is_the_schedules_folder(workspace: Workspace) -> None:
    workspace.write("schedules/a.yaml", _valid("a"))
    run = workspace.validate()
    assert_valid(run)
    assert run.summary == "1 schedule in 1 file is valid"


def test_default_path_missing_fails(workspace: Workspace) -> None:
    run = workspace.validate()
    assert_single_problem(run, "schedules:1:1", "no such file or folder")


def test_yaml_and_yml_are_found_recursively_in_a_stable_order(workspace: Workspace) -> None:
    # written in an order unlike the expected one, so file-system order cannot pass by luck
    for name in ("z/deep/last.yml", "b.yml", "a/z.yaml", "a.yaml", "a/b/c.yml", "A.yaml"):
        workspace.write(f"schedules/{name}", _valid(name.replace("/", "-").split(".")[0]))
    run = workspace.validate("schedules", "--format", "json")
    assert run.exit_code == 0, run.out
    assert run.json()["files"] == [
        "schedules/A.yaml",
        "schedules/a.yaml",
        "schedules/a/b/c.yml",
        "schedules/a/z.yaml",
        "schedules/b.yml",
        "schedules/z/deep/last.yml",
    ]
    assert run.json()["schedule_count"] == 6


def test_hidden_files_and_folders_are_skipped(workspace: Workspace) -> None:
    workspace.write("schedules/a.yaml", _valid("a"))
    workspace.write("schedules/.backup.yaml", BROKEN)
    workspace.write("schedules/.git/config.yml", BROKEN)
    workspace.write("schedules/team/.cache/old.yaml", BROKEN)
    workspace.write("schedules/.hidden-folder/b.yaml", BROKEN)
    workspace.write("schedules/team/b.yml", _valid("b"))
    run = workspace.validate("schedules", "--format", "json")
    assert run.exit_code == 0, run.out
    assert run.json()["files"] == ["schedules/a.yaml", "schedules/team/b.yml"]


def test_other_suffixes_are_ignored(workspace: Workspace) -> None:
    workspace.write("schedules/a.yaml", _valid("a"))
    for name in ("a.yaml.bak", "a.yaml~", "b.json", "c.YAML.orig", "d.txt", "yaml"):
        workspace.write(f"schedules/{name}", BROKEN)
    run = workspace.validate("schedules", "--format", "json")
    assert run.exit_code == 0, run.out
    assert run.json()["files"] == ["schedules/a.yaml"]


def test_file_named_on_the_command_line_is_read_whatever_its_name(workspace: Workspace) -> None:
    workspace.write(".special.conf", _valid("special"))
    run = workspace.validate(".special.conf")
    assert_valid(run)
    assert run.summary == "1 schedule in 1 file is valid"


def test_file_given_twice_is_read_once(workspace: Workspace) -> None:
    workspace.write("schedules/a.yaml", _valid("a"))
    run = workspace.validate("schedules/a.yaml", "schedules", "./schedules/a.yaml")
    assert_valid(run)
    assert run.summary == "1 schedule in 1 file is valid"


def test_absolute_path_inside_the_working_directory_is_shown_relative(
    workspace: Workspace,
) -> None:
    path = workspace.write("schedules/a.yaml", "version: 1\nschedules:\n  a: {task: t, every: 0}\n")
    run = workspace.validate(str(path))
    assert_single_problem(run, "schedules/a.yaml:3:23", "'every' must be a positive duration")


def test_every_problem_of_every_file_is_reported_sorted_by_file_then_line(
    workspace: Workspace,
) -> None:
    workspace.write(
        "schedules/b.yaml",
        """
        version: 1
        schedules:
          b1: {task: app.tasks.b, every: 5m, options: {queeu: q}}
          b2: {task: app.tasks.b, every: 5x}
        """,
    )
    workspace.write(
        "schedules/a.yaml",
        """
        version: 1
        schedules:
          a1: {task: app.tasks.a, cron: "0 0 30 2 *"}
          a2: {task: app.tasks.a, every: 5m}
          a3: {task: app.tasks.a, every: 0}
        oops: true
        """,
    )
    workspace.write("schedules/c.yml", "version: 1\nschedules: [\n")
    workspace.write("schedules/d.yml", "version: 1\nschedules:\n  fine: {task: t, every: 5}\n")
    run = workspace.validate("schedules")
    assert run.exit_code == 1
    # a1 is found by the check that runs after every file is read, yet is listed first
    assert [line.split(": ", 1)[0] for line in run.problems] == [
        "schedules/a.yaml:3:33",
        "schedules/a.yaml:5:34",
        "schedules/a.yaml:6:1",
        "schedules/b.yaml:3:48",
        "schedules/b.yaml:4:34",
        "schedules/c.yml:3:1",
    ], run.out
    assert "never occurs" in run.problems[0]
    assert "unknown top-level key 'oops'" in run.problems[2]
    assert "YAML syntax error" in run.problems[5]
    assert run.summary == "6 problems in 3 files"
