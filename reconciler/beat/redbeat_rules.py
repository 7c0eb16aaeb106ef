"""Beat's rules computed by Celery's and RedBeat's own code (see beat_rules.BeatRules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.beat.celery_objects import DEFAULT_TIMEZONE
from reconciler.beat.fire_times import next_fire_times
from reconciler.beat.redbeat_codec import decode_meta, encode_definition

if TYPE_CHECKING:
    from datetime import datetime

    from reconciler.core.live import LiveMeta
    from reconciler.core.model import DesiredEntry, Schedule


@dataclass(frozen=True)
class RedBeatRules:
    timezone_name: str = DEFAULT_TIMEZONE
    # Metas decoded, by text: a plan asks about each entry's meta more than once (its
    # health, then the zones beat records runs in). LiveMeta is immutable.
    _metas: dict[tuple[str | None, bool], LiveMeta | None] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def definition(self, entry: DesiredEntry) -> str:
        return encode_definition(entry, self.timezone_name)

    def meta(self, text: str | None, *, strict: bool = True) -> LiveMeta | None:
        key = (text, strict)
        try:
            return self._metas[key]
        except KeyError:
            meta = self._metas[key] = decode_meta(text, strict=strict)
            return meta

    def fire_times(self, spec: Schedule, after: datetime, count: int) -> list[datetime]:
        return next_fire_times(spec, after, count, self.timezone_name)
