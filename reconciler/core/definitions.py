"""RedBeat's stored definitions as plain JSON: their keys, and what they mean (pure).

Comparing the definition the files want with the one Redis holds needs no Celery object:
both are JSON, and ``essence`` removes the encoding accidents that do not change what beat
does. Encoding and decoding with RedBeat's own classes is redbeat_codec's job.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from reconciler.core.model import RRuleSchedule

DEFINITION_KEYS = ("name", "task", "args", "kwargs", "options", "schedule", "enabled")
CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
# RedBeat stores an rrule with dateutil's argument names, as the model's fields are named.
RRULE_BY_FIELDS = tuple(item.name for item in fields(RRuleSchedule) if item.name.startswith("by"))
META_KEYS = frozenset({"last_run_at", "total_run_count"})


def parse_definition(text: str | None) -> dict[str, Any] | None:
    """The stored definition (or ownership marker) as plain JSON, schedule objects left
    undecoded; None unless it is a JSON object."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def essence(definition: dict[str, Any]) -> dict[str, Any]:
    """What a definition means, with encoding accidents removed, for comparison.

    Entries written by application code differ in bytes but not in meaning from ours:
    ``"args": null`` for no arguments, ``crontab(minute=0)`` stored as 0 rather than "0",
    dateutil weekday objects instead of integers, single rrule values instead of lists.
    Only such harmless variants are normalised: anything beat or Celery would choke on
    (unknown keys, kwargs that are not a mapping, an interval without ``relative``) is kept
    as it is, so it never compares equal to a valid definition and gets rewritten.
    """
    result = dict(definition)
    for key, empty in (("args", []), ("kwargs", {}), ("options", {})):
        if definition.get(key) is None:
            result[key] = empty
    result["enabled"] = definition.get("enabled", True)
    schedule = definition.get("schedule")
    if isinstance(schedule, dict):
        result["schedule"] = _schedule_essence(schedule)
    return result


def _schedule_essence(schedule: dict[str, Any]) -> dict[str, Any]:
    kind = schedule.get("__type__")
    normalised = dict(schedule)
    if kind == "crontab":
        for field in CRONTAB_FIELDS:
            value = schedule.get(field, "*")
            is_int = isinstance(value, int) and not isinstance(value, bool)
            normalised[field] = str(value) if is_int else value
    elif kind == "interval":
        every = schedule.get("every")
        if isinstance(every, int) and not isinstance(every, bool):
            normalised["every"] = float(every)
    elif kind == "rrule":
        for field, value in schedule.items():
            if field.startswith("by") or field == "wkst":
                normalised[field] = _rrule_values(value)
        normalised.setdefault("interval", 1)
    return normalised


def _rrule_values(value: Any) -> Any:
    if value is None:
        return None
    return [_weekday_number(item) for item in (value if isinstance(value, list) else [value])]


def _weekday_number(item: Any) -> Any:
    if isinstance(item, dict) and item.get("__type__") == "weekday":
        return item.get("wkday")
    return item
