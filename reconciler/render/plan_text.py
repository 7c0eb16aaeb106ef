"""Plans for people: a terminal listing (colours only on a terminal) and markdown for PRs."""

from __future__ import annotations

import html
from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import click

from reconciler.core.plan import REPAIR_TEXT, Action
from reconciler.render import shown_name

if TYPE_CHECKING:
    from datetime import datetime

    from reconciler.core.plan import Change, Plan

# GitHub refuses comments longer than this many characters.
GITHUB_COMMENT_LIMIT = 65_536
_SYMBOL = {
    Action.CREATE: ("+", "green"),
    Action.UPDATE: ("~", "yellow"),
    Action.ADOPT: ("=", "green"),  # the same definition, now owned
    Action.DELETE: ("-", "red"),
    Action.REPAIR: ("!", "cyan"),
}


def _paint(text: str, enabled: bool, **style: Any) -> str:
    return click.style(text, **style) if enabled else text


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def verb(change: Change) -> str:
    if change.action is Action.UPDATE:
        if change.adopt:
            return "adopt" if not change.field_changes else "adopt and update"
        if change.enabling:
            return "enable"
        if change.disabling:
            return "disable"
    return change.action.value


def beat_line(plan: Plan) -> str | None:
    """When beat picks the changes up, for a plan with runs to start; None otherwise."""
    if plan.beat is None or not any(change.next_runs for change in plan.changes):
        return None
    return plan.beat.describe()


def change_details(change: Change) -> list[str]:
    lines = []
    origins = [change.source] if change.source else []
    origins += [f"overlay {overlay}" for overlay in change.overlays]
    if origins:
        lines.append("from " + ", ".join(origins))
    lines.extend(item.describe() for item in change.field_changes)
    lines.extend(f"repair: {REPAIR_TEXT[repair]}" for repair in change.repairs)
    if change.action is not Action.DELETE:
        if not change.enabled:
            lines.append("disabled: beat will not run it")
        elif change.next_runs:
            lines.append("next runs: " + ", ".join(when(moment) for moment in change.next_runs))
        else:
            lines.append("next runs: none (the schedule has ended)")
    lines.extend(f"warning: {warning}" for warning in change.warnings)
    return lines


def plan_text(plan: Plan, *, colour: bool = False) -> str:
    lines: list[str] = []
    if plan.target_name:
        lines.append(_paint(f"Target: {shown_name(plan.target_name)}", colour, bold=True))
    lines += [_paint(f"warning: {notice}", colour, fg="yellow") for notice in plan.notices]
    if beat_line(plan):
        lines.append(_paint(f"note: {beat_line(plan)}", colour, dim=True))
    for change in plan.changes:
        symbol, tint = _SYMBOL[change.action]
        head = f"  {symbol} {shown_name(change.name)}  ({verb(change)})"
        lines.append(_paint(head, colour, fg=tint))
        for detail in change_details(change):
            warning = colour and detail.startswith("warning")
            lines.append("        " + _paint(detail, warning, fg="yellow"))
    if plan.pending_prune:
        if lines:
            lines.append("")
        lines.append(
            "Managed entries no longer in the files (would delete with --prune): "
            + ", ".join(shown_name(name) for name in plan.pending_prune)
        )
    for conflict in plan.conflicts:
        lines.append(_paint(f"error: {conflict.message}", colour, fg="red"))
    if lines:
        lines.append("")
    lines.append(_paint(plan.summary(), colour, bold=True))
    return "\n".join(lines) + "\n"


def plan_markdown(plan: Plan, *, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """A pull-request comment: a summary table and collapsible details, under ``limit``.

    Long lists (conflicts, pending prunes) are cut to their first names; changes are shown
    in order for as long as they fit, and a notice says how many were left out.
    """
    title = "### RedBeat schedule plan"
    if plan.target_name:
        title += f" for target {_code(plan.target_name)}"
    head = [f"{title} (`{plan.key_prefix}`)", "", f"**{plan.summary()}**", ""]
    head += [f"> :warning: {notice}" for notice in plan.notices]
    if beat_line(plan):
        head += [f"> :alarm_clock: {beat_line(plan)}", ""]
    head += [f"> :x: {conflict.message}" for conflict in plan.conflicts[:MARKDOWN_LIST_LIMIT]]
    if len(plan.conflicts) > MARKDOWN_LIST_LIMIT:
        hidden = len(plan.conflicts) - MARKDOWN_LIST_LIMIT
        head.append(f"> ... list truncated: {hidden} more conflicts (see the job log)")
    if plan.conflicts:
        head.append("")
    if plan.pending_prune:
        names = [_code(name) for name in plan.pending_prune[:MARKDOWN_LIST_LIMIT]]
        more = len(plan.pending_prune) - len(names)
        head.append(
            "Managed entries no longer in the files, kept until applied with `--prune`: "
            + ", ".join(names)
            + (f" and {more} more (list truncated; see the job log)" if more else "")
        )
        head.append("")
    if not plan.changes:
        return "\n".join(head).rstrip() + "\n"
    rows = [
        f"| {_SYMBOL[change.action][0]} | {_code(change.name)} | {verb(change)} | "
        f"{_markdown_runs(change)} |"
        for change in plan.changes
    ]
    details = [_markdown_details(change) for change in plan.changes]
    table = ["| | entry | change | next run |", "| --- | --- | --- | --- |"]
    # Room for the head, the table header and the truncation notice; then changes fit in.
    budget = limit - len("\n".join(head + table)) - 400
    costs = accumulate(
        len(row) + len(detail) + 2 for row, detail in zip(rows, details, strict=True)
    )
    shown = bisect_right(list(costs), budget)
    parts = head + table + rows[:shown]
    if shown < len(rows):
        parts += [
            "",
            f"_Truncated to fit a GitHub comment: {len(rows) - shown} of {len(rows)} changes "
            "are not shown. Run `reconciler plan` or see the job log for the full plan._",
        ]
    parts += ["", *details[:shown]]
    return "\n".join(parts).rstrip() + "\n"


MARKDOWN_LIST_LIMIT = 50


def _code(name: str) -> str:
    """A name as inline code in a markdown table: escaped, and never breaking the cell."""
    return "`" + shown_name(name).replace("`", "'").replace("|", "\\|") + "`"


def _markdown_runs(change: Change) -> str:
    if change.action is Action.DELETE:
        return "never again"
    if not change.enabled:
        return "disabled"
    first = change.expected_first_run
    if change.next_runs and first is not None and first > change.next_runs[0]:
        # Beat's sleep, not the schedule, decides the first run.
        return f"{when(first.astimezone(change.next_runs[0].tzinfo))} (when beat wakes)"
    return when(change.next_runs[0]) if change.next_runs else "none"


def _markdown_details(change: Change) -> str:
    body = "\n".join(change_details(change)) or "(no details)"
    fence = "```"
    while fence in body:  # values may hold backticks: the fence must outlast them
        fence += "`"
    return (
        f"<details><summary><code>{html.escape(shown_name(change.name))}</code>: "
        f"{verb(change)}</summary>\n\n"
        f"{fence}\n{body}\n{fence}\n</details>\n"
    )
