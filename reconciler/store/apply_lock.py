"""The apply lock: one apply at a time per key prefix (two CI jobs, many pods).

redis-py's ``Lock`` in the reconciler's own namespace: SET NX with a short TTL, renewed by a
thread while the apply runs, so a killed apply frees it within seconds and a long one keeps
it; a bounded wait; extend and release only by the holder's token. The token is the
holder's description, so a waiting apply can say who holds the lock; the writer fences every
batch on it. It never touches beat's lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from reconciler.core.errors import ApplyLockBusy

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis

    from reconciler.store.keys import KeySpace

# Short, because a killed apply blocks the next one for up to this long; renewed every
# third of it, so an apply keeps its lock while Redis answers.
LOCK_TTL_SECONDS = 30.0
POLL_SECONDS = 0.2


class ApplyLock:
    def __init__(
        self, client: redis.Redis, keys: KeySpace, ttl_seconds: float = LOCK_TTL_SECONDS
    ) -> None:
        self._ttl_seconds = ttl_seconds
        # Not thread-local: the token is this apply's, whichever thread writes or renews.
        self._lock = Lock(
            client, keys.apply_lock, timeout=ttl_seconds, sleep=POLL_SECONDS, thread_local=False
        )
        holder = f"{os.environ.get('USER', 'unknown')}@{socket.gethostname()} pid {os.getpid()}"
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.token = uuid.uuid4().hex  # also the id of this apply's history records
        self.value = json.dumps({"token": self.token, "holder": holder, "since": since})
        self.held = False
        # Held while a transaction watches the lock key: a renewal (PEXPIRE) in that window
        # would abort its EXEC.
        self._quiet = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @contextmanager
    def steady(self) -> Iterator[None]:
        """No renewal meanwhile."""
        with self._quiet:
            yield

    def start_renewing(self) -> None:
        self._renewer = threading.Thread(target=self._renew, name="apply-lock", daemon=True)
        self._renewer.start()

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()

    def _renew(self) -> None:
        while not self._stop.wait(self._ttl_seconds / 3):
            try:
                with self._quiet:
                    if not self.extend():
                        return  # lost: the writer's fence refuses the next batch
            except RedisError:  # Redis away for now: try again next time
                continue

    def acquire(self, timeout: float) -> None:
        if self._lock.acquire(blocking_timeout=timeout, token=self.value):
            self.held = True
            return
        current = self._lock.redis.get(self._lock.name)
        try:
            info = json.loads(current) if current else {}
        except (ValueError, RecursionError):
            info = {}
        if not isinstance(info, dict):
            info = {}
        who = info.get("holder", "another process")
        since = info.get("since", "an unknown time")
        raise ApplyLockBusy(
            f"another apply holds the lock ({who}, since {since}); gave up after waiting "
            f"{timeout:g} s. It expires by itself {self._ttl_seconds:g} s after a crash "
            "(see --lock-timeout)"
        )

    def extend(self) -> bool:
        """Renew the TTL; False when the lock is no longer ours (it expired meanwhile)."""
        try:
            return self._lock.extend(self._ttl_seconds, replace_ttl=True)
        except LockError:
            return False

    def confirm_held(self) -> None:
        if not self.extend():
            self.held = False
            raise ApplyLockBusy(
                "the apply lock expired before writing (a confirmation took longer than "
                f"{self._ttl_seconds:g} s?); nothing was written. Run the apply again"
            )

    def release(self) -> None:
        if self.held:
            self.held = False
            # Expired or taken meanwhile: nothing of ours to release.
            with contextlib.suppress(LockError, RedisError):
                self._lock.release()


def lock_token(value: str | None) -> str | None:
    """The token of the apply holding the lock, from the lock's value (None: not held, or
    not held by a reconciler apply)."""
    try:
        info = json.loads(value) if value else None
    except (ValueError, RecursionError):
        return None
    token = info.get("token") if isinstance(info, dict) else None
    return token if isinstance(token, str) else None
