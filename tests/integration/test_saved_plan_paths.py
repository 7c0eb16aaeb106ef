"""A saved plan of schedule paths applies from any working directory that reaches the same
paths: absolute paths from anywhere, relative ones from the folder the plan was made in
(as Terraform's saved plans name their configuration relative to where they were made).
A changed file is refused from anywhere, with Redis left as it was."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.integration.plan_apply_support import (
    PREFIX,
    assert_unchanged,
    cli_against,
    cron,
    is_managed,
    isolate,
    snapshot,
    write_schedules,
)

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliRunner
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

ENTRIES = {"nightly": cron("0 3 * * *"), "weekly": cron("0 6 * * 1")}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate(monkeypatch, tmp_path)
    write_schedules(tmp_path / "repo" / "schedules", ENTRIES)
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "repo"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


@pytest.mark.parametrize(
    ("plan_in", "apply_in"),
    [("repo", "elsewhere"), ("elsewhere", "repo"), ("repo/schedules", "/")],
    ids=["inside-then-outside", "outside-then-inside", "deeper-then-root"],
)
def test_a_plan_of_absolute_paths_applies_from_another_folder(
    cli: CliRunner,
    repo: Path,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    plan_in: str,
    apply_in: str,
) -> None:
    plan_file = repo.parent / "plan.json"
    monkeypatch.chdir(repo.parent / plan_in)
    planned = cli("plan", str(repo / "schedules"), "--out", str(plan_file))
    assert planned.code == 0, planned.err
    monkeypatch.chdir(repo.parent / apply_in)
    applied = cli("apply", "--plan", str(plan_file))
    assert applied.code == 0, applied.err
    assert "Apply complete: 2 created, 0 updated, 0 adopted, 0 deleted, 0 repaired." in applied.out
    assert is_managed(redis_client, "nightly")
    assert redis_client.exists(PREFIX + "weekly") == 1


def test_a_changed_file_is_refused_from_another_folder(
    cli: CliRunner, repo: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_file = repo.parent / "plan.json"
    monkeypatch.chdir(repo)
    assert cli("plan", str(repo / "schedules"), "--out", str(plan_file)).code == 0
    (repo / "schedules" / "schedules.yaml").write_text(
        (repo / "schedules" / "schedules.yaml").read_text() + "# a comment is a change too\n"
    )
    monkeypatch.chdir(repo.parent / "elsewhere")
    before = snapshot(redis_server)
    refused = cli("apply", "--plan", str(plan_file))
    assert refused.code == 1
    assert refused.err == (
        "error: the schedule files changed since the plan was made; nothing was written. "
        "Make a new plan\n"
    )
    assert_unchanged(before, snapshot(redis_server))


def test_relative_paths_apply_from_the_folder_the_plan_was_made_in(
    cli: CliRunner, repo: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    assert cli("plan", "schedules", "--out", "plan.json").code == 0
    monkeypatch.chdir(repo.parent / "elsewhere")
    before = snapshot(redis_server)
    refused = cli("apply", "--plan", str(repo / "plan.json"))
    assert refused.code == 1
    assert "the plan's schedule paths are not found from here (schedules)" in refused.err
    assert_unchanged(before, snapshot(redis_server))
    monkeypatch.chdir(repo)
    applied = cli("apply", "--plan", "plan.json")
    assert applied.code == 0, applied.err
    assert "Apply complete: 2 created" in applied.out
