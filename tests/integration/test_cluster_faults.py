"""Redis Cluster: a slot migration, and a primary failover, during an apply.

``reconciler apply`` runs as a real process over 1,200 entries (three batches of 500, 500
and 200) against a cluster of its own; once the first batch's history record is in Redis,
the ``{redbeat}`` slot is moved to another primary (``SETSLOT IMPORTING``/``MIGRATING``,
``MIGRATE`` of its keys in steps, ``SETSLOT NODE``), or its primary is failed over to its
replica (``CLUSTER FAILOVER``, the graceful kind). The apply either completes (exit 0,
everything written) or fails cleanly (exit 1, one line saying exactly which batches
committed, as the history records and the keys in Redis say), never exit 3; a re-run then
converges and plan finds nothing to change.
"""

from __future__ import annotations

import re
import signal
import time
from typing import TYPE_CHECKING

import pytest

from reconciler.store.history import read_history
from reconciler.store.keys import KeySpace
from tests.integration.plan_apply_support import (
    bulk_entries,
    clean_env,
    outcome,
    run_subprocess,
    start_reconciler,
    wait_while_running,
    write_schedules,
)
from tests.support.redis_cluster import key_slot

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from pathlib import Path

    from tests.integration.plan_apply_support import CliResult
    from tests.support.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.integration

TAGGED = "{redbeat}:"
KEYS = KeySpace(TAGGED)
SLOT = key_slot(TAGGED)
COUNT = 1200
NAMES = sorted(bulk_entries(COUNT))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_schedules(tmp_path / "schedules", bulk_entries(COUNT))
    return tmp_path


@pytest.mark.parametrize("when", ["half-moved", "moved"])
def test_a_slot_migration_mid_apply_completes_or_fails_cleanly_and_a_rerun_converges(
    redis_cluster_factory: Callable[..., RedisClusterServers], folder: Path, when: str
) -> None:
    """``half-moved``: the apply goes on while the slot is MIGRATING with half its keys on
    the target (ASK, TRYAGAIN), then the move ends under it (MOVED). ``moved``: the whole
    move happens between two batches."""
    cluster = redis_cluster_factory()
    source = cluster.owner_of_slot(SLOT)
    target = (source + 1) % cluster.primaries
    client = cluster.client()
    process = start_apply(folder, cluster)
    try:
        wait_while_running(lambda: client.xlen(KEYS.history) >= 1, process)
        # Stopped between batches, so that the fault surely lands mid-apply.
        process.send_signal(signal.SIGSTOP)
        before = client.xlen(KEYS.history)
        if when == "moved":
            cluster.migrate_slot(SLOT, target)
            process.send_signal(signal.SIGCONT)
        else:
            cluster.begin_migration(SLOT, target)
            cluster.migrate_keys(SLOT, source, target, 300)  # of 500 or 1,000 entries, ...
            process.send_signal(signal.SIGCONT)
            time.sleep(0.3)
            while cluster.migrate_keys(SLOT, source, target, 50):
                time.sleep(0.01)
            cluster.end_migration(SLOT, source, target)
        out, err = outcome(process, folder)
    finally:
        if process.poll() is None:
            process.kill()
        client.close()
    assert before < 3, "the apply had finished before the fault"
    assert cluster.owner_of_slot(SLOT) == target
    assert_truthful(cluster, process.returncode, out, err)
    assert_rerun_converges(cluster, folder)


@pytest.mark.parametrize("when", ["between-batches", "in-flight"])
def test_a_primary_failover_mid_apply_completes_or_fails_cleanly_and_a_rerun_converges(
    redis_cluster_factory: Callable[..., RedisClusterServers], folder: Path, when: str
) -> None:
    """``CLUSTER FAILOVER`` on the replica of the slot's primary, with the apply stopped
    between two batches, or running (a batch may be in flight)."""
    cluster = redis_cluster_factory(replicas=1)
    primary = cluster.owner_of_slot(SLOT)
    replica = cluster.replica_of(primary)
    client = cluster.client()
    process = start_apply(folder, cluster)
    try:
        wait_while_running(lambda: client.xlen(KEYS.history) >= 1, process)
        if when == "between-batches":
            process.send_signal(signal.SIGSTOP)
        before = client.xlen(KEYS.history)
        cluster.failover(replica)
        process.send_signal(signal.SIGCONT)
        out, err = outcome(process, folder)
    finally:
        if process.poll() is None:
            process.kill()
        client.close()
    assert before < 3, "the apply had finished before the fault"
    assert cluster.owner_of_slot(SLOT) == replica
    assert_truthful(cluster, process.returncode, out, err)
    assert_rerun_converges(cluster, folder)


def assert_truthful(cluster: RedisClusterServers, code: int | None, out: str, err: str) -> None:
    """Exit 0 with everything written, or exit 1 with one line naming exactly the batches
    that committed; what Redis holds is what the history records list."""
    client = cluster.client()
    try:
        (apply,) = read_history(client, KEYS, 1000)
        managed = {str(name) for name in client.smembers(KEYS.managed)}
        recorded = {name for names in apply.names.values() for name in names}
        assert managed == recorded
        for name in managed:
            assert client.hget(KEYS.entry(name), "definition"), name
            assert client.zscore(KEYS.schedule, KEYS.entry(name)) is not None, name
        lock = client.exists(KEYS.apply_lock)
    finally:
        client.close()
    assert code in (0, 1), f"exit {code}\n{out}\n{err}"
    if code == 0:
        assert f"Apply complete: {COUNT} created" in out, out + err
        assert (apply.state, apply.batches) == ("complete", 3)
        assert managed == set(NAMES)
        assert lock == 0
        return
    # Besides the mode every command states on stderr, one line.
    (line,) = [text for text in err.splitlines() if not text.startswith("Redis Cluster: ")]
    assert line.startswith("error: "), line
    assert "Apply complete" not in out
    assert apply.state == "partial"
    committed = 500 * apply.batches
    assert len(managed) == committed
    if apply.batches:
        assert f"the {committed} change(s) of the {apply.batches} batch(es) before it" in line
        assert "nothing was written" not in line
    else:
        assert "nothing was written" in line or "no batch before it was committed" in line


def assert_rerun_converges(cluster: RedisClusterServers, folder: Path) -> None:
    again = reconciler(cluster, folder, "apply", "schedules")
    assert again.code == 0, again.out + again.err
    assert re.search(r"Apply complete: \d+ created|No changes", again.out), again.out
    plan = reconciler(cluster, folder, "plan", "schedules", "--detailed-exitcode")
    assert (plan.code, plan.out.strip()) == (
        0,
        f"No changes. RedBeat matches the schedule files ({COUNT} unchanged).",
    ), plan.err
    client = cluster.client()
    try:
        assert {str(name) for name in client.smembers(KEYS.managed)} == set(NAMES)
        assert client.zcard(KEYS.schedule) == COUNT
        assert client.exists(KEYS.apply_lock) == 0
    finally:
        client.close()


def reconciler(cluster: RedisClusterServers, folder: Path, *argv: str) -> CliResult:
    env = clean_env(REDBEAT_REDIS_URL=cluster.url)
    return run_subprocess(*argv, "--key-prefix", TAGGED, cwd=folder, env=env, timeout=120)


def start_apply(folder: Path, cluster: RedisClusterServers) -> subprocess.Popen[bytes]:
    env = clean_env(REDBEAT_REDIS_URL=cluster.url)
    return start_reconciler(folder, "apply", "schedules", "--key-prefix", TAGGED, env=env)
