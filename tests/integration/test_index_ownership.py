"""Ownership is the marker on the hash itself; the managed index only helps find names.

Against a real redis-server: a foreign hash that only the managed index lists survives
``apply --prune`` and is reported by drift; a name the files hold is then a conflict until
adopted; members of the index that no entry can have (``:schedule``, ``:lock``, empty, very
long) are named and skipped, never read, written or deleted, and no message tells anyone to
remove a key the reconciler does not own.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.store.keys import MARKER_FIELD
from tests.integration.plan_apply_support import (
    BEAT_LOCK_KEY,
    MANAGED_KEY,
    PREFIX,
    SCHEDULE_KEY,
    assert_unchanged,
    cli_against,
    cron,
    definition_of,
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

FOREIGN = {
    "name": "foreign",
    "task": "app.tasks.other",
    "args": [],
    "kwargs": {},
    "options": {},
    "enabled": True,
    "schedule": {"__type__": "interval", "every": 60.0, "relative": False},
}
FOREIGN_META = '{"last_run_at": null, "total_run_count": 7}'


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str],
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> CliRunner:
    isolate(monkeypatch, tmp_path)
    return cli_against(capsys, redis_url)


def _schedules(tmp_path: Path, entries: dict[str, dict[str, Any]]) -> None:
    write_schedules(tmp_path / "schedules", entries)


def _foreign_in_index(client: redis.Redis, name: str = "foreign") -> None:
    """A hash as RedBeat's save() writes it (no marker), listed in the managed index."""
    definition = {**FOREIGN, "name": name}
    client.hset(PREFIX + name, mapping={"definition": json.dumps(definition), "meta": FOREIGN_META})
    client.zadd(SCHEDULE_KEY, {PREFIX + name: 1.0})
    client.sadd(MANAGED_KEY, name)


def _drift(cli: CliRunner) -> list[dict[str, Any]]:
    run = cli("drift", "schedules", "--format", "json")
    assert run.code in (0, 2), run.err
    findings: list[dict[str, Any]] = json.loads(run.out)["findings"]
    return findings


def test_an_index_only_foreign_hash_survives_apply_prune_and_drift_reports_it(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    _schedules(tmp_path, {"keep": cron("0 3 * * *")})
    assert cli("apply", "schedules").code == 0
    _foreign_in_index(redis_client)
    foreign_before = snapshot(redis_server)

    plan = cli("plan", "schedules", "--prune")
    assert plan.code == 0, plan.err
    assert "foreign" not in plan.out.replace("'foreign' is in the reconciler's managed index", "")
    assert "'foreign' is in the reconciler's managed index, but its hash does not carry" in (
        plan.out + plan.err
    )
    applied = cli("apply", "schedules", "--prune")
    assert applied.code == 0, applied.err
    assert_unchanged(foreign_before, snapshot(redis_server))
    assert redis_client.hget(PREFIX + "foreign", "meta") == FOREIGN_META

    [finding] = [item for item in _drift(cli) if item["name"] == "foreign"]
    assert (finding["kind"], finding["severity"]) == ("unmarked", "warning")
    assert "'apply --prune' leaves it" in finding["explanation"]
    assert "apply --adopt" in finding["action"]


def test_an_index_only_hash_the_files_name_is_a_conflict_until_adopted(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    """Nothing removes a single field of a RedBeat hash (its delete() removes the key): a
    definition without the marker was written by someone else, whatever the index says."""
    _foreign_in_index(redis_client)
    _schedules(tmp_path, {"foreign": cron("0 3 * * *")})
    before = snapshot(redis_server)

    plan = cli("plan", "schedules", "--detailed-exitcode")
    assert plan.code == 1
    assert cli("apply", "schedules").code == 1
    assert_unchanged(before, snapshot(redis_server))
    [finding] = [item for item in _drift(cli) if item["name"] == "foreign"]
    assert (finding["kind"], finding["severity"]) == ("conflict", "error")
    assert (
        "managed index, but its hash does not carry the ownership marker"
        in (finding["explanation"])
    )

    adopted = cli("apply", "schedules", "--adopt")
    assert adopted.code == 0, adopted.err
    assert is_managed(redis_client, "foreign")
    assert definition_of(redis_client, "foreign")["schedule"]["__type__"] == "crontab"
    assert json.loads(redis_client.hget(PREFIX + "foreign", "meta"))["total_run_count"] == 7


def test_an_entry_whose_marker_was_removed_is_no_longer_pruned(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    _schedules(tmp_path, {"keep": cron("0 3 * * *"), "gone": cron("0 4 * * *")})
    assert cli("apply", "schedules").code == 0
    redis_client.hdel(PREFIX + "gone", MARKER_FIELD)
    redis_client.hset(PREFIX + "keep", MARKER_FIELD, "not the reconciler's marker")
    _schedules(tmp_path, {"keep": cron("0 3 * * *")})

    assert cli("apply", "schedules", "--prune").code == 1  # 'keep' is not ours any more
    assert redis_client.exists(PREFIX + "gone")
    _schedules(tmp_path, {})
    assert cli("apply", "schedules", "--prune").code == 0
    assert redis_client.exists(PREFIX + "gone")
    assert redis_client.exists(PREFIX + "keep")


ODD_MEMBERS = [":schedule", ":lock", ":statics", ":reconciler:managed", "", "x" * 5000, " pad"]


def test_odd_index_members_are_named_and_skipped(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    _schedules(tmp_path, {"keep": cron("0 3 * * *")})
    assert cli("apply", "schedules").code == 0
    redis_client.set(BEAT_LOCK_KEY, "beat-token", px=600_000)
    redis_client.set(PREFIX, "another application's value")  # the key of the empty name
    redis_client.sadd(MANAGED_KEY, *ODD_MEMBERS)
    before = snapshot(redis_server)

    for argv in (("plan", "schedules", "--prune"), ("export",), ("history",)):
        run = cli(*argv)
        assert run.code == 0, f"{argv}: {run.err}"
        assert "remove or rename" not in run.err
    plan = cli("plan", "schedules", "--prune")
    assert "the reconciler's managed index lists ':schedule', which no entry can have" in (
        plan.out + plan.err
    )
    assert "No changes" in plan.out
    assert cli("apply", "schedules", "--prune").code == 0
    assert_unchanged(before, snapshot(redis_server), only={SCHEDULE_KEY, BEAT_LOCK_KEY, PREFIX})

    findings = [item for item in _drift(cli) if item["kind"] == "unmarked"]
    assert len(findings) == len(ODD_MEMBERS)
    assert {finding["severity"] for finding in findings} == {"warning"}
    for finding in findings:
        assert "skipped: nothing under it is read, written or deleted" in finding["explanation"]
        assert "leave the key it names alone" in finding["action"]
    assert is_managed(redis_client, "keep")


@pytest.mark.parametrize(
    ("key", "own"),
    [
        pytest.param(PREFIX + "keep", False, id="entry"),
        pytest.param(SCHEDULE_KEY, False, id="schedule"),
        pytest.param(MANAGED_KEY, True, id="managed-index"),
    ],
)
def test_a_key_of_the_wrong_type_is_named_without_advice_to_delete_what_is_not_ours(
    key: str, own: bool, cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    _schedules(tmp_path, {"keep": cron("0 3 * * *")})
    redis_client.rpush(key, "someone else's data")
    for argv in (("plan", "schedules"), ("drift", "schedules"), ("apply", "schedules")):
        run = cli(*argv)
        assert run.code == 1
        [line] = [line for line in run.err.splitlines() if line.startswith("error:")]
        assert key in line
        assert ("remove or rename that key" in line) is own, line
    assert redis_client.lrange(key, 0, -1) == ["someone else's data"]
