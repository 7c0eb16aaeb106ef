"""The apply lock: one apply at a time per key prefix (two CI jobs, many pods).

redis-py's ``Lock`` in the reconciler's own namespace: SET NX with a short TTL, renewed by a
thread while the apply runs, so a killed apply frees it within seconds and a long one keeps
it; a bounded wait; extend and release only by the holder's token. The token is the
holder's description, so a waiting apply can say who holds the lock; the writer fences every
batch on it. It never touches beat's lock.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    LockError,
    NoPermissionError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    WatchError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.lock import Lock

from reconciler.core.errors import ApplyLockBusy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import redis
    from redis.client import Pipeline

    from reconciler.store.keys import KeySpace

# Short, because a killed apply blocks the next one for up to this long; renewed every
# third of it, so an apply keeps its lock while Redis answers.
LOCK_TTL_SECONDS = 30.0
POLL_SECONDS = 0.2


class ApplyLock:
    def __init__(
        self,
        client: redis.Redis,
        keys: KeySpace,
        ttl_seconds: float = LOCK_TTL_SECONDS,
        *,
        command: str = "apply",
    ) -> None:
        self._ttl_seconds = ttl_seconds
        # Not thread-local: the token is this apply's, whichever thread writes or renews.
        self._lock = Lock(
            client, keys.apply_lock, timeout=ttl_seconds, sleep=POLL_SECONDS, thread_local=False
        )
        holder = f"{os.environ.get('USER', 'unknown')}@{socket.gethostname()} pid {os.getpid()}"
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.token = uuid.uuid4().hex  # also the id of this apply's history records
        # Replicas the apply waits for (set once it knows): its release makes sure the lock
        # is gone from a primary that has them, not from one a failover just demoted.
        self.replicas = 0
        # The command goes with the holder: a refused apply says what it waited for.
        self.value = json.dumps(
            {"token": self.token, "holder": holder, "since": since, "command": command}
        )
        self.held = False
        # Held while a transaction watches the lock key: a renewal (PEXPIRE) in that window
        # would abort its EXEC.
        self._quiet = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def lease_ms(self) -> int:
        return int(self._ttl_seconds * 1000)

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
        command = info.get("command", "apply")  # an earlier reconciler wrote none: an apply
        raise ApplyLockBusy(
            f"another {command} holds the lock ({who}, since {since}); gave up after waiting "
            f"{timeout:g} s. It expires by itself {self._ttl_seconds:g} s after a crash "
            "(see --lock-timeout)"
        )

    def extend(self) -> bool:
        """Renew the TTL; False when the lock is no longer ours (it expired meanwhile)."""
        try:
            return self._lock.extend(self._ttl_seconds, replace_ttl=True)
        except LockError:
            return False
        except ResponseError as exc:
            if not _script_refused(exc):
                raise
        ttl_ms = int(self._ttl_seconds * 1000)
        return self._if_still_ours(lambda pipe: pipe.pexpire(self._lock.name, ttl_ms))

    def confirm_held(self) -> None:
        if not self.extend():
            self.held = False
            raise ApplyLockBusy(
                "the apply lock expired before writing (a confirmation took longer than "
                f"{self._ttl_seconds:g} s?); nothing was written. Run the apply again"
            )

    def release(self) -> None:
        """Give the lock back at once; never raises, so that the error which ended the apply
        is the one shown, and a lock this cannot delete (the connection is gone) frees itself
        at its TTL."""
        if not self.held:
            return
        self.held = False
        for pause in (*_RELEASE_PAUSES, None):
            try:
                self._lock.release()
            except LockError:
                return  # expired or taken meanwhile: nothing of ours to release
            except (RedisConnectionError, RedisTimeoutError, ReadOnlyError):
                # Redis restarting, or a failover under way (the old primary, now a replica,
                # refuses writes): the lock may well be on the new primary. Try again there.
                if pause is None:
                    return  # gone for good: the TTL frees it
                time.sleep(pause)
                continue
            except ResponseError:
                # Refused: no scripting, or a command the script runs (DEL).
                self._release_without_script()
            except RedisError:
                pass
            return

    def release_where_replicated(self, replicas: int) -> None:
        """Release so that the delete reaches ``replicas`` replicas, or the lease frees it.

        During a failover a release may reach the old primary after a replica was promoted:
        the delete is lost with it, and the new primary keeps the lock until its lease runs
        out. So the delete and a ``WAIT`` go in one round trip on one connection (WAIT counts
        that connection's writes); while fewer replicas acknowledge, the pool's connections
        are dropped (the next one asks Sentinel where the primary is now) and it is tried
        again, for a few seconds.
        """
        if not self.held:
            return
        self.held = False
        client, name = self._lock.redis, self._lock.name
        deadline = time.monotonic() + _SETTLE_SECONDS
        while True:
            try:
                with client.pipeline(transaction=False) as pipe:
                    pipe.eval(_DELETE_IF_OURS, 1, name, self.value)
                    pipe.wait(replicas, _SETTLE_WAIT_MS)
                    _, acknowledging = pipe.execute()
                if int(acknowledging) >= replicas:
                    return
            except NoPermissionError:
                self.held = True
                self.release()  # no scripting: the compare-and-delete in a transaction
                return
            except RedisError:
                pass  # a failover under way (READONLY, a dropped connection)
            if time.monotonic() > deadline:
                return  # no primary with its replicas: the lease frees it
            client.connection_pool.disconnect()
            time.sleep(0.3)

    def _release_without_script(self) -> None:
        """Delete the lock if still ours; for a user refused DEL, with PEXPIRE 0 (a timeout
        that is not positive deletes the key at once)."""
        name = self._lock.name
        for act in (lambda pipe: pipe.delete(name), lambda pipe: pipe.pexpire(name, 0)):
            try:
                self._if_still_ours(act)
                return
            except ResponseError:
                continue
            except RedisError:
                return

    def _if_still_ours(self, act: Callable[[Pipeline], object]) -> bool:
        """Compare-and-act without Lua: WATCH the key, check that it holds this apply's value,
        then ``act`` in MULTI/EXEC, so that a lock which expired and was taken by another
        apply meanwhile is left alone. False when it is not ours (any more)."""
        name = self._lock.name
        for _ in range(_FALLBACK_ATTEMPTS):
            with self._lock.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(name)
                    current = pipe.get(name)
                    if isinstance(current, bytes):
                        current = current.decode("utf-8", "replace")
                    if current != self.value:
                        return False
                    pipe.multi()
                    act(pipe)
                    return bool(pipe.execute()[0])
                except WatchError:
                    continue  # touched meanwhile (a renewal, an expiry): look again
        return False


# Deletes the lock only if it still holds this apply's value.
_DELETE_IF_OURS = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

# How long a release looks for a primary with its replicas, and waits for their answer.
_SETTLE_SECONDS = 6.0
_SETTLE_WAIT_MS = 200

# Between tries of a release that could not reach the primary: about 3 s in all, the time
# Sentinel takes to promote a replica after a graceful failover.
_RELEASE_PAUSES = (0.2, 0.4, 0.8, 1.6)

# Tries of the compare-and-act without Lua when something touches the key in between.
_FALLBACK_ATTEMPTS = 5


def _script_refused(exc: ResponseError) -> bool:
    """Whether the server refused to run the lock's Lua at all (an ACL user without
    +@scripting, a server with EVALSHA renamed away), rather than the script failing."""
    return isinstance(exc, NoPermissionError | NoScriptError) or str(exc).startswith(
        "unknown command"
    )


def lock_token(value: str | None) -> str | None:
    """The token of the apply holding the lock, from the lock's value (None: not held, or
    not held by a reconciler apply)."""
    try:
        info = json.loads(value) if value else None
    except (ValueError, RecursionError):
        return None
    token = info.get("token") if isinstance(info, dict) else None
    return token if isinstance(token, str) else None
