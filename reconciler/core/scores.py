"""When RedBeat should next consider an entry: the score policy shared by plan and apply.

RedBeat scores an entry, right after each run, with the next time its schedule fires after
that run; beat only loads entries whose score is due. Scores are whole UTC seconds; -1 parks
an entry (beat never loads a negative score).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import TYPE_CHECKING

from reconciler.core.model import IntervalSchedule
from reconciler.core.plan import Clock, Repair

if TYPE_CHECKING:
    from collections.abc import Iterable

    from reconciler.core.beat_rules import BeatRules
    from reconciler.core.live import LiveMeta
    from reconciler.core.model import Schedule

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


def _fire_times(spec: Schedule, after: datetime, rules: BeatRules, count: int) -> list[datetime]:
    """Beat's next runs; none once an rrule is exhausted, or when the date arithmetic
    leaves the calendar, as a last run in year 9999 would."""
    try:
        return rules.fire_times(spec, after, count)
    except (OverflowError, ValueError):
        return []


def next_due(spec: Schedule, last_run_at: datetime, rules: BeatRules) -> datetime | None:
    """The first fire time after ``last_run_at``, if any."""
    upcoming = _fire_times(spec, last_run_at, rules, 1)
    return upcoming[0] if upcoming else None


def score_of(moment: datetime | None) -> float:
    """A moment as a RedBeat score: whole UTC epoch seconds (redbeat.decoder.to_timestamp)."""
    return PARKED if moment is None else float(calendar.timegm(moment.utctimetuple()))


def expected_score(spec: Schedule, last_run_at: datetime, enabled: bool, rules: BeatRules) -> float:
    """The score beat itself would have written after a run at ``last_run_at``."""
    if not enabled:
        return PARKED
    return score_of(next_due(spec, last_run_at, rules))


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


@dataclass(frozen=True)
class ClockOutcome:
    """What applying a Clock policy writes, and the runs beat then makes."""

    write_meta: bool  # meta is (re)written with last_run_at below
    last_run_at: datetime | None
    score: float | None  # None: the score is left as it is
    runs: tuple[datetime, ...]  # the next runs; the first is what the score makes beat do


def clock_outcome(
    clock: Clock,
    spec: Schedule,
    enabled: bool,
    history: LiveMeta | None,
    now: datetime,
    rules: BeatRules,
    count: int = 1,
    *,
    unusable_history: bool = False,
) -> ClockOutcome:
    """The one arithmetic behind both the score apply writes and the runs a plan shows.

    ``history`` is the entry's usable meta as read (None: absent, or ``unusable_history``).
    The plan applies it to what it read, the writer to what it re-reads under the lock, so a
    run beat made in between is kept. An entry due at or before ``now`` runs at beat's next
    tick (Celery runs a missed slot once), and its later runs follow from that run.
    """
    if clock in (Clock.FRESH, Clock.RESTART) or (clock is Clock.RUN_NOW and not enabled):
        return _restarted(spec, enabled, now, rules, count)
    if clock is Clock.RUN_NOW:
        return ClockOutcome(True, None, score_of(now), _due_now(spec, now, rules, count))
    if history is None:
        if clock is Clock.KEEP and (enabled or unusable_history):
            # No run history beat can use: one starts now, so the next run is the next
            # scheduled time and never an immediate surprise run (beat runs an entry without
            # meta at once, and merges unusable meta into the definition).
            return _restarted(spec, enabled, now, rules, count)
        return ClockOutcome(False, None, PARKED if clock is Clock.KEEP else None, ())
    if history.last_run_at is None:
        # Never run: beat treats it as due now, so it is scored now.
        due, runs = (now, _due_now(spec, now, rules, count)) if enabled else (None, ())
    else:
        # The score beat itself writes after a run: the next fire time after it, even when
        # that is already past (beat then runs it at its next tick).
        due, runs = _runs(spec, history.last_run_at, enabled, now, rules, count)
    return ClockOutcome(
        False, history.last_run_at, score_of(due) if clock is Clock.KEEP else None, runs
    )


def _restarted(
    spec: Schedule, enabled: bool, now: datetime, rules: BeatRules, count: int
) -> ClockOutcome:
    due, runs = _runs(spec, now, enabled, now, rules, count)
    return ClockOutcome(True, now, score_of(due), runs)


def _runs(
    spec: Schedule,
    after: datetime,
    enabled: bool,
    now: datetime,
    rules: BeatRules,
    count: int,
) -> tuple[datetime | None, tuple[datetime, ...]]:
    """The first fire time after ``after`` (None: disabled, or the schedule has ended),
    and the runs beat makes from there: computed once, for the score and the preview."""
    upcoming = _fire_times(spec, after, rules, count) if enabled else []
    if not upcoming:
        return None, ()
    if upcoming[0] <= now:
        return upcoming[0], _due_now(spec, now, rules, count)
    return upcoming[0], tuple(upcoming)


def _due_now(spec: Schedule, now: datetime, rules: BeatRules, count: int) -> tuple[datetime, ...]:
    return (now, *(_fire_times(spec, now, rules, count - 1) if count > 1 else []))


_CLOCK_REPAIRS = frozenset(Repair) - {Repair.UNMARKED, Repair.EXPIRING, Repair.ORPHAN}


def repair_clock(repairs: Iterable[Repair]) -> Clock:
    """The policy a repair follows: a wrong or missing score, or run history beat cannot use,
    is set from the run history (KEEP starts one now where none is usable); bookkeeping, TTL
    and orphan repairs leave both alone."""
    return Clock.KEEP if set(repairs) & _CLOCK_REPAIRS else Clock.UNTOUCHED


def shortest_period(spec: Schedule, now: datetime, rules: BeatRules) -> float | None:
    """Seconds between the closest of the next few runs (an interval's own length)."""
    if isinstance(spec, IntervalSchedule):
        return spec.seconds
    try:
        runs = rules.fire_times(spec, now, PERIOD_SAMPLE)
    except (OverflowError, ValueError, RuntimeError):
        return None
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(runs)]
    return min(gaps) if gaps else None


# Upcoming runs sampled for a schedule's period: enough for "every 5 minutes during the
# night" to show its 5 minutes, few enough to stay cheap for 100,000 entries.
PERIOD_SAMPLE = 4
