"""The Celery app run by the test bed's real beat and worker subprocesses.

Subprocesses load it with ``celery -A tests.support.celery_app``; the module-level ``app``
is configured from environment variables set by :mod:`tests.support.celery_processes`:

- ``RECONCILER_TEST_REDIS_URL``: RedBeat's Redis (db 0); the broker uses db 1 of the same server
- ``RECONCILER_TEST_KEY_PREFIX``: ``redbeat_key_prefix`` (default ``redbeat:``)
- ``RECONCILER_TEST_TIMEZONE``: Celery ``timezone`` (default ``UTC``)
- ``RECONCILER_TEST_LOCK_TIMEOUT``: ``redbeat_lock_timeout`` (default 5 s)

Tests build an in-process app with the same configuration through :func:`make_app`
(e.g. to write entries with ``RedBeatSchedulerEntry(..., app=app).save()``).

Tasks append a JSON record to the Redis list :data:`RUNS_KEY` on RedBeat's database, so a
test can assert what ran, how often and when.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from celery import Celery, Task

ENV_REDIS_URL = "RECONCILER_TEST_REDIS_URL"
ENV_KEY_PREFIX = "RECONCILER_TEST_KEY_PREFIX"
ENV_TIMEZONE = "RECONCILER_TEST_TIMEZONE"
ENV_LOCK_TIMEOUT = "RECONCILER_TEST_LOCK_TIMEOUT"

DEFAULT_KEY_PREFIX = "redbeat:"
DEFAULT_TIMEZONE = "UTC"

#: Broker database: kept apart from RedBeat's db 0 so queue keys never mix with schedule keys.
BROKER_DB = 1

#: Redis list (on RedBeat's db 0) receiving one JSON record per executed task.
RUNS_KEY = "test:runs"

RECORD_TASK = "tests.support.celery_app.record"
RECORD_OTHER_TASK = "tests.support.celery_app.record_other"

# Only used when the module is imported without the environment (e.g. by a test that
# just wants make_app or the constants); nothing connects until a task or beat runs.
_UNCONFIGURED_URL = "redis://127.0.0.1:6379/0"


def with_db(url: str, db: int) -> str:
    """Return ``url`` pointing at database ``db``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def make_app(
    redis_url: str,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    timezone: str = DEFAULT_TIMEZONE,
    main: str = "reconciler_testbed",
) -> Celery:
    """A Celery app configured like the test bed's beat and worker processes."""
    app = Celery(main, set_as_current=False)
    app.conf.update(
        broker_url=with_db(redis_url, BROKER_DB),
        broker_connection_retry_on_startup=True,
        # Explicit, so RedBeat does not fall back to broker_url (deprecated, warns).
        redbeat_redis_url=redis_url,
        redbeat_key_prefix=key_prefix,
        # Beat re-extends the lock every tick (at most every second here); 5 s survives a
        # slow tick yet lets a killed beat's lock expire quickly.
        redbeat_lock_timeout=5,
        beat_scheduler="redbeat.RedBeatScheduler",
        # Tick at least every second so tests observe runs within a few seconds.
        beat_max_loop_interval=1,
        timezone=timezone,
        enable_utc=True,
        # No result backend: outcomes are observed through RUNS_KEY instead.
        task_ignore_result=True,
        # Otherwise beat installs a 'celery.backend_cleanup' entry in RedBeat's keys, an
        # entry no test asked for. Tests needing such a foreign entry create one explicitly.
        result_expires=None,
    )
    return app


def close_app(app: Celery) -> None:
    """Close the Redis connections an in-process app opened (broker pool and RedBeat's)."""
    redbeat_client = getattr(app, "redbeat_redis", None)
    close = getattr(redbeat_client, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()
    app.close()


app = make_app(
    os.environ.get(ENV_REDIS_URL, _UNCONFIGURED_URL),
    key_prefix=os.environ.get(ENV_KEY_PREFIX, DEFAULT_KEY_PREFIX),
    timezone=os.environ.get(ENV_TIMEZONE, DEFAULT_TIMEZONE),
)
if os.environ.get(ENV_LOCK_TIMEOUT):
    # A beat started with a long --max-interval needs a lock that outlives its sleep.
    app.conf.redbeat_lock_timeout = float(os.environ[ENV_LOCK_TIMEOUT])

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _runs_client(url: str) -> redis.Redis:
    # One client per URL, reused across tasks: the worker runs many short tasks.
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(url, decode_responses=True)
        return client


def _record(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    label = kwargs.get("label")
    if label is None and args:
        label = args[0]
    record = {
        "task": task.name,
        "label": label,
        "args": list(args),
        "kwargs": kwargs,
        "at": time.time(),
        "task_id": task.request.id,
        "hostname": task.request.hostname,
    }
    _runs_client(task.app.conf.redbeat_redis_url).rpush(RUNS_KEY, json.dumps(record))
    return record


@app.task(name=RECORD_TASK, bind=True, shared=False)  # only this app: others define their own
def record(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Append ``{task, label, args, kwargs, at, task_id, hostname}`` to :data:`RUNS_KEY`.

    ``label`` is ``kwargs["label"]`` if given, else the first positional argument.
    """
    return _record(self, args, kwargs)


@app.task(name=RECORD_OTHER_TASK, bind=True, shared=False)
def record_other(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Same as :func:`record` under a second task name."""
    return _record(self, args, kwargs)
