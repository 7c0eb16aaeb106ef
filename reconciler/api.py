"""The Python API: load schedule files, compute a plan, apply it. The CLI is built on it.

from reconciler.api import StoreSettings, load_schedules, make_plan, apply_plan, open_store

loaded = load_schedules(["schedules"])
with open_store(StoreSettings(redis_url="redis://localhost:6379/0")) as store:
    plan = make_plan(store, loaded, prune=True)
    print(plan.summary())
    result = apply_plan(store, plan)
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.apply import ApplyResult, apply_plan, check_deletions, holding_apply_lock
from reconciler.diff import compute_plan
from reconciler.errors import StalePlan
from reconciler.fingerprints import live_fingerprint
from reconciler.load.desired_state import LoadResult, load_desired_state, read_schedule_files
from reconciler.plan import Action, Plan
from reconciler.schedules.celery_objects import DEFAULT_TIMEZONE
from reconciler.store import session
from reconciler.store.reader import read_live_state
from reconciler.store.session import Store, StoreSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager

    from reconciler.load.desired_state import EntryCheck

__all__ = [
    "ApplyResult",
    "LoadResult",
    "Plan",
    "Store",
    "StoreSettings",
    "apply_plan",
    "check_deletions",
    "check_saved_plan",
    "holding_apply_lock",
    "load_schedules",
    "make_plan",
    "open_store",
]


def load_schedules(
    paths: Sequence[str | Path] = ("schedules",),
    *,
    timezone_name: str = DEFAULT_TIMEZONE,
    entry_checks: EntryCheck | None = None,
) -> LoadResult:
    """Read and validate schedule files; raises InvalidScheduleFiles listing every problem.

    Problems time alone brought (an rrule that has ended) are in ``warnings`` instead.
    ``entry_checks`` adds checks, e.g. ``AppChecks(app, name)`` against a Celery app.
    """
    return load_desired_state(
        [Path(path) for path in paths], timezone_name=timezone_name, entry_checks=entry_checks
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
) -> Plan:
    """Read live state in pipelined batches and diff it against the loaded files."""
    live = read_live_state(store.client, store.keys, [entry.name for entry in loaded.entries])
    plan = compute_plan(
        loaded.entries,
        live,
        now=now or datetime.now(timezone.utc),
        timezone_name=timezone_name,
        prune=prune,
        adopt=adopt,
    )
    return replace(
        plan,
        key_prefix=store.keys.prefix,
        target=store.target,
        live_fingerprint=live_fingerprint(live),
        files_fingerprint=loaded.fingerprint,
        paths=tuple(str(path) for path in paths),
    )


def check_saved_plan(store: Store, plan: Plan) -> None:
    """Refuse a saved plan whose target, files or live state are not what it was made from."""
    if plan.target != store.target or plan.key_prefix != store.keys.prefix:
        raise StalePlan(
            f"the plan was made for {plan.target} (prefix {plan.key_prefix!r}), not for "
            f"{store.target} (prefix {store.keys.prefix!r}); nothing was written"
        )
    loaded = read_schedule_files([Path(path) for path in plan.paths], timezone_name=plan.timezone)
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
    fresh = compute_plan(
        loaded.entries,
        live,
        now=datetime.now(timezone.utc),
        timezone_name=plan.timezone,
        prune=plan.prune,
        adopt=plan.adopt,
    )
    if _writes(fresh) != _writes(plan):
        raise StalePlan(
            "the plan file does not match what its schedule files and Redis produce (was it "
            "edited?); nothing was written. Make a new plan"
        )


def _writes(plan: Plan) -> set[tuple[str, str, str | None]]:
    """What a plan writes beyond policy-driven repairs: actions and definition bytes."""
    return {
        (change.name, change.action.value, change.definition)
        for change in plan.changes
        if change.action is not Action.REPAIR
    }


def _names(plan: Plan) -> Iterator[str]:
    yield from (change.name for change in plan.changes)
    yield from plan.unchanged
    yield from plan.pending_prune
    yield from (conflict.name for conflict in plan.conflicts)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)
