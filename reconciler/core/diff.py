"""The core of plan: desired entries against live RedBeat state, to a Plan.

No I/O happens here: the live state was read before, the plan is written after. Runtime
fields (last run, run count, score) are never config differences; they only decide which
repairs an otherwise unchanged entry needs, and the score policy apply will follow.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from reconciler.core.definitions import essence, parse_definition
from reconciler.core.model import CronSchedule
from reconciler.core.plan import (
    Action,
    Change,
    Clock,
    Conflict,
    ConflictKind,
    FieldChange,
    Plan,
    Repair,
)
from reconciler.core.scores import (
    FUTURE_RUN_TOLERANCE,
    clock_outcome,
    expected_score,
    foreign_zones,
    next_due,
    repair_clock,
    score_is_wrong,
    score_of,
)
from reconciler.core.secrets import JsonPath, Sensitive, entry_marker

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from reconciler.core.beat_clock import BeatWake
    from reconciler.core.beat_rules import BeatRules
    from reconciler.core.live import LiveEntry, LiveMeta, LiveState
    from reconciler.core.model import DesiredEntry

NEXT_RUNS_SHOWN = 3
# Beat's tick and our estimate of it are a second or two apart: no warning for that.
LATE_START_SLACK = timedelta(seconds=2)


def compute_plan(
    desired: Sequence[DesiredEntry],
    live: LiveState,
    *,
    now: datetime,
    rules: BeatRules,
    prune: bool = False,
    adopt: bool = False,
    beat: BeatWake | None = None,
) -> Plan:
    """``beat``, where known, dates each change's first run by beat's sleep."""
    changes: list[Change] = []
    unchanged: list[str] = []
    conflicts: list[Conflict] = []
    for entry in sorted(desired, key=lambda item: item.name):
        current = live.get(entry.name)
        source = str(entry.source) if entry.source else None
        if current.static:
            conflicts.append(Conflict(entry.name, ConflictKind.STATIC, source))
            continue
        if current.definition_text is not None and not current.managed and not adopt:
            conflicts.append(Conflict(entry.name, ConflictKind.UNMANAGED, source))
            continue
        change = _entry_change(entry, current, now, rules, beat)
        if change is None:
            unchanged.append(entry.name)
        else:
            changes.append(change)

    wanted = {entry.name for entry in desired}
    gone = []
    notices = list(index_notices(live))
    for name in sorted(live.managed_names - wanted):
        if live.get(name).static:
            # Beat's own config claims it too; deleting would fight beat, keeping it is a lie.
            conflicts.append(Conflict(name, ConflictKind.STATIC))
        elif live.get(name).index_only:
            notices.append(
                f"'{name}' is in the reconciler's managed index, but its hash does not carry "
                "the ownership marker: it is not the reconciler's, so it is never deleted "
                "(see drift)"
            )
        else:
            gone.append(name)
    for name in sorted(live.deleted_names - wanted):
        leftover = live.get(name)
        member_only = not leftover.exists and leftover.score is not None
        if (leftover.history_only or member_only) and not (leftover.managed or leftover.indexed):
            changes.append(repair(name, (Repair.ORPHAN,)))
    if prune:
        changes.extend(_deletion(name, live.get(name)) for name in gone)
    return Plan(
        notices=(*notices, *_timezone_notices(live, rules, now)),
        changes=tuple(changes),
        unchanged=tuple(unchanged),
        pending_prune=() if prune else tuple(gone),
        conflicts=tuple(conflicts),
        prune=prune,
        adopt=adopt,
        managed_count=len(live.managed_names),
        created_at=now,
        timezone=rules.timezone_name,
        beat=beat,
    )


def _deletion(name: str, current: LiveEntry) -> Change:
    return Change(
        name,
        Action.DELETE,
        live_definition=current.definition_text,
        live_managed=current.managed,  # a leftover meta-only hash carries no marker
        sensitive=Sensitive.of_live(current),
    )


def _entry_change(
    entry: DesiredEntry,
    current: LiveEntry,
    now: datetime,
    rules: BeatRules,
    beat: BeatWake | None = None,
) -> Change | None:
    text = rules.definition(entry)
    sensitive = Sensitive.of(entry, current)

    def change(
        action: Action, clock: Clock, warnings: tuple[str, ...] = (), **fields: Any
    ) -> Change:
        """A change of this entry, showing the runs that follow from the score apply writes."""
        meta = (
            None
            if clock in (Clock.FRESH, Clock.RUN_NOW)
            else usable_meta(current.meta_text, now, rules)
        )
        runs = clock_outcome(
            clock,
            entry.schedule,
            entry.enabled,
            meta,
            now,
            rules,
            NEXT_RUNS_SHOWN,
            unusable_history=bool(current.meta_text) and meta is None,
        ).runs
        first = beat.first_run(runs[0]) if beat is not None and runs else None
        return Change(
            entry.name,
            action,
            enabled=entry.enabled,
            clock=clock,
            next_runs=runs,
            expected_first_run=first,
            warnings=warnings + _late_start_warning(entry, clock, meta, runs, first, beat, rules),
            source=str(entry.source) if entry.source else None,
            overlays=tuple(str(location) for location in entry.overlay_sources),
            live_definition=current.definition_text,
            live_managed=current.managed,
            marker=entry_marker(entry),
            sensitive=sensitive,
            **fields,
        )

    if current.definition_text is None:
        run_now = entry.run_on_create and entry.enabled
        return change(
            Action.CREATE,
            Clock.RUN_NOW if run_now else Clock.FRESH,
            ("runs once at beat's next tick (run_on_create), then on schedule",) if run_now else (),
            definition=text,
            run_on_create=entry.run_on_create,
        )
    same_bytes = current.definition_text == text
    adopting = not current.managed
    # The same bytes are the same essence: nothing to parse unless it is being adopted.
    stored = None if same_bytes and not adopting else parse_definition(current.definition_text)
    if same_bytes:
        differences: tuple[FieldChange, ...] = ()
    elif stored is None:
        differences = (FieldChange("definition", "(not a JSON object)", "(rewritten)"),)
    else:
        differences = field_changes(essence(stored), essence(json.loads(text)), sensitive)
    if differences or adopting:
        was_enabled = bool(stored.get("enabled", True)) if stored is not None else True
        enabling = entry.enabled and not was_enabled
        return change(
            # Adopting alone rewrites the same essence: its own action, not an update.
            Action.UPDATE if differences else Action.ADOPT,
            # Re-enabled: restart the clock (never an immediate run); otherwise the run
            # history is kept (or started, where none is usable) and the score follows.
            Clock.RESTART if enabling else Clock.KEEP,
            _catch_up_warning(entry, rules.meta(current.meta_text), enabling, now, rules),
            definition=text,
            field_changes=differences,
            enabling=enabling,
            disabling=was_enabled and not entry.enabled,
            adopt=adopting,
        )
    repairs = health_repairs(entry, current, now, rules)
    if not repairs:
        return None
    return change(Action.REPAIR, repair_clock(repairs), repairs=repairs)


def repair(name: str, repairs: tuple[Repair, ...], **fields: Any) -> Change:
    """A repair change, with the clock policy its repairs call for."""
    return Change(name, Action.REPAIR, repairs=repairs, clock=repair_clock(repairs), **fields)


def _late_start_warning(
    entry: DesiredEntry,
    clock: Clock,
    history: LiveMeta | None,
    runs: tuple[datetime, ...],
    first: datetime | None,
    beat: BeatWake | None,
    rules: BeatRules,
) -> tuple[str, ...]:
    """Say when beat's sleep, not the schedule, decides the first run, what follows, and
    what helps. Beat runs the entry once when it wakes, and counts on from that run."""
    if beat is None or first is None or not runs or first <= runs[0] + LATE_START_SLACK:
        return ()
    # Only a scheduled slot can be missed: not the run of an entry that never ran.
    slot = clock in (Clock.FRESH, Clock.RESTART) or (
        history is not None and history.last_run_at is not None
    )
    catch_up = (
        "; the missed cron slot runs once then, as catch-up"
        if slot and isinstance(entry.schedule, CronSchedule)
        else ""
    )
    following = next_due(entry.schedule, first, rules)
    then = f", and next at {_iso(following)}" if following else ""
    return (
        f"beat sleeps until about {_iso(first)}, so the first run comes then, not at "
        f"{_iso(runs[0])}{catch_up}{then}. A shorter beat_max_loop_interval (now "
        f"{beat.timing.max_loop_interval:g} s, {beat.timing.source}) makes beat pick changes "
        "up sooner",
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def health_repairs(
    entry: DesiredEntry, current: LiveEntry, now: datetime, rules: BeatRules
) -> tuple[Repair, ...]:
    """What keeps an entry with the right definition from firing as its schedule says."""
    repairs: list[Repair] = []
    meta = usable_meta(current.meta_text, now, rules)
    if current.meta_text and meta is None:
        repairs.append(Repair.BAD_META)
    elif entry.enabled and meta is None:
        repairs.append(Repair.MISSING_META)
    if current.score is None:
        if entry.enabled:
            repairs.append(Repair.UNSCHEDULED)
        # A disabled entry without a member is as parked as one scored -1.
    elif meta is not None and meta.last_run_at is not None:
        expected = expected_score(entry.schedule, meta.last_run_at, entry.enabled, rules)
        if score_is_wrong(current.score, expected, now):
            repairs.append(Repair.STALE_SCORE if entry.enabled else Repair.UNPARKED)
    elif not entry.enabled:
        if current.score >= 0:
            repairs.append(Repair.UNPARKED)
    elif meta is not None and score_is_wrong(current.score, score_of(now), now):
        # Never run yet: beat treats it as due now, so it must be scored now or earlier.
        repairs.append(Repair.STALE_SCORE)
    if current.ttl_ms >= 0:
        repairs.append(Repair.EXPIRING)
    if not current.indexed or current.marker != entry_marker(entry):
        repairs.append(Repair.UNMARKED)
    return tuple(repairs)


def index_notices(live: LiveState) -> tuple[str, ...]:
    """Members of the managed index that no entry can have, skipped by the store."""
    return tuple(
        f"the reconciler's managed index lists {shown_member(name)}, which no entry can have "
        f"({problem}): skipped, nothing under it is read, written or deleted"
        for name, problem in live.odd_index_names
    )


def shown_member(name: str) -> str:
    """An index member as it can be printed: quoted, escaped, and cut when very long."""
    shown = ascii(name)
    return shown if len(shown) <= 80 else shown[:70] + "...'" + f" ({len(name)} characters)"


def _timezone_notices(live: LiveState, rules: BeatRules, now: datetime) -> tuple[str, ...]:
    zones = recorded_foreign_zones(live, now, rules)
    if not zones:
        return ()
    return (
        f"beat records its runs in {', '.join(zones)}, but this plan uses --timezone "
        f"{rules.timezone_name}: crontabs run in beat's timezone, so scores and next runs "
        "here are wrong. Pass beat's timezone",
    )


def recorded_foreign_zones(live: LiveState, now: datetime, rules: BeatRules) -> list[str]:
    """Zones beat recorded the managed entries' runs in, other than the rules' zone."""
    metas = [
        meta
        for name in live.managed_names
        if (meta := usable_meta(live.get(name).meta_text, now, rules)) is not None
    ]
    return foreign_zones(metas, rules.timezone_name)


def usable_meta(text: str | None, now: datetime, rules: BeatRules) -> LiveMeta | None:
    """Meta beat can use as it is: readable, only its two keys, no last run in the future."""
    meta = rules.meta(text)
    if meta is None or (
        meta.last_run_at is not None and meta.last_run_at > now + FUTURE_RUN_TOLERANCE
    ):
        return None
    return meta


def _catch_up_warning(
    entry: DesiredEntry,
    meta: LiveMeta | None,
    enabling: bool,
    now: datetime,
    rules: BeatRules,
) -> tuple[str, ...]:
    """Celery runs a missed slot once: say so when the new schedule creates one."""
    if not entry.enabled or enabling or meta is None or meta.last_run_at is None:
        return ()
    due = next_due(entry.schedule, meta.last_run_at, rules)
    if due is None or due > now:
        return ()
    return (
        f"catch-up: the new schedule had a run due at {_iso(due)} after the last run at "
        f"{_iso(meta.last_run_at)}; beat will run it once at its next tick",
    )


def field_changes(
    old: dict[str, Any],
    new: dict[str, Any],
    sensitive: Sensitive | None = None,
) -> tuple[FieldChange, ...]:
    """Field-level differences between two definition essences, in path order.

    A strict walk over JSON values: unlike ``==`` (and DeepDiff, which finds no difference
    between ``[True]`` and ``[1]``), ``true``, ``1`` and ``1.0`` are different values to the
    task that receives them. Values from the environment are masked as they are found, so
    no plan, report or alert built from the result can hold them.
    """
    found: list[FieldChange] = []
    mask = sensitive if sensitive is not None else Sensitive()

    def note(
        path: JsonPath, old: Any, new: Any, *, added: bool = False, removed: bool = False
    ) -> None:
        shown_path, shown_old, shown_new = mask.shown(
            path, old, new, changed=not (added or removed)
        )
        found.append(FieldChange(shown_path, shown_old, shown_new, added=added, removed=removed))

    def walk(old: Any, new: Any, path: JsonPath) -> None:
        if _canonical(old) == _canonical(new):
            return
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new), key=str):
                if key not in old:
                    note((*path, key), None, new[key], added=True)
                elif key not in new:
                    note((*path, key), old[key], None, removed=True)
                else:
                    walk(old[key], new[key], (*path, key))
        elif isinstance(old, list) and isinstance(new, list):
            for index in range(max(len(old), len(new))):
                if index >= len(old):
                    note((*path, index), None, new[index], added=True)
                elif index >= len(new):
                    note((*path, index), old[index], None, removed=True)
                else:
                    walk(old[index], new[index], (*path, index))
        else:
            note(path, old, new)

    walk(old, new, ())
    return tuple(sorted(found, key=lambda change: change.path))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
