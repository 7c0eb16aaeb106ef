"""A real ``celery beat -S redbeat.RedBeatScheduler`` on a Redis Cluster, with RedBeat's own
cluster settings and ``redbeat_key_prefix = '{redbeat}:'``, fires what the reconciler applied
there; the reconciler reads the same settings from the app (``--app``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.integration.plan_apply_support import clean_env, run_subprocess, write_schedules
from tests.support.celery_app import RECORD_TASK
from tests.support.celery_processes import BeatProcess, WorkerProcess, wait_for_runs
from tests.support.cluster_celery_app import CLUSTER_APP_MODULE, ENV_CLUSTER_URL

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from tests.support.redis_cluster import RedisClusterServers
    from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PREFIX = "{redbeat}:"


class ClusterBeat(BeatProcess):
    """Ready once it logged taking RedBeat's lock and the lock is on the cluster."""

    def __init__(self, cluster: RedisClusterServers, server: RedisServer, log_dir: Path) -> None:
        self.cluster = cluster
        super().__init__(
            server,
            key_prefix=PREFIX,
            env={ENV_CLUSTER_URL: cluster.redis_url},
            log_dir=log_dir,
            app_module=CLUSTER_APP_MODULE,
        )

    def is_ready(self) -> bool:
        if "beat: Acquired lock" not in self.log_text():
            return False
        client = self.cluster.client()
        try:
            return bool(client.exists(self.lock_key))
        finally:
            client.close()


def test_beat_on_the_cluster_fires_what_was_applied(
    redis_cluster: RedisClusterServers,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    app_file = tmp_path / "team_app.py"
    app_file.write_text("from tests.support.cluster_celery_app import app\n", encoding="utf-8")
    write_schedules(
        tmp_path / "schedules",
        {"tick": {"task": RECORD_TASK, "every": "1s", "kwargs": {"label": "tick"}}},
    )
    env = clean_env(
        RECONCILER_TEST_REDIS_URL=redis_server.url,
        RECONCILER_TEST_KEY_PREFIX=PREFIX,
        RECONCILER_TEST_CLUSTER_URL=redis_cluster.redis_url,
        PYTHONPATH=f"{tmp_path}:{_repo_root()}",
    )
    applied = run_subprocess("apply", "schedules", "--app", "team_app", cwd=tmp_path, env=env)
    assert applied.code == 0, applied.out + applied.err
    assert f"Redis redis-cluster://127.0.0.1:{redis_cluster.ports[0]}" in applied.err
    assert f"key prefix '{PREFIX}'" in applied.err
    assert "Apply complete: 1 created" in applied.out

    logs = tmp_path / "celery-logs"
    worker = WorkerProcess(redis_server, log_dir=logs, app_module=CLUSTER_APP_MODULE)
    beat = ClusterBeat(redis_cluster, redis_server, logs)
    started = [worker, beat]
    try:
        worker.start().wait_ready()
        beat.start().wait_ready()
        runs = wait_for_runs(redis_client, 2, label="tick", timeout=15.0, processes=started)
    finally:
        for process in reversed(started):
            process.stop()
    assert {run["task"] for run in runs} == {RECORD_TASK}

    # Beat's runs left meta and scores the reconciler reads back as unchanged.
    again = run_subprocess(
        "plan", "schedules", "--app", "team_app", "--detailed-exitcode", cwd=tmp_path, env=env
    )
    assert again.code == 0, again.out + again.err


def _repo_root() -> str:
    from tests.support.celery_processes import REPO_ROOT

    return str(REPO_ROOT)
