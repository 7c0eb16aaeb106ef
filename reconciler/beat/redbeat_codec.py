"""The exact bytes RedBeat stores for an entry, produced by RedBeat's own encoder.

``definition`` must hold exactly the seven keys ``RedBeatSchedulerEntry.save()`` writes:
beat passes the decoded dict as keyword arguments to the entry class, so any other key
would crash it with a TypeError.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder

from reconciler.beat.celery_objects import DEFAULT_TIMEZONE, celery_schedule, exact_key
from reconciler.core.definitions import CRONTAB_FIELDS, META_KEYS, RRULE_BY_FIELDS
from reconciler.core.live import LiveMeta
from reconciler.core.model import CronSchedule, DesiredEntry, IntervalSchedule, RRuleSchedule

if TYPE_CHECKING:
    from reconciler.core.model import Schedule


def definition_of(entry: DesiredEntry, timezone: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """The definition dict in the key order RedBeat writes it, schedule as Celery's object."""
    return {
        "name": entry.name,
        "task": entry.task,
        "args": list(entry.args),
        "kwargs": dict(entry.kwargs),
        "options": dict(entry.options),
        "schedule": celery_schedule(entry.schedule, timezone),
        "enabled": entry.enabled,
    }


def encode_definition(entry: DesiredEntry, timezone: str = DEFAULT_TIMEZONE) -> str:
    """The ``definition`` hash field, byte for byte as RedBeat's ``save()`` encodes it."""
    if entry.templates:
        # A reference written as is would hand beat the literal '${env:NAME}'.
        raise ValueError(
            f"'{entry.name}' holds unresolved ${{env:...}} references; "
            "resolve them with secrets.resolve_references first"
        )
    return json.dumps(definition_of(entry, timezone), cls=RedBeatJSONEncoder)


def check_schedule_encodes(spec: Schedule, timezone: str = DEFAULT_TIMEZONE) -> None:
    """Raise ValueError (or what RedBeat's encoder raises) unless Celery builds ``spec`` and
    RedBeat can encode it: the schedule's part of ``encode_definition``, asked once per
    distinct schedule."""
    try:
        key = (exact_key(spec), timezone)
        if key in _ENCODABLE:
            return
    except TypeError:  # a value without a hash: checked each time
        key = None
    json.dumps(celery_schedule(spec, timezone), cls=RedBeatJSONEncoder)
    if key is not None and len(_ENCODABLE) < _ENCODABLE_LIMIT:
        _ENCODABLE.add(key)


_ENCODABLE: set[object] = set()
_ENCODABLE_LIMIT = 100_000


def encode_meta(last_run_at: datetime | None, total_run_count: int, timezone_name: str) -> str:
    """A ``meta`` field as beat writes it: last_run_at in beat's zone, and the run count."""
    moment = last_run_at.astimezone(ZoneInfo(timezone_name)) if last_run_at else None
    return json.dumps(
        {"last_run_at": moment, "total_run_count": total_run_count}, cls=RedBeatJSONEncoder
    )


def decode_meta(text: str | None, *, strict: bool = True) -> LiveMeta | None:
    """RedBeat's ``meta`` field, or None when absent or not usable as it is.

    Beat merges meta into the definition before building its entry (``definition.update
    (meta)``), so any other key in it overrides the task or its arguments, or crashes beat;
    strictly, only ``last_run_at`` and ``total_run_count`` are acceptable. ``strict=False``
    salvages those two from a meta that has more.
    """
    if not text:
        return None
    try:
        meta = json.loads(text, cls=RedBeatJSONDecoder)
        if not isinstance(meta, dict) or (strict and not set(meta) <= META_KEYS):
            return None
        last_run_at = meta.get("last_run_at")
        count = meta.get("total_run_count") or 0
    except Exception:  # untrusted bytes from Redis: any failure = unusable
        return None
    if last_run_at is not None and not isinstance(last_run_at, datetime):
        return None
    if isinstance(count, bool) or not isinstance(count, int):
        return None
    if last_run_at is not None and last_run_at.tzinfo is None:
        last_run_at = last_run_at.replace(tzinfo=timezone.utc)
    return LiveMeta(last_run_at=last_run_at, total_run_count=count)


def schedule_from_json(schedule: Any) -> Schedule:
    """The schedule spec of a stored definition; ValueError for what RedBeat cannot hold."""
    if not isinstance(schedule, dict):
        raise ValueError(f"not a RedBeat schedule: {schedule!r}")
    kind = schedule.get("__type__")
    if kind == "crontab":
        return CronSchedule(**{field: schedule.get(field, "*") for field in CRONTAB_FIELDS})
    if kind == "interval":
        return IntervalSchedule(
            seconds=float(schedule["every"]), relative=bool(schedule.get("relative", False))
        )
    if kind == "rrule":
        decoded = json.loads(json.dumps(schedule), cls=RedBeatJSONDecoder)
        return RRuleSchedule(
            freq=decoded.freq,
            dtstart=decoded.dtstart,
            interval=decoded.interval,
            wkst=_plain_weekday(decoded.wkst),
            count=decoded.count,
            until=decoded.until,
            **{name: _tuple_or_int(getattr(decoded, name)) for name in RRULE_BY_FIELDS},
        )
    raise ValueError(
        f"schedule type {kind!r} cannot be handled (RedBeat stores crontab, interval and rrule)"
    )


def entry_from_definition(name: str, definition: dict[str, Any]) -> DesiredEntry:
    """A stored definition as an entry value (for scoring, repairs and export)."""
    return DesiredEntry(
        name=name,
        task=str(definition.get("task", "")),
        schedule=schedule_from_json(definition.get("schedule")),
        args=list(definition.get("args") or []),
        kwargs=dict(definition.get("kwargs") or {}),
        options=dict(definition.get("options") or {}),
        enabled=bool(definition.get("enabled", True)),
    )


def _plain_weekday(value: Any) -> Any:
    return getattr(value, "weekday", value)


def _tuple_or_int(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_plain_weekday(item) for item in value)
    return _plain_weekday(value)
