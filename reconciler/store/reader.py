"""Reading RedBeat state in pipelined batches: about one round trip per thousand entries.

Never KEYS and never one round trip per entry: the managed index, beat's statics set, the
recent deletions and the history's newest record come in one round trip, then each batch of
names is read with HMGET (only the fields beat and the reconciler use) and PTTL per entry
and one ZMSCORE, in a single pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis

from reconciler.core.beat_clock import estimate_wake, score_windows
from reconciler.core.errors import WrongKeyType
from reconciler.core.live import LiveEntry, LiveState
from reconciler.core.names import name_problem
from reconciler.store.keys import MARKER_FIELD, wrong_type_message

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from reconciler.core.beat_clock import BeatSettings, BeatWake
    from reconciler.store.keys import KeySpace

BATCH_SIZE = 1000


def read_live_state(
    client: redis.Redis, keys: KeySpace, names: Iterable[str], *, batch_size: int = BATCH_SIZE
) -> LiveState:
    """Live state of ``names`` plus every name the reconciler manages."""
    with client.pipeline(transaction=False) as pipe:
        queue_shared(pipe, keys)
        mark, managed, statics, deleted = shared_state(pipe.execute(raise_on_error=False), keys)
    # The reconciler only ever records names the files accept: any other member (':schedule',
    # ':lock', empty...) would make it read, or write, a key that is not an entry.
    odd = {name: problem for name in managed | deleted if (problem := name_problem(name))}
    odd_index_names = tuple(sorted((name, odd[name]) for name in managed & odd.keys()))
    managed, deleted = managed - odd.keys(), deleted - odd.keys()
    wanted = sorted(set(names) | managed | deleted)
    entries: dict[str, LiveEntry] = {}
    batches = range(0, len(wanted), batch_size)
    for start in batches:
        batch = wanted[start : start + batch_size]
        entries |= read_for_write(client, keys, batch, known=(managed, statics))
    return LiveState(entries, managed, statics, deleted, len(batches) + 1, odd_index_names, mark)


def queue_shared(pipe: redis.client.Pipeline, keys: KeySpace) -> None:
    """Queue the reads of what every entry's state rests on (see ``shared_state``): the
    history's newest record, the recent deletions, then the memberships."""
    pipe.xrevrange(keys.history, count=1)
    pipe.zrange(keys.tombstones, 0, -1)
    queue_memberships(pipe, keys)


def shared_state(
    replies: list[Any], keys: KeySpace
) -> tuple[str | None, frozenset[str], frozenset[str], frozenset[str]]:
    """The history's newest record id, the managed and static names and the recent
    deletions, from the replies of ``queue_shared``."""
    newest, deleted = _checked(replies[:2], [keys.history, keys.tombstones], keys)
    managed, statics = memberships(replies, keys)
    mark = _text(newest[0][0]) if newest else None
    return mark, managed, statics, frozenset(map(_text, deleted))


def read_batches(
    client: redis.Redis,
    keys: KeySpace,
    names: list[str],
    batch_size: int,
    *,
    known: tuple[frozenset[str], frozenset[str]] | None = None,
) -> Iterator[dict[str, LiveEntry]]:
    """The current state of ``names``, one round trip per batch.

    Past one batch, the managed index and beat's statics are read whole once (``known``, or
    one round trip) rather than asked per name: three commands an entry instead of five.
    """
    if known is None and len(names) > batch_size:
        with client.pipeline(transaction=False) as pipe:
            queue_memberships(pipe, keys)
            known = memberships(pipe.execute(raise_on_error=False), keys)
    for start in range(0, len(names), batch_size):
        yield read_for_write(client, keys, names[start : start + batch_size], known=known)


def queue_memberships(pipe: redis.client.Pipeline, keys: KeySpace) -> None:
    """Queue the reads of the managed index and beat's statics (see ``memberships``)."""
    pipe.smembers(keys.managed)
    pipe.smembers(keys.statics)


def memberships(replies: list[Any], keys: KeySpace) -> tuple[frozenset[str], frozenset[str]]:
    """The managed and static names, from the last two replies of a pipeline."""
    managed, statics = _checked(replies[-2:], [keys.managed, keys.statics], keys)
    return frozenset(map(_text, managed)), frozenset(map(_text, statics))


def read_for_write(
    client: redis.Redis,
    keys: KeySpace,
    names: list[str],
    *,
    known: tuple[frozenset[str], frozenset[str]] | None = None,
) -> dict[str, LiveEntry]:
    """The current state of a batch of entries, in one round trip.

    Membership in the managed index and in beat's statics comes from ``known`` (both sets,
    already read) or is asked per name (SISMEMBER), so a write batch never reads whole sets.
    """
    read: list[str] = []  # the key each command reads
    entry_keys = [keys.entry(name) for name in names]
    with client.pipeline(transaction=False) as pipe:
        for name, key in zip(names, entry_keys, strict=True):
            pipe.hmget(key, ["definition", "meta", MARKER_FIELD])
            pipe.pttl(key)
            read += [key, key]
            if known is None:
                pipe.sismember(keys.managed, name)
                pipe.sismember(keys.statics, name)
                read += [keys.managed, keys.statics]
        if entry_keys:
            pipe.zmscore(keys.schedule, entry_keys)
            read.append(keys.schedule)
        replies = pipe.execute(raise_on_error=False)
    if entry_keys and _unknown_command(replies[-1]):
        replies[-1] = _scores_one_by_one(client, keys, entry_keys)
    replies = _checked(replies, read, keys)
    scores = replies[-1] if entry_keys else []
    entries = {}
    step = 2 if known is not None else 4
    for index, (name, score) in enumerate(zip(names, scores, strict=True)):
        fields, ttl, *membership = replies[step * index : step * index + step]
        indexed, static = (name in found for found in known) if known else map(bool, membership)
        definition, meta, marker = (None if value is None else _text(value) for value in fields)
        score = None if score is None else float(score)
        entries[name] = LiveEntry(name, definition, meta, marker, score, indexed, static, int(ttl))
    return entries


def _unknown_command(reply: Any) -> bool:
    return isinstance(reply, redis.ResponseError) and str(reply).startswith("unknown command")


def _scores_one_by_one(client: redis.Redis, keys: KeySpace, entry_keys: list[str]) -> list[Any]:
    """ZSCORE per entry, in one more round trip, for a server older than Redis 6.2 (which
    has no ZMSCORE, the one command for a whole batch)."""
    with client.pipeline(transaction=False) as pipe:
        for key in entry_keys:
            pipe.zscore(keys.schedule, key)
        return _checked(pipe.execute(raise_on_error=False), [keys.schedule] * len(entry_keys), keys)


def _checked(replies: list[Any], read: list[str], keys: KeySpace) -> list[Any]:
    """Pipelined replies, with a clear error naming the key (in ``read``) of the wrong type.

    A string or list where RedBeat keeps a hash, a sorted set or a set is not something the
    reconciler may touch or guess about.
    """
    for reply, key in zip(replies, read, strict=True):
        if isinstance(reply, redis.ResponseError):
            if "WRONGTYPE" not in str(reply):
                raise reply
            found = "holds a value of another type than RedBeat or the reconciler keeps there"
            raise WrongKeyType(wrong_type_message(keys, key, f"{found} (WRONGTYPE)"))
    return replies


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_beat_wake(
    client: redis.Redis, keys: KeySpace, beat: BeatSettings, now: datetime
) -> BeatWake:
    """When beat next looks at the schedule, in two round trips that never touch the lock:
    its PTTL (which dates the last tick), then the scores around that tick."""
    if not beat.lock:
        return estimate_wake(beat.timing, now, lock_key=None, lock_ttl_ms=-2, next_score=None)
    lock_key = keys.custom_beat_lock(beat.lock_key) if beat.lock_key else keys.beat_lock
    ttl = int(client.pttl(lock_key))
    next_score, due_at_tick = None, False
    if ttl >= 0:
        tick, after = score_windows(beat.timing, now, ttl)
        with client.pipeline(transaction=False) as pipe:
            # Exclusive, as beat's own look-ahead; and what was due at the tick is still there.
            pipe.zrangebyscore(keys.schedule, f"({after}", "+inf", start=0, num=1, withscores=True)
            pipe.zrangebyscore(keys.schedule, 0, tick, start=0, num=1)
            found, due = pipe.execute()
        next_score = float(found[0][1]) if found else None
        due_at_tick = bool(due)
    return estimate_wake(
        beat.timing,
        now,
        lock_key=lock_key,
        lock_ttl_ms=ttl,
        next_score=next_score,
        due_at_tick=due_at_tick,
    )
