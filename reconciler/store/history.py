"""The apply history: a capped Redis stream in the reconciler's namespace."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from reconciler.core.errors import WrongKeyType
from reconciler.store.keys import wrong_type_message

if TYPE_CHECKING:
    from reconciler.store.keys import KeySpace

HISTORY_MAX_RECORDS = 1000


@dataclass(frozen=True)
class HistoryRecord:
    id: str
    at: str
    actor: str
    source: str  # the command: "apply" or "drift --fix" ("" in records before it was kept)
    revision: str
    counts: dict[str, int]
    names: dict[str, list[str]]
    fields: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        shown = {**vars(self), "source": self.source or None}
        fields = shown.pop("fields")
        return shown | {key: value for key, value in fields.items() if key not in _KNOWN}


_KNOWN = {"at", "actor", "source", "revision", "counts", "names"}


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


def read_history(client: redis.Redis, keys: KeySpace, limit: int) -> list[HistoryRecord]:
    records = []
    try:
        found = client.xrevrange(keys.history, count=limit) or []
    except redis.ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        kind = "holds a value of another type than the stream the reconciler keeps there"
        raise WrongKeyType(wrong_type_message(keys, keys.history, kind)) from None
    for record_id, raw in found:
        fields = {str(key): str(value) for key, value in (raw or {}).items()}
        records.append(
            HistoryRecord(
                id=str(record_id),
                at=fields.get("at", ""),
                actor=fields.get("actor", ""),
                source=fields.get("source", ""),
                revision=fields.get("revision", ""),
                counts=_mapping(fields.get("counts")),
                names=_mapping(fields.get("names")),
                fields=fields,
            )
        )
    return records


def _mapping(text: str | None) -> dict[str, Any]:
    """History written by hand or by another tool is shown as far as it makes sense."""
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):
        return {}
    return {str(key): item for key, item in value.items()} if isinstance(value, dict) else {}
