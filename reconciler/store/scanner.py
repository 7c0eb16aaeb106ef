"""The full sweeps drift needs: every key under the prefix, every sorted-set member, and
the server's own facts (beat's lock, eviction policy, persistence).

SCAN and ZSCAN with a bounded COUNT walk the keyspace incrementally (never KEYS, which
blocks Redis); what they find is then read in pipelined batches like everything else.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

import redis

from reconciler.core.drift_findings import ScannedKey, ServerFacts
from reconciler.store.connection import is_cluster

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from redis.cluster import RedisCluster

    from reconciler.store.keys import KeySpace

# A SCAN or ZSCAN step visits about this many keys or members; drift's two sweeps take
# their steps together, each round trip advancing both.
SCAN_COUNT = 2000
BATCH_SIZE = 1000


def _match_pattern(keys: KeySpace) -> str:
    # The prefix is escaped to be literal in the MATCH pattern (a prefix like '{app}[1]:').
    return re.sub(r"([*?\[\]\\])", r"\\\1", keys.prefix) + "*"


def _names_under_prefix(client: redis.Redis, keys: KeySpace) -> set[str]:
    pattern = _match_pattern(keys)
    return {
        keys.name_of(str(key))
        for node in _scanned_nodes(client)
        for key in node.scan_iter(match=pattern, count=SCAN_COUNT)
    }


def _scanned_nodes(client: redis.Redis) -> list[redis.Redis]:
    """Where SCAN must run to see every key: the server itself, or on a Redis Cluster each
    primary in turn (a cluster's SCAN sees only the node it is sent to)."""
    if not is_cluster(client):
        return [client]
    cluster = cast("RedisCluster", client)
    return [cluster.get_redis_connection(node) for node in cluster.get_primaries()]  # type: ignore[no-untyped-call]


def _slot_owner(client: redis.Redis, keys: KeySpace) -> redis.Redis:
    """The server holding the prefix's keys: on a Redis Cluster, the primary of the
    schedule's slot (the prefix's hash tag puts every key there)."""
    if not is_cluster(client):
        return client
    cluster = cast("RedisCluster", client)
    node = cluster.get_node_from_key(keys.schedule)  # type: ignore[no-untyped-call]
    return cluster.get_redis_connection(node)


def scan_entries(
    client: redis.Redis, keys: KeySpace, known: Iterable[str]
) -> tuple[list[ScannedKey], list[str]]:
    """Entry-like hashes under the prefix that ``known`` names do not cover, and dangling
    sorted-set members (members whose hash is gone)."""
    names, members = _sweep(client, keys)
    # RedBeat's own keys and the reconciler's start with ':' after the prefix.
    existing = {name for name in names if not name.startswith(":")}
    scanned = _read_hashes(client, keys, sorted(existing - set(known)))
    # SCAN may miss keys created during the sweep, so absence is confirmed by asking again.
    found = _key_types(client, keys, sorted(members - existing))
    return scanned, [name for name, kind, *_ in found if kind == "none"]


def _sweep(client: redis.Redis, keys: KeySpace) -> tuple[set[str], set[str]]:
    """Every name under the prefix (SCAN) and every schedule member under it (ZSCAN), the
    two cursors advanced in one pipelined round trip per step."""
    if is_cluster(client):
        return _sweep_cluster(client, keys)
    pattern = _match_pattern(keys)
    names: set[str] = set()
    members: set[str] = set()
    scan_cursor: int | None = 0
    zscan_cursor: int | None = 0
    while scan_cursor is not None or zscan_cursor is not None:
        with client.pipeline(transaction=False) as pipe:
            if scan_cursor is not None:
                pipe.scan(scan_cursor, match=pattern, count=SCAN_COUNT)
            if zscan_cursor is not None:
                pipe.zscan(keys.schedule, zscan_cursor, count=SCAN_COUNT)
            replies = iter(pipe.execute())
        if scan_cursor is not None:
            cursor, found = next(replies)
            names.update(keys.name_of(str(key)) for key in found)
            scan_cursor = int(cursor) or None
        if zscan_cursor is not None:
            cursor, pairs = next(replies)
            members.update(
                keys.name_of(str(member))
                for member, _score in pairs
                if str(member).startswith(keys.prefix)
            )
            zscan_cursor = int(cursor) or None
    return names, members


def _sweep_cluster(client: redis.Redis, keys: KeySpace) -> tuple[set[str], set[str]]:
    """``_sweep`` on a Redis Cluster: SCAN on every primary, then ZSCAN of the schedule."""
    names = _names_under_prefix(client, keys)
    members = {
        keys.name_of(str(member))
        for member, _score in client.zscan_iter(keys.schedule, count=SCAN_COUNT)
        if str(member).startswith(keys.prefix)
    }
    return names, members


def scan_definitions(client: redis.Redis, keys: KeySpace) -> list[str]:
    """Names of every hash under the prefix that holds a ``definition`` (for export).

    Unlike ``scan_entries``, names starting with ':' are kept: RedBeat's and the reconciler's
    own keys are never hashes with a definition, so such a hash is an entry whose name the
    file format refuses, to be reported rather than skipped.
    """
    hashes = _read_hashes(client, keys, sorted(_names_under_prefix(client, keys)))
    return [found.name for found in hashes if found.has_definition]


def _read_hashes(client: redis.Redis, keys: KeySpace, names: list[str]) -> list[ScannedKey]:
    # Only hashes are entries: other applications may share the prefix.
    found = _key_types(client, keys, names)
    return [
        ScannedKey(name, has_def, has_meta)
        for name, kind, has_def, has_meta in found
        if kind == "hash"
    ]


def _key_types(
    client: redis.Redis, keys: KeySpace, names: list[str]
) -> Iterator[tuple[str, str, bool, bool]]:
    """Each name's key type ('none' when absent), and whether it has the hash fields
    'definition' and 'meta' (meaningful for a hash only)."""
    for start in range(0, len(names), BATCH_SIZE):
        batch = names[start : start + BATCH_SIZE]
        with client.pipeline(transaction=False) as pipe:
            for name in batch:
                pipe.type(keys.entry(name))
                pipe.hexists(keys.entry(name), "definition")
                pipe.hexists(keys.entry(name), "meta")
            replies = pipe.execute(raise_on_error=False)
        for index, name in enumerate(batch):
            kind, has_definition, has_meta = replies[3 * index : 3 * index + 3]
            yield name, str(kind), bool(has_definition), bool(has_meta)


def server_facts(client: redis.Redis, keys: KeySpace, *, beat_lock_key: str | None) -> ServerFacts:
    """Beat's lock TTL and the settings that decide whether schedule keys can vanish.

    CONFIG is often forbidden to application users (ACLs, managed Redis services); that is
    reported, not fatal, since drift must work with read-only credentials.
    """
    checked = beat_lock_key is not None
    # On a Redis Cluster, the settings that matter are those of the primary holding the keys.
    client = _slot_owner(client, keys)
    names = ("maxmemory-policy", "save", "appendonly")
    # One round trip: the lock's TTL and the three settings.
    with client.pipeline(transaction=False) as pipe:
        if beat_lock_key:
            pipe.pttl(beat_lock_key)
        for name in names:
            pipe.config_get(name)
        replies = pipe.execute(raise_on_error=False)
    if beat_lock_key:
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        ttl = int(reply)
    else:
        ttl = -2
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            return ServerFacts(checked, ttl, config_error=str(reply).split("\n")[0][:200])
        if isinstance(reply, Exception):
            raise reply
    return ServerFacts(checked, ttl, *map(_config, names, replies))


def _config(name: str, reply: object) -> str | None:
    value = reply.get(name) if isinstance(reply, dict) else None
    return None if value is None else str(value)
