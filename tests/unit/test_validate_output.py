"""The three output formats of ``reconciler validate``, its summary line and exit codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .cli_runner import Workspace

TWO_VALID_FILES = {
    "schedules/reports.yaml": """
        version: 1
        schedules:
          nightly: {task: app.tasks.report, cron: "0 3 * * *"}
          weekly: {task: app.tasks.digest, cron: "0 6 * * mon"}
        """,
    "schedules/ops.yml": """
        version: 1
        schedules:
          heartbeat: {task: app.tasks.ping, every: 30s}
        """,
}
TWO_PROBLEMS = """
    version: 1
    schedules:
      heartbeat: {task: app.tasks.ping, every: 0}
      nightly: {task: app.tasks.report, cron: "0 3 * * 7"}
    """


def _write_all(workspace: Workspace, files: dict[str, str]) -> None:
    for name, text in files.items():
        workspace.write(name, text)


def test_text_output_of_valid_files(workspace: Workspace) -> None:
    _write_all(workspace, TWO_VALID_FILES)
    run = workspace.validate("schedules")
    assert (run.exit_code, run.out, run.err) == (0, "3 schedules in 2 files are valid\n", "")


def test_text_output_of_one_valid_schedule_is_singular(workspace: Workspace) -> None:
    workspace.write("s.yaml", "version: 1\nschedules:\n  a: {task: t, every: 5}\n")
    run = workspace.validate("s.yaml")
    assert (run.exit_code, run.out) == (0, "1 schedule in 1 file is valid\n")


def test_text_output_of_problems(workspace: Workspace) -> None:
    workspace.write("s.yaml", TWO_PROBLEMS)
    run = workspace.validate("s.yaml")
    assert run.exit_code == 1
    assert run.err == ""
    assert run.out == (
        "s.yaml:3:44: 'every' must be a positive duration, got 0\n"
        "s.yaml:4:43: cron day-of-week field '7' uses 7 for Sunday; Celery's day_of_week runs "
        "0-6 with 0 = Sunday: write 0 or sun\n"
        "2 problems in 1 file\n"
    )


def test_json_output_of_problems(workspace: Workspace) -> None:
    workspace.write("s.yaml", TWO_PROBLEMS)
    run = workspace.validate("s.yaml", "--format", "json")
    assert run.exit_code == 1
    assert run.json() == {
        "format_version": 1,
        "valid": False,
        "files": ["s.yaml"],
        "schedule_count": 0,
        "problems": [
            {
                "path": "s.yaml",
                "line": 3,
                "column": 44,
                "code": "every",
                "message": "'every' must be a positive duration, got 0",
            },
            {
                "path": "s.yaml",
                "line": 4,
                "column": 43,
                "code": "cron",
                "message": "cron day-of-week field '7' uses 7 for Sunday; Celery's day_of_week "
                "runs 0-6 with 0 = Sunday: write 0 or sun",
            },
        ],
        "summary": "2 problems in 1 file",
    }


def test_json_output_of_valid_files(workspace: Workspace) -> None:
    _write_all(workspace, TWO_VALID_FILES)
    run = workspace.validate("schedules", "--format", "json")
    assert run.exit_code == 0
    assert run.json() == {
        "format_version": 1,
        "valid": True,
        "files": ["schedules/ops.yml", "schedules/reports.yaml"],
        "schedule_count": 3,
        "problems": [],
        "summary": "3 schedules in 2 files are valid",
    }


@pytest.mark.parametrize(
    ("text", "code"),
    [
        pytest.param("version: 1\nschedules: [\n", "yaml-syntax", id="yaml-syntax"),
        pytest.param("", "empty-file", id="empty-file"),
        pytest.param("- 1\n", "not-a-mapping", id="not-a-mapping"),
        pytest.param("version: 2\nschedules: {}\n", "version", id="version"),
        pytest.param("version: 1\nschedules: {}\nextra: 1\n", "unknown-key", id="unknown-key"),
        pytest.param("version: 1\n", "missing", id="missing"),
        pytest.param("version: 1\nschedules:\n  ':lock': {task: t, every: 5}\n", "name", id="name"),
        pytest.param("version: 1\nschedules:\n  a: {task: t}\n", "schedule-kind", id="kind"),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, cron: '0 0 30 2 *'}\n",
            "never-fires",
            id="never-fires",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, every: 5, args: [.nan]}\n", "json", id="json"
        ),
        pytest.param("version: 1\nschedules:\n  a: !foo {}\n", "yaml-tag", id="yaml-tag"),
        pytest.param(
            "version: 1\nschedules: {}\nversion: 1\n", "duplicate-key", id="duplicate-key"
        ),
        pytest.param("&a [*a]\n", "recursive-alias", id="recursive-alias"),
    ],
)
def test_json_output_has_a_stable_code_per_rule(workspace: Workspace, text: str, code: str) -> None:
    workspace.write("s.yaml", text)
    run = workspace.validate("s.yaml", "--format", "json")
    assert run.exit_code == 1
    assert [problem["code"] for problem in run.json()["problems"]][:1] == [code], run.out


def test_github_output_of_problems(workspace: Workspace) -> None:
    workspace.write("s.yaml", TWO_PROBLEMS)
    run = workspace.validate("s.yaml", "--format", "github")
    assert run.exit_code == 1
    assert run.lines == [
        "::error file=s.yaml,line=3,col=44,title=reconciler validate::"
        "'every' must be a positive duration, got 0",
        "::error file=s.yaml,line=4,col=43,title=reconciler validate::"
        "cron day-of-week field '7' uses 7 for Sunday; Celery's day_of_week runs 0-6 with "
        "0 = Sunday: write 0 or sun",
        "2 problems in 1 file",
    ]


def test_github_output_escapes_properties_and_data(workspace: Workspace) -> None:
    workspace.write("a,b:c.yaml", "version: 1\nschedules:\n  a: {task: t, every: 5%}\n")
    run = workspace.validate("a,b:c.yaml", "--format", "github")
    assert run.exit_code == 1
    assert run.lines[0] == (
        "::error file=a%2Cb%3Ac.yaml,line=3,col=23,title=reconciler validate::"
        "'every' value '5%25' is not a duration; write 30s, 5m, 1h30m, 2d, 1w, or a number "
        "of seconds"
    )


def test_github_output_of_valid_files_is_the_summary(workspace: Workspace) -> None:
    _write_all(workspace, TWO_VALID_FILES)
    run = workspace.validate("schedules", "--format", "github")
    assert (run.exit_code, run.out) == (0, "3 schedules in 2 files are valid\n")


def test_unknown_format_is_refused(workspace: Workspace) -> None:
    _write_all(workspace, TWO_VALID_FILES)
    run = workspace.validate("schedules", "--format", "yaml")
    assert run.exit_code == 1
    assert "Invalid value for '--format'" in run.err


def test_timezone_option_is_accepted(workspace: Workspace) -> None:
    _write_all(workspace, TWO_VALID_FILES)
    run = workspace.validate("schedules", "--timezone", "Europe/Paris")
    assert (run.exit_code, run.out) == (0, "3 schedules in 2 files are valid\n")


def test_unknown_timezone_fails_with_one_clear_line(workspace: Workspace) -> None:
    _write_all(workspace, TWO_VALID_FILES)
    run = workspace.validate("schedules", "--timezone", "Mars/Olympus_Mons")
    assert run.exit_code == 1
    assert run.out == ""
    assert run.err == (
        "error: unknown timezone 'Mars/Olympus_Mons'; use an IANA name such as UTC or "
        "Europe/Paris\n"
    )


# -- the summary counts what holds a problem, never what was merely read --------------------

ONE_BAD_OF_TWO = {
    "schedules/ops.yml": "version: 1\nschedules:\n  heartbeat: {task: app.tasks.ping, every: 0}\n",
    "schedules/reports.yaml": TWO_VALID_FILES["schedules/reports.yaml"],
}


def _summary(workspace: Workspace, output_format: str, *paths: str) -> str:
    run = workspace.validate(*paths, "--format", output_format)
    assert run.exit_code == 1, run.out
    return str(run.json()["summary"]) if output_format == "json" else run.summary


@pytest.mark.parametrize("output_format", ["text", "json", "github"])
def test_summary_counts_only_the_file_with_the_problem(
    workspace: Workspace, output_format: str
) -> None:
    _write_all(workspace, ONE_BAD_OF_TWO)
    assert _summary(workspace, output_format, "schedules") == "1 problem in 1 file"


@pytest.mark.parametrize("output_format", ["text", "json", "github"])
def test_summary_of_an_empty_folder_counts_no_file(
    workspace: Workspace, output_format: str
) -> None:
    (workspace.root / "schedules").mkdir()
    assert _summary(workspace, output_format, "schedules") == "1 problem"


@pytest.mark.parametrize("output_format", ["text", "json", "github"])
def test_summary_of_a_missing_path_beside_a_bad_file(
    workspace: Workspace, output_format: str
) -> None:
    _write_all(workspace, ONE_BAD_OF_TWO)
    summary = _summary(workspace, output_format, "schedules", "missing.yaml")
    assert summary == "2 problems, 1 of them in 1 file"


def test_summary_counts_each_file_with_problems_once(workspace: Workspace) -> None:
    _write_all(workspace, TWO_VALID_FILES)
    workspace.write(
        "elsewhere/bad.yaml", TWO_PROBLEMS.replace("heartbeat", "ping").replace("nightly", "n")
    )
    workspace.write("elsewhere/worse.yaml", "version: 1\nschedules: [\n")
    run = workspace.validate("schedules", "elsewhere")
    assert len(run.problems) == 3, run.out
    assert run.summary == "3 problems in 2 files"
