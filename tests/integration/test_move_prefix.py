"""``move-prefix``: the managed entries move to another key prefix with their run history
(meta) and scores, on a single Redis and from an untagged to a tagged prefix on a cluster;
unmanaged entries, beat's statics and its lock stay; a re-run is a no-op; a move cut off
after copying resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pytest

from reconciler.store.keys import MARKER_FIELD
from tests.integration.plan_apply_support import (
    assert_unchanged,
    bulk_entries,
    clean_env,
    cron,
    kill_holding_its_next_batch,
    redbeat_meta,
    run_subprocess,
    snapshot,
    wait_while_running,
    write_schedules,
)

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliResult
    from tests.support.redis_cluster import RedisClusterServers
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

OLD, NEW = "redbeat:", "{redbeat}:"
ENTRIES = {"nightly": cron("0 3 * * *"), "hourly": cron("15 * * * *"), "weekly": cron("0 6 * * 1")}
RAN = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)
FIELDS = ("definition", "meta", MARKER_FIELD)


MOVE_ARGV = ("move-prefix", "--from", OLD, "--to", NEW)


def move(folder: Path, url: str, *argv: str) -> CliResult:
    env = clean_env(REDBEAT_REDIS_URL=url)
    return run_subprocess(*MOVE_ARGV, *argv, cwd=folder, env=env)


def applied_with_history(folder: Path, server: RedisServer) -> redis.Redis:
    """The entries applied under OLD, then run by 'beat': meta and scores of their own."""
    write_schedules(folder / "schedules", ENTRIES)
    env = clean_env(REDBEAT_REDIS_URL=server.url)
    assert run_subprocess("apply", "schedules", cwd=folder, env=env).code == 0
    client = server.client()
    for count, name in enumerate(sorted(ENTRIES), start=3):
        client.hset(OLD + name, "meta", redbeat_meta(RAN, count))  # scores: as applied
    # Not the reconciler's: an unmanaged entry, beat's statics and its lock.
    client.hset(OLD + "foreign", mapping={"definition": "{}", "meta": "{}"})
    client.zadd(OLD + ":schedule", {OLD + "foreign": 5.0})
    client.sadd(OLD + ":statics", "static-one")
    return client


def entry_state(client: redis.Redis, prefix: str, name: str) -> tuple[object, ...]:
    values = client.hmget(prefix + name, list(FIELDS))
    return (*values, client.zscore(prefix + ":schedule", prefix + name))


def test_a_move_on_a_single_redis_keeps_meta_and_scores_and_nothing_else_moves(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    redis_server.client().flushall()
    client = applied_with_history(tmp_path, redis_server)
    before = {name: entry_state(client, OLD, name) for name in ENTRIES}
    untouched = {OLD + "foreign", OLD + ":statics"}
    earlier = snapshot(redis_server)
    env = clean_env(REDBEAT_REDIS_URL=redis_server.url)
    old_plan = run_subprocess("plan", "schedules", cwd=tmp_path, env=env)

    shown = move(tmp_path, redis_server.url)
    assert shown.code == 0, shown.err
    assert "  > hourly  (3 run(s), last 2026-11-30 03:00:00 UTC; next due " in shown.out
    assert "Plan: 3 to move, 0 copied already, 0 in the way." in shown.out
    assert "Stop beat, then run again with --apply" in shown.out
    assert_unchanged(earlier, snapshot(redis_server))  # the plan wrote nothing

    moved = move(tmp_path, redis_server.url, "--apply")
    assert moved.code == 0, moved.err
    assert "Move complete: 3 moved, 0 finished." in moved.out
    assert {name: entry_state(client, NEW, name) for name in ENTRIES} == before
    assert {str(name) for name in client.smembers(NEW + ":reconciler:managed")} == set(ENTRIES)
    assert not client.exists(*(OLD + name for name in ENTRIES))
    assert not client.exists(OLD + ":reconciler:managed")
    assert client.zrange(OLD + ":schedule", 0, -1) == [OLD + "foreign"]
    assert_unchanged(earlier, snapshot(redis_server), only=untouched)

    again = move(tmp_path, redis_server.url, "--apply")
    assert again.code == 0, again.err
    assert "Nothing to move" in again.out
    # Beat under the new prefix sees each entry's clock exactly as it was under the old one.
    plan = run_subprocess("plan", "schedules", "--key-prefix", NEW, cwd=tmp_path, env=env)
    assert _body(plan.out.replace(NEW, OLD)) == _body(old_plan.out)
    history = run_subprocess("history", "--key-prefix", NEW, cwd=tmp_path, env=env)
    assert "via move-prefix" in history.out


def test_an_entry_in_the_way_under_the_new_prefix_is_refused_and_nothing_is_written(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    redis_server.client().flushall()
    client = applied_with_history(tmp_path, redis_server)
    client.hset(NEW + "nightly", mapping={"definition": "{}"})
    earlier = snapshot(redis_server)
    refused = move(tmp_path, redis_server.url, "--apply")
    assert refused.code == 1
    assert "'nightly': already under '{redbeat}:', and not the same" in refused.err
    assert "nothing was written" in refused.err
    assert_unchanged(earlier, snapshot(redis_server))


def test_an_untagged_prefix_moves_to_a_tagged_one_on_a_cluster_and_a_cut_off_move_resumes(
    redis_server: RedisServer, redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    redis_server.client().flushall()
    single = applied_with_history(tmp_path, redis_server)
    cluster = redis_cluster.client()
    # The same keys on the cluster, spread over its slots as RedBeat's default prefix is.
    for key in single.scan_iter(match=OLD + "*"):
        kind = single.type(key)
        if kind == "hash":
            cluster.hset(key, mapping=single.hgetall(key))
        elif kind == "zset":
            cluster.zadd(key, dict(single.zrange(key, 0, -1, withscores=True)))
        elif kind == "set":
            cluster.sadd(key, *single.smembers(key))
    before = {name: entry_state(cluster, OLD, name) for name in ENTRIES}
    # A move cut off after copying 'hourly', before deleting its old keys.
    cluster.hset(NEW + "hourly", mapping=dict(zip(FIELDS, before["hourly"][:3], strict=True)))
    cluster.zadd(NEW + ":schedule", {NEW + "hourly": float(before["hourly"][3])})  # type: ignore[arg-type]
    cluster.sadd(NEW + ":reconciler:managed", "hourly")

    shown = move(tmp_path, redis_cluster.url)
    assert shown.code == 0, shown.err
    assert "Plan: 2 to move, 1 copied already, 0 in the way." in shown.out
    moved = move(tmp_path, redis_cluster.url, "--apply")
    assert moved.code == 0, moved.err
    assert "Move complete: 2 moved, 1 finished." in moved.out
    assert {name: entry_state(cluster, NEW, name) for name in ENTRIES} == before
    assert not cluster.exists(*(OLD + name for name in ENTRIES))
    assert cluster.zrange(OLD + ":schedule", 0, -1) == [OLD + "foreign"]
    assert cluster.smembers(OLD + ":statics") == {"static-one"}
    assert cluster.exists(OLD + ":reconciler:managed") == 0
    again = move(tmp_path, redis_cluster.url, "--apply")
    assert again.code == 0, again.err
    assert "Nothing to move" in again.out
    cluster.close()


def _body(plan: str) -> list[str]:
    """A plan's lines but its first (a note naming the prefix) and the times from now on."""
    return [line for line in plan.splitlines()[1:] if "next runs:" not in line]


COUNT = 1200  # three batches of 500, 500 and 200


def test_a_move_killed_between_batches_resumes_and_every_entry_keeps_its_meta_and_score(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """SIGKILL of ``move-prefix --apply`` once its first batch committed, its next batch held
    by CLIENT PAUSE WRITE: no entry is lost or in both places; the killed move's apply locks
    refuse a re-run that does not wait, and once their leases ran out a re-run finishes the
    move; every entry then has exactly the meta and score it had under the old prefix."""
    write_schedules(tmp_path / "schedules", bulk_entries(COUNT))
    env = clean_env(REDBEAT_REDIS_URL=redis_server.url)
    assert run_subprocess("apply", "schedules", cwd=tmp_path, env=env, timeout=120).code == 0
    names = sorted(bulk_entries(COUNT))
    with redis_client.pipeline(transaction=False) as pipe:
        for index, name in enumerate(names):  # a run history of its own for each entry
            pipe.hset(OLD + name, "meta", redbeat_meta(RAN, index))
        pipe.execute()
    # Not the reconciler's: an unmanaged entry, beat's statics, and a lock a beat killed
    # earlier left behind (no beat runs: --no-beat-lock), all to stay as they are.
    redis_client.hset(OLD + "foreign", mapping={"definition": "{}", "meta": "{}"})
    redis_client.zadd(OLD + ":schedule", {OLD + "foreign": 5.0})
    redis_client.sadd(OLD + ":statics", "static-one")
    redis_client.set(OLD + ":lock", "beat-token", px=600_000)
    untouched = {OLD + "foreign", OLD + ":statics", OLD + ":lock"}
    before = entries_state(redis_client, OLD, names)
    earlier = snapshot(redis_server)

    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *MOVE_ARGV, "--apply", "--no-beat-lock"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_while_running(lambda: redis_client.xlen(NEW + ":reconciler:history") >= 1, process)
        kill_holding_its_next_batch(redis_client, process)
    finally:
        if process.poll() is None:
            process.kill()

    batches = redis_client.xlen(NEW + ":reconciler:history")
    assert 1 <= batches < 3
    moved = names[: 500 * batches]  # batches go in name order
    assert managed_names(redis_client, NEW) == set(moved)
    assert managed_names(redis_client, OLD) == set(names[500 * batches :])
    assert entries_state(redis_client, NEW, moved) == {name: before[name] for name in moved}
    assert not redis_client.exists(*(OLD + name for name in moved))
    # Both prefixes' apply locks outlive the killed move, for one short lease at most.
    for prefix in (OLD, NEW):
        assert 0 < redis_client.pttl(prefix + ":reconciler:lock") <= 30_000

    refused = move(tmp_path, redis_server.url, "--apply", "--no-beat-lock", "--lock-timeout", "0")
    assert refused.code == 1
    assert "another move-prefix holds the lock" in refused.err
    # An apply on the old prefix meanwhile says what it waits for: the move, not an apply.
    waiting = run_subprocess(
        "apply", "schedules", "--lock-timeout", "0", "--auto-approve", cwd=tmp_path, env=env
    )
    assert waiting.code == 1
    assert waiting.err_lines[-1].startswith("error: another move-prefix holds the lock"), (
        waiting.err
    )
    assert "It expires by itself 30 s after a crash (see --lock-timeout)" in refused.err

    # The leases run out by themselves (the lease itself: test_apply_faults.py); here they
    # are made to run out now rather than waited for, to keep the suite short.
    for prefix in (OLD, NEW):
        redis_client.pexpire(prefix + ":reconciler:lock", 1)
    resumed = move(tmp_path, redis_server.url, "--apply", "--no-beat-lock", "--lock-timeout", "5")
    assert resumed.code == 0, resumed.err
    assert f"Move complete: {COUNT - len(moved)} moved, 0 finished." in resumed.out
    assert entries_state(redis_client, NEW, names) == before
    assert managed_names(redis_client, NEW) == set(names)
    assert not redis_client.exists(OLD + ":reconciler:managed")
    assert not redis_client.exists(*(OLD + name for name in names))
    assert redis_client.zrange(OLD + ":schedule", 0, -1) == [OLD + "foreign"]
    assert_unchanged(earlier, snapshot(redis_server), only=untouched)
    assert not redis_client.exists(OLD + ":reconciler:lock", NEW + ":reconciler:lock")
    # Each entry was copied by exactly one committed batch, of one move or the other.
    recorded = [
        name
        for _, record in redis_client.xrange(NEW + ":reconciler:history")
        for name in json.loads(record["names"])["move"]
    ]
    assert sorted(recorded) == names
    history = run_subprocess("history", "--key-prefix", NEW, cwd=tmp_path, env=env)
    assert f"  >{COUNT - len(moved)}  via move-prefix\n" in history.out
    assert (
        f"  >{len(moved)}  via move-prefix\n    (partial: {batches} of 3 batches committed; "
        f"move-prefix --from {OLD!r} shows what is left)"
    ) in history.out

    again = move(tmp_path, redis_server.url, "--apply", "--no-beat-lock")
    assert again.code == 0, again.err
    assert "Nothing to move" in again.out


def entries_state(
    client: redis.Redis, prefix: str, names: list[str]
) -> dict[str, tuple[object, ...]]:
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(prefix + name, list(FIELDS))
            pipe.zscore(prefix + ":schedule", prefix + name)
        replies = pipe.execute()
    return {name: (*replies[2 * index], replies[2 * index + 1]) for index, name in enumerate(names)}


def managed_names(client: redis.Redis, prefix: str) -> set[str]:
    return {str(name) for name in client.smembers(prefix + ":reconciler:managed")}
