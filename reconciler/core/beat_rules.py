"""What the pure core asks of Celery and RedBeat: their arithmetic and encodings.

Fire times, definitions and meta must be Celery's and RedBeat's own, never a
reimplementation; the core receives them through this protocol, which
beat/redbeat_rules.py implements with those libraries, so importing the core loads neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from datetime import datetime

    from reconciler.core.live import LiveMeta
    from reconciler.core.model import DesiredEntry, Schedule


class BeatRules(Protocol):
    """Beat's rules in one Celery timezone (crontabs are evaluated in beat's zone)."""

    @property
    def timezone_name(self) -> str: ...

    def definition(self, entry: DesiredEntry) -> str:
        """The ``definition`` hash field, byte for byte as RedBeat's ``save()`` writes it."""

    def meta(self, text: str | None, *, strict: bool = True) -> LiveMeta | None:
        """RedBeat's ``meta`` field decoded; None when absent or unusable (strict: only the
        keys beat writes; otherwise those two are salvaged from a meta that has more)."""

    def fire_times(self, spec: Schedule, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` runs strictly after ``after``, as beat makes them (fewer once
        the schedule ends). Raises ValueError or OverflowError when none can be computed."""
