"""Classic five-field cron expressions, mapped onto Celery's ``crontab``.

The string form promises classic cron semantics. Where Celery's crontab means something
else, the expression is refused with an explanation instead of being silently reinterpreted;
Celery's own semantics stay available through the mapping form (``cron: {minute: ...}``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from celery.schedules import ParseException, crontab_parser

from reconciler.core.model import CronField, CronSchedule

# Field: (name in messages, max_, min_ as Celery's crontab_parser takes them: values run
# from min_ to max_ + min_ - 1), in the order of a classic cron expression.
_FIELDS = {
    "minute": ("minute", 60, 0),
    "hour": ("hour", 24, 0),
    "day_of_month": ("day-of-month", 31, 1),
    "month_of_year": ("month", 12, 1),
    "day_of_week": ("day-of-week", 7, 0),
}
FIELD_NAMES = tuple(_FIELDS)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_QUARTZ = re.compile(r"[?LW#]")
_SEVEN = re.compile(r"(?<![\d/])7(?!\d)")


class CronError(ValueError):
    """A cron expression that cannot be used; the message says why and what would work."""


# Files repeat a few expressions thousands of times; the answer is an immutable value, and a
# refused expression (an exception) is never remembered.
@lru_cache(maxsize=4096)
def parse_cron_string(expression: str) -> CronSchedule:
    text = expression.strip()
    if text.startswith("@"):
        macro = MACROS.get(text.lower())
        if macro is None:
            known = ", ".join(sorted(MACROS))
            raise CronError(f"unknown cron macro '{text}'; known macros: {known}")
        text = macro
    fields = text.split()
    if len(fields) != len(FIELD_NAMES):
        raise CronError(
            f"cron expression '{expression}' has {len(fields)} field"
            f"{'s' if len(fields) != 1 else ''}; expected 5: "
            "minute hour day-of-month month day-of-week (e.g. '0 3 * * *')"
        )
    values = dict(zip(FIELD_NAMES, fields, strict=True))
    for name, value in values.items():
        check_cron_field(name, value)
    if values["day_of_month"] != "*" and values["day_of_week"] != "*":
        raise CronError(
            f"cron restricts both day-of-month ('{values['day_of_month']}') and day-of-week "
            f"('{values['day_of_week']}'): classic cron fires when EITHER matches, Celery's "
            "crontab only when BOTH match. Use two entries for 'either', or the mapping form "
            "cron: {day_of_month: ..., day_of_week: ...} for Celery's 'both'"
        )
    return CronSchedule(**values)


def check_cron_field(name: str, value: CronField) -> None:
    """Raise CronError unless Celery's crontab accepts ``value`` for field ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise CronError(f"cron {_FIELDS[name][0]} field must be a string or an integer")
    _check_field(name, value)


@lru_cache(maxsize=4096, typed=True)  # typed: an int and a str of it are separate answers
def _check_field(name: str, value: int | str) -> None:
    human, max_, min_ = _FIELDS[name]
    low, high = min_, max_ + min_ - 1
    if isinstance(value, int):
        if not low <= value <= high:
            raise CronError(f"cron {human} value {value} is out of range {low}-{high}")
        return
    if _QUARTZ.search(value):
        raise CronError(
            f"cron {human} field '{value}' uses Quartz syntax (? L W #), "
            "which Celery's crontab does not support"
        )
    if name == "day_of_week" and _SEVEN.search(value):
        raise CronError(
            f"cron day-of-week field '{value}' uses 7 for Sunday; Celery's day_of_week runs "
            "0-6 with 0 = Sunday: write 0 or sun"
        )
    try:
        parsed = crontab_parser(max_, min_).parse(value)
    except (ValueError, IndexError, ParseException) as exc:
        reason = str(exc).rstrip(".") or type(exc).__name__
        # Celery tries every unknown word as a weekday name, whatever the field.
        if reason.startswith("Invalid weekday literal"):
            reason = reason.replace("Invalid weekday literal", "not a number or known name")
        raise CronError(
            f"cron {human} field '{value}' is invalid: {reason} "
            f"(valid: {low}-{high}, '*', lists a,b, ranges a-b and steps */n)"
        ) from None
    out_of_range = sorted(number for number in parsed if not low <= number <= high)
    if out_of_range:
        raise CronError(
            f"cron {human} field '{value}' includes {out_of_range[0]}, out of range {low}-{high}"
        )
