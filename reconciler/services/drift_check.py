"""One drift check against the store, and its optional healing (``drift --fix``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from reconciler.beat.redbeat_rules import RedBeatRules
from reconciler.core.drift_findings import (
    DEFAULT_OVERDUE_GRACE,
    DriftFix,
    DriftInputs,
    DriftReport,
    FixedEntry,
    Kind,
    find_drift,
)
from reconciler.core.plan import Action, Change, Repair
from reconciler.services.apply import (
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    SOURCE_DRIFT_FIX,
    apply_plan,
    holding_apply_lock,
)
from reconciler.services.planning import make_plan
from reconciler.store.reader import read_live_state
from reconciler.store.scanner import scan_entries, server_facts

if TYPE_CHECKING:
    from reconciler.core.beat_clock import BeatSettings
    from reconciler.core.drift_findings import DriftFinding
    from reconciler.core.live import LiveState
    from reconciler.core.plan import Plan
    from reconciler.load.desired_state import LoadResult
    from reconciler.services.apply import ApplyResult
    from reconciler.store.session import Store


def check_drift(
    store: Store,
    loaded: LoadResult,
    *,
    timezone_name: str = "UTC",
    overdue_grace: timedelta = DEFAULT_OVERDUE_GRACE,
    beat: BeatSettings,
) -> DriftReport:
    """Read everything drift needs (pipelined, SCAN for the sweep) and judge it."""
    started = time.perf_counter()
    moment = datetime.now(timezone.utc)
    beat_lock_key = None
    if beat.lock:
        custom = beat.lock_key
        beat_lock_key = store.keys.custom_beat_lock(custom) if custom else store.keys.beat_lock
    names = [entry.name for entry in loaded.entries]
    live = read_live_state(store.client, store.keys, names)
    # Tombstoned names are scanned like strangers: an application may have re-created one.
    scanned, dangling = scan_entries(store.client, store.keys, set(names) | live.managed_names)
    server = server_facts(store.client, store.keys, beat_lock_key=beat_lock_key)
    findings = find_drift(
        loaded.entries,
        DriftInputs(live, tuple(scanned), tuple(dangling), server),
        now=moment,
        rules=RedBeatRules(timezone_name),
        overdue_grace=overdue_grace,
        beat_timing=beat.timing,
    )
    return DriftReport(
        findings=tuple(findings),
        checked_at=moment,
        managed_count=len(live.managed_names),
        unmanaged_count=sum(1 for finding in findings if finding.kind is Kind.UNMANAGED),
        duration_seconds=time.perf_counter() - started,
        target=store.target,
        key_prefix=store.keys.prefix,
    )


@dataclass(frozen=True)
class FixOutcome:
    """What drift --fix did: apply's result, and the account the report gives of it."""

    result: ApplyResult
    fix: DriftFix


def fix_drift(
    store: Store,
    loaded: LoadResult,
    report: DriftReport,
    *,
    timezone_name: str = "UTC",
    actor: str | None = None,
) -> FixOutcome:
    """Converge what the reconciler owns, through the same locked, atomic apply path.

    Never prunes (deleting is a decision for 'apply --prune' and its guard), never touches
    unmanaged entries or beat's lock. Meta-only orphans are removed when their name is one
    the reconciler owns.
    """
    with holding_apply_lock(store, DEFAULT_LOCK_TIMEOUT_SECONDS, SOURCE_DRIFT_FIX) as lock:
        # Planned under the lock, as apply does; conflicting names are left as findings.
        plan = make_plan(store, loaded, prune=False, adopt=False, timezone_name=timezone_name)
        owned = {entry.name for entry in loaded.entries}
        live = read_live_state(store.client, store.keys, sorted(owned))
        fixing = _with_leftovers(plan, report, live, owned)
        result = apply_plan(store, fixing, lock=lock, actor=actor, source=SOURCE_DRIFT_FIX)
    return FixOutcome(result, _account(report.findings, fixing.changes, result))


def _account(
    found: tuple[DriftFinding, ...], changes: tuple[Change, ...], result: ApplyResult
) -> DriftFix:
    """Entry by entry, what was written (apply writes exactly the plan, or raises)."""
    planned = {change.name: change for change in changes}
    written = [
        FixedEntry(name, Action(action), planned[name].repairs if name in planned else ())
        for action, names in result.names.items()
        for name in names
    ]
    written += [
        FixedEntry(name, Action(action), rechecked=True)
        for action, names in result.settled.items()
        for name in names
    ]
    return DriftFix(found, tuple(written))


def _with_leftovers(plan: Plan, report: DriftReport, live: LiveState, owned: set[str]) -> Plan:
    # Leftovers under names the reconciler manages: a meta-only hash, or a sorted-set
    # member whose hash is gone (names it deleted are handled by the plan itself).
    orphans = [
        Change(
            finding.name,
            Action.REPAIR,
            repairs=(Repair.ORPHAN,),
            live_definition=None,
            live_managed=live.get(finding.name).managed,  # a meta-only hash has no marker
        )
        for finding in report.findings
        if finding.kind in (Kind.ORPHAN, Kind.DANGLING)
        and finding.name is not None
        and finding.name in live.managed_names
        and finding.name not in owned
    ]
    return replace(plan, changes=plan.changes + tuple(orphans))
