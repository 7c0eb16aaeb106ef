"""A team's Celery app, for ``--app``: tasks of various signatures, declared queues, and
RedBeat settings, as ``reconciler --app tests.support.checked_app`` finds them.

Nothing here connects anywhere: registration and signatures need no broker. The module-level
``app`` takes ``redbeat_redis_url`` from :data:`ENV_REDIS_URL` (default: a closed port, with
a password that must never be printed). Tests needing other settings build their own app
with :func:`make_checked_app` (in a module they write, so ``--app`` can import it).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from kombu import Queue

ENV_REDIS_URL = "CHECKED_APP_REDIS_URL"
PASSWORD = "s3cret-pa55"
DEFAULT_REDIS_URL = f"redis://:{PASSWORD}@127.0.0.1:1/0"  # port 1: nothing listens there

KEY_PREFIX = "checked:"
LOCK_KEY_SETTING = "beat-lock"
LOCK_KEY = KEY_PREFIX + LOCK_KEY_SETTING  # RedBeat prefixes a lock key lacking the prefix
TIMEZONE = "Europe/Paris"
QUEUES = ("default", "reports", "billing")


class CleanupTask(Task):
    """A class-based task: its arguments are those of ``run``, without ``self``."""

    name = "checked.cleanup"

    def run(self, older_than_days: int, *, dry_run: bool = False) -> int:
        return older_than_days if not dry_run else 0


def make_checked_app(main: str = "checked", **settings: Any) -> Celery:
    """The app with its tasks registered; ``settings`` override the configuration below."""
    app = Celery(main, set_as_current=False)
    app.conf.update(
        broker_url="redis://127.0.0.1:1/1",
        redbeat_redis_url=os.environ.get(ENV_REDIS_URL, DEFAULT_REDIS_URL),
        redbeat_key_prefix=KEY_PREFIX,
        redbeat_lock_key=LOCK_KEY_SETTING,
        timezone=TIMEZONE,
        enable_utc=True,
        task_queues=tuple(Queue(name) for name in QUEUES),
        task_default_queue="default",
        result_expires=None,
    )
    app.conf.update(settings)
    _register_tasks(app)
    return app


def _register_tasks(app: Celery) -> None:
    # shared=False: a shared task is added to every app finalized later in the process,
    # and each app here defines its own functions under the same names.
    @app.task(name="checked.report", shared=False)
    def report(day: str, fmt: str = "pdf") -> str:
        return f"{day}.{fmt}"

    @app.task(name="checked.ping", shared=False)
    def ping() -> str:
        return "pong"

    @app.task(name="checked.anything", shared=False)
    def anything(*args: Any, **kwargs: Any) -> int:
        return len(args) + len(kwargs)

    @app.task(name="checked.keywords", shared=False)
    def keywords(**options: Any) -> int:
        return len(options)

    @app.task(name="checked.charge", bind=True, shared=False)
    def charge(self: Task, account_id: int, *, dry_run: bool = False) -> str:
        return f"{self.name}:{account_id}:{dry_run}"

    @app.task(name="checked.rotate", shared=False)
    def rotate(path: str, /, keep: int = 3) -> str:
        return f"{path}:{keep}"

    app.register_task(CleanupTask())


app = make_checked_app()
