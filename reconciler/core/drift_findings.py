"""Drift and schedule health: what Redis holds against the files, and what keeps beat from
running entries on time. Pure: every fact was read before; findings are plain values.

Runtime fields (last run, run counts) are never config drift; they only feed health
findings (stale score, overdue), as the store's essences exclude them from comparison.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from functools import cache, partial
from typing import TYPE_CHECKING

from reconciler.core.defaults import DEFAULT_OVERDUE_GRACE as DEFAULT_OVERDUE_GRACE
from reconciler.core.definitions import essence, parse_definition
from reconciler.core.diff import (
    field_changes,
    health_repairs,
    recorded_foreign_zones,
    shown_member,
    usable_meta,
)
from reconciler.core.model import CronSchedule
from reconciler.core.names import BEAT_BUILTIN, BEAT_BUILTIN_NAMES
from reconciler.core.plan import Action, Repair
from reconciler.core.scores import next_due, shortest_period
from reconciler.core.secrets import Sensitive

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime, timedelta

    from reconciler.core.beat_clock import BeatTiming
    from reconciler.core.beat_rules import BeatRules
    from reconciler.core.live import LiveEntry, LiveState
    from reconciler.core.model import DesiredEntry


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ("info", "warning", "error").index(self.value)


class Kind(str, Enum):
    MISSING = "missing"
    MODIFIED = "modified"
    UNEXPECTED = "unexpected"
    CONFLICT = "conflict"
    UNSCHEDULED = "unscheduled"
    DANGLING = "dangling"
    ORPHAN = "orphan"
    STALE_SCORE = "stale-score"
    NO_HISTORY = "no-history"
    BAD_META = "bad-meta"
    EXPIRING = "expiring"
    UNMARKED = "unmarked"
    OVERDUE = "overdue"
    BEAT_NOT_RUNNING = "beat-not-running"
    STATIC_OVERLAP = "static-overlap"
    TIMEZONE_MISMATCH = "timezone-mismatch"
    EVICTION_RISK = "eviction-risk"
    SLOW_PICKUP = "slow-pickup"
    UNMANAGED = "unmanaged"


_REPAIR_FINDINGS = {
    Repair.UNSCHEDULED: (
        Kind.UNSCHEDULED,
        Severity.ERROR,
        "the hash exists but has no member in the schedule sorted set: it never fires",
    ),
    Repair.STALE_SCORE: (
        Kind.STALE_SCORE,
        Severity.ERROR,
        "its score disagrees with its schedule and last run (too late, or parked at -1): "
        "runs will be missed",
    ),
    Repair.MISSING_META: (
        Kind.NO_HISTORY,
        Severity.WARNING,
        "no run history (meta): beat will run it at its next tick, whatever its schedule",
    ),
    Repair.EXPIRING: (
        Kind.EXPIRING,
        Severity.ERROR,
        "the entry key has a TTL: Redis will delete it",
    ),
    Repair.BAD_META: (
        Kind.BAD_META,
        Severity.ERROR,
        "its run history (meta) is unusable: unreadable, holding keys that override the "
        "definition (beat merges meta into it), or a last run in the future; beat crashes or "
        "misfires on it",
    ),
    Repair.UNMARKED: (
        Kind.UNMARKED,
        Severity.WARNING,
        "the ownership marker or the managed index entry is missing",
    ),
    Repair.UNPARKED: (
        Kind.STALE_SCORE,
        Severity.WARNING,
        "disabled but still scheduled (score not -1): beat re-reads it on every tick",
    ),
}

# Which of these apply (or drift --fix) converges: every health repair, and these.
FIXABLE = frozenset({Kind.MISSING, Kind.MODIFIED, Kind.ORPHAN, Kind.DANGLING}).union(
    kind for kind, _, _ in _REPAIR_FINDINGS.values()
)


@dataclass(frozen=True)
class DriftFinding:
    kind: Kind
    severity: Severity
    name: str | None
    explanation: str
    action: str
    details: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "kind": self.kind.value,
            "severity": self.severity.value,
            "details": list(self.details),
        }

    @property
    def key(self) -> tuple[str, str]:
        """Identity for alert de-duplication: the same problem on the same entry (or, for
        server-wide findings, the same situation: eviction policy vs persistence)."""
        return (self.kind.value, self.name if self.name is not None else self.explanation)


@dataclass(frozen=True)
class ScannedKey:
    """An entry-like key found by SCAN that no desired or managed name explains."""

    name: str
    has_definition: bool
    has_meta: bool


@dataclass(frozen=True)
class ServerFacts:
    beat_lock_checked: bool = True
    beat_lock_ttl_ms: int = -2  # PTTL: -2 no key, -1 no TTL
    maxmemory_policy: str | None = None
    save: str | None = None
    appendonly: str | None = None
    config_error: str | None = None


@dataclass(frozen=True)
class DriftInputs:
    live: LiveState
    scanned: tuple[ScannedKey, ...] = ()
    dangling: tuple[str, ...] = ()  # sorted-set members whose hash is gone
    server: ServerFacts = field(default_factory=ServerFacts)


@dataclass(frozen=True)
class FixedEntry:
    """One entry drift --fix wrote, and how."""

    name: str
    action: Action
    repairs: tuple[Repair, ...] = ()  # what was wrong, for a repair
    rechecked: bool = False  # repaired by the re-check after the writes (a racing beat tick)


# How a fix reads, action by action, in the words and order of apply's summary.
FIX_VERBS = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.ADOPT: "adopted",
    Action.DELETE: "deleted",
    Action.REPAIR: "repaired",
}


@dataclass(frozen=True)
class DriftFix:
    """What drift --fix found (the check before it) and wrote; the report it belongs to
    is the check after it, i.e. what is left."""

    found: tuple[DriftFinding, ...]
    written: tuple[FixedEntry, ...] = ()

    def counts(self) -> dict[Action, int]:
        """Entries written by each action, leaving out the re-check's, as apply counts them."""
        planned = [entry.action for entry in self.written if not entry.rechecked]
        return {action: planned.count(action) for action in FIX_VERBS}

    def summary(self) -> str:
        if not self.written:
            return "Nothing for drift --fix to repair."
        counts = ", ".join(
            f"{count} {FIX_VERBS[action]}" for action, count in self.counts().items()
        )
        text = f"Fixed by drift --fix: {counts}."
        rechecked = sum(1 for entry in self.written if entry.rechecked)
        if rechecked:
            text += f" The re-check after the writes repaired {rechecked} more."
        return text


@dataclass(frozen=True)
class DriftReport:
    findings: tuple[DriftFinding, ...]
    checked_at: datetime
    managed_count: int = 0
    unmanaged_count: int = 0
    duration_seconds: float = 0.0
    target: str = ""
    key_prefix: str = ""
    fix: DriftFix | None = None  # with --fix: what it found and wrote before this check

    @property
    def alerting(self) -> tuple[DriftFinding, ...]:
        return tuple(f for f in self.findings if f.severity.rank >= Severity.WARNING.rank)

    def summary(self) -> str:
        # After a fix, "No drift" alone would hide that there was drift a moment ago; drift
        # left that the fix could not repair says so too.
        fix = self.fix
        fixed = f" {fix.summary()}" if fix is not None and (fix.written or self.alerting) else ""
        if not self.alerting:
            info = len(self.findings)
            extra = f" ({info} informational note{'s' if info != 1 else ''})" if info else ""
            return f"No drift: RedBeat matches the schedule files and is healthy{extra}.{fixed}"
        errors = sum(1 for f in self.findings if f.severity is Severity.ERROR)
        warnings = sum(1 for f in self.findings if f.severity is Severity.WARNING)
        return (
            f"Drift: {errors} error(s), {warnings} warning(s) in "
            f"{self.key_prefix or 'RedBeat'}.{fixed}"
        )


def find_drift(
    desired: Sequence[DesiredEntry],
    inputs: DriftInputs,
    *,
    now: datetime,
    rules: BeatRules,
    overdue_grace: timedelta = DEFAULT_OVERDUE_GRACE,
    beat_timing: BeatTiming | None = None,
) -> list[DriftFinding]:
    """``beat_timing``, where given, is checked against the shortest schedule."""
    findings: list[DriftFinding] = []
    wanted = {entry.name for entry in desired}
    for entry in sorted(desired, key=lambda item: item.name):
        findings.extend(
            _entry_findings(entry, inputs.live.get(entry.name), now, rules, overdue_grace)
        )
    findings.extend(_unwanted_findings(inputs, wanted))
    findings.extend(_server_findings(inputs.server, bool(wanted or inputs.live.managed_names)))
    if beat_timing is not None:
        findings.extend(_slow_pickup(desired, beat_timing, now, rules))
    zones = recorded_foreign_zones(inputs.live, now, rules)
    if zones:
        findings.append(
            DriftFinding(
                Kind.TIMEZONE_MISMATCH,
                Severity.ERROR,
                None,
                f"beat records its runs in {', '.join(zones)} but this check uses "
                f"{rules.timezone_name}; crontabs run in beat's timezone, so health findings and "
                "scores written from here are wrong",
                "pass beat's Celery timezone with --timezone (or REDBEAT_TIMEZONE)",
            )
        )
    return findings


def _unwanted_findings(inputs: DriftInputs, wanted: set[str]) -> Iterator[DriftFinding]:
    """Keys and members under names the files do not hold."""
    live = inputs.live
    ours = live.deleted_names | live.managed_names
    for name, problem in live.odd_index_names:
        yield DriftFinding(
            Kind.UNMARKED,
            Severity.WARNING,
            shown_member(name),
            f"the reconciler's managed index lists a name no entry can have ({problem}); "
            "skipped: nothing under it is read, written or deleted",
            "take it out of the managed index (SREM <prefix>:reconciler:managed, the "
            "reconciler's own key); leave the key it names alone",
        )
    for name in sorted(live.managed_names - wanted):
        current = live.get(name)
        if current.static:
            yield _static_overlap(name)
        elif current.index_only:
            yield DriftFinding(
                Kind.UNMARKED,
                Severity.WARNING,
                name,
                "in the reconciler's managed index, but its hash does not carry the ownership "
                "marker (re-created or rewritten outside the reconciler): not the "
                "reconciler's, so 'apply --prune' leaves it",
                "to manage it, put it in the files and run 'reconciler apply --adopt'; "
                "otherwise take it out of the managed index (SREM "
                "<prefix>:reconciler:managed, the reconciler's own key)",
            )
        elif current.history_only:
            yield DriftFinding(
                Kind.ORPHAN,
                Severity.WARNING,
                name,
                "a hash holding only run history (meta) and no definition, under a name "
                "the reconciler manages but the files no longer hold",
                "drift --fix removes it (or 'reconciler apply --prune')",
            )
        else:
            yield DriftFinding(
                Kind.UNEXPECTED,
                Severity.WARNING,
                name,
                "managed by the reconciler but no longer in the schedule files; beat still runs it"
                if current.definition_text
                else "in the managed index, but gone",
                "run 'reconciler apply --prune' to delete it, or put it back in the files",
            )
    orphans = {item.name for item in inputs.scanned if item.has_meta and not item.has_definition}
    orphans |= {name for name in live.deleted_names if live.get(name).history_only}
    for name in sorted(orphans - wanted):
        yield DriftFinding(
            Kind.ORPHAN,
            Severity.WARNING,
            name,
            "a hash holding only run history (meta) and no definition"
            + (
                ", left by a beat tick racing the reconciler's delete"
                if name in ours
                else ", typically left by a beat tick racing a delete"
            ),
            "run 'reconciler apply' (or drift --fix)"
            if name in ours
            else "not the reconciler's to remove: beat never runs it; ask whoever deleted "
            "the entry",
        )
    for scanned in inputs.scanned:
        if scanned.name in wanted or not scanned.has_definition:
            continue
        builtin = scanned.name in BEAT_BUILTIN_NAMES
        yield DriftFinding(
            Kind.UNMANAGED,
            Severity.INFO,
            scanned.name,
            BEAT_BUILTIN
            if builtin
            else "an entry created outside the reconciler (by the application or by hand)",
            "nothing to do; it is beat's, not one to export or adopt"
            if builtin
            else "nothing to do; 'reconciler export' and 'apply --adopt' can bring it in",
        )
    for name in inputs.dangling:
        if name in wanted:
            continue  # reported as missing: apply re-creates the entry and its member
        yield DriftFinding(
            Kind.DANGLING,
            Severity.WARNING,
            name,
            "a member of the schedule sorted set whose entry hash is gone; beat logs an "
            "error and drops it when it comes due",
            "run 'reconciler apply' (or drift --fix)"
            if name in ours
            else "not the reconciler's to remove: beat drops it when it comes due",
        )


def _static_overlap(name: str) -> DriftFinding:
    return DriftFinding(
        Kind.STATIC_OVERLAP,
        Severity.ERROR,
        name,
        "also named in beat's :statics set: beat's own beat_schedule config defines it, "
        "and beat rewrites or deletes it on every start; every apply refuses it",
        "remove it from beat_schedule or from the schedule files (and the managed index)",
    )


def _entry_findings(
    entry: DesiredEntry,
    current: LiveEntry,
    now: datetime,
    rules: BeatRules,
    overdue_grace: timedelta,
) -> Iterator[DriftFinding]:
    if current.static:
        yield _static_overlap(entry.name)
    if current.definition_text is None:
        yield DriftFinding(
            Kind.MISSING,
            Severity.ERROR,
            entry.name,
            "in the schedule files but not in Redis (never applied, evicted, deleted or "
            "cleared by someone): beat does not run it",
            "run 'reconciler apply' (or drift --fix)",
        )
        return
    if not current.managed:
        yield DriftFinding(
            Kind.CONFLICT,
            Severity.ERROR,
            entry.name,
            "in the reconciler's managed index, but its hash does not carry the ownership "
            "marker (re-created or rewritten outside the reconciler), so apply refuses it"
            if current.indexed
            else "exists in Redis but is not managed by the reconciler, so apply refuses it",
            "remove it from the schedule files: it is " + BEAT_BUILTIN
            if entry.name in BEAT_BUILTIN_NAMES
            else "run 'reconciler apply --adopt' to take it over, keeping its run history",
        )
        return
    text = rules.definition(entry)
    # The same bytes are the same definition (most entries): nothing to parse or walk.
    if current.definition_text != text:
        stored = parse_definition(current.definition_text)
        differences = (
            field_changes(essence(stored), essence(json.loads(text)), Sensitive.of(entry, current))
            if stored is not None
            else ()
        )
        if stored is None or differences:
            yield DriftFinding(
                Kind.MODIFIED,
                Severity.ERROR,
                entry.name,
                "its definition in Redis differs from the schedule files (edited outside the "
                "reconciler)",
                "run 'reconciler apply' to restore it (or drift --fix)",
                tuple(item.describe() for item in differences) or ("unreadable definition",),
            )
            return
    # The right definition: what keeps it from running on time.
    for repair in health_repairs(entry, current, now, rules):
        kind, severity, explanation = _REPAIR_FINDINGS[repair]
        yield DriftFinding(
            kind, severity, entry.name, explanation, "run 'reconciler apply' (or drift --fix)"
        )
    meta = usable_meta(current.meta_text, now, rules)
    if entry.enabled and meta is not None and meta.last_run_at is not None:
        due = next_due(entry.schedule, meta.last_run_at, rules)
        if due is not None and due + overdue_grace < now:
            yield DriftFinding(
                Kind.OVERDUE,
                Severity.ERROR,
                entry.name,
                f"last ran at {meta.last_run_at.isoformat(timespec='seconds')}; a run was "
                f"due at {due.isoformat(timespec='seconds')} and has not happened",
                "check that beat is running and can reach the broker",
            )


def _slow_pickup(
    desired: Sequence[DesiredEntry], timing: BeatTiming, now: datetime, rules: BeatRules
) -> Iterator[DriftFinding]:
    """Beat sleeps up to its loop interval: an entry applied or moved to run sooner than
    beat's next wake-up starts late. Worth a warning when that sleep is longer than the
    shortest schedule beat runs (a change to that entry can miss runs)."""
    loop = timing.max_loop_interval
    period_of = cache(partial(shortest_period, now=now, rules=rules))  # entries share schedules
    shortest: tuple[float, str] | None = None
    for entry in desired:
        if not entry.enabled or (isinstance(entry.schedule, CronSchedule) and loop <= 60):
            continue  # no crontab fires more often than once a minute
        period = period_of(entry.schedule)
        if period is not None and period < loop and (shortest is None or period < shortest[0]):
            shortest = (period, entry.name)
    if shortest is None:
        return
    period, name = shortest
    yield DriftFinding(
        Kind.SLOW_PICKUP,
        Severity.INFO if timing.assumed else Severity.WARNING,
        name,
        f"beat sleeps up to {loop:g} s between ticks (beat_max_loop_interval, "
        f"{timing.source}) but '{name}' runs every {period:g} s: an entry applied or "
        "changed to run sooner than beat's next wake-up starts late, and a missed cron "
        "slot then runs once as catch-up",
        f"set beat_max_loop_interval to {period:g} s or less in beat's Celery "
        "configuration (or start beat with --max-interval)",
    )


def _server_findings(server: ServerFacts, has_entries: bool) -> Iterator[DriftFinding]:
    if server.beat_lock_checked and has_entries and server.beat_lock_ttl_ms < 0:
        yield DriftFinding(
            Kind.BEAT_NOT_RUNNING,
            Severity.ERROR,
            None,
            "beat's lock key is absent (or has no TTL): no beat holds it, so nothing runs",
            "start celery beat with redbeat.RedBeatScheduler (or pass --no-beat-lock if "
            "beat runs without a lock)",
        )
    if server.config_error:
        yield DriftFinding(
            Kind.EVICTION_RISK,
            Severity.INFO,
            None,
            f"could not read Redis's configuration ({server.config_error}); eviction "
            "policy and persistence were not checked",
            "check maxmemory-policy and persistence with your Redis provider",
        )
        return
    if server.maxmemory_policy and server.maxmemory_policy.startswith("allkeys-"):
        yield DriftFinding(
            Kind.EVICTION_RISK,
            Severity.WARNING,
            None,
            f"maxmemory-policy is {server.maxmemory_policy}: under memory pressure Redis "
            "may evict schedule keys, and their runs are lost without an error",
            "use maxmemory-policy noeviction (or a volatile-* policy) for beat's Redis",
        )
    if server.save == "" and server.appendonly == "no":
        yield DriftFinding(
            Kind.EVICTION_RISK,
            Severity.WARNING,
            None,
            "persistence is off (no RDB save points, no append-only file): a Redis "
            "restart loses every schedule",
            "enable RDB snapshots or the append-only file (then 'reconciler apply' "
            "restores the entries after a loss anyway)",
        )
