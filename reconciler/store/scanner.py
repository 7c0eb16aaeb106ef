"""The full sweeps drift needs: every key under the prefix, every sorted-set member, and
the server's own facts (beat's lock, eviction policy, persistence).

SCAN and ZSCAN with a bounded COUNT walk the keyspace incrementally (never KEYS, which
blocks Redis); what they find is then read in pipelined batches like everything else.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import redis

from reconciler.core.drift_findings import ScannedKey, ServerFacts

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from reconciler.store.keys import KeySpace

SCAN_COUNT = 1000
BATCH_SIZE = 1000


def _names_under_prefix(client: redis.Redis, keys: KeySpace) -> set[str]:
    # The prefix is escaped to be literal in the MATCH pattern (a prefix like '{app}[1]:').
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", keys.prefix) + "*"
    return {keys.name_of(str(key)) for key in client.scan_iter(match=pattern, count=SCAN_COUNT)}


def scan_entries(
    client: redis.Redis, keys: KeySpace, known: Iterable[str]
) -> tuple[list[ScannedKey], list[str]]:
    """Entry-like hashes under the prefix that ``known`` names do not cover, and dangling
    sorted-set members (members whose hash is gone)."""
    # RedBeat's own keys and the reconciler's start with ':' after the prefix.
    existing = {name for name in _names_under_prefix(client, keys) if not name.startswith(":")}
    scanned = _read_hashes(client, keys, sorted(existing - set(known)))
    members = {
        keys.name_of(str(member))
        for member, _score in client.zscan_iter(keys.schedule, count=SCAN_COUNT)
        if str(member).startswith(keys.prefix)
    }
    # SCAN may miss keys created during the sweep, so absence is confirmed by asking again.
    found = _key_types(client, keys, sorted(members - existing))
    return scanned, [name for name, kind, *_ in found if kind == "none"]


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
    ttl = int(client.pttl(beat_lock_key)) if beat_lock_key else -2
    try:
        settings = [_config(client, name) for name in ("maxmemory-policy", "save", "appendonly")]
    except redis.ResponseError as exc:
        return ServerFacts(checked, ttl, config_error=str(exc).split("\n")[0][:200])
    return ServerFacts(checked, ttl, *settings)


def _config(client: redis.Redis, name: str) -> str | None:
    reply = client.config_get(name)
    value = reply.get(name) if isinstance(reply, dict) else None
    return None if value is None else str(value)
