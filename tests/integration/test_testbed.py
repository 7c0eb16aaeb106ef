"""Proof that the real-server test bed works: Redis, RedBeat, beat and worker, for real."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

import pytest
from celery.schedules import schedule
from redbeat import RedBeatSchedulerEntry

from tests.support.celery_app import BROKER_DB, RECORD_OTHER_TASK, RECORD_TASK
from tests.support.celery_processes import (
    recorded_runs,
    running_beat,
    running_worker,
    wait_for_runs,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis
    from celery import Celery

    from tests.support.celery_processes import BeatProcess, WorkerProcess
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def _assert_empty_then_mark(server: RedisServer, client: redis.Redis) -> None:
    # Each of the two tests below checks the other left nothing behind, whatever their order.
    broker = server.client(db=BROKER_DB)
    try:
        assert client.dbsize() == 0
        assert broker.dbsize() == 0
    finally:
        broker.close()
    client.set("testbed:dirty", "1")


def test_server_answers_ping_on_loopback(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    assert redis_client.ping() is True
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_client.config_get("bind") == {"bind": "127.0.0.1"}
    # No persistence: nothing a test writes may reach the disk.
    assert redis_client.config_get("save") == {"save": ""}
    assert redis_client.config_get("appendonly") == {"appendonly": "no"}
    _assert_empty_then_mark(redis_server, redis_client)


def test_each_test_gets_a_clean_database(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    _assert_empty_then_mark(redis_server, redis_client)


def test_extra_server_takes_config_and_stops(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory(config={"maxmemory-policy": "allkeys-lru"})
    client = server.client()
    try:
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    finally:
        client.close()
    pid = server.pid
    assert pid is not None
    server.stop()
    assert not server.is_running()
    assert not _pid_alive(pid)


@pytest.mark.e2e
def test_beat_and_worker_run_a_redbeat_entry(
    redis_server: RedisServer, redis_client: redis.Redis, testbed_app: Celery
) -> None:
    RedBeatSchedulerEntry(
        "testbed-every-second",
        RECORD_TASK,
        schedule(run_every=1),
        args=["tick"],
        kwargs={"n": 1},
        app=testbed_app,
    ).save()

    started = time.time()
    # Start both, then wait for both: their start-ups overlap, halving the wait.
    with (
        running_worker(redis_server, wait=False) as worker,
        running_beat(redis_server, wait=False) as beat,
    ):
        try:
            worker.wait_ready()
            beat.wait_ready()

            runs = wait_for_runs(redis_client, 2, timeout=10, processes=[beat, worker])
            assert all(run["task"] == RECORD_TASK for run in runs)
            assert all(run["args"] == ["tick"] and run["kwargs"] == {"n": 1} for run in runs)
            assert runs[0]["label"] == "tick"
            assert all(run["hostname"] == worker.hostname for run in runs)
            assert len({run["task_id"] for run in runs}) == len(runs)
            assert all(started <= run["at"] <= time.time() for run in runs)

            # Beat holds RedBeat's lock, with a TTL (redbeat_lock_timeout = 5 s).
            assert redis_client.exists(beat.lock_key) == 1
            assert 0 < redis_client.pttl(beat.lock_key) <= 5000

            meta = json.loads(redis_client.hget("redbeat:testbed-every-second", "meta") or "{}")
            assert meta["total_run_count"] >= 1
            assert meta["last_run_at"]["__type__"] == "datetime"
            assert redis_client.zscore("redbeat::schedule", "redbeat:testbed-every-second")
            assert recorded_runs(redis_client, task=RECORD_OTHER_TASK) == []
        except BaseException:
            print(f"--- beat log ---\n{beat.log_text()}\n--- worker log ---\n{worker.log_text()}")
            raise

    # Context managers exited: both processes (and their groups) are gone, lock released.
    _assert_stopped(beat, worker)
    assert redis_client.exists(beat.lock_key) == 0
    assert "beat: Releasing lock" in beat.log_text()


@pytest.mark.e2e
def test_factories_start_and_stop_processes(
    beat_factory: Callable[..., BeatProcess],
    worker_factory: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    testbed_app: Celery,
) -> None:
    worker = worker_factory()
    beat = beat_factory(key_prefix="custom:")
    assert redis_client.exists("custom::lock") == 1
    assert redis_client.exists("redbeat::lock") == 0

    # A task sent directly (not through beat) is also executed and recorded.
    testbed_app.send_task(RECORD_OTHER_TASK, kwargs={"label": "direct"})
    (run,) = wait_for_runs(redis_client, 1, task=RECORD_OTHER_TASK, processes=[worker])
    assert run["label"] == "direct"

    beat.stop()
    worker.stop()
    _assert_stopped(beat, worker)
    assert redis_client.exists("custom::lock") == 0


def _assert_stopped(*processes: BeatProcess | WorkerProcess) -> None:
    for process in processes:
        assert not process.is_running()
        assert process.returncode is not None
        assert process.pid is not None
        # Reaped, and nothing left in its process group (pool children included).
        assert not _pid_alive(process.pid)
        with pytest.raises(ProcessLookupError):
            os.killpg(process.pid, 0)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
