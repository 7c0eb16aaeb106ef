"""``reconciler apply``: write only the deltas, atomically, then re-check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.api import (
    apply_plan,
    check_deletions,
    check_saved_plan,
    holding_apply_lock,
)
from reconciler.core.errors import ConflictingEntries, NotReplicated, UsageError
from reconciler.render.plan_text import plan_text
from reconciler.services.planfile import load_plan
from reconciler.store.session import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from reconciler.cli.commands.requests import ApplyRequest, Console
    from reconciler.core.plan import Plan
    from reconciler.store.apply_lock import ApplyLock
    from reconciler.store.session import Store


def apply(request: ApplyRequest, console: Console) -> int:
    desired = request.desired
    loaded = None if request.plan_file else desired.load(console)

    def current_plan(store: Store, again: Plan | None = None) -> Plan:
        if request.plan_file is not None:
            saved = load_plan(request.plan_file)
            _check_target(saved, desired.target_name, request.plan_file)
            return check_saved_plan(store, saved, reveal=console.reveal)
        assert loaded is not None
        return desired.plan(
            store, loaded, prune=request.prune, adopt=request.adopt, beat=request.beat, again=again
        )

    with open_store(request.store, notice=console.notice) as store:
        plan = current_plan(store)
        if plan.conflicts and not plan.changes:
            return _apply_locked_plan(store, plan, None, request, console)
        if plan.changes:
            # Planned again under the lock, so an apply that waited for another one plans
            # after it (the first plan stands if Redis reads the same); a plan with nothing
            # to do takes no lock and writes nothing at all.
            with holding_apply_lock(store, request.lock_timeout) as lock:
                plan = current_plan(store, again=plan)
                return _apply_locked_plan(store, plan, lock, request, console)
        console.echo(plan_text(plan, colour=console.colour))
        console.echo("Apply complete: nothing to change.\n")
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
    store: Store, plan: Plan, lock: ApplyLock | None, request: ApplyRequest, console: Console
) -> int:
    console.echo(plan_text(plan, colour=console.colour))
    if plan.notices:
        # Scores written in the wrong zone would move every crontab's runs.
        raise UsageError(f"{plan.notices[0]}; nothing was written")
    if plan.conflicts:
        raise ConflictingEntries(
            f"{len(plan.conflicts)} schedule name(s) conflict with entries the reconciler "
            "does not own; nothing was written"
        )
    check_deletions(plan, request.max_deletions)
    if not plan.changes:
        console.echo("Apply complete: nothing to change.\n")
        return 0
    confirm = request.confirm
    if confirm is not None and not confirm("Apply these changes?"):
        raise UsageError("apply cancelled; nothing was written")
    result = apply_plan(
        store,
        plan,
        max_deletions=request.max_deletions,
        settle_seconds=request.settle_seconds,
        lock=lock,
        actor=request.actor,
        min_replicas=request.min_replicas,
        replica_timeout=request.replica_timeout,
        # Planned under the lock from a fresh read: read again only after a question, which
        # may have waited for a person.
        verified=lock is not None and confirm is None,
    )
    console.echo(result.summary() + "\n")
    if result.not_replicated():
        raise NotReplicated(result.not_replicated())
    return 0
