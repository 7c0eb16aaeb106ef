"""``validate`` in a project with targets: without --target it checks the files and every
target's overlays (a pull request must catch a typo in the production overlay), reporting
each problem once; with --target, that target only."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .cli_runner import Workspace

SCHEDULES = """
version: 1
schedules:
  nightly-report:
    task: app.tasks.report
    cron: "0 3 * * *"
    options: {queue: reports}
  heartbeat:
    task: app.tasks.ping
    every: 30s
"""
CONFIG = """
paths = ["schedules"]

[targets.staging]
redis-url-env = "STAGING_REDIS_URL"
overlays = ["overlays/staging.yaml"]

[targets.production]
redis-url-env = "PRODUCTION_REDIS_URL"
overlays = ["overlays/production.yaml"]
"""
STAGING = "version: 1\npatches:\n  heartbeat: {every: 5m}\n"
PRODUCTION = "version: 1\npatches:\n  nightly-report:\n    options: {queue: reports-prod}\n"


@pytest.fixture
def project(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    for variable in ("RECONCILER_CONFIG", "RECONCILER_TARGET", "STAGING_REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    (workspace.root / ".git").mkdir()
    workspace.write("schedules/reports.yaml", SCHEDULES)
    workspace.write("reconciler.toml", CONFIG)
    workspace.write("overlays/staging.yaml", STAGING)
    workspace.write("overlays/production.yaml", PRODUCTION)
    return workspace


def test_every_target_is_valid(project: Workspace) -> None:
    run = project.validate()
    assert (run.exit_code, run.err) == (0, "")
    assert run.out == (
        "2 schedules in 1 file and 2 overlays are valid (targets staging, production)\n"
    )


def test_a_typo_in_the_production_overlay_is_caught_without_target(project: Workspace) -> None:
    project.write("overlays/production.yaml", PRODUCTION.replace("queue:", "queeu:"))
    run = project.validate()
    assert run.exit_code == 1
    assert run.problems == [
        "overlays/production.yaml:4:15: unknown key 'queeu'; did you mean 'queue'? (valid: "
        "queue, exchange, routing_key, priority, expires, countdown, time_limit, "
        "soft_time_limit, serializer, compression, headers, retry, retry_policy, "
        "ignore_result, shadow, delivery_mode) (target production)"
    ]
    assert run.summary == "1 problem in 1 overlay (targets staging, production)"


def test_a_problem_of_the_shared_files_is_reported_once(project: Workspace) -> None:
    project.write("schedules/reports.yaml", SCHEDULES.replace('"0 3 * * *"', '"0 24 * * *"'))
    run = project.validate()
    assert run.exit_code == 1
    assert len(run.problems) == 1
    assert run.problems[0].startswith("schedules/reports.yaml:5:11: cron hour field '24'")
    assert run.problems[0].endswith("*/n)")  # found everywhere: no target named


def test_summary_counts_the_file_and_the_overlay_with_problems(project: Workspace) -> None:
    project.write("overlays/production.yaml", PRODUCTION.replace("queue:", "queeu:"))
    project.write("schedules/reports.yaml", SCHEDULES.replace("every: 30s", "every: 0"))
    run = project.validate()
    assert [line.split(": ", 1)[0] for line in run.problems] == [
        "schedules/reports.yaml:9:12",
        "overlays/production.yaml:4:15",
    ], run.out
    assert run.summary == "2 problems in 1 file and 1 overlay (targets staging, production)"
    document = json.loads(project.validate("--format", "json").out)
    assert document["summary"] == run.summary


def test_a_problem_only_one_target_makes_says_which(project: Workspace) -> None:
    # The staging overlay leaves heartbeat without a schedule: the problem is at the entry.
    project.write("overlays/staging.yaml", "version: 1\npatches:\n  heartbeat: {every: null}\n")
    run = project.validate()
    assert run.problems == [
        "schedules/reports.yaml:7:3: schedule 'heartbeat' needs exactly one of cron, every or "
        "rrule (target staging)"
    ]


def test_with_target_only_that_target_is_checked(project: Workspace) -> None:
    project.write("overlays/production.yaml", PRODUCTION.replace("queue:", "queeu:"))
    run = project.validate("--target", "staging")
    assert (run.exit_code, run.out) == (
        0,
        "2 schedules in 1 file and 1 overlay are valid (target staging)\n",
    )
    assert project.validate("--target", "production").exit_code == 1


def test_the_top_level_alone_is_checked_unless_a_default_target_stands_for_it(
    project: Workspace,
) -> None:
    # Every target names its own files; the top level names none and so means schedules/,
    # which this project does not have.
    project.write(
        "reconciler.toml",
        '[targets.staging]\npaths = ["staging"]\n[targets.production]\npaths = ["production"]\n',
    )
    project.write("staging/a.yaml", SCHEDULES)
    project.write("production/a.yaml", SCHEDULES)
    (project.root / "schedules" / "reports.yaml").unlink()
    (project.root / "schedules").rmdir()
    run = project.validate()
    assert run.problems == ["schedules:1:1: no such file or folder (without a target)"]
    project.write(
        "reconciler.toml",
        'default-target = "staging"\n'
        '[targets.staging]\npaths = ["staging"]\n[targets.production]\npaths = ["production"]\n',
    )
    run = project.validate()
    assert (run.exit_code, run.out) == (
        0,
        "2 schedules in 2 files are valid (targets staging, production)\n",
    )


def test_typed_paths_are_checked_with_each_targets_overlays(project: Workspace) -> None:
    project.write("other/a.yaml", SCHEDULES)
    run = project.validate("other")
    assert run.exit_code == 0
    assert run.out.startswith("2 schedules in 1 file and 2 overlays are valid")


def test_json_names_the_overlays_and_targets(project: Workspace) -> None:
    document = json.loads(project.validate("--format", "json").out)
    assert document["files"] == ["schedules/reports.yaml"]
    assert document["overlays"] == ["overlays/staging.yaml", "overlays/production.yaml"]
    assert document["targets"] == ["staging", "production"]
    assert document["valid"] is True


def test_github_annotations_point_at_the_overlay(project: Workspace) -> None:
    project.write("overlays/production.yaml", PRODUCTION.replace("queue:", "queeu:"))
    run = project.validate("--format", "github")
    assert run.lines[0].startswith(
        "::error file=overlays/production.yaml,line=4,col=15,title=reconciler validate::"
        "unknown key 'queeu'"
    )
