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
from typing import TYPE_CHECKING, NamedTuple

import redis

from reconciler.beat.redbeat_codec import decode_meta, encode_meta, entry_from_definition
from reconciler.beat.redbeat_rules import RedBeatRules
from reconciler.core.diff import usable_meta
from reconciler.core.errors import (
    ApplyLockBusy,
    OutcomeUnknown,
    PartialApply,
    ReconcilerError,
    StalePlan,
    StoreUnavailable,
    WrongKeyType,
)
from reconciler.core.plan import WRITES_DEFINITION, Action, Clock, Repair
from reconciler.core.scores import clock_outcome
from reconciler.store.history import batch_committed, queue_append
from reconciler.store.keys import MARKER_FIELD, wrong_type_message
from reconciler.store.reader import memberships, queue_memberships, read_batches, read_for_write
from reconciler.store.replication import acknowledged

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from reconciler.core.live import LiveEntry
    from reconciler.core.plan import Change
    from reconciler.store.apply_lock import ApplyLock
    from reconciler.store.keys import KeySpace
    from reconciler.store.replication import Replication

BATCH_SIZE = 500
MAX_ATTEMPTS = 8  # a watched entry changed under the batch: beat or another writer
MAX_RECONNECTS = 8  # the connection dropped: about 9 s of pauses, a Redis restart's worth
RECONNECT_PAUSE_CAP = 2.0
# A dropped connection, or one that stopped answering: a sent EXEC may have committed.
_LOST = (redis.ConnectionError, redis.TimeoutError)
# Tombstones are kept long enough for any racing tick to have come and gone, and for the
# next applies and drift checks to clean up after it.
TOMBSTONE_SECONDS = 7 * 86_400


@dataclass(frozen=True)
class Unconfirmed:
    """A committed batch that the replicas did not acknowledge in time."""

    batch: int
    changes: int
    why: str


class Left(NamedTuple):
    """What a committed batch left in an entry it wrote (and did not delete)."""

    meta: str | None
    score: float | None


@dataclass
class WriteReport:
    names: dict[str, list[str]] = field(default_factory=dict)
    batches: int = 0
    attempts: int = 0
    reconnects: int = 0  # connections lost and re-made; every batch's outcome was read back
    unconfirmed: list[Unconfirmed] = field(default_factory=list)
    # Per entry written, its meta and score as committed: an entry that still reads so
    # afterwards was touched by nobody since (see services/apply.py's re-check).
    left: dict[str, Left] = field(default_factory=dict)


def write_changes(
    client: redis.Redis,
    keys: KeySpace,
    changes: Sequence[Change],
    *,
    timezone_name: str,
    history: Callable[[dict[str, list[str]]], dict[str, str]],
    now: Callable[[], datetime],
    batch_size: int,
    lock: ApplyLock,
    apply_id: str,
    replication: Replication | None = None,
) -> WriteReport:
    """Write ``changes`` batch by batch, each with its own history record.

    ``history`` builds a batch's record from the names it writes; the record commits in the
    batch's transaction, tagged with ``apply_id`` and ``k/n``, so whether a batch committed
    can always be read back: after a lost reply the batch is neither reported as failed nor
    written twice, and ``reconciler history`` shows an apply cut off midway as partial. The
    apply lock fences every batch: it is watched and must still hold this apply's token when
    the batch commits. "Nothing was written" is only ever said when it is true. With
    ``replication``, each committed batch waits for that many replicas to acknowledge it;
    a batch they do not is listed in ``unconfirmed`` (the next ones are still written: what
    committed stays committed, and the report says which are not known to be replicated).
    """
    report = WriteReport(names={action.value: [] for action in Action})
    batches = [changes[i : i + batch_size] for i in range(0, len(changes), batch_size)]
    for number, batch in enumerate(batches, start=1):
        written = {kind.value: [c.name for c in batch if c.action is kind] for kind in Action}
        record = history({action: names for action, names in written.items() if names}) | {
            "apply": apply_id,
            "batch": f"{number}/{len(batches)}",
        }
        writing = _Batch(client, keys, batch, timezone_name, record, now, lock)
        try:
            report.attempts += writing.write(last=number == len(batches))
        except ReconcilerError as exc:
            report.reconnects += writing.reconnects
            failed = _failed(exc, report, number, len(batch))
            if report.unconfirmed:
                failed = type(failed)(
                    f"{failed}. Not confirmed on the replicas: "
                    f"{unconfirmed_batches(report.unconfirmed)}"
                )
            raise failed from None
        report.reconnects += writing.reconnects
        report.batches += 1
        report.left |= writing.left
        for action, names in written.items():
            report.names[action].extend(names)
        if replication is not None and replication.replicas > 0:
            count = acknowledged(client, keys, lock, replication)
            if isinstance(count, str) or count < replication.replicas:
                why = count if isinstance(count, str) else _too_few(count, replication)
                report.unconfirmed.append(Unconfirmed(number, len(batch), why))
    return report


def unconfirmed_batches(unconfirmed: Sequence[Unconfirmed]) -> str:
    """``batch(es) 2, 3 (why)``: which committed batches the replicas did not acknowledge."""
    numbers = ", ".join(str(batch.batch) for batch in unconfirmed)
    reasons = "; ".join(dict.fromkeys(batch.why for batch in unconfirmed))
    return f"batch(es) {numbers} ({reasons})"


def _too_few(count: int, replication: Replication) -> str:
    return (
        f"{count} of the {replication.replicas} replica(s) acknowledged it within "
        f"{replication.timeout_seconds:g} s"
    )


def _failed(exc: ReconcilerError, report: WriteReport, number: int, size: int) -> ReconcilerError:
    """The error to show for batch ``number`` failing: what did and did not commit."""
    unknown = isinstance(exc, OutcomeUnknown)
    if not report.batches and not unknown:
        return type(exc)(f"{exc}; nothing was written")
    done = [name for names in report.names.values() for name in names]
    listed = f"{', '.join(done[:10])}{', ...' if len(done) > 10 else ''}"
    committed = (
        f"the {len(done)} change(s) of the {report.batches} batch(es) before it were committed "
        f"({listed})"
        if report.batches
        else "no batch before it was committed"
    )
    if unknown:
        fate = (
            f"; whether batch {number} ({size} change(s)) committed could not be read back. "
            "Each batch's history record commits with it: `reconciler history` shows what was "
            "written, and the next plan what is left"
        )
        return OutcomeUnknown(f"{exc}; {committed}{fate}")
    return PartialApply(
        f"{exc}; {committed} and are in history as a partial apply; the next plan shows "
        "what is left"
    )


def verify_unchanged(
    client: redis.Redis,
    keys: KeySpace,
    changes: Sequence[Change],
    batch_size: int = BATCH_SIZE,
    *,
    entries: bool = True,
) -> None:
    """Raise before anything is written unless every entry is still as the plan read it,
    and RedBeat's and the reconciler's own keys have the types the writes need (Redis does
    not roll back a transaction when one command fails inside EXEC). ``entries=False``
    checks the types only, for a caller that has just read every entry under the lock."""
    expected = {
        keys.schedule: "zset",
        keys.statics: "set",
        keys.managed: "set",
        keys.tombstones: "zset",
        keys.history: "stream",
    }
    many = entries and len(changes) > batch_size
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
    if not entries:
        return
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


@dataclass
class CommitOnce:
    """Runs one batch's transaction until it has committed exactly once.

    Again when Redis answers EXEC with nil (a watched key changed: beat, or another writer);
    and, when the connection drops (redis-py turns a dropped watch into a WatchError whose
    context is the ConnectionError), again only once ``committed`` (the batch's history
    record, read back) says the lost EXEC did not commit. ``doing`` and ``done`` name the
    work in its errors ("writing", "written").
    """

    doing: str
    done: str
    reconnects: int = 0

    def run(self, transaction: Callable[[], None], committed: Callable[[], bool]) -> int:
        """The attempts it took; raises StoreUnavailable, or OutcomeUnknown when the last
        commit's fate could not be read back."""
        conflicts = 0
        may_have_committed = False
        for attempt in range(1, MAX_ATTEMPTS + MAX_RECONNECTS + 1):
            try:
                if may_have_committed and committed():
                    return attempt
                may_have_committed = False
                transaction()
                return attempt
            except redis.WatchError as exc:
                if not isinstance(exc.__context__, _LOST):
                    conflicts += 1  # EXEC answered nil: a watched key changed
                    if conflicts == MAX_ATTEMPTS:
                        break
                    time.sleep(0.01 * conflicts)
                    continue
                may_have_committed = True
            except _LOST:
                may_have_committed = True
            except redis.AuthenticationError as exc:
                raise StoreUnavailable(
                    f"Redis refused the login while {self.doing}: {exc}"
                ) from None
            except redis.ResponseError as exc:
                # redis-py quotes the failing command with its arguments, i.e. the definition
                # and any value it holds from the environment: keep only the server's reason.
                reason = str(exc).rpartition(" caused error: ")[2].rstrip(".")
                raise StoreUnavailable(f"Redis refused a write: {reason}") from None
            self.reconnects += 1
            if self.reconnects == MAX_RECONNECTS:
                break
            time.sleep(min(RECONNECT_PAUSE_CAP, 0.1 * 2 ** (self.reconnects - 1)))
        lost = f"lost the connection to Redis {self.reconnects} time(s)"
        if may_have_committed:
            raise OutcomeUnknown(f"{lost} while {self.doing}, the last time during its commit")
        if conflicts < MAX_ATTEMPTS:
            raise StoreUnavailable(f"{lost} while {self.doing}; gave up")
        also = f" (and {lost})" if self.reconnects else ""
        raise StoreUnavailable(
            f"the entries kept changing while being {self.done}: another writer (beat, or the "
            f"application) changed them under {conflicts} attempts in a row{also}"
        )


@dataclass
class _Batch:
    """One batch of changes: its transaction, committed once (see CommitOnce)."""

    client: redis.Redis
    keys: KeySpace
    changes: Sequence[Change]
    timezone_name: str
    record: dict[str, str]
    now: Callable[[], datetime]
    lock: ApplyLock
    reconnects: int = 0
    # What the last transaction sent to EXEC leaves, per entry: after a lost reply, the
    # attempt whose commit is read back is always the last one sent (see CommitOnce).
    left: dict[str, Left] = field(default_factory=dict)

    def write(self, *, last: bool) -> int:
        committing = CommitOnce("writing", "written")
        try:
            return committing.run(lambda: self._transaction(last=last), self._committed)
        finally:
            self.reconnects = committing.reconnects

    def _committed(self) -> bool:
        return batch_committed(self.client, self.keys, self.record["apply"], self.record["batch"])

    def _transaction(self, *, last: bool) -> None:
        client, keys, names = self.client, self.keys, [change.name for change in self.changes]
        watched = [keys.entry(name) for name in names]
        # The lock's renewal waits meanwhile: its PEXPIRE would abort the watched EXEC.
        with self.lock.steady(), client.pipeline(transaction=True) as pipe:
            pipe.watch(keys.statics, *watched, keys.apply_lock)  # type: ignore[no-untyped-call]
            if client.get(keys.apply_lock) != self.lock.value:
                raise ApplyLockBusy("the apply lock was lost (expired or taken) mid-apply")
            current = read_for_write(client, keys, names)
            for change in self.changes:
                _check_unchanged(change, current[change.name])
            moment = self.now()
            pipe.multi()
            left = {}
            for change in self.changes:
                state = current[change.name]
                written = _queue_change(pipe, keys, change, state, moment, self.timezone_name)
                if written is not None:
                    left[change.name] = written
            queue_append(pipe, keys, self.record)
            if last:
                pipe.zremrangebyscore(
                    keys.tombstones, "-inf", moment.timestamp() - TOMBSTONE_SECONDS
                )
            self.left = left
            pipe.execute()


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
) -> Left | None:
    """Queue the writes of ``change``; what they leave in the entry, None for a deletion."""
    key = keys.entry(change.name)
    if change.action is Action.DELETE or Repair.ORPHAN in change.repairs:
        pipe.delete(key)
        pipe.zrem(keys.schedule, key)
        if change.action is Action.DELETE or change.live_managed or current.indexed:
            # A leftover under a managed name that left the files: nothing of the entry
            # remains, so its bookkeeping goes too.
            pipe.srem(keys.managed, change.name)
            pipe.zadd(keys.tombstones, {change.name: now.timestamp()})
        return None
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
    return Left(
        fields.get("meta", current.meta_text),
        current.score if outcome.score is None else outcome.score,
    )
