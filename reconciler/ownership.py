"""How a managed entry is marked as the reconciler's own.

The marker is an extra hash field beside 'definition' and 'meta'. Beat reads only those two
fields (HGET), and RedBeat's delete() removes the whole key, so the marker is invisible to
beat. It must never go inside 'definition', which beat passes as keyword arguments to its
entry class.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from reconciler.secret_refs import pairs_from_json, pairs_to_json

if TYPE_CHECKING:
    from collections.abc import Iterable

    from reconciler.secret_refs import JsonPath

MARKER_FIELD = "reconciler"
MARKER_VALUE = '{"managed_by": "redbeat-reconciler", "format": 1}'


def marker_for(sensitive: Iterable[tuple[JsonPath, str]], values: Iterable[str] = ()) -> str:
    """The marker of an entry; one whose values came from the environment also lists
    where (with the templates, which name variables and never hold their values), so every
    later plan, drift check and export knows which live values must not be shown, and the
    SHA-256 of each such value (harmless beside the value itself, in the same hash), so a
    value someone moved to another argument in Redis is still recognised."""
    pairs = pairs_to_json(sensitive)
    if not pairs:
        return MARKER_VALUE
    digests = sorted({value_digest(value) for value in values})
    return json.dumps(
        {"managed_by": "redbeat-reconciler", "format": 1, "sensitive": pairs, "digests": digests}
    )


def value_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def sensitive_in_marker(marker: str | None) -> dict[JsonPath, str]:
    """The sensitive paths a live entry's marker records (none for a foreign or odd one)."""
    document = _marker_document(marker)
    return dict(pairs_from_json(document.get("sensitive")))


def secret_digests_in_marker(marker: str | None) -> frozenset[str]:
    digests = _marker_document(marker).get("digests")
    if not isinstance(digests, list):
        return frozenset()
    return frozenset(item for item in digests if isinstance(item, str))


def _marker_document(marker: str | None) -> dict[str, object]:
    if not marker or marker == MARKER_VALUE:
        return {}
    try:
        document = json.loads(marker)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
