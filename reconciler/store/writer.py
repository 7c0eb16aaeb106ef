"""Writing a plan: each batch of entries in one optimistic transaction (WATCH/MULTI/EXEC).

For each batch the entry keys (and beat's statics set) are watched, their current state is
read in one pipelined round trip on another connection and checked against what the plan
read, and only then are the writes queued and executed. If beat touches a watched entry in
between (it rewrites meta after every run), EXEC fails and the batch is read and written
again. Every entry is written whole in one transaction: there is never a half-written
entry, whatever the batch size.

The writes make no decisions: definitions are the plan's exact bytes, and meta and score
follow the Clock policy each change carries (kept, restarted, fresh), applied to the entry
as re-read here with the same arithmetic that gave the plan its next runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from reconciler.beat.redbeat_codec import decode_meta, encode_meta, entry_from_definition
from reconciler.beat.redbeat_rules import RedBeatRules
from reconciler.core.diff import usable_meta
from reconciler.core.errors import (
    ApplyLockBusy,
    PartialApply,
    ReconcilerError,
    StalePlan,
    StoreUnavailable,
    WrongKeyType,
)
from reconciler.core.plan import WRITES_DEFINITION, Action, Clock, Repair
from reconciler.core.scores import clock_outcome
from reconciler.store.history import queue_append
from reconciler.store.keys import MARKER_FIELD, wrong_type_message
from reconciler.store.reader import memberships, queue_memberships, read_batches, read_for_write

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from reconciler.core.live import LiveEntry
    from reconciler.core.plan import Change
    from reconciler.store.keys import KeySpace

BATCH_SIZE = 500
MAX_ATTEMPTS = 8
# Tombstones are kept long enough for any racing tick to have come and gone, and for the
# next applies and drift checks to clean up after it.
TOMBSTONE_SECONDS = 7 * 86_400


@dataclass
class WriteReport:
    names: dict[str, list[str]] = field(default_factory=dict)
    batches: int = 0
    attempts: int = 0


def write_changes(
    client: redis.Redis,
    keys: KeySpace,
    changes: Sequence[Change],
    *,
    timezone_name: str,
    history: Callable[[dict[str, list[str]]], dict[str, str]],
    now: Callable[[], datetime],
    batch_size: int,
    lock_value: str,
) -> WriteReport:
    """Write ``changes`` batch by batch; the history record commits with the last batch.

    ``history`` builds the record from the names written. ``lock_value`` fences every
    batch: the apply lock is watched and must still hold this value when the batch commits.
    If a later batch fails, the batches already committed are recorded in history and the
    error says so: "nothing was written" is never claimed after a commit.
    """
    report = WriteReport(names={action.value: [] for action in Action})
    batches = [changes[i : i + batch_size] for i in range(0, len(changes), batch_size)]
    every_name = {kind.value: [c.name for c in changes if c.action is kind] for kind in Action}
    for number, batch in enumerate(batches, start=1):
        last = number == len(batches)
        record = history(every_name) if last else None
        try:
            report.attempts += _write_batch(
                client, keys, batch, timezone_name, record, now, lock_value
            )
        except ReconcilerError as exc:
            if not report.batches:
                raise type(exc)(f"{exc}; nothing was written") from None
            done = [name for names in report.names.values() for name in names]
            queue_append(client, keys, history(report.names) | {"partial": "true"})
            raise PartialApply(
                f"{exc}; the {len(done)} change(s) of the {report.batches} batch(es) before it "
                f"were committed ({', '.join(done[:10])}{', ...' if len(done) > 10 else ''}) "
                "and recorded in history; the next plan shows what is left"
            ) from None
        report.batches += 1
        for change in batch:
            report.names[change.action.value].append(change.name)
    return report


def verify_unchanged(
    client: redis.Redis, keys: KeySpace, changes: Sequence[Change], batch_size: int = BATCH_SIZE
) -> None:
    """Raise before anything is written unless every entry is still as the plan read it,
    and RedBeat's and the reconciler's own keys have the types the writes need (Redis does
    not roll back a transaction when one command fails inside EXEC)."""
    expected = {
        keys.schedule: "zset",
        keys.statics: "set",
        keys.managed: "set",
        keys.tombstones: "zset",
        keys.history: "stream",
    }
    many = len(changes) > batch_size
    with client.pipeline(transaction=False) as pipe:
        for key in expected:
            pipe.type(key)
        if many:
            queue_memberships(pipe, keys)  # in the same round trip
        found = pipe.execute(raise_on_error=False)
    types = found[: len(expected)]
    for reply in types:
        if isinstance(reply, Exception):
            raise reply
    for (key, wanted), actual in zip(expected.items(), types, strict=True):
        if str(actual) not in (wanted, "none"):
            kind = f"holds a {actual}, where RedBeat or the reconciler keeps a {wanted}"
            raise WrongKeyType(wrong_type_message(keys, key, f"{kind}; nothing was written"))
    names = [change.name for change in changes]
    now_live: dict[str, LiveEntry] = {}
    known = memberships(found, keys) if many else None
    for current in read_batches(client, keys, names, batch_size, known=known):
        now_live |= current
    for change in changes:
        try:
            _check_unchanged(change, now_live[change.name])
        except StalePlan as exc:
            raise StalePlan(f"{exc}; nothing was written. Make a new plan") from None


def _write_batch(
    client: redis.Redis,
    keys: KeySpace,
    batch: Sequence[Change],
    timezone_name: str,
    history: dict[str, str] | None,
    now: Callable[[], datetime],
    lock_value: str,
) -> int:
    names = [change.name for change in batch]
    watched = [keys.entry(name) for name in names]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.statics, *watched, keys.apply_lock)  # type: ignore[no-untyped-call]
                if client.get(keys.apply_lock) != lock_value:
                    raise ApplyLockBusy("the apply lock was lost (expired or taken) mid-apply")
                current = read_for_write(client, keys, names)
                for change in batch:
                    _check_unchanged(change, current[change.name])
                moment = now()
                pipe.multi()
                for change in batch:
                    _queue_change(pipe, keys, change, current[change.name], moment, timezone_name)
                if history is not None:
                    queue_append(pipe, keys, history)
                    pipe.zremrangebyscore(
                        keys.tombstones, "-inf", moment.timestamp() - TOMBSTONE_SECONDS
                    )
                pipe.execute()
                return attempt
            except redis.WatchError:
                time.sleep(0.01 * attempt)
            except redis.ResponseError as exc:
                # redis-py quotes the failing command with its arguments, i.e. the definition
                # and any value it holds from the environment: keep only the server's reason.
                reason = str(exc).rpartition(" caused error: ")[2]
                raise StoreUnavailable(f"Redis refused a write: {reason}") from None
    raise StoreUnavailable(
        f"the entries kept changing while being written ({MAX_ATTEMPTS} attempts)"
    )


def _check_unchanged(change: Change, current: LiveEntry) -> None:
    """Optimistic concurrency: the entry must still be as the plan read it."""
    if current.static:
        raise StalePlan(f"'{change.name}' became a static entry of beat since the plan")
    if current.definition_text != change.live_definition:
        raise StalePlan(f"'{change.name}' changed in Redis since the plan was made")
    if current.managed != change.live_managed:
        raise StalePlan(f"ownership of '{change.name}' changed since the plan was made")


def _queue_change(
    pipe: redis.client.Pipeline,
    keys: KeySpace,
    change: Change,
    current: LiveEntry,
    now: datetime,
    timezone_name: str,
) -> None:
    key = keys.entry(change.name)
    if change.action is Action.DELETE or Repair.ORPHAN in change.repairs:
        pipe.delete(key)
        pipe.zrem(keys.schedule, key)
        if change.action is Action.DELETE or change.live_managed or current.indexed:
            # A leftover under a managed name that left the files: nothing of the entry
            # remains, so its bookkeeping goes too.
            pipe.srem(keys.managed, change.name)
            pipe.zadd(keys.tombstones, {change.name: now.timestamp()})
        return
    if change.action is Action.CREATE:
        pipe.zrem(keys.tombstones, change.name)
    text = change.definition or current.definition_text
    assert text is not None  # create/update carry a definition; repairs have a live one
    entry = entry_from_definition(change.name, json.loads(text))
    rules = RedBeatRules(timezone_name)
    meta = usable_meta(current.meta_text, now, rules)
    fields: dict[str, str] = {}
    if change.action in WRITES_DEFINITION:
        fields["definition"] = text
    if current.marker != change.marker:
        fields[MARKER_FIELD] = change.marker
    # The plan chose the policy; the arithmetic is the one its next runs came from.
    outcome = clock_outcome(
        change.clock,
        entry.schedule,
        entry.enabled,
        meta,
        now,
        rules,
        unusable_history=bool(current.meta_text) and meta is None,
    )
    if outcome.write_meta:
        # A restarted clock keeps the run count, even of a meta beat could not use.
        salvaged = decode_meta(current.meta_text, strict=False)
        kept = change.clock in (Clock.KEEP, Clock.RESTART)
        count = salvaged.total_run_count if salvaged and kept else 0
        fields["meta"] = encode_meta(outcome.last_run_at, count, timezone_name)
    if fields:
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
    if outcome.score is not None:
        pipe.zadd(keys.schedule, {key: outcome.score})
    if current.ttl_ms >= 0:
        pipe.persist(key)
    if not current.indexed:
        pipe.sadd(keys.managed, change.name)
