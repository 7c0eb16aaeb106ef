"""Interval lengths as people write them: ``30s``, ``5m``, ``1h30m``, ``2d``, or seconds."""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_NUMBER = r"\d+(?:\.\d+)?"
# Each unit at most once, largest first: '1h30m', '2d 4h'.
_DURATION = re.compile(
    "^" + "".join(rf"\s*(?:(?P<{unit}>{_NUMBER})\s*{unit})?" for unit in _UNIT_SECONDS) + r"\s*$"
)
_PLAIN_NUMBER = re.compile(rf"^\s*{_NUMBER}\s*$")
EXAMPLES = "30s, 5m, 1h30m, 2d, 1w, or a number of seconds"
# Celery keeps intervals as timedelta (at most 999,999,999 days); anything near that is a
# mistake, and a yearly or rarer job is better written as cron or rrule.
MAX_SECONDS = 3650 * 86_400


class DurationError(ValueError):
    """An interval that cannot be used; the message says what would be valid."""


def parse_every(value: object) -> float:
    """Return the interval in seconds (as Celery stores it: a float)."""
    if isinstance(value, bool):
        raise DurationError(f"'every' must be a duration ({EXAMPLES}), not a boolean")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            raise DurationError(f"'every' is far too long: {value}") from None
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise DurationError(f"'every' must be a duration ({EXAMPLES})")
    if not math.isfinite(seconds) or seconds <= 0:
        raise DurationError(f"'every' must be a positive duration, got {value!r}")
    if seconds > MAX_SECONDS:
        raise DurationError(
            f"'every' is longer than 10 years ({value!r}); use cron or rrule for rare jobs"
        )
    return seconds


def _parse_text(text: str) -> float:
    if _PLAIN_NUMBER.match(text):
        return float(text)
    match = _DURATION.match(text.lower())
    if match is None or not any(match.groupdict().values()):
        raise DurationError(f"'every' value '{text}' is not a duration; write {EXAMPLES}")
    return sum(
        float(amount) * _UNIT_SECONDS[unit]
        for unit, amount in match.groupdict().items()
        if amount is not None
    )
