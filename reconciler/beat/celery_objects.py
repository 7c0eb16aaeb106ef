"""Turning schedule specifications into the very objects Celery beat and RedBeat use.

Building Celery's own ``crontab``/``schedule`` and RedBeat's ``rrule`` (rather than
re-implementing them) is what makes the stored bytes and the computed fire times agree with
what beat does.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import Celery
from celery.schedules import BaseSchedule, crontab, schedule
from redbeat.schedules import rrule

from reconciler.core.defaults import DEFAULT_TIMEZONE as DEFAULT_TIMEZONE
from reconciler.core.errors import UsageError
from reconciler.core.model import CronSchedule, IntervalSchedule, RRuleSchedule

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from reconciler.core.model import Schedule

# Distinct schedules kept built: a crontab holds its expanded sets (a few KiB), so the cache
# is bounded; entries share far fewer schedules than this in practice.
SCHEDULE_CACHE_SIZE = 4096


@lru_cache(maxsize=16)
def schedule_app(timezone: str = DEFAULT_TIMEZONE) -> Celery:
    """A private Celery app carrying beat's timezone, never installed as the current app."""
    check_timezone(timezone)
    app = Celery("redbeat-reconciler", set_as_current=False)
    app.conf.update(timezone=timezone, enable_utc=True)
    return app


def check_timezone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"unknown timezone {timezone!r}; use an IANA name such as UTC or Europe/Paris"
        ) from None


def celery_schedule(
    spec: Schedule,
    timezone: str = DEFAULT_TIMEZONE,
    nowfun: Callable[[], datetime] | None = None,
) -> BaseSchedule:
    """Celery's schedule object for ``spec``; raises ValueError when Celery refuses it.

    Built once per distinct schedule and timezone (crontab's parsing is most of the cost of
    a plan's schedule work) and shared: callers only read it. With ``nowfun``, a copy that
    shares the built state and reads its clock from ``nowfun`` (Celery keeps no other state
    on these objects; their lazily cached ``tz`` depends on the app alone).
    """
    key = (exact_key(spec), timezone)
    try:
        shared = _BUILT[key]
        _BUILT.move_to_end(key)
    except KeyError:
        shared = _build(spec, timezone)
        _BUILT[key] = shared
        if len(_BUILT) > SCHEDULE_CACHE_SIZE:
            _BUILT.popitem(last=False)
    except TypeError:  # a value without a hash (not one the loader makes): built each time
        shared = _build(spec, timezone)
    if nowfun is None:
        return shared
    pinned = object.__new__(type(shared))
    pinned.__dict__.update(shared.__dict__)
    pinned.nowfun = nowfun
    return pinned


_BUILT: OrderedDict[Hashable, BaseSchedule] = OrderedDict()


def clear_schedule_cache() -> None:
    _BUILT.clear()


def _build(spec: Schedule, timezone: str) -> BaseSchedule:
    app = schedule_app(timezone)
    # The spec dataclasses carry exactly the keyword arguments of Celery's and RedBeat's classes.
    if isinstance(spec, CronSchedule):
        return crontab(**vars(spec), app=app)
    if isinstance(spec, IntervalSchedule):
        every = timedelta(seconds=spec.seconds)
        return schedule(run_every=every, relative=spec.relative, app=app)
    if isinstance(spec, RRuleSchedule):
        built = rrule(**vars(spec), app=app)
        # dateutil finds 'the first run after t' by walking the occurrences from dtstart, and
        # every entry sharing this schedule asks again (each with its own last run). Its
        # cache keeps the occurrences walked, the same ones in the same order: each question
        # walks a list instead of the date arithmetic. It holds what the walks reach anyway.
        built.rrule = built.rrule.replace(cache=True)
        return built
    raise TypeError(f"not a schedule: {spec!r}")


def exact_key(value: Any) -> Hashable:
    """A key equal only for values Celery and RedBeat treat identically.

    ``==`` is not enough: ``1 == 1.0 == True``, and datetimes at the same instant in other
    zones (or folds) are equal, yet RedBeat stores, and crontab evaluates, them differently.
    A datetime's zone is compared by identity (the key holds it, so its id stays its own).
    """
    if isinstance(value, datetime):
        zone = value.tzinfo
        return (value, value.fold, zone, id(zone))
    if isinstance(value, RRuleSchedule):
        return (RRuleSchedule, *map(exact_key, vars(value).values()))
    if isinstance(value, (CronSchedule, IntervalSchedule)):
        items = tuple(vars(value).values())
        return (type(value), items, tuple(map(type, items)))
    if isinstance(value, tuple):
        return (tuple, *map(exact_key, value))
    return (type(value), value)
