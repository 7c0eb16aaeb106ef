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

from reconciler.core.definitions import parse_definition
from reconciler.core.secret_refs import pairs_from_json, pairs_to_json, strings_in

if TYPE_CHECKING:
    from collections.abc import Iterable

    from reconciler.core.live import LiveEntry
    from reconciler.core.secret_refs import JsonPath

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


def public_marker(marker: str) -> str:
    """The marker without its digests, for saved plans: a plan file may travel (a CI
    artifact), and a fast hash of a secret there would let anyone test guesses of it."""
    document = _marker_document(marker)
    if "digests" not in document:
        return marker
    return json.dumps({key: value for key, value in document.items() if key != "digests"})


def live_secret_values(current: LiveEntry) -> frozenset[str]:
    """The strings of a live definition that the reconciler wrote from the environment,
    recognised by the digests its marker records wherever they are now (mapping keys too)."""
    digests = secret_digests_in_marker(current.marker)
    stored = parse_definition(current.definition_text) if digests else None
    if stored is None:
        return frozenset()
    return frozenset(value for _path, value in strings_in(stored) if value_digest(value) in digests)
