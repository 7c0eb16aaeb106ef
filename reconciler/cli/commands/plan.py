"""``reconciler plan``: what an apply would change, for people, machines or pull requests."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.core.errors import ConflictingEntries
from reconciler.render.plan_text import plan_markdown, plan_text
from reconciler.services.planfile import plan_to_dict, save_plan
from reconciler.store.session import open_store

if TYPE_CHECKING:
    from reconciler.cli.commands.requests import Console, PlanRequest
    from reconciler.core.plan import Plan

EXIT_CHANGES = 2


def render_plan(plan: Plan, output_format: str, *, colour: bool) -> str:
    if output_format == "json":
        return json.dumps(plan_to_dict(plan), indent=2) + "\n"
    if output_format == "markdown":
        return plan_markdown(plan)
    return plan_text(plan, colour=colour)


def plan(request: PlanRequest, console: Console) -> int:
    desired = request.desired
    loaded = desired.load(console)
    with open_store(request.store, notice=console.notice) as store:
        result = desired.plan(
            store,
            loaded,
            prune=request.prune,
            adopt=request.adopt,
            beat=request.beat,
            # Only a saved plan and the JSON report carry the fingerprint of what was read.
            fingerprint=request.output_format == "json" or request.out is not None,
        )
    console.echo(render_plan(result, request.output_format, colour=console.colour))
    if result.conflicts:
        raise ConflictingEntries(
            f"{len(result.conflicts)} schedule name(s) conflict with entries the reconciler "
            "does not own; nothing can be applied until they are resolved"
        )
    if request.out is not None:
        save_plan(result, request.out)
        console.notice(
            f"Saved the plan to {request.out}; apply it with: reconciler apply --plan {request.out}"
        )
    if request.detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return 0
