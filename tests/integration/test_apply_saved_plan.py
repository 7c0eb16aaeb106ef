"""Saved plans and atomic applies: stale plans are refused with Redis byte-for-byte unchanged,
an unchanged plan applies exactly, batches commit with one history record."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from celery.schedules import crontab
from redbeat import RedBeatSchedulerEntry

from reconciler.api import StoreSettings, apply_plan, load_schedules, make_plan, open_store
from reconciler.core.errors import StalePlan
from reconciler.store.history import read_history
from reconciler.store.keys import MARKER_FIELD
from tests.integration.plan_apply_support import (
    APPLY_LOCK_KEY,
    MANAGED_KEY,
    PREFIX,
    SCHEDULE_KEY,
    UTC,
    assert_unchanged,
    cli_against,
    cron,
    definition_of,
    history_records,
    is_managed,
    isolate,
    monitor,
    next_daily,
    redbeat_meta,
    run_cli,
    snapshot,
    timestamp,
    write_schedules,
)

if TYPE_CHECKING:
    from pathlib import Path

    import redis
    from celery import Celery

    from tests.integration.plan_apply_support import CliResult, CliRunner
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


INITIAL = {
    "edit-me": cron("0 3 * * *", kwargs={"region": "eu"}),
    "keep-me": cron("0 3 * * *"),
    "drop-me": cron("0 3 * * *"),
}
CHANGED = {
    "edit-me": cron("0 4 * * *", kwargs={"region": "us"}),
    "keep-me": cron("0 3 * * *"),
    "new-one": cron("0 6 * * *"),
}


def saved_plan(cli: CliRunner, tmp_path: Path) -> dict[str, Any]:
    """Apply INITIAL, change the files to CHANGED, save a plan with --prune."""
    write_schedules(tmp_path / "schedules", INITIAL)
    assert cli("apply", "schedules").code == 0
    write_schedules(tmp_path / "schedules", CHANGED)
    saved = cli("plan", "schedules", "--prune", "--out", "saved.json")
    assert saved.code == 0, saved.err
    assert "Saved the plan to saved.json" in saved.err
    document: dict[str, Any] = json.loads((tmp_path / "saved.json").read_text())
    assert {(c["name"], c["action"]) for c in document["changes"]} == {
        ("edit-me", "update"),
        ("drop-me", "delete"),
        ("new-one", "create"),
    }
    return document


def assert_refused_as_stale(
    cli: CliRunner, redis_server: RedisServer, expected: str, *argv: str
) -> CliResult:
    before = snapshot(redis_server)
    result = cli("apply", "--plan", "saved.json", *argv)
    assert result.code == 1, result.out + result.err
    assert expected in result.err
    assert "nothing was written" in result.err
    assert len(result.err_lines) == 1, result.err
    assert_unchanged(before, snapshot(redis_server))
    return result


def test_saved_plan_is_stale_once_a_definition_changed_in_redis(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    saved_plan(cli, tmp_path)
    # The application edits the entry the plan updates.
    definition = redis_client.hget(PREFIX + "edit-me", "definition")
    assert definition is not None
    redis_client.hset(PREFIX + "edit-me", "definition", definition.replace('"eu"', '"fr"'))
    assert_refused_as_stale(cli, redis_server, "changed since the plan was made")


def test_saved_plan_is_stale_once_an_unchanged_entry_changed_in_redis(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    saved_plan(cli, tmp_path)
    definition = redis_client.hget(PREFIX + "keep-me", "definition")
    assert definition is not None
    redis_client.hset(PREFIX + "keep-me", "definition", definition.replace('"3"', '"9"'))
    assert_refused_as_stale(cli, redis_server, "changed since the plan was made")


def test_saved_plan_is_stale_once_ownership_changed(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    saved_plan(cli, tmp_path)
    # Someone disowns an entry by hand: the plan's delete must not go ahead.
    redis_client.hdel(PREFIX + "drop-me", MARKER_FIELD)
    redis_client.srem(MANAGED_KEY, "drop-me")
    assert_refused_as_stale(cli, redis_server, "changed since the plan was made")


def test_saved_plan_is_stale_once_someone_created_a_planned_name(
    cli: CliRunner,
    tmp_path: Path,
    redis_server: RedisServer,
    testbed_app: Celery,
) -> None:
    saved_plan(cli, tmp_path)
    RedBeatSchedulerEntry(
        "new-one", "app.tasks.other", crontab(minute="0", hour="6"), app=testbed_app
    ).save()
    assert_refused_as_stale(cli, redis_server, "changed since the plan was made")


def test_saved_plan_is_stale_once_a_file_changed(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer
) -> None:
    saved_plan(cli, tmp_path)
    path = tmp_path / "schedules" / "schedules.yaml"
    path.write_text(path.read_text() + "# a comment is a change too\n")
    assert_refused_as_stale(cli, redis_server, "schedule files changed since the plan was made")


def test_saved_plan_is_refused_for_another_key_prefix_or_database(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    saved_plan(cli, tmp_path)
    refused = assert_refused_as_stale(
        cli, redis_server, "the plan was made for", "--key-prefix", "other:"
    )
    assert "'other:'" in refused.err
    before = snapshot(redis_server, db=2)
    result = run_cli(
        capsys, "apply", "--plan", "saved.json", "--redis-url", redis_server.url_for(2)
    )
    assert result.code == 1
    assert "the plan was made for" in result.err
    assert_unchanged(before, snapshot(redis_server, db=2))


def test_saved_plan_refuses_paths_or_prune(cli: CliRunner, tmp_path: Path) -> None:
    saved_plan(cli, tmp_path)
    result = cli("apply", "--plan", "saved.json", "schedules")
    assert result.code == 1
    assert "--plan applies the saved plan as it is" in result.err


def test_unchanged_saved_plan_applies_exactly(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    document = saved_plan(cli, tmp_path)
    # Beat runs the entry meanwhile: run history is not part of what a plan decides on.
    ran_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    beat_meta = redbeat_meta(ran_at, 3)
    redis_client.hset(PREFIX + "edit-me", "meta", beat_meta)
    # The saved plan is what runs, not a new plan from the files: editing them now...
    (tmp_path / "schedules" / "schedules.yaml").rename(tmp_path / "moved.yaml")
    write_schedules(tmp_path / "schedules", CHANGED)  # ...back to identical bytes

    result = cli("apply", "--plan", "saved.json")
    assert result.code == 0, result.err
    assert "Apply complete: 1 created, 1 updated, 0 adopted, 1 deleted, 0 repaired." in result.out
    assert redis_client.exists(PREFIX + "drop-me") == 0
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "drop-me") is None
    assert is_managed(redis_client, "new-one")
    assert redis_client.hget(PREFIX + "edit-me", "meta") == beat_meta
    assert redis_client.hget(PREFIX + "edit-me", "definition") == next(
        change["definition"] for change in document["changes"] if change["name"] == "edit-me"
    )
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "edit-me") == timestamp(
        next_daily(4, 0, ran_at)
    )
    records = history_records(redis_client)
    assert len(records) == 2
    assert json.loads(records[-1]["names"]) == {
        "create": ["new-one"],
        "delete": ["drop-me"],
        "update": ["edit-me"],
    }
    assert "No changes" in cli("plan", "schedules", "--prune").out
    # Applying the same saved plan twice is refused: the world it describes is gone.
    again = cli("apply", "--plan", "saved.json")
    assert again.code == 1
    assert "changed since the plan was made" in again.err


def test_several_batches_commit_each_with_its_history_record_read_as_one_apply(
    redis_url: str, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    folder = tmp_path / "schedules"
    names = [f"batch-{index}" for index in range(7)]
    write_schedules(
        folder, {name: cron("0 3 * * *", args=[index]) for index, name in enumerate(names)}
    )
    with open_store(StoreSettings(redis_url=redis_url)) as store:
        plan = make_plan(store, load_schedules([folder]), paths=[folder])
        with monitor(redis_server) as seen:
            result = apply_plan(store, plan, batch_size=2)
    assert result.batches == 4
    assert sorted(result.names["create"]) == names
    assert len(seen.named("multi")) == len(seen.named("exec")) == 4
    # Each batch's record is queued inside the batch's own transaction (between its MULTI
    # and EXEC, on the same connection), so it exists exactly when the batch committed.
    order = [c for c in seen.commands if c.name in ("multi", "xadd", "exec")]
    assert [c.name for c in order] == ["multi", "xadd", "exec"] * 4
    assert all(len({c.client for c in order[i : i + 3]}) == 1 for i in range(0, 12, 3))
    raw = history_records(redis_client)
    assert [record["batch"] for record in raw] == ["1/4", "2/4", "3/4", "4/4"]
    assert len({record["apply"] for record in raw}) == 1
    with open_store(StoreSettings(redis_url=redis_url)) as store:
        (apply,) = read_history(store.client, store.keys, 10)
    assert (apply.state, apply.batches, apply.planned_batches) == ("complete", 4, 4)
    assert sorted(apply.names["create"]) == names
    assert apply.counts == {"create": 7}
    for index, name in enumerate(names):
        assert definition_of(redis_client, name)["args"] == [index]
        assert is_managed(redis_client, name)
        assert redis_client.zscore(SCHEDULE_KEY, PREFIX + name) is not None


def test_a_stale_entry_in_a_later_batch_leaves_nothing_written(
    redis_url: str, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """All changes of one apply commit together or not at all (issue: "Atomic")."""
    folder = tmp_path / "schedules"
    names = ["a-first", "b-second", "c-third"]
    write_schedules(folder, {name: cron("0 3 * * *", args=[0]) for name in names})
    with open_store(StoreSettings(redis_url=redis_url)) as store:
        apply_plan(store, make_plan(store, load_schedules([folder]), paths=[folder]))
        write_schedules(folder, {name: cron("0 3 * * *", args=[1]) for name in names})
        plan = make_plan(store, load_schedules([folder]), paths=[folder])
        # The application edits the last entry between plan and apply.
        definition = redis_client.hget(PREFIX + "c-third", "definition")
        assert definition is not None
        redis_client.hset(PREFIX + "c-third", "definition", definition.replace("[0]", "[9]"))
        before = snapshot(redis_server)
        with pytest.raises(StalePlan, match="nothing was written") as refused:
            apply_plan(store, plan, batch_size=1)
    after = snapshot(redis_server)
    assert redis_client.exists(APPLY_LOCK_KEY) == 0  # released, even on failure
    written = {name: definition_of(redis_client, name)["args"] for name in names}
    assert written == {"a-first": [0], "b-second": [0], "c-third": [9]}, (
        f"the apply failed with {str(refused.value)!r} yet wrote: {written}"
    )
    assert_unchanged(before, after)


def test_saved_plan_still_meets_the_deletion_guard(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"a": cron("0 3 * * *"), "b": cron("0 3 * * *")})
    assert cli("apply", "schedules").code == 0
    write_schedules(tmp_path / "schedules", {})
    assert cli("plan", "schedules", "--prune", "--out", "saved.json").code == 0
    before = snapshot(redis_server)
    refused = cli("apply", "--plan", "saved.json")
    assert refused.code == 1
    assert "every managed entry" in refused.err
    assert_unchanged(before, snapshot(redis_server))
    allowed = cli("apply", "--plan", "saved.json", "--max-deletions", "2")
    assert allowed.code == 0, allowed.err
    assert redis_client.scard(MANAGED_KEY) == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json at all", "is not a plan file (not JSON)"),
        ('{"kind": "something-else"}', "is not a plan saved by 'reconciler plan --out'"),
        (None, "is a damaged plan file"),
    ],
    ids=["not-json", "wrong-kind", "damaged"],
)
def test_unreadable_plan_files_are_refused_in_one_line(
    cli: CliRunner,
    tmp_path: Path,
    redis_server: RedisServer,
    content: str | None,
    expected: str,
) -> None:
    document = saved_plan(cli, tmp_path)
    if content is None:
        del document["changes"][0]["action"]
        content = json.dumps(document)
    (tmp_path / "saved.json").write_text(content)
    before = snapshot(redis_server)
    result = cli("apply", "--plan", "saved.json")
    assert result.code == 1
    assert expected in result.err
    assert len(result.err_lines) == 1, result.err
    assert_unchanged(before, snapshot(redis_server))
