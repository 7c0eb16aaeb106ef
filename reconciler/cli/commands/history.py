"""``reconciler history``: the applies recorded in Redis, newest first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.render import shown_name
from reconciler.store.apply_lock import LOCK_TTL_SECONDS, lock_token
from reconciler.store.history import COMPLETE, read_history
from reconciler.store.session import open_store

if TYPE_CHECKING:
    from reconciler.cli.commands.requests import Console, HistoryRequest
    from reconciler.store.history import HistoryRecord

_SHORT = {"create": "+", "update": "~", "adopt": "=", "delete": "-", "repair": "!", "move": ">"}


def history(request: HistoryRequest, console: Console) -> int:
    with open_store(request.store, notice=console.notice) as store:
        running = lock_token(str(store.client.get(store.keys.apply_lock) or ""))
        records = read_history(store.client, store.keys, request.limit, running=running)
    if request.output_format == "json":
        console.echo(json.dumps([record.as_json() for record in records], indent=2) + "\n")
    else:
        console.echo(history_text(records))
    return 0


def history_text(records: list[HistoryRecord]) -> str:
    if not records:
        return "No applies recorded yet.\n"
    lines = []
    for record in records:
        counts = " ".join(
            f"{_SHORT.get(action, action)}{count}"
            for action, count in sorted(record.counts.items())
        )
        revision = record.revision[:12] or "-"
        head = f"{record.at}  {record.actor}  rev {revision}  {counts}"
        if record.source:  # records written before the source was kept have none
            head += f"  via {record.source}"
            if record.fields.get("phase"):
                head += f" ({record.fields['phase']})"
        lines.append(head)
        if record.state != COMPLETE:
            lines.append(
                f"    (partial: {record.batches} of {record.planned_batches} batches committed; "
                + (
                    "its lock is still held: the apply is running, or ended less than "
                    f"{LOCK_TTL_SECONDS:g} s ago)"
                    if record.holds_lock
                    else f"{_what_is_left(record)})"
                )
            )
        for action, names in sorted(record.names.items()):
            shown = names if isinstance(names, list) else [names]
            lines.append(f"    {action}: {', '.join(shown_name(str(name)) for name in shown)}")
    return "\n".join(lines) + "\n"


def _what_is_left(record: HistoryRecord) -> str:
    if record.source == "move-prefix":
        # Under the new prefix a plan shows the moved entries as they are, not what was
        # left behind under the old one; the move command does.
        return f"move-prefix --from {record.fields.get('from', 'OLD')!r} shows what is left"
    return "the next plan shows what is left"
