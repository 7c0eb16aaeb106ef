"""How a managed entry is marked as the reconciler's own.

The marker is an extra hash field beside 'definition' and 'meta'. Beat reads only those two
fields (HGET), and RedBeat's delete() removes the whole key, so the marker is invisible to
beat. It must never go inside 'definition', which beat passes as keyword arguments to its
entry class.
"""

from __future__ import annotations

from functools import lru_cache

from reconciler.core.definitions import parse_definition

MARKER_FIELD = "reconciler"
# An entry whose values came from the environment carries a longer marker, which also
# records where they are (see secrets.entry_marker).
MARKER_VALUE = '{"managed_by": "redbeat-reconciler", "format": 1}'


@lru_cache(maxsize=1024)
def is_marker(value: str | None) -> bool:
    """Whether a hash's marker field holds the reconciler's marker, the only proof that the
    reconciler wrote the entry: RedBeat never removes a single field (its delete() removes
    the whole key), so a definition without it was written, or re-created, by someone else.
    A membership of the managed index alone proves nothing; a field of that name holding
    anything else is someone else's."""
    if value == MARKER_VALUE:
        return True
    document = parse_definition(value)
    return document is not None and document.get("managed_by") == "redbeat-reconciler"
