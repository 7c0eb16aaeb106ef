"""plan and apply against a real Redis: only deltas, the write policies, ownership, guards.

Every test drives the real CLI (in process, so MONITOR and capsys see everything) against
the session's real redis-server, and checks Redis itself: DUMP bytes, scores, TTLs and the
exact commands the server executed.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab, schedule
from redbeat import RedBeatSchedulerEntry

from reconciler.api import StoreSettings, apply_plan, load_schedules, make_plan, open_store
from reconciler.beat.redbeat_codec import encode_definition
from reconciler.store.keys import MARKER_FIELD, MARKER_VALUE
from tests.integration.plan_apply_support import (
    APPLY_LOCK_KEY,
    BEAT_LOCK_KEY,
    HISTORY_KEY,
    MANAGED_KEY,
    PREFIX,
    REPO_ROOT,
    SCHEDULE_KEY,
    STATICS_KEY,
    UTC,
    assert_unchanged,
    clean_env,
    cli_against,
    cron,
    decode_meta,
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

    from tests.integration.plan_apply_support import CliRunner
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


def schedules(tmp_path: Path, entries: dict[str, dict[str, Any]]) -> Path:
    return write_schedules(tmp_path / "schedules", entries)


def meta_of(client: redis.Redis, name: str) -> dict[str, Any]:
    meta = decode_meta(client.hget(PREFIX + name, "meta"))
    assert meta is not None, f"{name} has no meta"
    return meta


def change_named(plan_json: dict[str, Any], name: str) -> dict[str, Any]:
    found = [change for change in plan_json["changes"] if change["name"] == name]
    assert len(found) == 1, f"{name} not exactly once in {plan_json['changes']}"
    return found[0]


# -- create ---------------------------------------------------------------------------


def test_create_writes_definition_meta_score_marker_and_index(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    schedules(
        tmp_path,
        {
            "nightly": cron(
                "0 3 * * *",
                args=[1],
                kwargs={"region": "eu"},
                options={"queue": "reports"},
            ),
            "heartbeat": {"task": "app.tasks.ping", "every": "30s"},
            "paused": cron("0 3 * * *", enabled=False),
        },
    )
    before = datetime.now(UTC)
    result = cli("apply", "schedules")
    after = datetime.now(UTC)
    assert result.code == 0, result.err
    assert "Apply complete: 3 created, 0 updated, 0 adopted, 0 deleted, 0 repaired." in result.out

    loaded = {entry.name: entry for entry in load_schedules(["schedules"]).entries}
    for name in ("nightly", "heartbeat", "paused"):
        assert redis_client.hget(PREFIX + name, "definition") == encode_definition(loaded[name])
        assert is_managed(redis_client, name)
        assert redis_client.hget(PREFIX + name, MARKER_FIELD) == MARKER_VALUE
        assert redis_client.pttl(PREFIX + name) == -1
        meta = meta_of(redis_client, name)
        assert meta["total_run_count"] == 0
        assert before <= meta["last_run_at"] <= after
    # The stored JSON is RedBeat's seven keys, the crontab as Celery's fields.
    assert definition_of(redis_client, "nightly") == {
        "name": "nightly",
        "task": "app.tasks.job",
        "args": [1],
        "kwargs": {"region": "eu"},
        "options": {"queue": "reports"},
        "schedule": {
            "__type__": "crontab",
            "minute": "0",
            "hour": "3",
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
        },
        "enabled": True,
    }

    # First run at the next scheduled time, never at once.
    nightly_run = meta_of(redis_client, "nightly")["last_run_at"]
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "nightly") == timestamp(
        next_daily(3, 0, nightly_run)
    )
    heartbeat_run = meta_of(redis_client, "heartbeat")["last_run_at"]
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "heartbeat") == timestamp(
        heartbeat_run + timedelta(seconds=30)
    )
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "paused") == -1

    # Only the entries and the reconciler's bookkeeping exist; the apply lock is released.
    assert snapshot(redis_server).keys() == {
        PREFIX + "nightly",
        PREFIX + "heartbeat",
        PREFIX + "paused",
        SCHEDULE_KEY,
        MANAGED_KEY,
        HISTORY_KEY,
    }
    assert redis_client.smembers(MANAGED_KEY) == {"nightly", "heartbeat", "paused"}

    again = cli("plan", "schedules", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "No changes. RedBeat matches the schedule files (3 unchanged)." in again.out


def test_run_on_create_is_due_now_with_no_last_run(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    schedules(tmp_path, {"kickoff": cron("0 3 * * *", run_on_create=True)})
    plan = cli("plan", "schedules")
    assert "run_on_create" in plan.out
    before = time.time()
    assert cli("apply", "schedules").code == 0
    after = time.time()
    meta = meta_of(redis_client, "kickoff")
    assert meta["last_run_at"] is None
    assert meta["total_run_count"] == 0
    score = redis_client.zscore(SCHEDULE_KEY, PREFIX + "kickoff")
    assert score is not None
    assert int(before) <= score <= after
    assert "No changes" in cli("plan", "schedules").out


def test_create_scores_crontabs_in_beats_timezone(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    paris = ZoneInfo("Europe/Paris")
    schedules(tmp_path, {"nightly": cron("0 3 * * *")})
    assert cli("apply", "schedules", "--timezone", "Europe/Paris").code == 0
    meta = meta_of(redis_client, "nightly")
    local = meta["last_run_at"].astimezone(paris)
    expected = local.replace(hour=3, minute=0, second=0, microsecond=0)
    if expected <= local:
        expected = (expected + timedelta(days=1)).replace(tzinfo=paris)
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "nightly") == timestamp(expected)
    plan = cli("plan", "schedules", "--timezone", "Europe/Paris", "--detailed-exitcode")
    assert plan.code == 0, plan.out


# -- update ---------------------------------------------------------------------------


def test_update_keeps_meta_and_rescores_from_the_stored_last_run(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # An hour no run can be due at (6-7 hours ahead), so this entry gets no catch-up.
    old_hour, new_hour = (now + timedelta(hours=6)).hour, (now + timedelta(hours=7)).hour
    schedules(
        tmp_path,
        {
            "nightly": cron("0 3 * * *", args=[1], kwargs={"region": "eu", "fmt": "pdf"}),
            "later": cron(f"0 {old_hour} * * *", kwargs={"region": "eu"}),
        },
    )
    assert cli("apply", "schedules").code == 0
    # As beat leaves them after runs: two days ago (nightly), a minute ago (later).
    nightly_meta = redbeat_meta(now - timedelta(days=2), 41)
    later_meta = redbeat_meta(now - timedelta(minutes=1), 5)
    redis_client.hset(PREFIX + "nightly", "meta", nightly_meta)
    redis_client.hset(PREFIX + "later", "meta", later_meta)

    schedules(
        tmp_path,
        {
            "nightly": cron("0 4 * * *", args=[2], kwargs={"region": "us", "fmt": "pdf"}),
            "later": cron(f"0 {new_hour} * * *", kwargs={"region": "us"}),
        },
    )
    text = cli("plan", "schedules")
    assert text.code == 0, text.err
    assert "~ nightly  (update)" in text.out
    assert 'schedule.hour: "3" -> "4"' in text.out
    assert 'kwargs.region: "eu" -> "us"' in text.out
    assert "args[0]: 1 -> 2" in text.out
    assert f'schedule.hour: "{old_hour}" -> "{new_hour}"' in text.out
    assert "fmt" not in text.out  # unchanged fields are not listed
    assert (
        "Plan: 0 to create, 2 to update, 0 to adopt, 0 to delete, 0 to repair, 0 unchanged."
        in text.out
    )

    plan_json = json.loads(cli("plan", "schedules", "--format", "json").out)
    nightly_warnings = change_named(plan_json, "nightly")["warnings"]
    assert len(nightly_warnings) == 1
    assert "catch-up" in nightly_warnings[0]
    assert "beat will run it once" in nightly_warnings[0]
    assert change_named(plan_json, "later")["warnings"] == []
    assert "warning: catch-up" in text.out

    result = cli("apply", "schedules")
    assert result.code == 0, result.err
    assert "0 created, 2 updated" in result.out
    assert redis_client.hget(PREFIX + "nightly", "meta") == nightly_meta
    assert redis_client.hget(PREFIX + "later", "meta") == later_meta
    assert definition_of(redis_client, "nightly")["args"] == [2]
    assert definition_of(redis_client, "nightly")["schedule"]["hour"] == "4"
    # The score is the new schedule's next time after the stored last run.
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "nightly") == timestamp(
        next_daily(4, 0, now - timedelta(days=2))
    )
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "later") == timestamp(
        next_daily(new_hour, 0, now - timedelta(minutes=1))
    )
    assert "No changes" in cli("plan", "schedules").out


# -- disable / enable -----------------------------------------------------------------


def test_disable_parks_the_entry_and_enable_restarts_its_clock(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    schedules(tmp_path, {"svc": cron("0 3 * * *")})
    assert cli("apply", "schedules").code == 0
    old_run = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    stored_meta = redbeat_meta(old_run, 9)
    redis_client.hset(PREFIX + "svc", "meta", stored_meta)

    schedules(tmp_path, {"svc": cron("0 3 * * *", enabled=False)})
    plan = cli("plan", "schedules")
    assert "~ svc  (disable)" in plan.out
    assert "enabled: true -> false" in plan.out
    assert cli("apply", "schedules").code == 0
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "svc") == -1
    assert redis_client.hget(PREFIX + "svc", "meta") == stored_meta
    assert definition_of(redis_client, "svc")["enabled"] is False
    assert "No changes" in cli("plan", "schedules").out

    schedules(tmp_path, {"svc": cron("0 3 * * *")})
    plan = cli("plan", "schedules")
    assert "~ svc  (enable)" in plan.out
    assert "catch-up" not in plan.out  # re-enabling never fires at once
    before = datetime.now(UTC)
    assert cli("apply", "schedules").code == 0
    after = datetime.now(UTC)
    meta = meta_of(redis_client, "svc")
    assert before <= meta["last_run_at"] <= after
    assert meta["total_run_count"] == 9
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "svc") == timestamp(
        next_daily(3, 0, meta["last_run_at"])
    )
    assert "No changes" in cli("plan", "schedules").out


# -- delete, prune, the deletion guard ------------------------------------------------


def test_delete_only_with_prune(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    schedules(tmp_path, {name: cron("0 3 * * *") for name in ("keep", "drop-a", "drop-b")})
    assert cli("apply", "schedules").code == 0
    schedules(tmp_path, {"keep": cron("0 3 * * *")})

    plan = cli("plan", "schedules", "--detailed-exitcode")
    assert plan.code == 0
    assert "would delete with --prune" in plan.out
    assert "drop-a, drop-b" in plan.out
    before = snapshot(redis_server)
    applied = cli("apply", "schedules")
    assert applied.code == 0
    assert "nothing to change" in applied.out
    assert_unchanged(before, snapshot(redis_server))

    pruned_plan = cli("plan", "schedules", "--prune")
    assert "- drop-a  (delete)" in pruned_plan.out
    assert "- drop-b  (delete)" in pruned_plan.out
    assert "Plan: 0 to create, 0 to update, 0 to adopt, 2 to delete" in pruned_plan.out
    result = cli("apply", "schedules", "--prune")
    assert result.code == 0, result.err
    assert "2 deleted" in result.out
    for name in ("drop-a", "drop-b"):
        assert redis_client.exists(PREFIX + name) == 0
        assert redis_client.zscore(SCHEDULE_KEY, PREFIX + name) is None
        assert not redis_client.sismember(MANAGED_KEY, name)
    assert is_managed(redis_client, "keep")
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "keep") is not None
    assert "No changes" in cli("plan", "schedules", "--prune").out


def test_deletion_guard_refuses_more_than_the_limit(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    names = [f"job-{index:02d}" for index in range(12)]
    schedules(tmp_path, {name: cron("0 3 * * *") for name in names})
    assert cli("apply", "schedules").code == 0
    schedules(tmp_path, {"job-00": cron("0 3 * * *")})  # 11 deletions, the default limit is 10

    before = snapshot(redis_server)
    refused = cli("apply", "schedules", "--prune")
    assert refused.code == 1
    assert "deletes 11 entries, more than the 10 allowed" in refused.err
    assert "nothing was written" in refused.err
    assert "Traceback" not in refused.err
    assert_unchanged(before, snapshot(redis_server))

    assert cli("apply", "schedules", "--prune", "--max-deletions", "10").code == 1
    assert_unchanged(before, snapshot(redis_server))

    allowed = cli("apply", "schedules", "--prune", "--max-deletions", "11")
    assert allowed.code == 0, allowed.err
    assert redis_client.smembers(MANAGED_KEY) == {"job-00"}
    assert redis_client.zcard(SCHEDULE_KEY) == 1


def test_deletion_guard_refuses_deleting_every_managed_entry(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    schedules(tmp_path, {name: cron("0 3 * * *") for name in ("a", "b", "c")})
    assert cli("apply", "schedules").code == 0
    schedules(tmp_path, {})  # the classic accident: an emptied schedules folder

    before = snapshot(redis_server)
    refused = cli("apply", "schedules", "--prune")
    assert refused.code == 1
    assert "every managed entry" in refused.err
    assert "--max-deletions 3" in refused.err
    assert_unchanged(before, snapshot(redis_server))

    allowed = cli("apply", "schedules", "--prune", "--max-deletions", "3")
    assert allowed.code == 0, allowed.err
    assert redis_client.scard(MANAGED_KEY) == 0
    assert redis_client.zcard(SCHEDULE_KEY) == 0
    assert list(redis_client.scan_iter(PREFIX + "[abc]")) == []


# -- conflicts and adoption -----------------------------------------------------------


def test_unmanaged_entry_is_a_conflict_until_adopted_keeping_meta(
    cli: CliRunner,
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    testbed_app: Celery,
) -> None:
    # Entries the application created with RedBeat's own API, run by beat since.
    RedBeatSchedulerEntry(
        "report", "app.tasks.job", crontab(minute="0", hour="3"), args=[1], app=testbed_app
    ).save()
    RedBeatSchedulerEntry(
        "cleanup", "app.tasks.job", crontab(minute="0", hour="3"), app=testbed_app
    ).save()
    report_meta = redbeat_meta(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2), 17)
    redis_client.hset(PREFIX + "report", "meta", report_meta)
    cleanup_meta = redis_client.hget(PREFIX + "cleanup", "meta")
    schedules(
        tmp_path,
        {
            "report": cron("0 3 * * *", args=[1]),
            "cleanup": cron("0 3 * * *", args=["tmp"]),
            "fresh": cron("0 3 * * *"),
        },
    )

    before = snapshot(redis_server)
    plan = cli("plan", "schedules", "--detailed-exitcode")
    assert plan.code == 1
    assert "'report'" in plan.out
    assert "not managed by the reconciler" in plan.out
    assert "--adopt" in plan.out
    saving = cli("plan", "schedules", "--out", "saved.json")
    assert saving.code == 1
    assert not (tmp_path / "saved.json").exists()  # a plan with conflicts is never saved
    applied = cli("apply", "schedules")
    assert applied.code == 1
    assert "conflict" in applied.err
    assert "nothing was written" in applied.err
    assert_unchanged(before, snapshot(redis_server))

    adopt_plan = cli("plan", "schedules", "--adopt")
    assert adopt_plan.code == 0
    assert "= report  (adopt)" in adopt_plan.out
    assert "~ cleanup  (adopt and update)" in adopt_plan.out
    assert adopt_plan.out.endswith(
        "Plan: 1 to create, 1 to update, 1 to adopt, 0 to delete, 0 to repair, 0 unchanged "
        "(1 update also adopts).\n"
    )
    adopted = cli("apply", "schedules", "--adopt")
    assert adopted.code == 0, adopted.err
    assert adopted.out.endswith(
        "Apply complete: 1 created, 1 updated, 1 adopted, 0 deleted, 0 repaired.\n"
    )
    [record] = history_records(redis_client)
    assert json.loads(record["names"]) == {
        "adopt": ["report"],
        "create": ["fresh"],
        "update": ["cleanup"],
    }
    assert redis_client.hget(PREFIX + "report", "meta") == report_meta
    assert redis_client.hget(PREFIX + "cleanup", "meta") == cleanup_meta
    for name in ("report", "cleanup", "fresh"):
        assert is_managed(redis_client, name)
    assert definition_of(redis_client, "cleanup")["args"] == ["tmp"]

    again = cli("plan", "schedules", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "No changes" in again.out


def test_a_plan_blocked_by_conflicts_says_so_and_never_that_redbeat_matches(
    cli: CliRunner,
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    testbed_app: Celery,
) -> None:
    kept = {"one": cron("0 1 * * *"), "two": cron("0 2 * * *")}
    schedules(tmp_path, kept)
    assert cli("apply", "schedules").code == 0
    # One entry the application owns, and one beat installs from its beat_schedule config.
    RedBeatSchedulerEntry(
        "report", "app.tasks.job", crontab(minute="0", hour="3"), app=testbed_app
    ).save()
    redis_client.sadd(STATICS_KEY, "beat-cleanup")
    conflicting = {"report": cron("0 3 * * *"), "beat-cleanup": cron("0 4 * * *")}
    schedules(tmp_path, {**kept, **conflicting})
    blocked = (
        "Plan blocked: 2 conflicts must be resolved before anything can be applied. "
        "Nothing else to change (2 unchanged)."
    )
    before = snapshot(redis_server)

    plan = cli("plan", "schedules", "--detailed-exitcode")
    assert plan.code == 1
    assert plan.out.endswith(f"\n{blocked}\n"), plan.out
    first, second = plan.out.splitlines()[:2]
    assert first.startswith("error: 'beat-cleanup' (schedules/schedules.yaml:")
    assert "is a static entry of beat's own beat_schedule config" in first
    assert second.startswith("error: 'report' (schedules/schedules.yaml:")
    assert "is not managed by the reconciler" in second
    markdown = cli("plan", "schedules", "--format", "markdown")
    assert f"**{blocked}**" in markdown.out
    summary = json.loads(cli("plan", "schedules", "--format", "json").out)["summary"]
    assert (summary["text"], summary["blocked"], summary["conflicts"]) == (blocked, True, 2)
    applied = cli("apply", "schedules")
    assert applied.code == 1
    assert applied.out.endswith(f"\n{blocked}\n"), applied.out
    assert "2 schedule name(s) conflict" in applied.err
    assert "nothing was written" in applied.err
    for result in (plan, markdown, applied):
        assert "matches" not in result.out + result.err
        assert "Apply complete" not in result.out
    assert_unchanged(before, snapshot(redis_server))

    # With something else to change, the summary says what would otherwise be planned.
    schedules(tmp_path, {**kept, **conflicting, "three": cron("0 5 * * *")})
    also = cli("apply", "schedules")
    assert also.code == 1
    assert also.out.endswith(
        "Plan blocked: 2 conflicts must be resolved before anything can be applied. Also "
        "planned: 1 to create, 0 to update, 0 to adopt, 0 to delete, 0 to repair, "
        "2 unchanged.\n"
    ), also.out
    assert_unchanged(before, snapshot(redis_server))


def test_static_entry_is_always_a_conflict(
    cli: CliRunner,
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    testbed_app: Celery,
) -> None:
    # As beat installs an entry of its own beat_schedule config.
    RedBeatSchedulerEntry(
        "beat-cleanup", "app.tasks.job", crontab(minute="0", hour="4"), app=testbed_app
    ).save()
    redis_client.sadd(STATICS_KEY, "beat-cleanup", "beat-only-name")
    schedules(
        tmp_path,
        {
            "beat-cleanup": cron("0 4 * * *"),
            "beat-only-name": cron("0 4 * * *"),
            "fresh": cron("0 3 * * *"),
        },
    )

    before = snapshot(redis_server)
    for argv in (("plan", "schedules", "--adopt"), ("apply", "schedules", "--adopt")):
        result = cli(*argv)
        assert result.code == 1, argv
        assert "'beat-cleanup'" in result.out
        assert "'beat-only-name'" in result.out
        assert "static entry" in result.out
    assert_unchanged(before, snapshot(redis_server))


def test_managed_name_in_statics_is_a_conflict_not_a_planned_delete(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """A managed name that beat's own beat_schedule now installs: never delete it."""
    schedules(tmp_path, {"keep": cron("0 3 * * *"), "shared": cron("0 3 * * *")})
    assert cli("apply", "schedules").code == 0
    redis_client.sadd(STATICS_KEY, "shared")
    schedules(tmp_path, {"keep": cron("0 3 * * *")})

    before = snapshot(redis_server)
    applied = cli("apply", "schedules", "--prune")
    assert applied.code == 1
    assert_unchanged(before, snapshot(redis_server))
    # The plan must say what apply will do: refuse, because 'shared' is static.
    plan = cli("plan", "schedules", "--prune", "--detailed-exitcode")
    assert "- shared  (delete)" not in plan.out
    assert "static entry" in plan.out
    assert plan.code == 1


# -- repairs --------------------------------------------------------------------------


REPAIR_CASES = {
    "r-unscheduled": ("unscheduled", "not in the schedule sorted set"),
    "r-no-meta": ("missing-meta", "no run history"),
    "r-expiring": ("expiring", "has a TTL"),
    "r-unindexed": ("unmarked", "ownership bookkeeping"),
    "r-stale": ("stale-score", "later than its schedule implies"),
}


def test_broken_state_is_planned_as_repair_and_fixed(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    schedules(tmp_path, {name: cron("0 3 * * *") for name in REPAIR_CASES})
    assert cli("apply", "schedules").code == 0
    far_future = time.time() + 30 * 86400
    redis_client.zrem(SCHEDULE_KEY, PREFIX + "r-unscheduled")
    redis_client.hdel(PREFIX + "r-no-meta", "meta")
    redis_client.expire(PREFIX + "r-expiring", 3600)
    redis_client.srem(MANAGED_KEY, "r-unindexed")
    redis_client.zadd(SCHEDULE_KEY, {PREFIX + "r-stale": far_future})

    plan = cli("plan", "schedules", "--detailed-exitcode")
    assert plan.code == 2
    assert (
        "Plan: 0 to create, 0 to update, 0 to adopt, 0 to delete, 5 to repair, 0 unchanged."
        in plan.out
    )
    plan_json = json.loads(cli("plan", "schedules", "--format", "json").out)
    for name, (kind, reason) in REPAIR_CASES.items():
        assert f"! {name}  (repair)" in plan.out
        change = change_named(plan_json, name)
        assert change["action"] == "repair"
        assert [repair["kind"] for repair in change["repairs"]] == [kind]
        assert reason in change["repairs"][0]["text"]
        assert reason in plan.out

    result = cli("apply", "schedules")
    assert result.code == 0, result.err
    assert "5 repaired" in result.out
    for name in REPAIR_CASES:
        key = PREFIX + name
        meta = meta_of(redis_client, name)
        assert redis_client.zscore(SCHEDULE_KEY, key) == timestamp(
            next_daily(3, 0, meta["last_run_at"])
        ), name
        assert redis_client.pttl(key) == -1
        assert is_managed(redis_client, name)
    again = cli("plan", "schedules", "--detailed-exitcode")
    assert again.code == 0, again.out
    assert "No changes" in again.out


# -- only deltas: MONITOR-verified ----------------------------------------------------


def test_second_apply_with_nothing_to_change_issues_no_write(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer
) -> None:
    shutil.copytree(REPO_ROOT / "schedules", tmp_path / "schedules")
    first = cli("apply", "schedules")
    assert first.code == 0, first.err
    assert "7 created" in first.out
    before = snapshot(redis_server)

    with monitor(redis_server) as seen:
        second = cli("apply", "schedules", "--prune")
    assert second.code == 0, second.err
    assert "Apply complete: nothing to change." in second.out
    assert seen.named("hmget"), "the MONITOR captured no reads: is it working at all?"
    writes = [str(command) for command in seen.writes()]
    assert writes == []
    assert seen.named("keys", "scan", "flushdb", "flushall") == []
    assert_unchanged(before, snapshot(redis_server))


def test_plan_never_writes(
    cli: CliRunner,
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    testbed_app: Celery,
) -> None:
    schedules(tmp_path, {name: cron("0 3 * * *") for name in ("same", "edit", "broken", "gone")})
    assert cli("apply", "schedules").code == 0
    redis_client.zrem(SCHEDULE_KEY, PREFIX + "broken")
    RedBeatSchedulerEntry(
        "foreign", "app.tasks.job", schedule(run_every=60), app=testbed_app
    ).save()
    schedules(
        tmp_path,
        {
            "same": cron("0 3 * * *"),
            "edit": cron("0 5 * * *"),
            "broken": cron("0 3 * * *"),
            "new": cron("0 3 * * *", run_on_create=True),
        },
    )
    conflicting = write_schedules(tmp_path / "conflicting", {"foreign": cron("0 3 * * *")})
    before = snapshot(redis_server)

    with monitor(redis_server) as seen:
        runs = [
            cli("plan", "schedules"),
            cli("plan", "schedules", "--prune", "--format", "json", "--out", "saved.json"),
            cli("plan", "schedules", "--format", "markdown", "--detailed-exitcode"),
            cli("plan", "schedules", "--adopt", "--prune"),
            cli("plan", str(conflicting)),
        ]
    assert [run.code for run in runs] == [0, 0, 2, 0, 1]
    assert (
        "Plan: 1 to create, 1 to update, 0 to adopt, 1 to delete, 1 to repair, 1 unchanged."
        in runs[1].out
    )
    assert seen.named("hmget")
    assert [str(command) for command in seen.writes()] == []
    assert seen.named("keys") == []
    assert_unchanged(before, snapshot(redis_server))


def test_unmanaged_entries_statics_and_beat_lock_are_never_touched(
    cli: CliRunner,
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    testbed_app: Celery,
) -> None:
    RedBeatSchedulerEntry(
        "app-report", "app.tasks.job", crontab(minute="0", hour="3"), app=testbed_app
    ).save()
    RedBeatSchedulerEntry(
        "app-ping", "app.tasks.job", schedule(run_every=10), app=testbed_app
    ).save()
    RedBeatSchedulerEntry(
        "beat-static", "app.tasks.job", crontab(minute="*/5"), app=testbed_app
    ).save()
    redis_client.sadd(STATICS_KEY, "beat-static")
    # Beat's lock as redis-py's Lock (used by RedBeat) sets it: a token, NX, a TTL.
    assert redis_client.set(BEAT_LOCK_KEY, uuid.uuid1().hex, nx=True, px=60_000)
    redis_client.set("someone:else", "untouched")
    protected_names = ("app-report", "app-ping", "beat-static")
    protected = {PREFIX + name for name in protected_names} | {
        STATICS_KEY,
        BEAT_LOCK_KEY,
        "someone:else",
    }

    def member_scores() -> dict[str, float | None]:
        return {name: redis_client.zscore(SCHEDULE_KEY, PREFIX + name) for name in protected_names}

    scores = member_scores()
    assert all(score is not None for score in scores.values())
    steps = [
        ({"mine-a": cron("0 3 * * *"), "mine-b": cron("0 4 * * *")}, ()),  # create
        ({"mine-a": cron("0 5 * * *", args=[1]), "mine-b": cron("0 4 * * *")}, ()),  # update
        ({"mine-a": cron("0 5 * * *", args=[1])}, ("--prune",)),  # delete
    ]
    for entries, options in steps:
        schedules(tmp_path, entries)
        before = snapshot(redis_server)
        with monitor(redis_server) as seen:
            result = cli("apply", "schedules", *options)
        assert result.code == 0, result.err
        assert "Apply complete: nothing" not in result.out
        assert seen.writes(), "the apply wrote nothing at all: is the MONITOR working?"
        touched = seen.keys_written()
        assert sorted(protected & set(touched)) == []
        # Shared keys (the sorted set, the index) may be written, never for their members.
        for command in seen.writes():
            assert not protected & set(command.args[1:]), str(command)
            assert not set(protected_names) & set(command.args[2:]), str(command)
        assert seen.named("keys", "flushdb", "flushall") == []
        assert_unchanged(before, snapshot(redis_server), only=protected)
        assert member_scores() == scores
    assert redis_client.smembers(MANAGED_KEY) == {"mine-a"}
    assert redis_client.exists(PREFIX + "mine-b") == 0
    assert redis_client.exists(APPLY_LOCK_KEY) == 0
    assert len(history_records(redis_client)) == 3


# -- beat races, key prefixes ---------------------------------------------------------


def test_settle_recheck_repairs_what_a_racing_beat_tick_left(
    cli: CliRunner, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A beat tick that loaded the entries before the apply writes its leftovers after it:
    a score from the old schedule, and a meta-only hash for the entry just deleted."""
    now = datetime.now(UTC)
    # The old schedule fires later than the new one: its score would delay the new runs.
    old_hour, new_hour = (now + timedelta(hours=3)).hour, (now + timedelta(hours=2)).hour
    folder = tmp_path / "schedules"
    write_schedules(
        folder,
        {
            "moved": cron(f"0 {old_hour} * * *"),
            "doomed": cron("0 3 * * *"),
            "stay": cron("0 3 * * *"),
        },
    )
    with open_store(StoreSettings(redis_url=redis_url)) as store:
        apply_plan(store, make_plan(store, load_schedules([folder])))
        write_schedules(folder, {"moved": cron(f"0 {new_hour} * * *"), "stay": cron("0 3 * * *")})
        plan = make_plan(store, load_schedules([folder]), prune=True)
        new_definition = next(c.definition for c in plan.changes if c.name == "moved")

        def racing_beat_tick() -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                redis_client.exists(PREFIX + "doomed") == 0
                and redis_client.hget(PREFIX + "moved", "definition") == new_definition
            ):
                time.sleep(0.002)
            ran = datetime.now(UTC)
            # What RedBeat's entry.next() writes after a run, from the entry it had loaded.
            for name, hour in (("moved", old_hour), ("doomed", 3)):
                with redis_client.pipeline() as pipe:
                    pipe.hset(PREFIX + name, "meta", redbeat_meta(ran, 1))
                    pipe.zadd(SCHEDULE_KEY, {PREFIX + name: timestamp(next_daily(hour, 0, ran))})
                    pipe.execute()

        beat = threading.Thread(target=racing_beat_tick)
        beat.start()
        try:
            result = apply_plan(store, plan, settle_seconds=0.5)
        finally:
            beat.join()

    assert redis_client.exists(PREFIX + "doomed") == 0
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "doomed") is None
    meta = meta_of(redis_client, "moved")
    assert meta["total_run_count"] == 1  # beat's run is kept
    assert redis_client.zscore(SCHEDULE_KEY, PREFIX + "moved") == timestamp(
        next_daily(new_hour, 0, meta["last_run_at"])
    )
    assert sorted(name for names in result.settled.values() for name in names) == [
        "doomed",
        "moved",
    ]
    assert "Re-check after the writes repaired 2 entries" in result.summary()
    again = cli("plan", "schedules", "--prune", "--detailed-exitcode")
    assert again.code == 0, again.out


@pytest.mark.parametrize("touch", ["score", "ttl", "marker", "index"])
def test_the_recheck_sees_any_one_thing_changed_after_its_batch_wrote(
    touch: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The re-check skips the health of an entry that reads exactly as its batch left it
    (services/apply.py's _as_left). Each single thing another writer can change once the
    batch committed must still send the entry through the whole check and get repaired."""
    folder = tmp_path / "schedules"
    write_schedules(folder, {"early": cron("0 3 * * *"), "other": cron("0 4 * * *")})
    key = PREFIX + "early"

    def touch_once_written() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and redis_client.hget(key, MARKER_FIELD) is None:
            time.sleep(0.002)
        if touch == "score":  # an old schedule's score, from a tick that loaded it earlier
            redis_client.zadd(SCHEDULE_KEY, {key: time.time() + 30 * 86_400})
        elif touch == "ttl":
            redis_client.pexpire(key, 600_000)
        elif touch == "marker":
            redis_client.hset(key, MARKER_FIELD, "someone else's")
        else:
            redis_client.srem(MANAGED_KEY, "early")

    with open_store(StoreSettings(redis_url=redis_url)) as store:
        plan = make_plan(store, load_schedules([folder]))
        toucher = threading.Thread(target=touch_once_written)
        toucher.start()
        try:
            # Touched within 2 s of the write: before the first re-check or the settled one.
            result = apply_plan(store, plan, settle_seconds=2)
        finally:
            toucher.join()

    assert result.settled == {"repair": ["early"]}, result.settled
    with open_store(StoreSettings(redis_url=redis_url)) as store:
        again = make_plan(store, load_schedules([folder]))
    assert again.changes == (), again.changes


def test_an_entry_changed_while_apply_asks_stops_it_with_nothing_written(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """On a terminal, apply asks before writing, and the answer may come much later: the
    entries are read again after it (they are not when nobody is asked; see
    cli/commands/apply.py). Another writer's edit meanwhile, to an entry of the second batch,
    stops the whole apply before the first batch."""
    folder = tmp_path / "schedules"
    names = [f"job-{number:03d}" for number in range(501)]  # two batches of up to 500
    write_schedules(folder, {name: cron("0 3 * * *") for name in names})
    with open_store(StoreSettings(redis_url=redis_url)) as store:
        apply_plan(store, make_plan(store, load_schedules([folder])))
    write_schedules(folder, {name: cron("0 4 * * *") for name in names})
    first, last = names[0], names[-1]
    before = {name: definition_of(redis_client, name) for name in (first, last)}
    primary, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "schedules", "--redis-url", redis_url],
        cwd=tmp_path,
        env=clean_env(),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    try:
        while b"Apply these changes?" not in shown:
            shown += os.read(primary, 4096)
        # The person reads the plan; meanwhile the application rewrites an entry.
        edited = {**before[last], "kwargs": {"edited": "by the application"}}
        redis_client.hset(PREFIX + last, "definition", json.dumps(edited))
        os.write(primary, b"y\n")
        assert process.wait(timeout=60) == 1
        while True:
            try:
                more = os.read(primary, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not more:
                break
            shown += more
    finally:
        process.kill()
        os.close(primary)
    said = shown.decode()
    assert f"'{last}' changed in Redis since the plan was made; nothing was written" in said
    assert definition_of(redis_client, first) == before[first]


def test_key_prefix_and_url_from_options_or_environment(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    schedules(tmp_path, {"nightly": cron("0 3 * * *")})
    applied = run_cli(
        capsys, "apply", "schedules", "--redis-url", redis_url, "--key-prefix", "{rb}:"
    )
    assert applied.code == 0, applied.err
    assert snapshot(redis_server).keys() == {
        "{rb}:nightly",
        "{rb}::schedule",
        "{rb}::reconciler:managed",
        "{rb}::reconciler:history",
    }
    monkeypatch.setenv("REDBEAT_REDIS_URL", redis_url)
    monkeypatch.setenv("REDBEAT_KEY_PREFIX", "{rb}:")
    from_env = run_cli(capsys, "plan", "schedules", "--detailed-exitcode")
    assert from_env.code == 0, from_env.out + from_env.err
    assert "No changes" in from_env.out
    assert "embedded" not in from_env.err
    default_prefix = run_cli(
        capsys, "plan", "schedules", "--key-prefix", "redbeat:", "--detailed-exitcode"
    )
    assert default_prefix.code == 2
    assert "+ nightly  (create)" in default_prefix.out
