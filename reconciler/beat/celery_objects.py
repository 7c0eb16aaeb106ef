"""Turning schedule specifications into the very objects Celery beat and RedBeat use.

Building Celery's own ``crontab``/``schedule`` and RedBeat's ``rrule`` (rather than
re-implementing them) is what makes the stored bytes and the computed fire times agree with
what beat does.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import Celery
from celery.schedules import BaseSchedule, crontab, schedule
from redbeat.schedules import rrule

from reconciler.core.defaults import DEFAULT_TIMEZONE as DEFAULT_TIMEZONE
from reconciler.core.errors import UsageError
from reconciler.core.model import CronSchedule, IntervalSchedule, RRuleSchedule

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from reconciler.core.model import Schedule


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
    """Celery's schedule object for ``spec``; raises ValueError when Celery refuses it."""
    app = schedule_app(timezone)
    # The spec dataclasses carry exactly the keyword arguments of Celery's and RedBeat's classes.
    if isinstance(spec, CronSchedule):
        return crontab(**vars(spec), nowfun=nowfun, app=app)
    if isinstance(spec, IntervalSchedule):
        every = timedelta(seconds=spec.seconds)
        return schedule(run_every=every, relative=spec.relative, nowfun=nowfun, app=app)
    if isinstance(spec, RRuleSchedule):
        return rrule(**vars(spec), nowfun=nowfun, app=app)
    raise TypeError(f"not a schedule: {spec!r}")
