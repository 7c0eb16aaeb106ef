"""The test bed's Celery app with RedBeat on a Redis Cluster, for ``celery -A``.

RedBeat reads its schedule from the cluster, with RedBeat's own cluster settings
(``redbeat_redis_options = {"cluster": True}`` and a ``redis://`` URL of one node); the
broker and the runs list stay on the test bed's single Redis (Celery's Redis transport does
not speak Cluster). Environment:

- ``RECONCILER_TEST_REDIS_URL``: the single Redis; the broker uses its db 1, runs go to db 0
- ``RECONCILER_TEST_CLUSTER_URL``: ``redbeat_redis_url``, a ``redis://`` URL of one node
- ``RECONCILER_TEST_KEY_PREFIX``: ``redbeat_key_prefix`` (here a hash-tagged one)
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from tests.support.celery_app import (
    ENV_KEY_PREFIX,
    ENV_REDIS_URL,
    RECORD_TASK,
    RUNS_KEY,
    _runs_client,
    make_app,
)

if TYPE_CHECKING:
    from celery import Task

ENV_CLUSTER_URL = "RECONCILER_TEST_CLUSTER_URL"
CLUSTER_APP_MODULE = "tests.support.cluster_celery_app"

app = make_app(
    os.environ.get(ENV_REDIS_URL, "redis://127.0.0.1:6379/0"),
    key_prefix=os.environ.get(ENV_KEY_PREFIX, "{redbeat}:"),
    main="reconciler_cluster_testbed",
)
app.conf.update(
    redbeat_redis_url=os.environ.get(ENV_CLUSTER_URL, "redis://127.0.0.1:30001/0"),
    redbeat_redis_options={"cluster": True, "decode_responses": True},
)
_RUNS_URL = os.environ.get(ENV_REDIS_URL, "redis://127.0.0.1:6379/0")


@app.task(name=RECORD_TASK, bind=True, shared=False)  # not added to other apps
def record(self: Task, *args: Any, **kwargs: Any) -> None:
    """As the test bed's ``record``, on the single Redis (the cluster holds only RedBeat)."""
    label = kwargs.get("label", args[0] if args else None)
    entry = {"task": self.name, "label": label, "args": list(args), "kwargs": kwargs}
    entry |= {"at": time.time(), "task_id": self.request.id, "hostname": self.request.hostname}
    _runs_client(_RUNS_URL).rpush(RUNS_KEY, json.dumps(entry))
