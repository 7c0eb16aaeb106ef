"""Carrying out a plan: the deletion guard, the apply lock, the writes, the history record
and the re-check that repairs what a beat tick racing the apply left behind."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import redis

from reconciler import __version__
from reconciler.beat.redbeat_codec import entry_from_definition
from reconciler.beat.redbeat_rules import RedBeatRules
from reconciler.core.defaults import DEFAULT_LOCK_TIMEOUT_SECONDS as DEFAULT_LOCK_TIMEOUT_SECONDS
from reconciler.core.defaults import DEFAULT_MAX_DELETIONS as DEFAULT_MAX_DELETIONS
from reconciler.core.defaults import DEFAULT_REPLICA_TIMEOUT_SECONDS
from reconciler.core.diff import health_repairs, repair
from reconciler.core.errors import (
    DeletionRefused,
    ReconcilerError,
    StalePlan,
    StoreUnavailable,
    UsageError,
)
from reconciler.core.plan import Action, Change, Repair
from reconciler.core.secrets import sensitive_in_marker
from reconciler.store.apply_lock import ApplyLock
from reconciler.store.connection import is_cluster
from reconciler.store.history import history_fields
from reconciler.store.reader import read_batches
from reconciler.store.replication import Replication, healthy_replicas
from reconciler.store.writer import (
    BATCH_SIZE,
    unconfirmed_batches,
    verify_unchanged,
    write_changes,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from reconciler.core.live import LiveEntry
    from reconciler.core.plan import Plan
    from reconciler.store.session import Store
    from reconciler.store.writer import Left, Unconfirmed, WriteReport

# The command a history record says the change came from.
SOURCE_APPLY = "apply"
SOURCE_DRIFT_FIX = "drift --fix"


@dataclass
class ApplyResult:
    names: dict[str, list[str]] = field(default_factory=dict)
    batches: int = 0
    attempts: int = 0
    reconnects: int = 0
    settled: dict[str, list[str]] = field(default_factory=dict)
    recheck_failed: str = ""
    replicas: int = 0  # how many replicas acknowledged each batch (0: not asked)
    unconfirmed: list[Unconfirmed] = field(default_factory=list)

    def count(self, action: Action) -> int:
        return len(self.names.get(action.value, []))

    def summary(self) -> str:
        if not any(self.names.values()):
            return "Apply complete: nothing to change."
        head = "Apply complete" if not self.unconfirmed else "Applied on the primary only"
        text = (
            f"{head}: {self.count(Action.CREATE)} created, "
            f"{self.count(Action.UPDATE)} updated, {self.count(Action.ADOPT)} adopted, "
            f"{self.count(Action.DELETE)} deleted, {self.count(Action.REPAIR)} repaired."
        )
        fixed = sum(len(names) for names in self.settled.values())
        if fixed:
            text += (
                f" Re-check after the writes repaired {fixed} entr{'y' if fixed == 1 else 'ies'}."
            )
        if self.reconnects:
            text += (
                f" The connection to Redis dropped {self.reconnects} time(s); each batch's "
                "commit was read back from its history record."
            )
        if self.recheck_failed:
            text += (
                f" The re-check after the writes could not run ({self.recheck_failed}); the "
                "next plan or drift shows anything a racing beat tick left."
            )
        if self.replicas and not self.unconfirmed:
            text += f" Every batch was acknowledged by {self.replicas} replica(s)."
        return text

    def not_replicated(self) -> str:
        """Why the apply cannot be reported durable; empty when it can."""
        if not self.unconfirmed:
            return ""
        changes = sum(batch.changes for batch in self.unconfirmed)
        return (
            f"replication not confirmed for {changes} change(s), "
            f"{unconfirmed_batches(self.unconfirmed)}. They are committed "
            "on the primary, with their history records, but Redis replicates asynchronously: "
            "a failover before the replicas have them would lose them. Check the replicas "
            "(INFO replication); `reconciler plan` shows anything lost"
        )


def check_deletions(plan: Plan, max_deletions: int | None) -> None:
    """Refuse (before anything is written) a plan that deletes too much."""
    deleting = len(plan.deletions)
    if not deleting:
        return
    limit = DEFAULT_MAX_DELETIONS if max_deletions is None else max_deletions
    if deleting > limit:
        raise DeletionRefused(
            f"the plan deletes {deleting} entries, more than the {limit} allowed; nothing was "
            f"written. If that is intended, run again with --max-deletions {deleting}"
        )
    if max_deletions is None and deleting >= plan.managed_count:
        raise DeletionRefused(
            f"the plan deletes every managed entry ({deleting}), the classic result of an "
            "emptied or missing schedules folder; nothing was written. If that is intended, "
            f"run again with --max-deletions {deleting}"
        )


@contextmanager
def holding_apply_lock(
    store: Store, timeout: float, command: str = SOURCE_APPLY
) -> Iterator[ApplyLock]:
    """Hold the apply lock; plan inside it, so a waiting apply plans after the other one.
    ``command`` is what a refused apply says holds it."""
    lock = ApplyLock(store.client, store.keys, command=command)
    lock.acquire(timeout)
    lock.start_renewing()
    try:
        yield lock
    finally:
        lock.stop_renewing()
        if lock.replicas:
            lock.release_where_replicated(lock.replicas)
        else:
            lock.release()


def apply_plan(
    store: Store,
    plan: Plan,
    *,
    max_deletions: int | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    settle_seconds: float = 0.0,
    batch_size: int = BATCH_SIZE,
    now: Callable[[], datetime] | None = None,
    lock: ApplyLock | None = None,
    actor: str | None = None,
    source: str = SOURCE_APPLY,
    min_replicas: int | None = None,
    replica_timeout: float = DEFAULT_REPLICA_TIMEOUT_SECONDS,
    verified: bool = False,
) -> ApplyResult:
    """Carry out ``plan``; takes the apply lock unless the caller already holds it.

    Run times written (a new entry's last run, a re-enabled one's) come from the Redis
    server's clock by default, the clock every beat using that Redis shares, so a skewed
    clock on the machine running the apply cannot shift anybody's first run. The history
    record names ``actor`` (default: see resolve_actor) and ``source``, the command.

    Each batch waits for ``min_replicas`` replicas to acknowledge it (default: as many as
    acknowledge when the apply starts; 0: no waiting); see ApplyResult.not_replicated.

    ``verified``: the caller holds ``lock`` and made ``plan`` under it from a read of every
    entry it changes (make_plan with ``again``, check_saved_plan), asking nobody anything
    since; those entries are then not read a second time before the first batch.
    """
    now = now or (lambda: server_time(store.client))
    check_deletions(plan, max_deletions)
    if not plan.changes:
        return ApplyResult(names={action.value: [] for action in Action})
    if lock is not None:
        lock.confirm_held()
    with nullcontext(lock) if lock is not None else holding_apply_lock(store, lock_timeout) as held:
        replication = _replication(store, min_replicas, replica_timeout)
        held.replicas = replication.replicas if replication else 0
        writing = _Writing(
            store, held, plan.timezone, batch_size, now, resolve_actor(actor), source, replication
        )
        # Every entry of every batch must still be as planned before the first write: a
        # stale entry in the last batch must not leave the earlier batches applied.
        verified = verified and lock is not None
        verify_unchanged(store.client, store.keys, plan.changes, batch_size, entries=not verified)
        fingerprints = {
            "live_fingerprint": plan.live_fingerprint,
            "files_fingerprint": plan.files_fingerprint,
        }
        report = writing.write(plan.changes, fingerprints, held.token)
        result = ApplyResult(report.names, report.batches, report.attempts, report.reconnects)
        result.replicas = replication.replicas if replication else 0
        result.unconfirmed = report.unconfirmed
        writing.recheck(plan.changes, result, report.left)
        if settle_seconds > 0:
            # One beat interval later, a tick that read the old state has written its
            # leftovers (an old-schedule score, or a meta-only hash for a deleted entry).
            time.sleep(settle_seconds)
            writing.recheck(plan.changes, result, report.left)
        return result


def _replication(store: Store, min_replicas: int | None, timeout: float) -> Replication | None:
    """How many replicas each batch waits for; refused before writing if they are not there."""
    if min_replicas == 0:
        return None
    if is_cluster(store.client):
        # WAIT counts the replicas of the node it is sent to, over the connection that
        # wrote: on a cluster that needs the slot's primary and one connection to it, which
        # redis-py's cluster client does not give. Not waited for yet (docs/redis.md).
        if min_replicas:
            raise UsageError(
                "--min-replicas is not supported on Redis Cluster yet: the apply cannot wait "
                "for the replicas there; nothing was written"
            )
        return None
    healthy = healthy_replicas(store.client)
    if min_replicas is None:
        return Replication(healthy, timeout) if healthy else None
    if healthy < min_replicas:
        raise StoreUnavailable(
            f"--min-replicas {min_replicas}, but {healthy} replica(s) of this Redis "
            "acknowledge writes now; nothing was written"
        )
    return Replication(min_replicas, timeout)


@dataclass(frozen=True)
class _Writing:
    """One apply's writes: under its lock, in batches, on one clock, by one actor."""

    store: Store
    lock: ApplyLock
    timezone_name: str
    batch_size: int
    now: Callable[[], datetime]
    actor: str  # who and which command, for the history record
    source: str
    replication: Replication | None  # None: no waiting for replicas

    def write(self, changes: Sequence[Change], extra: dict[str, str], apply_id: str) -> WriteReport:
        at = self.now().isoformat(timespec="seconds")  # when its first batch began
        revision = git_revision()  # once, not per batch: it may start git

        def history(names: dict[str, list[str]]) -> dict[str, str]:
            return history_fields(
                at=at,
                actor=self.actor,
                source=self.source,
                revision=revision,
                names={action: found for action, found in names.items() if found},
                extra={"tool_version": __version__, **extra},
            )

        return write_changes(
            self.store.client,
            self.store.keys,
            changes,
            timezone_name=self.timezone_name,
            history=history,
            now=self.now,
            batch_size=self.batch_size,
            lock=self.lock,
            apply_id=apply_id,
            replication=self.replication,
        )

    def recheck(
        self, touched: tuple[Change, ...], result: ApplyResult, left: Mapping[str, Left]
    ) -> None:
        """Repair what a racing tick left (see _repairs) into ``result.settled``; a failure
        is noted in ``result``, never raised: everything planned has committed already, and
        what is left the next plan (or drift) shows."""
        try:
            repairs = self._repairs(touched, left)
            if repairs:
                apply_id = f"{self.lock.token}-{uuid.uuid4().hex[:8]}"
                report = self.write(repairs, {"phase": "re-check"}, apply_id)
                _merge(result.settled, {a: names for a, names in report.names.items() if names})
            result.recheck_failed = ""
        except StalePlan:
            pass  # changed by someone else since the re-read: the next plan shows it
        except (ReconcilerError, redis.RedisError) as exc:
            result.recheck_failed = str(exc) or type(exc).__name__

    def _repairs(self, touched: tuple[Change, ...], left: Mapping[str, Left]) -> list[Change]:
        """Re-read what the apply touched and repair what a racing beat tick left behind.

        Best effort by design: an entry someone else changed meanwhile is left for the next
        plan to show, never overwritten, and a failed repair does not fail the apply. An
        entry that reads exactly as its batch left it (``left``) was touched by nobody
        since, so no tick raced it: its health is that of what the plan decided, and is
        not worked out again (at 100,000 entries written, seconds of Celery arithmetic).
        """
        store = self.store
        repairs: list[Change] = []
        rules = RedBeatRules(self.timezone_name)
        names = [change.name for change in touched]
        batches = read_batches(store.client, store.keys, names, self.batch_size)
        moment = self.now()  # after the writes: one clock for the whole re-check
        for start, current in zip(range(0, len(touched), self.batch_size), batches, strict=True):
            batch = touched[start : start + self.batch_size]
            for change in batch:
                live = current[change.name]
                if change.action is Action.DELETE or Repair.ORPHAN in change.repairs:
                    if live.exists and live.definition_text is None and not live.managed:
                        # A tick that read the entry before the delete re-created its meta.
                        orphan = Change(
                            change.name,
                            Action.REPAIR,
                            repairs=(Repair.ORPHAN,),
                            live_definition=None,
                        )
                        repairs.append(orphan)
                    continue
                written = change.definition or change.live_definition
                if written is None or live.definition_text != written:
                    continue  # changed by someone else since: the next plan will show it
                if _as_left(live, change, left.get(change.name)):
                    continue
                entry = entry_from_definition(change.name, json.loads(written))
                # The marker to keep is the one the change wrote (it lists sensitive paths).
                sensitive = tuple(sensitive_in_marker(change.marker).items())
                entry = replace(entry, sensitive=sensitive)
                found = health_repairs(entry, live, moment, rules)
                if found:
                    repairs.append(
                        repair(
                            change.name,
                            found,
                            enabled=entry.enabled,
                            live_definition=live.definition_text,
                            live_managed=live.managed,
                            marker=change.marker,
                        )
                    )
        return repairs


def _as_left(live: LiveEntry, change: Change, left: Left | None) -> bool:
    """Whether ``live`` is still exactly what the apply's batch wrote for ``change``."""
    return (
        left is not None
        and (live.meta_text, live.score) == left
        and live.marker == change.marker
        and live.indexed
        and not live.static
        and live.ttl_ms < 0
    )


def server_time(client: redis.Redis) -> datetime:
    seconds, microseconds = client.time()
    return datetime.fromtimestamp(seconds + microseconds / 1_000_000, timezone.utc)


def _merge(into: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    for action, names in more.items():
        into.setdefault(action, []).extend(names)


def resolve_actor(
    given: str | None = None,
    environ: Mapping[str, str] | None = None,
    login_name: Callable[[], str] = getpass.getuser,
) -> str:
    """Who applies: ``given`` (--actor), the CI's user, $USER, else the login name, else
    the uid (a container often has no $USER, and its uid no passwd entry)."""
    if given:
        return given
    environ = os.environ if environ is None else environ
    for variable in ("RECONCILER_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER"):
        if environ.get(variable):
            return environ[variable]
    try:
        return login_name()  # $LOGNAME, else the passwd entry of the uid
    except (OSError, KeyError):  # KeyError before Python 3.13: no passwd entry
        return f"uid {os.getuid()}"


def git_revision() -> str:
    for variable in ("RECONCILER_REVISION", "GITHUB_SHA", "CI_COMMIT_SHA"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""
