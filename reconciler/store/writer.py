"""Writing a plan: each batch of entries in one optimistic transaction (WATCH/MULTI/EXEC).

For each batch the entry keys (and beat's statics set) are watched, their current state is
read in one pipelined round trip on another connection and checked against what the plan
read, and only then are the writes queued and executed. If beat touches a watched entry in
between (it rewrites meta after every run), EXEC fails and the batch is read and written
again. Every entry is written whole in one transaction: there is never a half-written
entry, whatever the batch size.

The writes follow fixed policies, not decisions: definitions are the plan's exact bytes;
``meta`` is kept on update (run history survives) and only created when absent; the score
is what beat itself would compute from the stored last run and the new schedule.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import redis

from reconciler.errors import StalePlan, StoreUnavailable
from reconciler.plan import Action, Repair
from reconciler.redbeat_codec import decode_meta, encode_meta, entry_from_definition
from reconciler.scheduling import PARKED, expected_score, score_of
from reconciler.store.history import queue_append
from reconciler.store.keys import MARKER_FIELD, MARKER_VALUE
from reconciler.store.reader import read_for_write

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from reconciler.live import LiveEntry
    from reconciler.plan import Change
    from reconciler.store.keys import KeySpace

BATCH_SIZE = 500
MAX_ATTEMPTS = 8
_SCORE_REPAIRS = frozenset(
    {Repair.UNSCHEDULED, Repair.STALE_SCORE, Repair.MISSING_META, Repair.UNPARKED}
)
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
    history: dict[str, str] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[], None] | None = None,
) -> WriteReport:
    """Write ``changes`` batch by batch; the history record commits with the last batch."""
    report = WriteReport(names={action.value: [] for action in Action})
    batches = [changes[i : i + batch_size] for i in range(0, len(changes), batch_size)]
    for number, batch in enumerate(batches, start=1):
        record = history if number == len(batches) else None
        report.attempts += _write_batch(client, keys, batch, timezone_name, record, now)
        report.batches += 1
        for change in batch:
            report.names[change.action.value].append(change.name)
        if on_batch:
            on_batch()
    return report


def verify_unchanged(
    client: redis.Redis, keys: KeySpace, changes: Sequence[Change], batch_size: int = BATCH_SIZE
) -> None:
    """Raise StalePlan unless every entry is still as the plan read it (nothing written)."""
    for start in range(0, len(changes), batch_size):
        batch = changes[start : start + batch_size]
        current = read_for_write(client, keys, [change.name for change in batch])
        for change in batch:
            _check_unchanged(change, current[change.name])


def _write_batch(
    client: redis.Redis,
    keys: KeySpace,
    batch: Sequence[Change],
    timezone_name: str,
    history: dict[str, str] | None,
    now: Callable[[], datetime],
) -> int:
    names = [change.name for change in batch]
    watched = [keys.entry(name) for name in names]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.statics, *watched)  # type: ignore[no-untyped-call]
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
    raise StoreUnavailable(
        f"the entries kept changing while being written ({MAX_ATTEMPTS} attempts); "
        "nothing of this batch was written. Run the apply again"
    )


def _check_unchanged(change: Change, current: LiveEntry) -> None:
    """Optimistic concurrency: the entry must still be as the plan read it."""
    if current.static:
        raise StalePlan(f"'{change.name}' became a static entry of beat since the plan")
    if current.definition_text != change.live_definition:
        raise StalePlan(
            f"'{change.name}' changed in Redis since the plan was made; nothing was written. "
            "Make a new plan"
        )
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
        if change.action is Action.DELETE:
            pipe.srem(keys.managed, change.name)
            pipe.zadd(keys.tombstones, {change.name: now.timestamp()})
        return
    if change.action is Action.CREATE:
        pipe.zrem(keys.tombstones, change.name)
    text = change.definition or current.definition_text
    assert text is not None  # create/update carry a definition; repairs have a live one
    entry = entry_from_definition(change.name, json.loads(text))
    meta = decode_meta(current.meta_text)
    fields: dict[str, str] = {}
    if change.action in (Action.CREATE, Action.UPDATE):
        fields["definition"] = text
    if current.marker != MARKER_VALUE:
        fields[MARKER_FIELD] = MARKER_VALUE
    score: float | None = None
    if change.action is Action.CREATE:
        if change.run_on_create and entry.enabled:
            fields["meta"] = encode_meta(None, 0, timezone_name)
            score = score_of(now)
        else:
            fields["meta"] = encode_meta(now, 0, timezone_name)
            score = expected_score(entry.schedule, now, entry.enabled, timezone_name)
    elif entry.enabled and (change.enabling or meta is None):
        # Re-enabled, or no usable run history: restart the clock now, keep the count, so
        # the next run is the next scheduled time and never an immediate surprise run.
        count = meta.total_run_count if meta else 0
        fields["meta"] = encode_meta(now, count, timezone_name)
        score = expected_score(entry.schedule, now, True, timezone_name)
    elif change.action is Action.UPDATE or _SCORE_REPAIRS & set(change.repairs):
        if not entry.enabled:
            score = PARKED
        elif meta is not None and meta.last_run_at is not None:
            score = expected_score(entry.schedule, meta.last_run_at, True, timezone_name)
        else:
            score = score_of(now)  # never run yet: due now, as beat treats it
    if fields:
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
    if score is not None:
        pipe.zadd(keys.schedule, {key: score})
    if current.ttl_ms >= 0:
        pipe.persist(key)
    if not current.indexed:
        pipe.sadd(keys.managed, change.name)
