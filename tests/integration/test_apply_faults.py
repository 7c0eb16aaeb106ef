"""What `apply` reports after a fault is what Redis holds: lost EXEC replies, a Redis that
goes away or is killed and restarted, connections killed in a loop, an apply killed between
batches. Every apply runs as a real process against a real redis-server (through a proxy
that loses replies where one is needed); every test compares the report with Redis.

1,200 entries make three batches of 500, 500 and 200.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from reconciler.store.apply_lock import ApplyLock
from reconciler.store.keys import KeySpace
from tests.integration.plan_apply_support import (
    APPLY_LOCK_KEY,
    HISTORY_KEY,
    PREFIX,
    applies_recorded,
    bulk_entries,
    clean_env,
    history_records,
    kill_holding_its_next_batch,
    outcome,
    run_subprocess,
    start_reconciler,
    wait_while_running,
    write_schedules,
)
from tests.support.fault_proxy import FaultProxy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliResult
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

COUNT = 1200
NAMES = sorted(bulk_entries(COUNT))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_schedules(tmp_path / "schedules", bulk_entries(COUNT))
    return tmp_path


@pytest.fixture
def proxy(redis_server: RedisServer, redis_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(redis_server.host, redis_server.port) as started:
        yield started


def reconciler(folder: Path, url: str, *argv: str) -> CliResult:
    return run_subprocess(*argv, "--redis-url", url, cwd=folder, timeout=120)


def entries_in_redis(client: redis.Redis) -> set[str]:
    return {str(name) for name in client.smembers(PREFIX + ":reconciler:managed")}


def names_in_history(client: redis.Redis) -> set[str]:
    """Every name a committed batch's record lists."""
    return {
        name
        for record in applies_recorded(client)
        for names in record.names.values()
        for name in names
    }


def assert_report_is_redis(client: redis.Redis) -> None:
    """Each committed batch's record lists exactly what that batch wrote."""
    written = entries_in_redis(client)
    assert written == names_in_history(client)
    for name in written:
        assert client.hget(f"{PREFIX}{name}", "definition"), name
        assert client.zscore(PREFIX + ":schedule", f"{PREFIX}{name}") is not None, name


@pytest.mark.parametrize("lost", [1, 2, 3], ids=["first-batch", "middle-batch", "last-batch"])
def test_a_lost_exec_reply_is_read_back_and_the_apply_completes_truthfully(
    folder: Path, proxy: FaultProxy, redis_client: redis.Redis, lost: int
) -> None:
    """Before: "'job-00300' changed in Redis since the plan was made; nothing was written"
    after 500 changes had committed. Now the batch's own history record says it committed."""
    proxy.drop_exec_reply(lost)
    applied = reconciler(folder, proxy.url, "apply", "schedules")
    assert proxy.replies_dropped == 1
    assert applied.code == 0, applied.err
    assert f"Apply complete: {COUNT} created, 0 updated" in applied.out
    assert "The connection to Redis dropped 1 time(s)" in applied.out
    assert "changed in Redis" not in applied.out + applied.err
    # Each batch committed once: three records, no batch written twice.
    assert [record["batch"] for record in history_records(redis_client)] == ["1/3", "2/3", "3/3"]
    (apply,) = applies_recorded(redis_client)
    assert (apply.state, apply.batches, apply.counts) == ("complete", 3, {"create": COUNT})
    assert entries_in_redis(redis_client) == set(NAMES)
    assert_report_is_redis(redis_client)
    assert redis_client.exists(APPLY_LOCK_KEY) == 0
    again = reconciler(folder, proxy.url, "plan", "schedules")
    assert again.code == 0
    assert again.out.startswith("No changes"), again.out


def test_a_commit_that_cannot_be_read_back_is_reported_as_unknown_never_as_not_written(
    folder: Path, proxy: FaultProxy, redis_client: redis.Redis
) -> None:
    """The reply of batch 2 is lost and Redis stays away longer than the apply waits: the
    apply says batch 1 committed and batch 2 is unknown; `history` then knows."""
    proxy.drop_exec_reply(2)
    proxy.go_down_after_drop = True
    applied = reconciler(folder, proxy.url, "apply", "schedules")
    assert applied.code == 1
    (line,) = applied.err.splitlines()
    assert (
        "lost the connection to Redis 8 time(s) while writing, the last time during its commit"
        in line
    )
    assert "the 500 change(s) of the 1 batch(es) before it were committed (job-00000, " in line
    assert "whether batch 2 (500 change(s)) committed could not be read back" in line
    assert "nothing was written" not in line
    assert "Apply complete" not in applied.out
    proxy.come_back()
    # Batch 2 did commit, with its record: the history and Redis agree, and say so.
    shown = reconciler(folder, proxy.url, "history")
    # Its lock outlives it (the release could not reach Redis either) for one short lease.
    assert "(partial: 2 of 3 batches committed; its lock is still held: " in shown.out
    assert len(entries_in_redis(redis_client)) == 1000
    assert_report_is_redis(redis_client)
    plan = reconciler(folder, proxy.url, "plan", "schedules")
    assert "Plan: 200 to create, 0 to update" in plan.out, plan.out


def test_an_apply_killed_between_batches_leaves_a_partial_history_and_a_short_lock(
    folder: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    """Before: no history at all after a kill although 500-1,500 changes had committed, and
    the lock blocked re-runs for 120 s."""
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "schedules", "--redis-url", redis_url],
        cwd=folder,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_while_running(lambda: redis_client.xlen(HISTORY_KEY) >= 1, process)
        kill_holding_its_next_batch(redis_client, process)
    finally:
        if process.poll() is None:
            process.kill()
    (apply,) = applies_recorded(redis_client)
    assert apply.state == "partial"
    assert 1 <= apply.batches < 3
    assert apply.planned_batches == 3
    assert len(entries_in_redis(redis_client)) == 500 * apply.batches
    assert_report_is_redis(redis_client)
    shown = reconciler(folder, redis_url, "history")
    assert f"(partial: {apply.batches} of 3 batches committed; its lock is still held" in shown.out
    # The lock of the killed apply expires within its short lease, not 120 s.
    assert 0 < redis_client.pttl(APPLY_LOCK_KEY) <= 30_000
    left = COUNT - 500 * apply.batches
    plan = reconciler(folder, redis_url, "plan", "schedules")
    assert f"Plan: {left} to create, 0 to update" in plan.out, plan.out


def test_redis_killed_and_restarted_mid_apply_the_apply_carries_on(
    folder: Path, redis_server_factory: Callable[..., RedisServer]
) -> None:
    """SIGKILL of redis-server (AOF, fsync always) after the first batch, restarted half a
    second later: the apply reconnects, reads back which batch committed, and finishes."""
    server = redis_server_factory(config={"appendonly": "yes", "appendfsync": "always"})
    client = server.client()
    process = start_apply(folder, server.url)
    try:
        wait_while_running(lambda: client.xlen(HISTORY_KEY) >= 1, process)
        # Writes held until the next batch's transaction is queued: the crash lands on a
        # batch in flight, its EXEC sent and unanswered.
        client.client_pause(10_000, all=False)
        wait_while_running(
            lambda: any(int(c.get("multi", -1)) >= 0 for c in client.client_list()), process
        )
        committed_before_crash = client.xlen(HISTORY_KEY)
        server.crash()
        time.sleep(0.5)
        server.start_again()
        out, err = outcome(process, folder)
    finally:
        if process.poll() is None:
            process.kill()
    client = server.client()
    assert committed_before_crash < 3
    assert process.returncode == 0, err
    assert f"Apply complete: {COUNT} created" in out
    assert re.search(r"The connection to Redis dropped \d+ time\(s\)", out), out
    (apply,) = applies_recorded(client)
    assert (apply.state, apply.batches) == ("complete", 3)
    assert entries_in_redis(client) == set(NAMES)
    assert_report_is_redis(client)
    assert client.exists(APPLY_LOCK_KEY) == 0
    client.close()


def test_connections_killed_in_a_loop_are_lost_connections_not_concurrent_writers(
    folder: Path, redis_server_factory: Callable[..., RedisServer]
) -> None:
    """Before: "the entries kept changing while being written (8 attempts)" though nothing
    else wrote. CLIENT KILL every 40 ms for 2 s from the first committed batch on (on a
    server of its own: it kills every client's connections, pooled ones of other tests too).

    The first kill lands on a batch in flight (writes paused until its transaction is
    queued): a kill of an idle pooled connection alone is healed by redis-py before use and
    the apply would never see a drop, so the test would prove nothing."""
    server = redis_server_factory()
    redis_client = server.client()
    process = start_apply(folder, server.url)
    killed = 0
    try:
        wait_while_running(lambda: redis_client.xlen(HISTORY_KEY) >= 1, process)
        redis_client.client_pause(10_000, all=False)
        wait_while_running(
            lambda: any(int(c.get("multi", -1)) >= 0 for c in redis_client.client_list()),
            process,
        )
        killed += int(redis_client.execute_command("CLIENT KILL TYPE normal SKIPME yes"))
        redis_client.client_unpause()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and process.poll() is None:
            killed += int(redis_client.execute_command("CLIENT KILL TYPE normal SKIPME yes"))
            time.sleep(0.04)
        out, err = outcome(process, folder)
    finally:
        if process.poll() is None:
            process.kill()
    assert killed, "no connection was killed: the test proved nothing"
    assert "kept changing" not in err
    assert_report_is_redis(redis_client)
    (apply,) = applies_recorded(redis_client)
    if process.returncode == 0:
        assert f"Apply complete: {COUNT} created" in out
        assert apply.state == "complete"
        assert re.search(r"The connection to Redis dropped \d+ time\(s\)", out), out
    else:
        assert process.returncode == 1, err
        assert "lost the connection to Redis" in err
        committed = 500 * apply.batches
        assert f"the {committed} change(s) of the {apply.batches} batch(es)" in err


def test_a_batch_refused_for_memory_is_refused_whole_and_the_report_says_what_committed(
    folder: Path, redis_server_factory: Callable[..., RedisServer]
) -> None:
    """Redis reaches maxmemory (noeviction) after the first batch: the second is refused
    whole, and the apply says exactly which 500 changes committed."""
    server = redis_server_factory(config={"maxmemory-policy": "noeviction"})
    client = server.client()
    process = start_apply(folder, server.url)
    try:
        wait_while_running(lambda: client.xlen(HISTORY_KEY) >= 1, process)
        client.client_pause(10_000, all=False)
        client.config_set("maxmemory", "1mb")  # far below what the first batch now uses
        client.client_unpause()
        out, err = outcome(process, folder)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, out
    (line,) = err.splitlines()
    assert "Redis refused a write: command not allowed when used memory > 'maxmemory';" in line
    assert "the 500 change(s) of the 1 batch(es) before it were committed (job-00000, " in line
    assert "are in history as a partial apply" in line
    client.config_set("maxmemory", "0")
    (apply,) = applies_recorded(client)
    assert (apply.state, apply.batches) == ("partial", 1)
    assert len(entries_in_redis(client)) == 500
    assert_report_is_redis(client)
    assert client.exists(APPLY_LOCK_KEY) == 0
    client.close()


def test_the_lock_lease_is_renewed_while_the_apply_runs_and_lapses_soon_after_a_crash(
    redis_server: RedisServer, redis_url: str, redis_client: redis.Redis
) -> None:
    lock = ApplyLock(redis_server.client(), KeySpace(PREFIX), ttl_seconds=0.6)
    lock.acquire(timeout=1)
    lock.start_renewing()
    try:
        time.sleep(2.0)  # more than three leases
        assert redis_client.get(APPLY_LOCK_KEY) == lock.value
        assert 0 < redis_client.pttl(APPLY_LOCK_KEY) <= 600
    finally:
        lock.stop_renewing()  # as if the process died: nobody renews or releases
    time.sleep(0.8)
    assert redis_client.exists(APPLY_LOCK_KEY) == 0


def start_apply(folder: Path, url: str) -> subprocess.Popen[bytes]:
    return start_reconciler(folder, "apply", "schedules", "--redis-url", url)
