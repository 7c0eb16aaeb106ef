"""The apply lock: one apply at a time per key prefix (two CI jobs, many pods).

A plain Redis lock in the reconciler's own namespace: SET NX with a TTL (a crashed apply
frees it by itself), a bounded wait, and release only by the holder's token. It never
touches beat's lock.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from reconciler.errors import ApplyLockBusy

if TYPE_CHECKING:
    import redis

    from reconciler.store.keys import KeySpace

LOCK_TTL_MS = 120_000
POLL_SECONDS = 0.2

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def holder_description() -> str:
    return f"{os.environ.get('USER', 'unknown')}@{socket.gethostname()} pid {os.getpid()}"


class ApplyLock:
    def __init__(self, client: redis.Redis, keys: KeySpace, ttl_ms: int = LOCK_TTL_MS) -> None:
        self._client = client
        self._key = keys.apply_lock
        self._ttl_ms = ttl_ms
        self.value = json.dumps(
            {
                "token": uuid.uuid4().hex,
                "holder": holder_description(),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        self.held = False

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._client.set(self._key, self.value, nx=True, px=self._ttl_ms):
                self.held = True
                return
            if time.monotonic() >= deadline:
                raise ApplyLockBusy(self._busy_message(timeout))
            time.sleep(POLL_SECONDS)

    def extend(self) -> bool:
        """Renew the TTL; False when the lock is no longer ours (it expired meanwhile)."""
        return bool(self._client.eval(_EXTEND, 1, self._key, self.value, self._ttl_ms))

    def confirm_held(self) -> None:
        if not self.extend():
            self.held = False
            raise ApplyLockBusy(
                "the apply lock expired before writing (a confirmation took longer than "
                f"{self._ttl_ms // 1000} s?); nothing was written. Run the apply again"
            )

    def release(self) -> None:
        if self.held:
            self._client.eval(_RELEASE, 1, self._key, self.value)
            self.held = False

    def _busy_message(self, timeout: float) -> str:
        current = self._client.get(self._key)
        try:
            info = json.loads(current) if current else {}
        except ValueError:
            info = {}
        who = info.get("holder", "another process")
        since = info.get("since", "an unknown time")
        return (
            f"another apply holds the lock ({who}, since {since}); gave up after waiting "
            f"{timeout:g} s. It expires by itself {self._ttl_ms // 1000} s after a crash "
            "(see --lock-timeout)"
        )
