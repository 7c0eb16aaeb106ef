"""Shared fixtures for the real-server test bed (see tests/support/).

Tests using any Redis fixture must be marked ``integration``; tests starting beat or a
worker must be marked ``e2e`` as well. The ``_enforce_testbed_markers`` fixture fails a
test that forgets, so ``-m "not integration"`` reliably runs without Redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

# Importable as `tests.support...` thanks to pytest's `pythonpath = ["."]` (pyproject); the
# same dotted path is what `celery -A` uses in the beat/worker subprocesses.
from tests.support.celery_app import close_app, make_app
from tests.support.celery_processes import (
    BeatProcess,
    CeleryProcess,
    WorkerProcess,
    start_beat,
    start_worker,
)
from tests.support.redis_cluster import RedisClusterServers
from tests.support.redis_server import RedisServer
from tests.unit.cli_runner import Workspace

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import redis
    from celery import Celery

_INTEGRATION_FIXTURES = frozenset(
    {
        "redis_server",
        "redis_server_factory",
        "redis_url",
        "redis_client",
        "testbed_app",
        "beat_factory",
        "worker_factory",
        "redis_cluster",
        "_redis_cluster_servers",
        "redis_cluster_factory",
    }
)
_E2E_FIXTURES = frozenset({"beat_factory", "worker_factory"})

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Remember each phase's outcome so fixtures can dump process logs only on failure.
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(autouse=True)
def _enforce_testbed_markers(request: pytest.FixtureRequest) -> None:
    used = set(request.fixturenames)
    missing = []
    if used & _INTEGRATION_FIXTURES and request.node.get_closest_marker("integration") is None:
        missing.append("integration")
    if used & _E2E_FIXTURES and request.node.get_closest_marker("e2e") is None:
        missing.append("e2e")
    if missing:
        marks = " and ".join(f"@pytest.mark.{name}" for name in missing)
        pytest.fail(f"{request.node.nodeid} uses the real-server test bed: add {marks}")


@pytest.fixture(autouse=True)
def _not_on_github_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """This project's own CI runs on GitHub Actions, where GITHUB_ACTIONS=true switches
    ``validate`` to annotations; tests (and the processes they start) see it only when
    they set it themselves."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server (no persistence, 127.0.0.1) for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def _redis_cluster_servers() -> Iterator[RedisClusterServers]:
    with RedisClusterServers() as cluster:
        yield cluster


@pytest.fixture
def redis_cluster(_redis_cluster_servers: RedisClusterServers) -> RedisClusterServers:
    """A Redis Cluster of three primaries on 127.0.0.1, started once per session (about two
    seconds) and emptied (FLUSHALL on every primary) before the test."""
    _redis_cluster_servers.flush()
    return _redis_cluster_servers


@pytest.fixture
def redis_cluster_factory() -> Iterator[Callable[..., RedisClusterServers]]:
    """Start a cluster of its own for a test that changes its shape (a slot moved, a
    failover), e.g. ``factory(replicas=1)``; stopped after the test. Takes
    ``RedisClusterServers``' arguments."""
    clusters: list[RedisClusterServers] = []

    def factory(**kwargs: Any) -> RedisClusterServers:
        cluster = RedisClusterServers(**kwargs).start()
        clusters.append(cluster)
        return cluster

    yield factory
    for cluster in reversed(clusters):
        cluster.stop()


@pytest.fixture
def redis_server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start extra servers with their own config, e.g. ``factory(config={"maxmemory-policy":
    "allkeys-lru"})``; each is stopped after the test. Takes ``RedisServer``'s arguments."""
    servers: list[RedisServer] = []

    def factory(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs).start()
        servers.append(server)
        return server

    yield factory
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL (db 0) of the session server, emptied (FLUSHALL: every db) before the test."""
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    """Client on db 0 (RedBeat's) of the freshly flushed session server, decode_responses=True."""
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def testbed_app(redis_url: str) -> Iterator[Celery]:
    """In-process Celery app configured like the beat/worker processes (prefix ``redbeat:``,
    UTC), for ``RedBeatSchedulerEntry(..., app=testbed_app)``. Other prefixes/timezones:
    ``tests.support.celery_app.make_app(url, key_prefix=..., timezone=...)`` + ``close_app``.
    """
    app = make_app(redis_url)
    yield app
    close_app(app)


def _process_factory(
    request: pytest.FixtureRequest,
    start: Callable[..., CeleryProcess],
    server: RedisServer,
    log_dir: Path,
) -> Iterator[Callable[..., Any]]:
    started: list[CeleryProcess] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("log_dir", log_dir)
        process = start(server, **kwargs)
        started.append(process)
        return process

    try:
        yield factory
    finally:
        for process in reversed(started):
            process.stop()
        reports = request.node.stash.get(_REPORTS, {})
        if any(report.failed for report in reports.values()):
            # Captured teardown output is shown by pytest with the failure.
            for process in started:
                print(f"\n--- {process.kind} pid={process.pid} log ---\n{process.log_text()}")


@pytest.fixture
def beat_factory(
    request: pytest.FixtureRequest, redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., BeatProcess]]:
    """``beat_factory(key_prefix=..., timezone=..., extra_args=..., wait=True)`` starts a real
    beat on the session server (see ``start_beat``); all are stopped after the test."""
    yield from _process_factory(request, start_beat, redis_server, tmp_path / "celery-logs")


@pytest.fixture
def worker_factory(
    request: pytest.FixtureRequest, redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """``worker_factory(hostname=..., extra_args=..., wait=True)`` starts a real worker on the
    session server (see ``start_worker``); all are stopped after the test."""
    yield from _process_factory(request, start_worker, redis_server, tmp_path / "celery-logs")


@pytest.fixture
def workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Workspace:
    """``tmp_path`` as the working directory, with helpers to write files and run the CLI."""
    monkeypatch.chdir(tmp_path)
    return Workspace(tmp_path, capsys)
