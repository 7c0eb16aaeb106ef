"""Cron strings and interval texts as people write them, parsed into the model."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
from celery.schedules import crontab

from reconciler.beat.cron import MACROS, CronError, parse_cron_string
from reconciler.beat.every import DurationError, parse_every
from reconciler.core.model import CronSchedule


def fields(minute: str, hour: str, dom: str, month: str, dow: str) -> CronSchedule:
    return CronSchedule(
        minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow
    )


# --- cron strings: accepted ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("0 3 * * *", fields("0", "3", "*", "*", "*"), id="plain"),
        pytest.param("  0   3 *  * *  ", fields("0", "3", "*", "*", "*"), id="extra-spaces"),
        pytest.param("0\t3\t*\t*\t*", fields("0", "3", "*", "*", "*"), id="tabs"),
        pytest.param("1,15 * * * *", fields("1,15", "*", "*", "*", "*"), id="list"),
        pytest.param("*/15 9-17 * * *", fields("*/15", "9-17", "*", "*", "*"), id="step-range"),
        pytest.param("0-30/10 * * * *", fields("0-30/10", "*", "*", "*", "*"), id="range-step"),
        pytest.param("0 22-2 * * *", fields("0", "22-2", "*", "*", "*"), id="wrap-around-hours"),
        pytest.param("30 6 * jan mon", fields("30", "6", "*", "jan", "mon"), id="names"),
        pytest.param(
            "0 0 * JAN MON-FRI", fields("0", "0", "*", "JAN", "MON-FRI"), id="upper-case-names"
        ),
        pytest.param(
            "0 0 * * mon,wed-fri", fields("0", "0", "*", "*", "mon,wed-fri"), id="name-list-range"
        ),
        pytest.param("0 0 * * 0", fields("0", "0", "*", "*", "0"), id="sunday-0"),
        pytest.param("0 0 13 * *", fields("0", "0", "13", "*", "*"), id="day-of-month-only"),
        pytest.param("0 0 * * 5", fields("0", "0", "*", "*", "5"), id="day-of-week-only"),
        pytest.param("@hourly", fields("0", "*", "*", "*", "*"), id="macro-hourly"),
        pytest.param("@daily", fields("0", "0", "*", "*", "*"), id="macro-daily"),
        pytest.param("@midnight", fields("0", "0", "*", "*", "*"), id="macro-midnight"),
        pytest.param("@weekly", fields("0", "0", "*", "*", "0"), id="macro-weekly"),
        pytest.param("@monthly", fields("0", "0", "1", "*", "*"), id="macro-monthly"),
        pytest.param("@yearly", fields("0", "0", "1", "1", "*"), id="macro-yearly"),
        pytest.param("@annually", fields("0", "0", "1", "1", "*"), id="macro-annually"),
        pytest.param(" @Daily ", fields("0", "0", "*", "*", "*"), id="macro-case-and-space"),
    ],
)
def test_cron_string_is_parsed_field_by_field(expression: str, expected: CronSchedule) -> None:
    assert parse_cron_string(expression) == expected


def test_the_table_above_covers_every_macro() -> None:
    assert set(MACROS) == {
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
    }


@pytest.mark.parametrize(
    ("expression", "field", "expanded"),
    [
        pytest.param("*/7 * * * *", "minute", set(range(0, 60, 7)), id="minute-step-7"),
        pytest.param("5-50/15 * * * *", "minute", {5, 20, 35, 50}, id="minute-range-step"),
        pytest.param("*/15,45 * * * *", "minute", {0, 15, 30, 45}, id="minute-step-and-list"),
        pytest.param("0 22-2 * * *", "hour", {22, 23, 0, 1, 2}, id="hour-wrap-around"),
        pytest.param("0 0 */10 * *", "day_of_month", {1, 11, 21, 31}, id="dom-step-from-1"),
        pytest.param("0 0 1 jan,jul *", "month_of_year", {1, 7}, id="month-names"),
        pytest.param("0 0 * * mon-fri", "day_of_week", {1, 2, 3, 4, 5}, id="weekday-range"),
        pytest.param("0 0 * * sun", "day_of_week", {0}, id="sunday-name"),
        pytest.param("0 0 * * monday", "day_of_week", {1}, id="weekday-full-name"),
    ],
)
def test_cron_string_means_what_celery_expands_it_to(
    expression: str, field: str, expanded: set[int]
) -> None:
    celery_crontab = crontab(**asdict(parse_cron_string(expression)))
    assert getattr(celery_crontab, field) == expanded


# --- cron strings: refused, with a reason -------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        pytest.param("", r"has 0 fields; expected 5", id="empty"),
        pytest.param("   ", r"has 0 fields; expected 5", id="blank"),
        pytest.param("0 3 * *", r"has 4 fields; expected 5", id="four-fields"),
        pytest.param("0 3 * * * *", r"has 6 fields; expected 5", id="six-fields-seconds"),
        pytest.param(
            "@reboot", r"unknown cron macro '@reboot'; known macros: @annually", id="reboot"
        ),
        pytest.param("@every 5m", r"unknown cron macro", id="every-macro"),
        pytest.param("61 * * * *", r"minute field '61' is invalid.*0-59", id="minute-61"),
        pytest.param("-1 * * * *", r"minute field '-1' is invalid", id="negative"),
        pytest.param("*/0 * * * *", r"minute field '\*/0' is invalid", id="step-zero"),
        pytest.param("1,,2 * * * *", r"minute field '1,,2' is invalid", id="empty-list-part"),
        pytest.param("abc * * * *", r"minute field 'abc' is invalid", id="word-in-minute"),
        pytest.param("0 24 * * *", r"hour field '24' is invalid.*0-23", id="hour-24"),
        pytest.param("0 0 0 * *", r"day-of-month field '0' is invalid.*1-31", id="day-0"),
        pytest.param("0 0 32 * *", r"day-of-month field '32' is invalid", id="day-32"),
        pytest.param("0 0 * 13 *", r"month field '13' is invalid.*1-12", id="month-13"),
        pytest.param("0 0 * * 7", r"uses 7 for Sunday.*write 0 or sun", id="sunday-7"),
        pytest.param("0 0 * * 1-7", r"uses 7 for Sunday", id="range-to-7"),
        pytest.param("0 0 * * 17", r"day-of-week field '17' is invalid", id="weekday-17"),
        pytest.param("0 0 L * *", r"Quartz syntax", id="quartz-L"),
        pytest.param("0 0 ? * 1", r"Quartz syntax", id="quartz-question-mark"),
        pytest.param("0 0 15W * *", r"Quartz syntax", id="quartz-W"),
        pytest.param("0 0 * * 5#3", r"Quartz syntax", id="quartz-hash"),
        pytest.param("0 0 13 * 5", r"EITHER matches.*BOTH match", id="dom-and-dow"),
        pytest.param(
            "0 0 1 * mon",
            r"both day-of-month \('1'\) and day-of-week \('mon'\)",
            id="first-and-monday",
        ),
    ],
)
def test_cron_string_is_refused_with_a_reason(expression: str, reason: str) -> None:
    with pytest.raises(CronError, match=reason):
        parse_cron_string(expression)


# --- every --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("45s", 45.0, id="seconds"),
        pytest.param("5m", 300.0, id="minutes"),
        pytest.param("1h30m", 5400.0, id="hours-minutes"),
        pytest.param("1h 30m", 5400.0, id="with-space"),
        pytest.param(" 10s ", 10.0, id="surrounding-space"),
        pytest.param("2d", 172_800.0, id="days"),
        pytest.param("1w", 604_800.0, id="week"),
        pytest.param("1w2d3h4m5s", 788_645.0, id="every-unit"),
        pytest.param("1.5h", 5400.0, id="fractional-unit"),
        pytest.param("0.5m", 30.0, id="half-minute"),
        pytest.param("1H", 3600.0, id="upper-case-unit"),
        pytest.param("90", 90.0, id="digits-as-text"),
        pytest.param("2.5", 2.5, id="decimal-as-text"),
        pytest.param(30, 30.0, id="int"),
        pytest.param(2.5, 2.5, id="float"),
    ],
)
def test_every_is_parsed_to_seconds(value: object, seconds: float) -> None:
    parsed = parse_every(value)
    assert parsed == seconds
    assert type(parsed) is float  # Celery stores run_every.total_seconds(), a float


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(0, "positive", id="zero"),
        pytest.param(0.0, "positive", id="zero-float"),
        pytest.param("0", "positive", id="zero-text"),
        pytest.param("0s", "positive", id="zero-seconds"),
        pytest.param(-1, "positive", id="negative"),
        pytest.param("-5", "not a duration", id="negative-text"),
        pytest.param("", "not a duration", id="empty"),
        pytest.param("   ", "not a duration", id="blank"),
        pytest.param("abc", "not a duration", id="word"),
        pytest.param("5x", "not a duration", id="unknown-unit"),
        pytest.param("1m1h", "not a duration", id="units-out-of-order"),
        pytest.param("h", "not a duration", id="unit-without-number"),
        pytest.param("1e3", "not a duration", id="exponent"),
        pytest.param("1,5", "not a duration", id="decimal-comma"),
        pytest.param(True, "not a boolean", id="true"),
        pytest.param(False, "not a boolean", id="false"),
        pytest.param(math.inf, "positive", id="infinity"),
        pytest.param(math.nan, "positive", id="nan"),
        pytest.param(None, "must be a duration", id="none"),
        pytest.param([30], "must be a duration", id="list"),
        # A YAML integer has no size limit; float() of a 400-digit one overflows.
        pytest.param(10**400, "every", id="huge-int"),
    ],
)
def test_every_is_refused_with_a_reason(value: object, reason: str) -> None:
    with pytest.raises(DurationError, match=reason):
        parse_every(value)
