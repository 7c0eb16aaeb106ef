"""``reconciler apply``: write only the deltas, atomically, then re-check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.api import (
    apply_plan,
    check_deletions,
    check_saved_plan,
    holding_apply_lock,
    load_schedules,
    make_plan,
)
from reconciler.errors import ConflictingEntries, UsageError
from reconciler.planfile import load_plan
from reconciler.render.plan_text import plan_text
from reconciler.store.session import open_store

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from reconciler.beat_clock import BeatSettings
    from reconciler.load.desired_state import EntryCheck
    from reconciler.plan import Plan
    from reconciler.store.apply_lock import ApplyLock
    from reconciler.store.session import Store, StoreSettings


def apply(
    paths: Sequence[Path],
    settings: StoreSettings,
    *,
    plan_file: Path | None = None,
    prune: bool = False,
    adopt: bool = False,
    max_deletions: int | None = None,
    lock_timeout: float = 30.0,
    settle_seconds: float = 0.0,
    timezone_name: str = "UTC",
    colour: bool = False,
    confirm: Callable[[str], bool] | None = None,
    echo: Callable[[str], None],
    notice: Callable[[str], None],
    entry_checks: EntryCheck | None = None,
    overlays: Sequence[Path] = (),
    target_name: str | None = None,
    beat: BeatSettings | None = None,
    actor: str | None = None,
) -> int:
    """``confirm`` is only given on an interactive terminal; elsewhere apply never asks.
    ``actor`` is who the history records (see apply.resolve_actor for the default)."""
    loaded = (
        None
        if plan_file
        else load_schedules(
            paths, timezone_name=timezone_name, entry_checks=entry_checks, overlays=overlays
        )
    )
    for warning in loaded.warnings if loaded else ():
        notice(f"warning: {warning}")

    def current_plan(store: Store) -> Plan:
        if plan_file is not None:
            saved = load_plan(plan_file)
            _check_target(saved, target_name, plan_file)
            return check_saved_plan(store, saved)
        assert loaded is not None
        return make_plan(
            store,
            loaded,
            prune=prune,
            adopt=adopt,
            timezone_name=timezone_name,
            paths=paths,
            overlays=overlays,
            target_name=target_name,
            beat=beat,
        )

    with open_store(settings, notice=notice) as store:
        plan = current_plan(store)
        if plan.conflicts and not plan.changes:
            return _apply_locked_plan(
                store, plan, None, max_deletions, settle_seconds, colour, confirm, echo, actor
            )
        if plan.changes:
            # Planned again under the lock, so an apply that waited for another one plans
            # after it; a plan with nothing to do takes no lock and writes nothing at all.
            with holding_apply_lock(store, lock_timeout) as lock:
                plan = current_plan(store)
                return _apply_locked_plan(
                    store, plan, lock, max_deletions, settle_seconds, colour, confirm, echo, actor
                )
        echo(plan_text(plan, colour=colour))
        echo("Apply complete: nothing to change.\n")
        return 0


def _check_target(saved: Plan, target_name: str | None, plan_file: Path) -> None:
    """A saved plan runs against the target it was made for: its overlays, its settings."""
    if saved.target_name == target_name:
        return
    made = f"target {saved.target_name!r}" if saved.target_name else "no target"
    given = f"target {target_name!r}" if target_name else "no target"
    hint = f" (pass --target {saved.target_name})" if saved.target_name else ""
    raise UsageError(f"{plan_file} was made for {made}, not for {given}{hint}; nothing was written")


def _apply_locked_plan(
    store: Store,
    plan: Plan,
    lock: ApplyLock | None,
    max_deletions: int | None,
    settle_seconds: float,
    colour: bool,
    confirm: Callable[[str], bool] | None,
    echo: Callable[[str], None],
    actor: str | None,
) -> int:
    echo(plan_text(plan, colour=colour))
    if plan.notices:
        # Scores written in the wrong zone would move every crontab's runs.
        raise UsageError(f"{plan.notices[0]}; nothing was written")
    if plan.conflicts:
        raise ConflictingEntries(
            f"{len(plan.conflicts)} schedule name(s) conflict with entries the reconciler "
            "does not own; nothing was written"
        )
    check_deletions(plan, max_deletions)
    if not plan.changes:
        echo("Apply complete: nothing to change.\n")
        return 0
    if confirm is not None and not confirm("Apply these changes?"):
        raise UsageError("apply cancelled; nothing was written")
    result = apply_plan(
        store,
        plan,
        max_deletions=max_deletions,
        settle_seconds=settle_seconds,
        lock=lock,
        actor=actor,
    )
    echo(result.summary() + "\n")
    return 0
