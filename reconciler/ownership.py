"""How a managed entry is marked as the reconciler's own.

The marker is an extra hash field beside 'definition' and 'meta'. Beat reads only those two
fields (HGET), and RedBeat's delete() removes the whole key, so the marker is invisible to
beat. It must never go inside 'definition', which beat passes as keyword arguments to its
entry class.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.secret_refs import pairs_from_json, pairs_to_json

if TYPE_CHECKING:
    from collections.abc import Iterable

    from reconciler.secret_refs import JsonPath

MARKER_FIELD = "reconciler"
MARKER_VALUE = '{"managed_by": "redbeat-reconciler", "format": 1}'


def marker_for(sensitive: Iterable[tuple[JsonPath, str]]) -> str:
    """The marker of an entry; one whose values came from the environment also lists
    where (with the templates, which name variables and never hold their values), so every
    later plan, drift check and export knows which live values must not be shown."""
    pairs = pairs_to_json(sensitive)
    if not pairs:
        return MARKER_VALUE
    return json.dumps({"managed_by": "redbeat-reconciler", "format": 1, "sensitive": pairs})


def sensitive_in_marker(marker: str | None) -> dict[JsonPath, str]:
    """The sensitive paths a live entry's marker records (none for a foreign or odd one)."""
    if not marker or marker == MARKER_VALUE:
        return {}
    try:
        document = json.loads(marker)
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    return dict(pairs_from_json(document.get("sensitive")))
