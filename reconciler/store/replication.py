"""Whether a committed batch reached the primary's replicas, before it is reported applied.

Redis replicates asynchronously: a batch the primary acknowledged is lost if the primary
fails over before a replica has it. ``WAIT n timeout`` blocks until ``n`` replicas have
acknowledged every write *of the connection that sends it*. The batch's EXEC may have gone
over another connection (or one that has since dropped, the batch then read back from its
history record), so WAIT goes with a write of its own on the same connection: renewing the
apply lock's lease. Replication is one ordered stream, so a replica that has that later write
has the batch too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from redis.exceptions import NoPermissionError

from reconciler.core.defaults import DEFAULT_REPLICA_TIMEOUT_SECONDS
from reconciler.core.errors import UsageError

if TYPE_CHECKING:
    from reconciler.store.apply_lock import ApplyLock
    from reconciler.store.keys import KeySpace


@dataclass(frozen=True)
class Replication:
    """How many replicas must acknowledge each batch, and how long to wait for them."""

    replicas: int
    timeout_seconds: float = DEFAULT_REPLICA_TIMEOUT_SECONDS


def healthy_replicas(client: redis.Redis) -> int:
    """How many replicas the primary has online: from ``INFO replication``, else (an ACL user
    refused INFO, which ACLs class as ``@dangerous``) by ``WAIT`` for more replicas than any
    primary has, which makes the primary ask them all (``REPLCONF GETACK``) and count who
    answers within a moment."""
    try:
        info = client.info("replication")
    except NoPermissionError:
        pass
    else:
        return sum(
            1
            for name, replica in info.items()
            if name.startswith("slave")
            and isinstance(replica, dict)
            and replica.get("state") == "online"
        )
    try:
        return int(client.wait(_MORE_THAN_ANY, _COUNTING_MS))
    except NoPermissionError:
        raise UsageError(
            "this Redis user may not run WAIT, which apply sends to confirm that each batch "
            "reached the replicas before reporting it applied; allow it (+wait), or pass "
            "--min-replicas 0 to apply without that confirmation; nothing was written"
        ) from None


_MORE_THAN_ANY = 1_000_000
_COUNTING_MS = 200


def acknowledged(
    client: redis.Redis, keys: KeySpace, lock: ApplyLock, replication: Replication
) -> int | str:
    """How many replicas acknowledged every write made so far; a string says why that could
    not be learnt (the connection dropped: a failover, say)."""
    timeout_ms = max(1, int(replication.timeout_seconds * 1000))
    try:
        with lock.steady(), client.pipeline(transaction=False) as pipe:
            # The lock is this apply's (the batch just committed fenced by it): renewing it is
            # the write WAIT then counts from.
            pipe.pexpire(keys.apply_lock, lock.lease_ms)
            pipe.wait(replication.replicas, timeout_ms)
            _, count = pipe.execute()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        return f"the connection dropped while waiting for the replicas ({exc})"
    except redis.ResponseError as exc:
        return f"Redis refused WAIT ({exc})"
    return int(count)
