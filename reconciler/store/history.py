"""The apply history: a capped Redis stream in the reconciler's namespace.

Every batch of an apply appends its own record inside the transaction that writes the batch,
so the record exists exactly when the batch committed: after a lost reply, a killed process
or a Redis crash, the stream says which batches of which apply are in Redis. The records of
one apply share its ``apply`` id and are numbered ``batch: k/n``; reading groups them back
into one entry per apply, marked partial when its last batch never committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from reconciler.core.errors import WrongKeyType
from reconciler.store.keys import wrong_type_message

if TYPE_CHECKING:
    from collections.abc import Iterable

    from reconciler.store.keys import KeySpace

# Records, not applies: an apply of N changes takes N / 500 of them (one per batch).
HISTORY_MAX_RECORDS = 10_000
_READ_CHUNK = 200

COMPLETE = "complete"
PARTIAL = "partial"  # its last batch never committed: running, killed, cut off or refused


@dataclass(frozen=True)
class HistoryRecord:
    """One apply (or one re-check after it), however many batches it took."""

    id: str  # the stream id of its first record
    at: str
    actor: str
    source: str  # the command: "apply" or "drift --fix" ("" in records before it was kept)
    revision: str
    counts: dict[str, int]
    names: dict[str, list[str]]
    fields: dict[str, str]
    state: str = COMPLETE
    batches: int = 1  # committed
    planned_batches: int = 1
    # Partial, and its apply still holds the apply lock: it is still running, or it died
    # (or lost Redis) less than one lock lease ago.
    holds_lock: bool = False

    def as_json(self) -> dict[str, Any]:
        shown = {**vars(self), "source": self.source or None}
        fields = shown.pop("fields")
        return shown | {key: value for key, value in fields.items() if key not in _KNOWN}


_KNOWN = {"at", "actor", "source", "revision", "counts", "names", "apply", "batch", "partial"}


def history_fields(
    *,
    at: str,
    actor: str,
    source: str,
    revision: str,
    names: dict[str, list[str]],
    extra: dict[str, str],
) -> dict[str, str]:
    counts = {action: len(found) for action, found in names.items()}
    return {
        "at": at,
        "actor": actor,
        "source": source,
        "revision": revision,
        "counts": json.dumps(counts, sort_keys=True),
        "names": json.dumps(names, sort_keys=True),
        **extra,
    }


def queue_append(pipe: redis.Redis, keys: KeySpace, fields: dict[str, str]) -> None:
    """Append, within the caller's transaction when ``pipe`` is one (so that the record
    commits with the changes)."""
    pipe.xadd(keys.history, fields, maxlen=HISTORY_MAX_RECORDS, approximate=True)  # type: ignore[arg-type]


def batch_committed(client: redis.Redis, keys: KeySpace, apply_id: str, batch: str) -> bool:
    """Whether the record of ``batch`` of apply ``apply_id`` is in the stream, i.e. whether
    that batch committed. Only the lock holder appends, so it is among the newest records."""
    for _, raw in _read(client, keys, "+", 10):
        if raw.get("apply") == apply_id and raw.get("batch") == batch:
            return True
    return False


def read_history(
    client: redis.Redis, keys: KeySpace, limit: int, *, running: str | None = None
) -> list[HistoryRecord]:
    """The newest ``limit`` applies; ``running`` is the id of the apply holding the lock now."""
    groups: list[list[tuple[str, dict[str, str]]]] = []
    start = "+"
    while True:
        chunk = _read(client, keys, start, _READ_CHUNK)
        for record_id, fields in chunk:
            apply_id = fields.get("apply")
            if groups and apply_id and groups[-1][0][1].get("apply") == apply_id:
                groups[-1].append((record_id, fields))  # an earlier batch of the same apply
                continue
            if len(groups) == limit:
                return [_combine(group, running) for group in groups]
            groups.append([(record_id, fields)])
        if len(chunk) < _READ_CHUNK:
            return [_combine(group, running) for group in groups]
        start = f"({chunk[-1][0]}"


def _read(
    client: redis.Redis, keys: KeySpace, start: str, count: int
) -> list[tuple[str, dict[str, str]]]:
    try:
        found = client.xrevrange(keys.history, max=start, count=count) or []
    except redis.ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        kind = "holds a value of another type than the stream the reconciler keeps there"
        raise WrongKeyType(wrong_type_message(keys, keys.history, kind)) from None
    return [
        (str(record_id), {str(key): str(value) for key, value in (raw or {}).items()})
        for record_id, raw in found
    ]


def _combine(group: list[tuple[str, dict[str, str]]], running: str | None) -> HistoryRecord:
    """One apply from its batch records (newest first, as read)."""
    oldest_id, first = group[-1]
    counts: dict[str, int] = {}
    names: dict[str, list[str]] = {}
    numbers: set[int] = set()
    planned = 1
    for _, fields in reversed(group):
        for action, count in _mapping(fields.get("counts")).items():
            counts[action] = counts.get(action, 0) + (count if isinstance(count, int) else 0)
        for action, found in _mapping(fields.get("names")).items():
            names.setdefault(action, []).extend(_listed(found))
        number, of = _batch(fields.get("batch"))
        numbers.add(number)
        planned = max(planned, of)
    partial = first.get("partial") == "true" or planned not in numbers
    return HistoryRecord(
        id=oldest_id,
        at=first.get("at", ""),
        actor=first.get("actor", ""),
        source=first.get("source", ""),
        revision=first.get("revision", ""),
        counts=counts,
        names=names,
        fields=first,
        state=PARTIAL if partial else COMPLETE,
        batches=len(numbers),
        planned_batches=planned,
        holds_lock=partial and bool(running) and first.get("apply") == running,
    )


def _batch(text: str | None) -> tuple[int, int]:
    """``k/n`` as written by the writer; a record without it (written before batches were
    recorded, or by hand) is a whole apply of one batch."""
    number, _, total = (text or "1/1").partition("/")
    try:
        return max(int(number), 1), max(int(total), 1)
    except ValueError:
        return 1, 1


def _listed(found: object) -> Iterable[str]:
    return [str(name) for name in found] if isinstance(found, list) else [str(found)]


def _mapping(text: str | None) -> dict[str, Any]:
    """History written by hand or by another tool is shown as far as it makes sense."""
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):
        return {}
    return {str(key): item for key, item in value.items()} if isinstance(value, dict) else {}
