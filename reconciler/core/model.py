"""The desired state: schedule entries as plain, immutable values.

Nothing here knows about YAML, Redis or the command line; the loader builds these values
and every later stage (conversion, fire times, plan) only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from datetime import datetime

    from reconciler.core.problems import SourceLocation
    from reconciler.core.secrets import JsonPath, Template

# Aliases stay on typing.Union: they are evaluated at run time and must work on Python 3.10.
JsonValue = Union[None, bool, int, float, str, list["JsonValue"], dict[str, "JsonValue"]]  # noqa: UP007
CronField = Union[int, str]  # noqa: UP007
RRuleField = Union[int, tuple[int, ...], None]  # noqa: UP007


@dataclass(frozen=True)
class CronSchedule:
    """Celery ``crontab`` fields, kept exactly as written so the stored bytes match RedBeat's."""

    minute: CronField = "*"
    hour: CronField = "*"
    day_of_month: CronField = "*"
    month_of_year: CronField = "*"
    day_of_week: CronField = "*"


@dataclass(frozen=True)
class IntervalSchedule:
    """Celery's interval ``schedule``: every ``seconds`` after the previous run."""

    seconds: float
    relative: bool = False


@dataclass(frozen=True)
class RRuleSchedule:
    """RedBeat's ``rrule`` schedule (dateutil's RFC 5545 recurrence rule).

    ``freq`` and weekdays are dateutil's integers (YEARLY=0 .. SECONDLY=6, MO=0 .. SU=6),
    which is how RedBeat stores them.
    """

    freq: int
    dtstart: datetime
    interval: int = 1
    wkst: int | None = None
    count: int | None = None
    until: datetime | None = None
    bysetpos: RRuleField = None
    bymonth: RRuleField = None
    bymonthday: RRuleField = None
    byyearday: RRuleField = None
    byeaster: RRuleField = None
    byweekno: RRuleField = None
    byweekday: RRuleField = None
    byhour: RRuleField = None
    byminute: RRuleField = None
    bysecond: RRuleField = None


Schedule = Union[CronSchedule, IntervalSchedule, RRuleSchedule]  # noqa: UP007


@dataclass(frozen=True, slots=True)
class DesiredEntry:
    """One schedule entry as the repository declares it; its JSON containers are read-only."""

    name: str
    task: str
    schedule: Schedule
    args: list[JsonValue] = field(default_factory=list)
    kwargs: dict[str, JsonValue] = field(default_factory=dict)
    options: dict[str, JsonValue] = field(default_factory=dict)
    enabled: bool = True
    description: str | None = None
    run_on_create: bool = False
    source: SourceLocation | None = field(default=None, compare=False)
    schedule_source: SourceLocation | None = field(default=None, compare=False)
    # Where values were written, by path ('task', 'args[1]', 'kwargs.fmt' at the key,
    # 'options.queue'), for checks that point at one value (see app_checks.py); recorded
    # only when such checks run (entries_from_document's locate_values).
    field_sources: dict[str, SourceLocation] = field(
        default_factory=dict, compare=False, repr=False
    )
    # Where each overlay patch applied to this entry was written (its name), in order.
    overlay_sources: tuple[SourceLocation, ...] = field(default=(), compare=False)
    # Strings of args/kwargs/options holding ${env:NAME} or $${, as written: the values
    # above still hold them until secrets.resolve_references replaces them.
    templates: tuple[Template, ...] = ()
    # After resolving: the paths whose values came from the environment, with the
    # template written there (names only, never values); these values are never shown.
    sensitive: tuple[tuple[JsonPath, str], ...] = ()
    # The variables' values themselves, so that they are masked wherever they turn up.
    secret_values: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
