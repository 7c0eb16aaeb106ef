"""Planning: load the files, read what Redis holds (and beat's clock), ask the core for the
plan; and the checks that let a saved plan be applied exactly as it was shown."""

from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from secrets import token_hex
from typing import TYPE_CHECKING

from reconciler.beat.celery_objects import DEFAULT_TIMEZONE
from reconciler.beat.redbeat_rules import RedBeatRules
from reconciler.core.diff import compute_plan
from reconciler.core.errors import StalePlan
from reconciler.core.fingerprints import live_fingerprint
from reconciler.core.plan import Action, Change, Plan, Repair
from reconciler.core.scores import repair_clock
from reconciler.core.secrets import entry_marker, keyed_digest, public_marker, resolve_references
from reconciler.load.desired_state import LoadResult, load_desired_state, read_schedule_files
from reconciler.store import session
from reconciler.store.reader import (
    BATCH_SIZE,
    queue_shared,
    read_batches,
    read_beat_wake,
    read_live_state,
    shared_state,
)
from reconciler.store.session import Store, StoreSettings  # noqa: TC001

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from contextlib import AbstractContextManager

    from reconciler.core.beat_clock import BeatSettings
    from reconciler.core.live import LiveState
    from reconciler.load.desired_state import EntryCheck


def load_schedules(
    paths: Sequence[str | Path] = ("schedules",),
    *,
    timezone_name: str = DEFAULT_TIMEZONE,
    entry_checks: EntryCheck | None = None,
    environ: Mapping[str, str] | None = None,
    overlays: Sequence[str | Path] = (),
) -> LoadResult:
    """Read and validate schedule files; raises InvalidScheduleFiles listing every problem.

    Problems time alone brought (an rrule that has ended) are in ``warnings`` instead.
    ``entry_checks`` adds checks, e.g. ``AppChecks(app, name)`` against a Celery app.
    ``overlays`` (files or folders) patch the entries for one target, in order.
    ``${env:NAME}`` references are resolved from ``environ`` (default: ``os.environ``);
    a variable that is not set raises MissingVariables.
    """
    loaded = load_desired_state(
        [Path(path) for path in paths],
        timezone_name=timezone_name,
        entry_checks=entry_checks,
        overlays=[Path(path) for path in overlays],
    )
    return replace(
        loaded,
        entries=resolve_references(loaded.entries, os.environ if environ is None else environ),
    )


def open_store(
    settings: StoreSettings, *, notice: Callable[[str], None] | None = None
) -> AbstractContextManager[Store]:
    """Connect to the configured Redis (or the embedded one when no URL is given)."""
    return session.open_store(settings, notice=notice or _stderr)


def make_plan(
    store: Store,
    loaded: LoadResult,
    *,
    prune: bool = False,
    adopt: bool = False,
    timezone_name: str = DEFAULT_TIMEZONE,
    paths: Sequence[str | Path] = ("schedules",),
    now: datetime | None = None,
    overlays: Sequence[str | Path] = (),
    target_name: str | None = None,
    beat: BeatSettings | None = None,
    again: Plan | None = None,
    fingerprint: bool = True,
) -> Plan:
    """Read live state in pipelined batches and diff it against the loaded files.

    ``fingerprint=False`` leaves ``Plan.live_fingerprint`` empty, for a plan that is neither
    saved, printed as JSON nor applied (0.8 s of a plan of 100,000 entries).

    With ``beat``, beat's lock dates its sleep and each change gets the first run expected
    once beat wakes (``Change.expected_first_run``).

    ``again``: a plan this process made a moment ago from the same ``loaded`` and options
    (apply plans again under its lock, so that an apply that waited for another one plans
    after it). ``again`` itself is the plan (same inputs, same decisions) when no reconciler
    command wrote since (the history's newest record, the managed and static names and the
    recent deletions are as they were) and every entry it changes reads back exactly as it
    did; else live state is read again whole and diffed."""
    with _settled():
        moment = now or datetime.now(timezone.utc)
        inputs = (
            (id(loaded), store.target, store.keys.prefix, prune, adopt, timezone_name, beat, now),
            (tuple(map(str, paths)), tuple(map(str, overlays)), target_name),
        )
        remembered = _LAST.get(id(again)) if again is not None else None
        if remembered is not None and remembered[:2] == (again, inputs):
            plan, _, before = remembered
            if _still_as_read(store, plan, before):
                return plan
        live = read_live_state(store.client, store.keys, [entry.name for entry in loaded.entries])
        wake = read_beat_wake(store.client, store.keys, beat, moment) if beat else None
        digest_key = token_hex(16)
        plan = compute_plan(
            loaded.entries,
            live,
            now=moment,
            rules=RedBeatRules(timezone_name),
            prune=prune,
            adopt=adopt,
            beat=wake,
        )
        made = replace(
            plan,
            key_prefix=store.keys.prefix,
            target=store.target,
            live_fingerprint=live_fingerprint(live) if fingerprint else "",
            files_fingerprint=loaded.fingerprint,
            digest_key=digest_key,
            paths=tuple(str(path) for path in paths),
            overlay_paths=tuple(str(path) for path in overlays),
            target_name=target_name,
        )
        # Only the last plan is remembered (holding it and ``loaded`` keeps their ids theirs).
        _LAST.clear()
        _LAST[id(made)] = (made, inputs, live)
        _KEPT[:] = [loaded]
        return made


@contextmanager
def _settled() -> Iterator[None]:
    """While a plan is made, what was loaded before is frozen (``gc.freeze``): it lives until
    the command ends, and the cyclic collector would otherwise rescan all of it each time the
    read and the diff allocate enough for a full collection; at 100,000 entries, a third of
    the read (bench/bench_cli.py). Reference counting frees as usual, and the collector still
    sees everything the plan itself creates."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


_LAST: dict[int, tuple[Plan, object, LiveState]] = {}
_KEPT: list[LoadResult] = []


def _still_as_read(store: Store, plan: Plan, before: LiveState) -> bool:
    """Whether Redis holds what ``before`` read, as far as ``plan`` can tell: the shared
    state (one round trip), then only the entries the plan changes, whole (meta, score,
    TTL, marker). An entry the plan leaves alone is not read again: between the two reads
    only a writer other than the reconciler can have changed it (beat, its meta and score,
    as it does all the time), and such a change made just after the read under the lock
    would be missed all the same. At 100,000 entries and 1% changed, this reads 1,000
    entries instead of 100,000."""
    with store.client.pipeline(transaction=False) as pipe:
        queue_shared(pipe, store.keys)
        mark, managed, statics, deleted = shared_state(
            pipe.execute(raise_on_error=False), store.keys
        )
    shared = (before.history_mark, before.managed_names, before.static_names, before.deleted_names)
    if (mark, managed, statics, deleted) != shared:
        return False
    names = [change.name for change in plan.changes]
    for batch in read_batches(
        store.client, store.keys, names, BATCH_SIZE, known=(managed, statics)
    ):
        if any(before.entries.get(name) != entry for name, entry in batch.items()):
            return False
    return True


def check_saved_plan(
    store: Store,
    plan: Plan,
    *,
    environ: Mapping[str, str] | None = None,
    reveal: Callable[[Iterable[str]], None] | None = None,
) -> Plan:
    """The saved plan, ready to apply; refused if its target, files, live state or the
    values of its environment variables are not what it was made from.

    Definitions holding values from the environment were masked in the file: they are
    resolved again, proven equal to the planned ones by digest, and put back. ``reveal``
    hears every value resolved, as soon as it is (to hide it from messages).
    """
    if plan.target != store.target or plan.key_prefix != store.keys.prefix:
        raise StalePlan(
            f"the plan was made for {plan.target} (prefix {plan.key_prefix!r}), not for "
            f"{store.target} (prefix {store.keys.prefix!r}); nothing was written"
        )
    loaded = read_schedule_files(
        [Path(path) for path in plan.paths],
        timezone_name=plan.timezone,
        overlays=[Path(path) for path in plan.overlay_paths],
    )
    missing = [p for p in loaded.problems if p.code == "missing-path"]
    if missing:
        raise StalePlan(
            f"the plan's schedule paths are not found from here ({missing[0].location.path}); "
            "apply a saved plan from the folder where it was made. Nothing was written"
        )
    if loaded.fingerprint != plan.files_fingerprint:
        raise StalePlan(
            "the schedule files changed since the plan was made; nothing was written. "
            "Make a new plan"
        )
    live = read_live_state(store.client, store.keys, sorted(_names(plan)))
    if live_fingerprint(live) != plan.live_fingerprint:
        raise StalePlan(
            "the RedBeat entries in Redis changed since the plan was made; nothing was "
            "written. Make a new plan"
        )
    # The fingerprints say files and Redis are as they were; the plan file itself must also
    # be what they produce, so no hand-edited definition bytes ever reach Redis.
    entries = resolve_references(loaded.entries, os.environ if environ is None else environ)
    if reveal is not None:
        reveal(value for entry in entries for value in entry.secret_values)
    fresh = compute_plan(
        entries,
        live,
        now=datetime.now(timezone.utc),
        rules=RedBeatRules(plan.timezone),
        prune=plan.prune,
        adopt=plan.adopt,
    )
    # Repairs are left to policy, but the marker one writes must be the files' (a marker
    # lists where values are secret: a wrong one would unmask them later).
    markers = {entry.name: entry_marker(entry) for entry in entries}
    repairs = [
        change
        for change in plan.changes
        if change.action is Action.REPAIR and Repair.ORPHAN not in change.repairs
    ]
    wrong_marker = any(
        public_marker(change.marker) != public_marker(markers.get(change.name, change.marker))
        for change in repairs
    )
    # A repair's run-history policy follows from its repairs, never from the file alone (an
    # edited one could wipe run history and fire the entry at once).
    wrong_clock = any(change.clock is not repair_clock(change.repairs) for change in repairs)
    # An orphan repair deletes the key: only where Redis, read now, holds an orphan.
    wrong_orphans = _orphans(plan) != _orphans(fresh)
    if wrong_marker or wrong_clock or wrong_orphans or _writes(fresh) != _writes(plan):
        raise StalePlan(
            "the plan file does not match what its schedule files, environment variables "
            "and Redis produce (was it edited, or did a secret change?); nothing was "
            "written. Make a new plan"
        )
    planned = {change.name: change for change in fresh.changes}
    restored = replace(
        plan,
        # Saved markers lack their digests (see ownership.public_marker): the files' own
        # markers, proven equal without them, are the ones written.
        changes=tuple(
            replace(
                _unmasked(change, planned, live), marker=markers.get(change.name, change.marker)
            )
            for change in plan.changes
        ),
    )
    # The masked values: resolved again and read again, they must be those planned (the
    # live fingerprint masks them too).
    if plan.secret_digest and plan.secret_digest != keyed_digest(
        plan.digest_key, restored.secret_material()
    ):
        raise StalePlan(
            "a value from the environment changed since the plan was made, in the "
            "environment or in Redis; nothing was written. Make a new plan"
        )
    return restored


def _writes(plan: Plan) -> set[tuple[str, str, str | None, str, str]]:
    """What a plan writes beyond policy-driven repairs: actions, definition bytes (or their
    digests, where values from the environment make them secret), markers and the run
    history policy."""
    return {
        (
            change.name,
            change.action.value,
            _comparable(change),
            public_marker(change.marker),
            change.clock.value,
        )
        for change in plan.changes
        if change.action is not Action.REPAIR
    }


def _orphans(plan: Plan) -> set[str]:
    return {change.name for change in plan.changes if Repair.ORPHAN in change.repairs}


def _comparable(change: Change) -> str | None:
    """The definition as a saved plan holds it: values from the environment masked."""
    if change.masked:
        return change.definition
    return change.sensitive.definition(change.definition)


def _unmasked(change: Change, planned: dict[str, Change], live: LiveState) -> Change:
    if not change.masked:
        return change
    fresh = planned.get(change.name)
    return replace(
        change,
        definition=fresh.definition if fresh is not None else None,
        live_definition=live.get(change.name).definition_text,
        masked=False,
        sensitive=fresh.sensitive if fresh is not None else change.sensitive,
    )


def _names(plan: Plan) -> Iterator[str]:
    yield from (change.name for change in plan.changes)
    yield from plan.unchanged
    yield from plan.pending_prune
    yield from (conflict.name for conflict in plan.conflicts)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)
