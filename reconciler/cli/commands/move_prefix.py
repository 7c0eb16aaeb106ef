"""``reconciler move-prefix``: show, then with --apply carry out, the move of the managed
entries from one key prefix to another, each with its run history and score."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from reconciler.beat.redbeat_codec import decode_meta
from reconciler.render import shown_name
from reconciler.services.prefix_move import (
    MoveOutcome,
    apply_prefix_move,
    check_prefixes,
    plan_prefix_move,
)
from reconciler.store.session import StoreSettings, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from reconciler.cli.commands.requests import Console
    from reconciler.core.prefix_move import MovedEntry


@dataclass(frozen=True)
class MovePrefixRequest:
    old_prefix: str
    new_prefix: str
    redis_url: str | None
    embedded_dir: Path
    apply: bool = False
    output_format: str = "text"
    lock_timeout: float = 30.0
    no_beat_lock: bool = False
    actor: str | None = None


def move_prefix(request: MovePrefixRequest, console: Console) -> int:
    check_prefixes(request.old_prefix, request.new_prefix)
    # Opened under the new prefix: on a cluster it must carry a hash tag.
    settings = StoreSettings(request.redis_url, request.new_prefix, request.embedded_dir)
    with open_store(settings, notice=console.notice) as store:
        if request.apply:
            outcome = apply_prefix_move(
                store.client,
                request.old_prefix,
                request.new_prefix,
                lock_timeout=request.lock_timeout,
                check_beat_lock=not request.no_beat_lock,
                actor=request.actor,
            )
        else:
            outcome = plan_prefix_move(store.client, request.old_prefix, request.new_prefix)
    if request.output_format == "json":
        console.echo(json.dumps(move_json(outcome), indent=2) + "\n")
    else:
        console.echo(move_text(outcome))
    return 1 if outcome.plan.in_the_way and not request.apply else 0


def move_json(outcome: MoveOutcome) -> dict[str, object]:
    plan = outcome.plan
    return {
        "from": plan.old_prefix,
        "to": plan.new_prefix,
        "move": [_entry_json(entry) for entry in plan.copy],
        "finish": list(plan.finish),
        "in_the_way": [{"name": item.name, "reason": item.reason} for item in plan.in_the_way],
        "beat_locks": outcome.beat_locks,
        "applied": outcome.applied,
    }


def _entry_json(entry: MovedEntry) -> dict[str, object]:
    meta = decode_meta(entry.meta_text, strict=False)
    return {
        "name": entry.name,
        "last_run_at": meta.last_run_at.isoformat() if meta and meta.last_run_at else None,
        "total_run_count": meta.total_run_count if meta else None,
        "score": entry.score,
    }


def move_text(outcome: MoveOutcome) -> str:
    plan = outcome.plan
    old, new = plan.old_prefix, plan.new_prefix
    lines = [f"Move of the managed entries from {old!r} to {new!r}:"]
    for entry in plan.copy:
        lines.append(f"  > {shown_name(entry.name)}  ({_clock(entry)})")
    for name in plan.finish:
        lines.append(f"  > {shown_name(name)}  (copied already; the old keys to delete)")
    for item in plan.in_the_way:
        lines.append(f"  ! {shown_name(item.name)}  (cannot move: {item.reason})")
    lines.append("")
    summary = (
        f"{len(plan.copy)} to move, {len(plan.finish)} copied already, "
        f"{len(plan.in_the_way)} in the way."
    )
    if plan.empty and not plan.in_the_way:
        lines.append(f"Nothing to move: no managed entry is left under {old!r}.")
    elif outcome.applied:
        lines.append(f"Move complete: {len(outcome.moved)} moved, {len(plan.finish)} finished.")
        lines.append(
            f"Start beat with redbeat_key_prefix = {new!r}; entries the reconciler does not "
            f"manage, beat's statics and its lock stay under {old!r}."
        )
    else:
        lines.append(f"Plan: {summary}")
        held = [key for key, ttl in outcome.beat_locks.items() if ttl != -2]
        if held:
            lines.append(f"Beat's lock is held ({', '.join(held)}): a beat is running.")
        lines.append(
            f"Stop beat, then run again with --apply; then start beat with "
            f"redbeat_key_prefix = {new!r}."
        )
    return "\n".join(lines) + "\n"


def _clock(entry: MovedEntry) -> str:
    meta = decode_meta(entry.meta_text, strict=False)
    runs = f"{meta.total_run_count} run(s)" if meta else "no run history"
    last = (
        f", last {meta.last_run_at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
        if meta and meta.last_run_at
        else ""
    )
    due = (
        "no score"
        if entry.score is None
        else f"next due {datetime.fromtimestamp(entry.score, timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
        if entry.score >= 0
        else "never due again"
    )
    return f"{runs}{last}; {due}"
