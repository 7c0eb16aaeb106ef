"""The Redis side of moving managed entries to another key prefix (``move-prefix``).

Reads are pipelined (the old prefix's managed index, then HMGET/ZSCORE/PTTL per batch);
nothing is ever listed with KEYS. Each batch is copied in one optimistic transaction on the
new prefix, watched and fenced by its apply lock as an apply's batch is, with its history
record. On a single Redis the same transaction deletes the old keys; on a cluster they are
in other slots, so they are deleted after the copy committed: the score first, then the
hash, then the index member, so that beat never finds a score without its hash, and a move
cut off anywhere resumes on the next run. Beat's lock, its statics and entries the
reconciler does not manage are never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.core.errors import ApplyLockBusy, StalePlan
from reconciler.core.names import name_problem
from reconciler.core.prefix_move import MovedEntry
from reconciler.store.history import batch_committed, queue_append
from reconciler.store.keys import MARKER_FIELD
from reconciler.store.reader import memberships, queue_memberships, read_for_write
from reconciler.store.writer import CommitOnce

if TYPE_CHECKING:
    from collections.abc import Sequence

    import redis

    from reconciler.core.live import LiveEntry
    from reconciler.store.apply_lock import ApplyLock
    from reconciler.store.keys import KeySpace

READ_BATCH = 1000


def read_both(
    client: redis.Redis, old: KeySpace, new: KeySpace
) -> tuple[dict[str, LiveEntry], dict[str, LiveEntry]]:
    """Every name managed under ``old``, as it is under ``old`` and under ``new``."""
    with client.pipeline(transaction=False) as pipe:
        queue_memberships(pipe, old)
        queue_memberships(pipe, new)
        replies = pipe.execute(raise_on_error=False)
    old_known = memberships(replies[:2], old)
    new_known = memberships(replies[2:], new)
    names = sorted(name for name in old_known[0] if not name_problem(name))
    before: dict[str, LiveEntry] = {}
    after: dict[str, LiveEntry] = {}
    for start in range(0, len(names), READ_BATCH):
        batch = names[start : start + READ_BATCH]
        before |= read_for_write(client, old, batch, known=old_known)
        after |= read_for_write(client, new, batch, known=new_known)
    return before, after


def beat_lock_ttls(client: redis.Redis, *spaces: KeySpace) -> dict[str, int]:
    """PTTL of beat's lock under each prefix (only read, never written)."""
    with client.pipeline(transaction=False) as pipe:
        for keys in spaces:
            pipe.pttl(keys.beat_lock)
        return {keys.beat_lock: int(ttl) for keys, ttl in zip(spaces, pipe.execute(), strict=True)}


def copy_batch(
    client: redis.Redis,
    old: KeySpace,
    new: KeySpace,
    entries: Sequence[MovedEntry],
    record: dict[str, str],
    lock: ApplyLock,
    *,
    delete_old: bool,
) -> int:
    """Copy ``entries`` under ``new`` in one transaction with ``record``; with
    ``delete_old`` (a single Redis: one keyspace) the old keys go in it too. Returns the
    connections lost (each time the record told whether the batch had committed)."""
    committing = CommitOnce("copying", "copied")
    committing.run(
        lambda: _copy(client, old, new, entries, record, lock, delete_old=delete_old),
        lambda: batch_committed(client, new, record["apply"], record["batch"]),
    )
    return committing.reconnects


def _copy(
    client: redis.Redis,
    old: KeySpace,
    new: KeySpace,
    entries: Sequence[MovedEntry],
    record: dict[str, str],
    lock: ApplyLock,
    *,
    delete_old: bool,
) -> None:
    names = [entry.name for entry in entries]
    watched = [new.entry(name) for name in names] + [new.statics, new.apply_lock]
    if delete_old:
        watched += [old.entry(name) for name in names]
    with lock.steady(), client.pipeline(transaction=True) as pipe:
        pipe.watch(*watched)  # type: ignore[no-untyped-call]
        if client.get(new.apply_lock) != lock.value:
            raise ApplyLockBusy("the apply lock was lost (expired or taken) mid-move")
        now_old = read_for_write(client, old, names) if delete_old else {}
        now_new = read_for_write(client, new, names)
        for entry in entries:
            if entry.name in now_old and MovedEntry.of(now_old[entry.name]) != entry:
                raise StalePlan(f"'{entry.name}' changed under {old.prefix!r} since it was read")
            if now_new[entry.name].exists or now_new[entry.name].static:
                raise StalePlan(f"'{entry.name}' appeared under {new.prefix!r} since it was read")
        pipe.multi()
        for entry in entries:
            key = new.entry(entry.name)
            fields = {
                field: value
                for field, value in (
                    ("definition", entry.definition_text),
                    ("meta", entry.meta_text),
                    (MARKER_FIELD, entry.marker),
                )
                if value is not None
            }
            if fields:
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            if entry.score is not None:
                pipe.zadd(new.schedule, {key: entry.score})
            pipe.sadd(new.managed, entry.name)
            if delete_old:
                pipe.zrem(old.schedule, old.entry(entry.name))
                pipe.delete(old.entry(entry.name))
                pipe.srem(old.managed, entry.name)
        queue_append(pipe, new, record)
        pipe.execute()


def delete_old(
    client: redis.Redis, old: KeySpace, expected: dict[str, MovedEntry | None]
) -> list[str]:
    """Delete the old keys of names copied already, if still as copied (``None``: its hash
    is gone already); returns the names left alone because they changed meanwhile.

    Not one transaction (on a cluster they span slots): the score goes first, then the hash,
    then the index member, each step repeatable, so beat never sees a score without its
    hash and a run cut off here finishes on the next."""
    names = sorted(expected)
    changed: list[str] = []
    for start in range(0, len(names), READ_BATCH):
        batch = names[start : start + READ_BATCH]
        current = read_for_write(client, old, batch)
        done = []
        for name in batch:
            entry = current[name]
            wanted = expected[name]
            if entry.exists and (wanted is None or MovedEntry.of(entry) != wanted):
                changed.append(name)
            else:
                done.append(name)
        if not done:
            continue
        client.zrem(old.schedule, *(old.entry(name) for name in done))
        with client.pipeline(transaction=False) as pipe:
            for name in done:
                pipe.delete(old.entry(name))
            pipe.execute()
        client.srem(old.managed, *done)
    return changed


def leftovers(
    client: redis.Redis, old: KeySpace, new: KeySpace, moved: dict[str, MovedEntry]
) -> list[str]:
    """What a finished move must not leave: each moved name not exactly as copied under
    ``new``, or with anything left under ``old``. Empty when the move is complete."""
    problems = []
    names = sorted(moved)
    for start in range(0, len(names), READ_BATCH):
        batch = names[start : start + READ_BATCH]
        after = read_for_write(client, new, batch)
        before = read_for_write(client, old, batch)
        for name in batch:
            if MovedEntry.of(after[name]) != moved[name] or not after[name].indexed:
                problems.append(f"'{name}' is not as copied under {new.prefix!r}")
            elif before[name].exists or before[name].indexed or before[name].score is not None:
                problems.append(f"'{name}' is still under {old.prefix!r}")
    return problems
