"""Checks that need every entry at once, or Celery's own evaluation of a schedule."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from reconciler.beat.fire_times import next_fire_times
from reconciler.beat.redbeat_codec import check_schedule_encodes
from reconciler.core.model import RRuleSchedule
from reconciler.core.problems import Problem, SourceLocation

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from reconciler.core.model import DesiredEntry

# dateutil evaluates a rule by iterating from dtstart, and RedBeat asks it again after every
# run: a rule whose dtstart lies this many periods back costs beat about a second per run
# (measured: ~2 microseconds a period with dateutil 2.9), and grows forever.
RRULE_MAX_ELAPSED_PERIODS = 200_000
_PERIOD_SECONDS = (365.25 * 86_400, 30.44 * 86_400, 7 * 86_400, 86_400, 3_600, 60, 1)
# Each month's days in a leap year (2000), when it is longest.
_LONGEST_MONTH = {month: calendar.monthrange(2000, month)[1] for month in range(1, 13)}


# Problems that appear with the mere passing of time (an rrule's until passes, its dtstart
# recedes). validate reports them as errors, so they are fixed in review; plan, apply and
# drift only warn, so an expiring rule never blocks every other entry's deployment.
TIME_DEPENDENT_CODES = frozenset({"schedule-ended", "rrule-cost"})


def duplicate_name_problems(
    names: Iterable[tuple[str, SourceLocation]],
) -> Iterator[Problem]:
    first: dict[str, SourceLocation] = {}
    for name, location in names:
        earlier = first.setdefault(name, location)
        if earlier != location:
            yield Problem(
                location,
                f"duplicate schedule name '{name}': already defined at {earlier}; "
                "names must be unique across all files",
                "duplicate-name",
            )


def schedule_problems(entry: DesiredEntry, now: datetime, timezone: str) -> Iterator[Problem]:
    """Celery must accept the schedule, and it must fire at least once after ``now``."""
    where = entry.schedule_source or entry.source or SourceLocation("<unknown>")
    spec = entry.schedule
    if isinstance(spec, RRuleSchedule):
        impossible = _rrule_impossible_day(spec)
        if impossible:
            yield Problem(where, f"schedule '{entry.name}': {impossible}", "never-fires")
            return
        costly = _rrule_cost_problem(spec, now)
        if costly:
            yield Problem(where, f"schedule '{entry.name}': {costly}", "rrule-cost")
            return
    try:
        # Celery's objects must accept the schedule, and RedBeat encode it.
        check_schedule_encodes(spec, timezone)
        upcoming = next_fire_times(spec, now, 1, timezone)
    except (ValueError, RuntimeError, OverflowError) as exc:
        yield Problem(
            where,
            f"schedule '{entry.name}' is refused by Celery: {str(exc).rstrip('.')}",
            "never-fires",
        )
        return
    if not upcoming:
        ended = isinstance(spec, RRuleSchedule) and (spec.until or spec.count) is not None
        yield Problem(
            where,
            f"schedule '{entry.name}' never fires after {now.isoformat(timespec='seconds')}"
            + _rrule_end(spec),
            "schedule-ended" if ended else "never-fires",
        )


def _rrule_cost_problem(spec: RRuleSchedule, now: datetime) -> str | None:
    try:
        period = timedelta(seconds=_PERIOD_SECONDS[spec.freq] * spec.interval)
    except OverflowError:  # a period longer than datetime's range: not one has elapsed
        return None
    elapsed = (now - spec.dtstart) / period
    if elapsed > RRULE_MAX_ELAPSED_PERIODS:
        return (
            f"rrule dtstart {spec.dtstart.isoformat()} lies {int(elapsed)} periods back; "
            "dateutil iterates from dtstart on every run, so beat would stall. Move dtstart "
            "closer to now, or use cron or every for frequent schedules"
        )
    return None


def _rrule_impossible_day(spec: RRuleSchedule) -> str | None:
    # dateutil searches up to year 9999 before giving up on such a rule (seconds of CPU);
    # the common impossible case is answered here directly, as Celery does for crontabs.
    days = _as_tuple(spec.bymonthday)
    if not days or any(day < 0 for day in days):
        return None
    months = _as_tuple(spec.bymonth) or tuple(_LONGEST_MONTH)
    if any(day <= _LONGEST_MONTH[month] for day in days for month in months):
        return None
    return f"rrule never fires: bymonthday {list(days)} never occurs in bymonth {list(months)}"


def _rrule_end(spec: object) -> str:
    if isinstance(spec, RRuleSchedule):
        if spec.until is not None:
            return f" (its until, {spec.until.isoformat()}, has passed)"
        if spec.count is not None:
            return f" (its {spec.count} occurrences from dtstart are over)"
    return ""


def _as_tuple(value: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)
