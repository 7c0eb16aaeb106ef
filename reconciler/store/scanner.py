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
    from collections.abc import Iterable

    from reconciler.store.keys import KeySpace

SCAN_COUNT = 1000
BATCH_SIZE = 1000


def glob_escape(text: str) -> str:
    """Make a key prefix literal in a SCAN MATCH pattern (a prefix like '{app}[1]:')."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def scan_entries(
    client: redis.Redis, keys: KeySpace, known: Iterable[str]
) -> tuple[list[ScannedKey], list[str]]:
    """Entry-like hashes under the prefix that ``known`` names do not cover, and dangling
    sorted-set members (members whose hash is gone)."""
    known_names = set(known)
    existing = set()
    for key in client.scan_iter(match=glob_escape(keys.prefix) + "*", count=SCAN_COUNT):
        name = keys.name_of(str(key))
        # RedBeat's own keys and the reconciler's start with ':' after the prefix.
        if not name.startswith(":"):
            existing.add(name)
    scanned = _read_hashes(client, keys, sorted(existing - known_names))
    members = {
        keys.name_of(str(member))
        for member, _score in client.zscan_iter(keys.schedule, count=SCAN_COUNT)
        if str(member).startswith(keys.prefix)
    }
    # SCAN may miss keys created during the sweep, so absence is confirmed with EXISTS.
    dangling = _missing(client, keys, sorted(members - existing))
    return scanned, dangling


def scan_definitions(client: redis.Redis, keys: KeySpace) -> list[str]:
    """Names of every hash under the prefix that holds a ``definition`` (for export).

    Unlike ``scan_entries``, names starting with ':' are kept: RedBeat's and the reconciler's
    own keys are never hashes with a definition, so such a hash is an entry whose name the
    file format refuses, to be reported rather than skipped.
    """
    names = {
        keys.name_of(str(key))
        for key in client.scan_iter(match=glob_escape(keys.prefix) + "*", count=SCAN_COUNT)
    }
    hashes = _read_hashes(client, keys, sorted(names))
    return [found.name for found in hashes if found.has_definition]


def _read_hashes(client: redis.Redis, keys: KeySpace, names: list[str]) -> list[ScannedKey]:
    found = []
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
            if str(kind) != "hash":
                continue  # not an entry: other applications may share the prefix
            found.append(ScannedKey(name, bool(has_definition), bool(has_meta)))
    return found


def _missing(client: redis.Redis, keys: KeySpace, names: list[str]) -> list[str]:
    gone = []
    for start in range(0, len(names), BATCH_SIZE):
        batch = names[start : start + BATCH_SIZE]
        with client.pipeline(transaction=False) as pipe:
            for name in batch:
                pipe.exists(keys.entry(name))
            replies = pipe.execute()
        gone += [name for name, exists in zip(batch, replies, strict=True) if not exists]
    return gone


def server_facts(client: redis.Redis, keys: KeySpace, *, beat_lock_key: str | None) -> ServerFacts:
    """Beat's lock TTL and the settings that decide whether schedule keys can vanish.

    CONFIG is often forbidden to application users (ACLs, managed Redis services); that is
    reported, not fatal, since drift must work with read-only credentials.
    """
    ttl = int(client.pttl(beat_lock_key)) if beat_lock_key else -2
    try:
        policy = _config(client, "maxmemory-policy")
        save = _config(client, "save")
        appendonly = _config(client, "appendonly")
    except redis.ResponseError as exc:
        return ServerFacts(
            beat_lock_checked=beat_lock_key is not None,
            beat_lock_ttl_ms=ttl,
            config_error=str(exc).split("\n")[0][:200],
        )
    return ServerFacts(
        beat_lock_checked=beat_lock_key is not None,
        beat_lock_ttl_ms=ttl,
        maxmemory_policy=policy,
        save=save,
        appendonly=appendonly,
    )


def _config(client: redis.Redis, name: str) -> str | None:
    reply = client.config_get(name)
    value = reply.get(name) if isinstance(reply, dict) else None
    return None if value is None else str(value)
