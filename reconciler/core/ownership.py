"""How a managed entry is marked as the reconciler's own.

The marker is an extra hash field beside 'definition' and 'meta'. Beat reads only those two
fields (HGET), and RedBeat's delete() removes the whole key, so the marker is invisible to
beat. It must never go inside 'definition', which beat passes as keyword arguments to its
entry class.
"""

from __future__ import annotations

MARKER_FIELD = "reconciler"
# An entry whose values came from the environment carries a longer marker, which also
# records where they are (see secrets.entry_marker).
MARKER_VALUE = '{"managed_by": "redbeat-reconciler", "format": 1}'
