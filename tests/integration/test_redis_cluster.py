"""Redis Cluster: the CLI as a real process against three primaries on loopback.

With a hash-tagged prefix (``{redbeat}:``) every key RedBeat and the reconciler use is in
one slot: plan, apply, plan again, drift, export and history work as on a single Redis, and
the plan says which mode applies. Without one (RedBeat's default ``redbeat:``) every command
stops with one line, exit 1, before reading or writing anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.integration.plan_apply_support import (
    CliResult,
    assert_unchanged,
    clean_env,
    cron,
    monitor,
    run_subprocess,
    snapshot,
    write_schedules,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.integration

TAGGED = "{redbeat}:"
ENTRIES = {
    "nightly": cron("0 3 * * *"),
    "hourly": cron("15 * * * *", args=[1]),
    "weekly": cron("30 6 * * 1", kwargs={"region": "eu"}),
}


def _cli(cluster: RedisClusterServers, folder: Path, *argv: str, prefix: str = TAGGED) -> CliResult:
    env = clean_env(REDBEAT_REDIS_URL=cluster.url)
    return run_subprocess(*argv, "--key-prefix", prefix, cwd=folder, env=env)


def _owner(cluster: RedisClusterServers) -> int:
    """Index of the primary holding the tagged prefix's slot."""
    client = cluster.client()
    try:
        node = client.get_node_from_key(TAGGED + ":schedule")  # type: ignore[no-untyped-call]
    finally:
        client.close()
    return cluster.ports.index(int(node.port))


def test_plan_apply_plan_drift_export_history_with_a_hash_tagged_prefix(
    redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    write_schedules(tmp_path / "schedules", ENTRIES)
    owner = _owner(redis_cluster)
    # Drift reads persistence from the primary holding the keys: turned on there only.
    redis_cluster.nodes[owner].config_set("save", "3600 1")

    plan = _cli(redis_cluster, tmp_path, "plan", "schedules")
    assert plan.code == 0, plan.err
    assert "Plan: 3 to create" in plan.out
    mode = (
        f"Redis Cluster: every key under '{TAGGED}' is in hash slot 10856 (on "
        f"127.0.0.1:{redis_cluster.ports[owner]}); each batch is written in one transaction, "
        "fenced by the apply lock, as on a single Redis."
    )
    assert mode in plan.err.splitlines()

    with monitor(redis_cluster.nodes[owner]) as seen:
        applied = _cli(redis_cluster, tmp_path, "apply", "schedules")
    assert applied.code == 0, applied.err
    assert "Apply complete: 3 created" in applied.out
    # One transaction: WATCH (the entries, statics and apply lock), then MULTI ... EXEC.
    names = [command.name for command in seen.commands]
    assert names.count("multi") == names.count("exec") >= 1
    watch = seen.named("watch")[0].args
    assert f"{TAGGED}:reconciler:lock" in watch
    assert {f"{TAGGED}{name}" for name in ENTRIES} <= set(watch)

    again = _cli(redis_cluster, tmp_path, "plan", "schedules", "--detailed-exitcode")
    assert (again.code, again.out.strip()) == (
        0,
        "No changes. RedBeat matches the schedule files (3 unchanged).",
    ), again.err

    # Every key is on the slot's primary, under the prefix; the apply lock is gone.
    for index, node in enumerate(redis_cluster.nodes):
        keys = snapshot(node).keys()
        if index != owner:
            assert keys == set()
            continue
        assert keys == {
            f"{TAGGED}:schedule",
            f"{TAGGED}:reconciler:managed",
            f"{TAGGED}:reconciler:history",
            *(TAGGED + name for name in ENTRIES),
        }

    with_monitors = [monitor(node) for node in redis_cluster.nodes]
    seen_by_node = [context.__enter__() for context in with_monitors]
    try:
        drift = _cli(redis_cluster, tmp_path, "drift", "schedules", "--no-beat-lock")
    finally:
        for context in with_monitors:
            context.__exit__(None, None, None)
    assert drift.code == 0, drift.out + drift.err
    assert "No drift" in drift.out
    # SCAN ran on every primary, not only on the one holding the keys.
    assert all(node_seen.named("scan") for node_seen in seen_by_node)

    exported = _cli(redis_cluster, tmp_path, "export", "--output", "exported")
    assert exported.code == 0, exported.err
    assert "Exported 3 entries" in exported.err + exported.out
    round_trip = _cli(redis_cluster, tmp_path, "plan", "exported", "--detailed-exitcode")
    assert round_trip.code == 0, round_trip.out + round_trip.err

    history = _cli(redis_cluster, tmp_path, "history")
    assert history.code == 0, history.err
    assert "+3  via apply" in history.out
    assert "create: hourly, nightly, weekly" in history.out


def test_a_changed_entry_and_a_deletion_are_applied_on_the_cluster(
    redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    write_schedules(tmp_path / "schedules", ENTRIES)
    assert _cli(redis_cluster, tmp_path, "apply", "schedules").code == 0
    changed = {**ENTRIES, "nightly": cron("0 4 * * *")}
    del changed["weekly"]
    write_schedules(tmp_path / "schedules", changed)
    applied = _cli(redis_cluster, tmp_path, "apply", "schedules", "--prune")
    assert applied.code == 0, applied.err
    assert "1 updated" in applied.out
    assert "1 deleted" in applied.out
    again = _cli(redis_cluster, tmp_path, "plan", "schedules", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err


@pytest.mark.parametrize(
    "argv",
    [
        ("plan", "schedules"),
        ("apply", "schedules"),
        ("drift", "schedules", "--no-beat-lock"),
        ("drift", "schedules", "--no-beat-lock", "--fix"),
        ("export", "--output", "exported"),
        ("history",),
    ],
    ids=lambda argv: " ".join(argv[:1] + argv[3:]),
)
def test_a_prefix_without_a_hash_tag_is_refused_in_one_line_and_nothing_is_written(
    redis_cluster: RedisClusterServers, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    write_schedules(tmp_path / "schedules", ENTRIES)
    # What beat would hold under RedBeat's default prefix: left exactly as it is.
    client = redis_cluster.client()
    try:
        client.hset("redbeat:nightly", mapping={"definition": "{}", "meta": "{}"})
        client.zadd("redbeat::schedule", {"redbeat:nightly": 1.0})
    finally:
        client.close()
    before = [snapshot(node) for node in redis_cluster.nodes]

    refused = _cli(redis_cluster, tmp_path, *argv, prefix="redbeat:")

    assert refused.code == 1
    assert refused.out == ""
    assert refused.err == (
        f"error: Redis Cluster at {redis_cluster.url}: the key prefix 'redbeat:' has no hash "
        "tag, so RedBeat's keys spread over hash slots and no transaction can cover an entry, "
        "the schedule and the apply lock; nothing was read or written. Give beat and the "
        "reconciler a prefix with one, such as '{redbeat}:' (Celery's redbeat_key_prefix, "
        "and --key-prefix or --app here), then apply the schedule files under it before "
        "starting beat with it (docs/redis.md#redis-cluster)\n"
    )
    for node, earlier in zip(redis_cluster.nodes, before, strict=True):
        assert_unchanged(earlier, snapshot(node))


def test_an_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    from tests.support.redis_server import free_port

    write_schedules(tmp_path / "schedules", ENTRIES)
    url = f"redis-cluster://:s3cret@127.0.0.1:{free_port()}"
    env = clean_env(REDBEAT_REDIS_URL=url)
    result = run_subprocess("plan", "schedules", "--key-prefix", TAGGED, cwd=tmp_path, env=env)
    assert result.code == 1
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: Redis at redis-cluster://:***@127.0.0.1:")
    assert "s3cret" not in result.err
