"""The plan: what an apply will change, entry by entry, as plain immutable values.

A plan carries everything apply needs (the exact definition bytes to write, the policies
for meta and score) and everything a reviewer needs (field-level differences, next runs,
warnings). Apply executes it and decides nothing of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from reconciler.core.names import BEAT_BUILTIN, BEAT_BUILTIN_NAMES
from reconciler.core.ownership import MARKER_VALUE
from reconciler.core.secrets import Sensitive

if TYPE_CHECKING:
    from datetime import datetime

    from reconciler.core.beat_clock import BeatWake
    from reconciler.core.model import JsonValue


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    # Take ownership of an entry created elsewhere whose definition already matches the
    # files; one that differs too is an UPDATE with ``adopt`` set ("adopt and update").
    ADOPT = "adopt"
    DELETE = "delete"
    REPAIR = "repair"


# The actions that write the plan's definition bytes (adopting rewrites the same essence).
WRITES_DEFINITION = frozenset({Action.CREATE, Action.UPDATE, Action.ADOPT})


class Clock(str, Enum):
    """How apply sets an entry's run history (meta) and score: decided here, by the plan.

    The writer applies the policy to the entry as it re-reads it under the lock, and the
    plan's next runs come from the same arithmetic (core.scores.clock_outcome), so what a
    plan shows is what apply writes and beat then does.
    """

    FRESH = "fresh"  # new entry: last run = now, count 0; first run at the next scheduled time
    RUN_NOW = "run-now"  # new entry with run_on_create: never run, so due at beat's next tick
    # Run history kept; the score is what beat computes from the stored last run. Where no
    # usable history exists, one starts now (count kept), never an immediate surprise run.
    KEEP = "keep"
    RESTART = "restart"  # re-enabled: last run = now, count kept; next run on schedule
    UNTOUCHED = "untouched"  # neither meta nor score is written


class Repair(str, Enum):
    """Ways an entry with the right definition can still be broken in RedBeat."""

    UNSCHEDULED = "unscheduled"  # no sorted-set member: never fires
    STALE_SCORE = "stale-score"  # score later than the schedule implies, or wrongly parked
    MISSING_META = "missing-meta"  # no run history: beat would run it at once
    BAD_META = "bad-meta"  # meta beat cannot use: unreadable, extra keys, a future run
    EXPIRING = "expiring"  # a TTL on the entry key: Redis will delete it
    UNMARKED = "unmarked"  # ownership marker or index membership missing
    UNPARKED = "unparked"  # disabled but still scored: beat re-reads it every tick
    ORPHAN = "orphan"  # meta-only hash a beat tick left after the reconciler deleted it


REPAIR_TEXT = {
    Repair.UNSCHEDULED: "not in the schedule sorted set, so it never fires",
    Repair.STALE_SCORE: "its score is later than its schedule implies (runs would be missed)",
    Repair.MISSING_META: "no run history (meta), so beat would run it at once",
    Repair.BAD_META: "its run history (meta) is unusable: unreadable, holding keys that "
    "override the definition, or a last run in the future; beat would crash or misfire",
    Repair.EXPIRING: "the entry key has a TTL, so Redis will delete it",
    Repair.UNMARKED: "ownership bookkeeping is incomplete",
    Repair.UNPARKED: "disabled but still scheduled, so beat re-reads it on every tick",
    Repair.ORPHAN: "a beat tick re-created a meta-only hash after the entry was deleted",
}


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One difference inside a definition, e.g. ``schedule.hour: "3" -> "4"``."""

    path: str
    old: JsonValue | None
    new: JsonValue | None
    added: bool = False
    removed: bool = False

    def describe(self) -> str:
        before = "(none)" if self.added else json.dumps(self.old, ensure_ascii=False)
        after = "(none)" if self.removed else json.dumps(self.new, ensure_ascii=False)
        return f"{self.path}: {before} -> {after}"


@dataclass(frozen=True, slots=True)
class Change:
    name: str
    action: Action
    definition: str | None = None  # exact bytes to write (create/update)
    enabled: bool = True
    field_changes: tuple[FieldChange, ...] = ()
    enabling: bool = False  # enabled false -> true: restart the clock, no immediate run
    disabling: bool = False
    adopt: bool = False  # take ownership of an entry created elsewhere, keeping its meta
    # (set on every ADOPT, and on an UPDATE that also adopts)
    run_on_create: bool = False
    repairs: tuple[Repair, ...] = ()
    clock: Clock = Clock.UNTOUCHED
    next_runs: tuple[datetime, ...] = ()
    # next_runs[0] once beat's sleep is taken into account; None where it cannot be known.
    expected_first_run: datetime | None = None
    warnings: tuple[str, ...] = ()
    source: str | None = None
    overlays: tuple[str, ...] = ()  # where the overlay patches applied to it were written
    # What the plan read, to refuse the change if the entry moved underneath it.
    live_definition: str | None = None
    live_managed: bool = False
    marker: str = MARKER_VALUE  # the ownership marker the entry must carry
    # Where the definition (new or live) holds values from the environment: never shown,
    # masked in saved plans, which carry digests of the real bytes instead.
    sensitive: Sensitive = field(default_factory=Sensitive, repr=False)
    masked: bool = False  # read from a saved plan: its definitions' secrets are masked


class ConflictKind(str, Enum):
    UNMANAGED = "unmanaged"
    STATIC = "static"


@dataclass(frozen=True)
class Conflict:
    name: str
    kind: ConflictKind
    source: str | None = None

    @property
    def message(self) -> str:
        where = f" ({self.source})" if self.source else ""
        if self.kind is ConflictKind.STATIC:
            return (
                f"'{self.name}'{where} is a static entry of beat's own beat_schedule config "
                "(named in the :statics set); beat deletes or rewrites it on every start. "
                "Remove it from beat_schedule or from the schedule files"
            )
        if self.name in BEAT_BUILTIN_NAMES:
            return (
                f"'{self.name}'{where} exists in Redis but is not managed by the reconciler: "
                f"it is {BEAT_BUILTIN}. Remove it from the schedule files"
            )
        return (
            f"'{self.name}'{where} exists in Redis but is not managed by the reconciler "
            "(created by the application or by hand); use --adopt to take it over, keeping "
            "its run history"
        )


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = ()
    unchanged: tuple[str, ...] = ()
    pending_prune: tuple[str, ...] = ()  # managed entries gone from the files, kept
    conflicts: tuple[Conflict, ...] = ()
    prune: bool = False
    adopt: bool = False
    managed_count: int = 0  # managed entries in Redis when the plan was made
    created_at: datetime | None = None
    timezone: str = "UTC"
    key_prefix: str = "redbeat:"
    target: str = ""  # the Redis URL, password masked
    live_fingerprint: str = ""
    files_fingerprint: str = ""
    paths: tuple[str, ...] = ()
    target_name: str | None = None  # the configuration's target (--target), if one was chosen
    overlay_paths: tuple[str, ...] = ()  # the target's overlays, as given
    # Keys the digest of a saved plan (see secrets.keyed_digest); random per plan.
    digest_key: str = ""
    # Of secret_material(), when the plan is saved: the masked values, proven unchanged.
    secret_digest: str = ""
    notices: tuple[str, ...] = ()  # about the whole plan, e.g. a timezone mismatch
    beat: BeatWake | None = None  # when beat next looks at the schedule, if Redis says

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action is action)

    def secret_material(self) -> str:
        """What a saved plan masks, as one text: the bytes of every change holding values
        from the environment. Digested once per plan (scrypt is slow on purpose)."""
        rows = [
            [
                change.name,
                change.definition if change.action in WRITES_DEFINITION else None,
                change.live_definition,
            ]
            for change in self.changes
            if change.sensitive
        ]
        return json.dumps(rows, sort_keys=True)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def deletions(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.changes if c.action is Action.DELETE)

    @property
    def updates_adopting(self) -> int:
        """Updates that also take ownership ("adopt and update"), counted as updates."""
        return sum(1 for c in self.changes if c.action is Action.UPDATE and c.adopt)

    def summary(self) -> str:
        if self.conflicts:
            return self._blocked_summary()
        if not self.changes:
            if self.pending_prune:
                count = len(self.pending_prune)
                return (
                    f"No changes to apply ({len(self.unchanged)} unchanged); {count} managed "
                    f"entr{'y is' if count == 1 else 'ies are'} no longer in the files "
                    "(apply with --prune to delete)."
                )
            return (
                f"No changes. RedBeat matches the schedule files ({len(self.unchanged)} unchanged)."
            )
        return f"Plan: {self._counts()}."

    def _blocked_summary(self) -> str:
        # Never "matches": the files cannot be applied as they are, whatever else is planned.
        count = len(self.conflicts)
        text = (
            f"Plan blocked: {count} conflict{'s' if count != 1 else ''} must be resolved "
            "before anything can be applied"
        )
        if not self.changes:
            return f"{text}. Nothing else to change ({len(self.unchanged)} unchanged)."
        return f"{text}. Also planned: {self._counts()}."

    def _counts(self) -> str:
        text = (
            f"{self.count(Action.CREATE)} to create, {self.count(Action.UPDATE)} to update, "
            f"{self.count(Action.ADOPT)} to adopt, {self.count(Action.DELETE)} to delete, "
            f"{self.count(Action.REPAIR)} to repair, {len(self.unchanged)} unchanged"
        )
        also = self.updates_adopting
        if also:
            text += " (1 update also adopts)" if also == 1 else f" ({also} updates also adopt)"
        return text
