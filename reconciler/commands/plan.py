"""``reconciler plan``: what an apply would change, for people, machines or pull requests."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.api import load_schedules, make_plan
from reconciler.errors import ConflictingEntries
from reconciler.planfile import plan_to_dict, save_plan
from reconciler.render.plan_text import plan_markdown, plan_text
from reconciler.store.session import open_store

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from reconciler.beat_clock import BeatSettings
    from reconciler.load.desired_state import EntryCheck
    from reconciler.plan import Plan
    from reconciler.store.session import StoreSettings

EXIT_CHANGES = 2


def render_plan(plan: Plan, output_format: str, *, colour: bool) -> str:
    if output_format == "json":
        return json.dumps(plan_to_dict(plan), indent=2) + "\n"
    if output_format == "markdown":
        return plan_markdown(plan)
    return plan_text(plan, colour=colour)


def plan(
    paths: Sequence[Path],
    settings: StoreSettings,
    *,
    output_format: str = "text",
    out: Path | None = None,
    detailed_exitcode: bool = False,
    prune: bool = False,
    adopt: bool = False,
    timezone_name: str = "UTC",
    colour: bool = False,
    echo: Callable[[str], None],
    notice: Callable[[str], None],
    entry_checks: EntryCheck | None = None,
    overlays: Sequence[Path] = (),
    target_name: str | None = None,
    beat: BeatSettings | None = None,
) -> int:
    loaded = load_schedules(
        paths, timezone_name=timezone_name, entry_checks=entry_checks, overlays=overlays
    )
    for warning in loaded.warnings:
        notice(f"warning: {warning}")
    with open_store(settings, notice=notice) as store:
        result = make_plan(
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
    echo(render_plan(result, output_format, colour=colour))
    if result.conflicts:
        raise ConflictingEntries(
            f"{len(result.conflicts)} schedule name(s) conflict with entries the reconciler "
            "does not own; nothing can be applied until they are resolved"
        )
    if out is not None:
        save_plan(result, out)
        notice(f"Saved the plan to {out}; apply it with: reconciler apply --plan {out}")
    if detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return 0
