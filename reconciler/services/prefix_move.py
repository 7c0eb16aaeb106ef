"""``move-prefix``: move the managed entries from one key prefix to another, keeping each
entry's run history (meta) and score, as one reviewed change.

Read both prefixes, plan the move (pure, core.prefix_move), show it; with ``apply``, take
both prefixes' apply locks, read and plan again under them, copy in batches with history
records, delete the old keys once copied, and verify that nothing is left behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from reconciler.core.errors import ConflictingEntries, StoreUnavailable, UsageError
from reconciler.core.prefix_move import MovedEntry, MovePlan, plan_move
from reconciler.services.apply import git_revision, resolve_actor
from reconciler.store.apply_lock import ApplyLock
from reconciler.store.connection import is_cluster
from reconciler.store.history import history_fields
from reconciler.store.keys import KeySpace
from reconciler.store.prefix_move import (
    beat_lock_ttls,
    copy_batch,
    delete_old,
    leftovers,
    read_both,
)
from reconciler.store.reader import read_for_write

if TYPE_CHECKING:
    import redis

BATCH_SIZE = 500
SOURCE = "move-prefix"


@dataclass
class MoveOutcome:
    plan: MovePlan
    beat_locks: dict[str, int]  # beat's lock key under each prefix: its PTTL (-2: none)
    applied: bool = False
    batches: int = 0
    reconnects: int = 0
    moved: list[str] = field(default_factory=list)


def check_prefixes(old_prefix: str, new_prefix: str) -> None:
    if not old_prefix or not new_prefix:
        raise UsageError("--from and --to must not be empty (RedBeat's default is 'redbeat:')")
    if old_prefix == new_prefix:
        raise UsageError(f"--from and --to are the same prefix {old_prefix!r}: nothing to move")
    if old_prefix.startswith(new_prefix) or new_prefix.startswith(old_prefix):
        # 'redbeat:' and 'redbeat:x:' would see each other's keys as entries.
        raise UsageError(
            f"{old_prefix!r} and {new_prefix!r} overlap (one starts with the other), so the "
            "keys of one would read as entries of the other; choose prefixes that do not"
        )


def plan_prefix_move(client: redis.Redis, old_prefix: str, new_prefix: str) -> MoveOutcome:
    old, new = KeySpace(old_prefix), KeySpace(new_prefix)
    before, after = read_both(client, old, new)
    return MoveOutcome(
        plan_move(old_prefix, new_prefix, before, after), beat_lock_ttls(client, old, new)
    )


def apply_prefix_move(
    client: redis.Redis,
    old_prefix: str,
    new_prefix: str,
    *,
    lock_timeout: float,
    check_beat_lock: bool,
    actor: str | None,
) -> MoveOutcome:
    old, new = KeySpace(old_prefix), KeySpace(new_prefix)
    if check_beat_lock:
        running = {key: ttl for key, ttl in beat_lock_ttls(client, old, new).items() if ttl != -2}
        if running:
            raise UsageError(
                f"beat's lock {', '.join(sorted(running))} is held: a beat is running; nothing "
                "was written. Stop beat first (its runs under the old prefix would not be "
                "carried over), or give --no-beat-lock if no beat uses it"
            )
    locks = [
        ApplyLock(client, new, command="move-prefix"),
        ApplyLock(client, old, command="move-prefix"),
    ]
    try:
        for lock in locks:
            lock.acquire(lock_timeout)
            lock.start_renewing()
        outcome = plan_prefix_move(client, old_prefix, new_prefix)
        _refuse_in_the_way(outcome.plan)
        _move(client, old, new, outcome, locks[0], resolve_actor(actor))
    finally:
        for lock in locks:
            lock.stop_renewing()
            lock.release()
    return outcome


def _refuse_in_the_way(plan: MovePlan) -> None:
    if plan.in_the_way:
        shown = "; ".join(f"'{item.name}': {item.reason}" for item in plan.in_the_way[:10])
        more = f" (and {len(plan.in_the_way) - 10} more)" if len(plan.in_the_way) > 10 else ""
        raise ConflictingEntries(
            f"{len(plan.in_the_way)} name(s) cannot be moved to {plan.new_prefix!r}: "
            f"{shown}{more}; nothing was written"
        )


def _move(
    client: redis.Redis,
    old: KeySpace,
    new: KeySpace,
    outcome: MoveOutcome,
    lock: ApplyLock,
    actor: str,
) -> None:
    plan = outcome.plan
    one_keyspace = not is_cluster(client)
    copies = plan.copy
    batches = [copies[i : i + BATCH_SIZE] for i in range(0, len(copies), BATCH_SIZE)]
    revision = git_revision()
    apply_id = lock.token
    for number, batch in enumerate(batches, start=1):
        names = [entry.name for entry in batch]
        record = history_fields(
            at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            actor=actor,
            source=SOURCE,
            revision=revision,
            names={"move": names},
            extra={"from": old.prefix, "apply": apply_id, "batch": f"{number}/{len(batches)}"},
        )
        outcome.reconnects += copy_batch(
            client, old, new, batch, record, lock, delete_old=one_keyspace
        )
        outcome.batches += 1
        outcome.moved += names
    copied: dict[str, MovedEntry] = {entry.name: entry for entry in copies}
    finishing: dict[str, MovedEntry | None] = {}
    if plan.finish:
        # Copied by an earlier run: the old keys go if they still match the copy.
        now_new = read_for_write(client, new, list(plan.finish))
        for name in plan.finish:
            copied[name] = finishing[name] = MovedEntry.of(now_new[name])
    if not one_keyspace:
        # On a cluster the old keys are in other slots: deleted after the copies committed.
        finishing |= {entry.name: entry for entry in copies}
    changed = delete_old(client, old, finishing)
    if changed:
        raise StoreUnavailable(
            f"copied, but {len(changed)} entr(y/ies) changed under {old.prefix!r} meanwhile "
            f"and were left there: {', '.join(changed[:10])}. Is beat still running on it? "
            "Stop it and run move-prefix --apply again"
        )
    outcome.applied = True
    problems = leftovers(client, old, new, copied)
    if problems:
        raise StoreUnavailable(f"the move did not verify: {'; '.join(problems[:10])}")
