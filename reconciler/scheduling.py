"""When RedBeat should next consider an entry: the score policy shared by plan and apply.

RedBeat scores an entry, right after each run, with the next time its schedule fires after
that run; beat only loads entries whose score is due. Scores are whole UTC seconds; -1 parks
an entry (beat never loads a negative score).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from redbeat.decoder import to_timestamp

from reconciler.schedules.fire_times import next_fire_times

if TYPE_CHECKING:
    from reconciler.live import LiveMeta
    from reconciler.model import Schedule

PARKED = -1.0
# Beat computes a score a moment after the run it follows and truncates it to whole
# seconds, so a healthy score can sit a little before the exact next fire time.
SCORE_TOLERANCE_SECONDS = 2.0


# A last run this far ahead of our clock is not clock skew between hosts but bad data.
FUTURE_RUN_TOLERANCE = timedelta(minutes=5)


_UTC_NAMES = frozenset(
    {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "GMT", "Etc/GMT", "Universal", "Zulu", "Etc/Zulu"}
)


def foreign_zones(metas: list[LiveMeta], timezone_name: str) -> list[str]:
    """Zones beat recorded runs in that differ from the configured one.

    Beat writes each last run in its own Celery timezone (a zone name in ``meta``); when
    those differ from --timezone, crontabs are evaluated in another zone than beat's and
    every score looks wrong.
    """
    found = set()
    for meta in metas:
        zone = getattr(meta.last_run_at.tzinfo, "key", None) if meta.last_run_at else None
        if zone and zone != timezone_name and not {zone, timezone_name} <= _UTC_NAMES:
            found.add(zone)
    return sorted(found)


def next_due(spec: Schedule, last_run_at: datetime, timezone_name: str) -> datetime | None:
    """The first fire time after ``last_run_at`` (None once an rrule is exhausted, or when
    the date arithmetic leaves the calendar, as a last run in year 9999 would)."""
    try:
        upcoming = next_fire_times(spec, last_run_at, 1, timezone_name)
    except (OverflowError, ValueError):
        return None
    return upcoming[0] if upcoming else None


def score_of(moment: datetime | None) -> float:
    return PARKED if moment is None else float(to_timestamp(moment))


def expected_score(
    spec: Schedule, last_run_at: datetime, enabled: bool, timezone_name: str
) -> float:
    """The score beat itself would have written after a run at ``last_run_at``."""
    if not enabled:
        return PARKED
    return score_of(next_due(spec, last_run_at, timezone_name))


def score_is_wrong(live_score: float, expected: float, now: datetime) -> bool:
    """True when the stored score makes beat miss or delay runs (or run a parked entry).

    An early score is harmless (beat loads the entry, finds it not yet due, and waits), so
    only a score later than expected, or a parked one, counts, unless both are already due.
    """
    now_score = now.astimezone(timezone.utc).timestamp()
    if expected == PARKED:
        return live_score >= 0  # any negative score parks: beat loads scores 0..now only
    if live_score < 0:
        return True
    if live_score <= now_score and expected <= now_score:
        return False
    return live_score > expected + SCORE_TOLERANCE_SECONDS
