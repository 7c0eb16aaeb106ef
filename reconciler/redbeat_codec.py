"""The exact bytes RedBeat stores for an entry, produced by RedBeat's own encoder.

``definition`` must hold exactly the seven keys ``RedBeatSchedulerEntry.save()`` writes:
beat passes the decoded dict as keyword arguments to the entry class, so any other key
would crash it with a TypeError.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from redbeat.decoder import RedBeatJSONEncoder

from reconciler.schedules.celery_objects import DEFAULT_TIMEZONE, celery_schedule

if TYPE_CHECKING:
    from reconciler.model import DesiredEntry

DEFINITION_KEYS = ("name", "task", "args", "kwargs", "options", "schedule", "enabled")


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
    return json.dumps(definition_of(entry, timezone), cls=RedBeatJSONEncoder)
