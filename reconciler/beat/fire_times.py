"""When an entry will run: the next fire times, computed by Celery's own schedule code.

Beat decides with ``schedule.is_due(last_run_at)`` and RedBeat scores an entry with
``last_run_at + schedule.remaining_estimate(last_run_at)`` right after each run. Asking the
same objects with the clock pinned to each previous run reproduces that arithmetic exactly,
including Celery's crontab corners (day-of-month AND day-of-week, DST handling).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from redbeat.decoder import to_timestamp

from reconciler.beat.celery_objects import (
    DEFAULT_TIMEZONE,
    celery_schedule,
    check_timezone,
    exact_key,
)
from reconciler.core.model import CronSchedule

if TYPE_CHECKING:
    from collections.abc import Hashable

    from reconciler.core.model import Schedule

# Answers kept: entries sharing a schedule are often asked about the same moment (validation
# asks every entry about one 'now'; entries written by one apply share their last run; the
# entries of one crontab that beat ran in one tick share its minute).
FIRE_TIMES_CACHE_SIZE = 8192
_MINUTE = timedelta(minutes=1)
_ANSWERS: OrderedDict[Hashable, tuple[datetime, ...]] = OrderedDict()


def next_fire_times(
    spec: Schedule, after: datetime, count: int = 3, timezone_name: str = DEFAULT_TIMEZONE
) -> list[datetime]:
    """The next ``count`` runs strictly after ``after`` (aware), in beat's ``timezone``.

    Fewer are returned when the schedule ends (an rrule with count or until). Raises
    ValueError (or RuntimeError from Celery's crontab rollover) when Celery cannot
    compute a next run at all.
    """
    if after.tzinfo is None:
        raise ValueError("'after' must be timezone-aware")
    # The answer depends on nothing else (Celery's arithmetic is pure once its clock is
    # pinned), and only a value exactly alike (zone and fold included) is the same question,
    # or, for a crontab, a last run in the same minute (see _crontab_minute).
    try:
        asked = _crontab_minute(after, timezone_name) if isinstance(spec, CronSchedule) else None
        key = (exact_key(spec), asked or exact_key(after), count, timezone_name)
        known = _ANSWERS.get(key)
    except TypeError:  # a value without a hash: computed each time
        return _compute(spec, after, count, timezone_name)
    if known is None:
        known = tuple(_compute(spec, after, count, timezone_name))
        _ANSWERS[key] = known
        if len(_ANSWERS) > FIRE_TIMES_CACHE_SIZE:
            _ANSWERS.popitem(last=False)
    else:
        _ANSWERS.move_to_end(key)
    return list(known)


def clear_fire_times_cache() -> None:
    _ANSWERS.clear()


def _crontab_minute(after: datetime, timezone_name: str) -> Hashable | None:
    """The question a crontab is asked about a last run, when the minute says it all.

    Celery's crontab reads only a last run's date, hour and minute in beat's zone (its
    ``remaining_delta``; the day-of-month search starts on the next day), and every run it
    answers has zero seconds and microseconds. So the last runs inside one minute, with the
    same offsets in their own and in beat's zone, get the same runs: the entries of one
    crontab that beat ran in one tick share an answer. An offset that is not whole minutes
    (local mean time, before about 1972) keeps the exact question (None).
    """
    own = after.utcoffset()
    beat = after.astimezone(check_timezone(timezone_name)).utcoffset()
    if own is None or beat is None or own % _MINUTE or beat % _MINUTE:
        return None
    minute = after.astimezone(timezone.utc).replace(second=0, microsecond=0)
    zone = after.tzinfo
    return ("minute", minute, own, beat, zone, id(zone))


def _compute(spec: Schedule, after: datetime, count: int, timezone_name: str) -> list[datetime]:
    zone = check_timezone(timezone_name)
    previous = after
    # Celery's clock is pinned to the previous run: the closure reads ``previous`` as it moves.
    celery_object = celery_schedule(spec, timezone_name, nowfun=lambda: previous)
    runs: list[datetime] = []
    while len(runs) < count:
        remaining = celery_object.remaining_estimate(previous)
        if remaining is None:  # rrule exhausted
            break
        following = _next_run(previous, remaining).astimezone(zone)
        if following <= previous:
            raise RuntimeError(f"schedule does not advance past {previous.isoformat()}")
        runs.append(following)
        previous = following
    return runs


def _next_run(previous: datetime, remaining: timedelta) -> datetime:
    """When beat actually runs the entry again, given Celery's ``remaining`` estimate.

    Beat runs it at the later of two moments: when ``is_due`` turns true (``remaining`` is
    wall-clock time in beat's zone, applied to the real instant), and when RedBeat's score
    lets the entry be loaded at all (``previous + remaining`` in local wall time, truncated
    to whole seconds). They differ by an hour across DST changes; taking the later matches
    beat's observed behaviour, including RedBeat's late runs after the autumn change.
    """
    due = previous.astimezone(timezone.utc) + remaining
    scored = datetime.fromtimestamp(to_timestamp(previous + remaining), timezone.utc)
    return max(due, scored)
