"""The RedBeat codec: definitions and meta as RedBeat stores them, and back.

A desired entry encoded with RedBeat's encoder and read back with ``entry_from_definition``
must be the same entry, and re-encode to the same bytes: that is what lets apply rebuild an
entry from the bytes it wrote, and recheck compare them. ``essence`` must agree on what two
encodings mean; ``decode_meta`` must never raise on what it finds in Redis.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from reconciler.beat.cron import parse_cron_string
from reconciler.beat.redbeat_codec import (
    decode_meta,
    encode_definition,
    encode_meta,
    entry_from_definition,
    schedule_from_json,
)
from reconciler.core.definitions import DEFINITION_KEYS, essence, parse_definition
from reconciler.core.live import LiveMeta
from reconciler.core.model import CronSchedule, DesiredEntry, IntervalSchedule, RRuleSchedule

if TYPE_CHECKING:
    from reconciler.core.model import Schedule

UTC = timezone.utc
PARIS = "Europe/Paris"
INDIA = timezone(timedelta(hours=5, minutes=30))
PACIFIC = timezone(timedelta(hours=-8))
YEARLY, MONTHLY, WEEKLY, DAILY, HOURLY = 0, 1, 2, 3, 4

SCHEDULES = [
    pytest.param(parse_cron_string("0 3 * * *"), id="cron-string"),
    pytest.param(parse_cron_string("*/15 9-17 * * 1-5"), id="cron-string-ranges"),
    pytest.param(parse_cron_string("@monthly"), id="cron-macro"),
    pytest.param(CronSchedule(minute=0, hour=3), id="cron-mapping-numbers"),
    pytest.param(
        CronSchedule(minute="30", hour="*/2", day_of_week="mon-fri", month_of_year="1,7"),
        id="cron-mapping-strings",
    ),
    pytest.param(IntervalSchedule(30), id="interval-int"),
    pytest.param(IntervalSchedule(0.5, relative=True), id="interval-relative"),
    pytest.param(IntervalSchedule(86_400.0), id="interval-day"),
    pytest.param(
        RRuleSchedule(freq=WEEKLY, dtstart=datetime(2024, 1, 1, 9, tzinfo=UTC), byweekday=(0, 4)),
        id="rrule-byweekday",
    ),
    pytest.param(
        RRuleSchedule(freq=WEEKLY, dtstart=datetime(2024, 1, 1, 9, tzinfo=UTC), byweekday=6),
        id="rrule-one-weekday",
    ),
    pytest.param(
        RRuleSchedule(
            freq=DAILY,
            dtstart=datetime(2024, 1, 1, 9, tzinfo=INDIA),
            until=datetime(2030, 1, 1, tzinfo=PACIFIC),
        ),
        id="rrule-fixed-offsets-until",
    ),
    pytest.param(
        RRuleSchedule(
            freq=MONTHLY,
            dtstart=datetime(2024, 1, 1, 9, tzinfo=ZoneInfo(PARIS)),
            interval=2,
            wkst=0,
            count=12,
            bymonthday=-1,
            byhour=(9, 17),
            byminute=30,
        ),
        id="rrule-zoneinfo-count-lists",
    ),
    pytest.param(
        RRuleSchedule(
            freq=YEARLY,
            dtstart=datetime(2024, 1, 1, tzinfo=UTC),
            bymonth=(3, 9),
            byweekday=(0, 1, 2, 3, 4),
            bysetpos=-1,
        ),
        id="rrule-bysetpos",
    ),
]


def entry(spec: Schedule, **overrides: Any) -> DesiredEntry:
    fields: dict[str, Any] = {
        "task": "app.tasks.report",
        "args": [1, "two", {"three": [3]}],
        "kwargs": {"region": "eu", "nested": {"ids": [1, 2], "none": None}},
        "options": {"queue": "reports", "priority": 5},
    }
    fields.update(overrides)
    return DesiredEntry("nightly", schedule=spec, **fields)


# --- definitions --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SCHEDULES)
@pytest.mark.parametrize("zone", ["UTC", PARIS])
def test_a_definition_reads_back_as_the_same_entry_and_bytes(spec: Schedule, zone: str) -> None:
    desired = entry(spec, enabled=False)
    text = encode_definition(desired, zone)

    back = entry_from_definition("nightly", json.loads(text))

    assert back == desired
    assert encode_definition(back, zone) == text
    assert essence(json.loads(encode_definition(back, zone))) == essence(json.loads(text))


@pytest.mark.parametrize("spec", SCHEDULES)
def test_a_definition_holds_exactly_redbeats_seven_keys(spec: Schedule) -> None:
    definition = json.loads(encode_definition(entry(spec)))

    assert tuple(definition) == DEFINITION_KEYS
    assert definition["schedule"]["__type__"] in ("crontab", "interval", "rrule")


def test_the_crontab_encoding_is_redbeats() -> None:
    text = encode_definition(entry(parse_cron_string("0 3 * * 1-5"), args=[], kwargs={}))

    assert text == (
        '{"name": "nightly", "task": "app.tasks.report", "args": [], "kwargs": {}, '
        '"options": {"queue": "reports", "priority": 5}, "schedule": {"__type__": "crontab", '
        '"minute": "0", "hour": "3", "day_of_week": "1-5", "day_of_month": "*", '
        '"month_of_year": "*"}, "enabled": true}'
    )


def test_an_interval_is_stored_as_float_seconds_with_relative() -> None:
    schedule = json.loads(encode_definition(entry(IntervalSchedule(30))))["schedule"]

    assert schedule == {"__type__": "interval", "every": 30.0, "relative": False}
    assert isinstance(schedule["every"], float)


def test_rrule_datetimes_keep_their_fixed_offsets() -> None:
    spec = RRuleSchedule(
        freq=DAILY,
        dtstart=datetime(2024, 1, 1, 9, tzinfo=INDIA),
        until=datetime(2030, 1, 1, tzinfo=PACIFIC),
    )
    schedule = json.loads(encode_definition(entry(spec)))["schedule"]

    back = schedule_from_json(schedule)

    assert (schedule["dtstart_tz"], schedule["until_tz"]) == (330, -480)
    assert isinstance(back, RRuleSchedule)
    assert back.dtstart == spec.dtstart
    assert back.dtstart.utcoffset() == timedelta(hours=5, minutes=30)
    assert back.until is not None
    assert back.until.utcoffset() == timedelta(hours=-8)


def test_a_zoneinfo_dtstart_is_frozen_to_its_offset() -> None:
    # RedBeat keeps minutes east of UTC, not the zone: winter Paris is +01:00.
    spec = RRuleSchedule(freq=DAILY, dtstart=datetime(2024, 1, 1, 9, tzinfo=ZoneInfo(PARIS)))

    back = schedule_from_json(json.loads(encode_definition(entry(spec)))["schedule"])

    assert isinstance(back, RRuleSchedule)
    assert back.dtstart == spec.dtstart
    assert back.dtstart.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    ("stored_weekdays", "expected"),
    [
        pytest.param([0, 4], (0, 4), id="numbers"),
        pytest.param(
            [{"__type__": "weekday", "wkday": 0}, {"__type__": "weekday", "wkday": 4}],
            (0, 4),
            id="weekday-objects",
        ),
        pytest.param({"__type__": "weekday", "wkday": 6}, 6, id="one-weekday-object"),
        pytest.param(6, 6, id="one-number"),
    ],
)
def test_stored_weekdays_read_back_as_numbers(stored_weekdays: Any, expected: Any) -> None:
    schedule = json.loads(
        encode_definition(
            entry(RRuleSchedule(freq=WEEKLY, dtstart=datetime(2024, 1, 1, 9, tzinfo=UTC)))
        )
    )["schedule"]
    schedule["byweekday"] = stored_weekdays

    back = schedule_from_json(schedule)

    assert isinstance(back, RRuleSchedule)
    assert back.byweekday == expected


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        pytest.param(None, "not a RedBeat schedule: None", id="null"),
        pytest.param("0 3 * * *", "not a RedBeat schedule: '0 3 * * *'", id="string"),
        pytest.param(
            {"__type__": "solar", "event": "sunrise", "lat": 0, "lon": 0},
            "schedule type 'solar' cannot be handled",
            id="solar",
        ),
        pytest.param({"every": 30}, "schedule type None cannot be handled", id="no-type"),
    ],
)
def test_schedule_from_json_refuses_what_redbeat_cannot_hold(schedule: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace("*", r"\*")):
        schedule_from_json(schedule)


def test_entry_from_definition_fills_what_redbeat_allows_to_be_absent() -> None:
    definition = {
        "name": "nightly",
        "task": "app.tasks.report",
        "args": None,
        "kwargs": None,
        "options": None,
        "schedule": {"__type__": "crontab", "minute": 0, "hour": "3"},
    }

    back = entry_from_definition("nightly", definition)

    assert back == DesiredEntry(
        "nightly", "app.tasks.report", CronSchedule(minute=0, hour="3"), [], {}, {}, True
    )


# --- essence ------------------------------------------------------------------------------


def test_essence_does_not_change_the_definition_it_reads() -> None:
    definition = json.loads(
        encode_definition(
            entry(RRuleSchedule(freq=WEEKLY, dtstart=datetime(2024, 1, 1, tzinfo=UTC), byhour=9))
        )
    )
    definition["args"] = None
    before = json.dumps(definition)

    essence(definition)

    assert json.dumps(definition) == before


@pytest.mark.parametrize("spec", SCHEDULES)
def test_essence_is_idempotent(spec: Schedule) -> None:
    once = essence(json.loads(encode_definition(entry(spec))))

    assert essence(once) == once


def test_essence_keeps_unknown_keys() -> None:
    definition = json.loads(encode_definition(entry(IntervalSchedule(30))))
    definition["relative"] = True

    assert essence(definition)["relative"] is True


def test_essence_tells_different_schedules_apart() -> None:
    # "0 3 * * *" and {minute: 0, hour: 3} are one schedule written two ways.
    specs = [param.values[0] for param in SCHEDULES if param.id != "cron-mapping-numbers"]
    essences = [essence(json.loads(encode_definition(entry(spec)))) for spec in specs]

    distinct = {json.dumps(item, sort_keys=True) for item in essences}
    assert len(distinct) == len(essences)


def test_the_cron_string_and_mapping_forms_have_one_essence() -> None:
    from_string = json.loads(encode_definition(entry(parse_cron_string("0 3 * * *"))))
    from_mapping = json.loads(encode_definition(entry(CronSchedule(minute=0, hour=3))))

    assert from_string != from_mapping
    assert essence(from_string) == essence(from_mapping)


def test_parse_definition_reads_only_json_objects() -> None:
    assert parse_definition(None) is None
    assert parse_definition("") is None
    assert parse_definition("{oops") is None
    assert parse_definition("[1]") is None
    assert parse_definition('{"a": 1}') == {"a": 1}


# --- meta ---------------------------------------------------------------------------------

RUN = datetime(2024, 6, 10, 3, 0, 12, 345_678, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["UTC", PARIS, "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize(
    "last_run_at",
    [
        pytest.param(RUN, id="utc"),
        pytest.param(RUN.astimezone(ZoneInfo("Asia/Tokyo")), id="tokyo"),
        pytest.param(RUN.astimezone(INDIA), id="fixed-offset"),
    ],
)
def test_meta_reads_back_as_the_same_instant_and_count(last_run_at: datetime, zone: str) -> None:
    text = encode_meta(last_run_at, 41, zone)

    meta = decode_meta(text)

    assert meta == LiveMeta(last_run_at=RUN, total_run_count=41)
    assert meta.last_run_at is not None
    assert meta.last_run_at.utcoffset() == RUN.astimezone(ZoneInfo(zone)).utcoffset()


def test_meta_is_written_in_beats_timezone_as_redbeat_does() -> None:
    assert json.loads(encode_meta(RUN, 2, PARIS)) == {
        "last_run_at": {
            "__type__": "datetime",
            "year": 2024,
            "month": 6,
            "day": 10,
            "hour": 5,
            "minute": 0,
            "second": 12,
            "microsecond": 345_678,
            "timezone": PARIS,
        },
        "total_run_count": 2,
    }


def test_meta_without_a_last_run_reads_back() -> None:
    assert decode_meta(encode_meta(None, 0, "UTC")) == LiveMeta(None, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '{"last_run_at": {"__type__": "datetime", "year": 2024, "month": 6, "day": 10, '
            '"hour": 3, "minute": 0, "second": 0, "microsecond": 0, "timezone": 0.0}}',
            LiveMeta(datetime(2024, 6, 10, 3, tzinfo=UTC), 0),
            id="numeric-offset-no-count",
        ),
        pytest.param(
            '{"last_run_at": {"__type__": "datetime", "year": 2024, "month": 6, "day": 10, '
            '"hour": 5, "minute": 0, "second": 0, "microsecond": 0, "timezone": 7200.0}, '
            '"total_run_count": 3}',
            LiveMeta(datetime(2024, 6, 10, 3, tzinfo=UTC), 3),
            id="seconds-offset",
        ),
        pytest.param('{"last_run_at": null}', LiveMeta(None, 0), id="as-redbeat-save-writes"),
        pytest.param('{"total_run_count": null}', LiveMeta(None, 0), id="null-count"),
    ],
)
def test_meta_as_other_writers_store_it(text: str, expected: LiveMeta) -> None:
    assert decode_meta(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("{not json", id="not-json"),
        pytest.param("null", id="json-null"),
        pytest.param("[1, 2]", id="json-list"),
        pytest.param('"yesterday"', id="json-string"),
        pytest.param("42", id="json-number"),
        pytest.param('{"last_run_at": "2024-06-10T03:00:00Z"}', id="iso-string"),
        pytest.param('{"last_run_at": 1718000000}', id="epoch-number"),
        pytest.param(
            '{"last_run_at": {"__type__": "datetime", "year": 2024}}', id="incomplete-datetime"
        ),
        pytest.param(
            '{"last_run_at": {"__type__": "datetime", "year": 2024, "month": 13, "day": 1, '
            '"hour": 0, "minute": 0, "second": 0, "microsecond": 0, "timezone": "UTC"}}',
            id="impossible-date",
        ),
        pytest.param(
            '{"last_run_at": {"__type__": "datetime", "year": 2024, "month": 1, "day": 1, '
            '"hour": 0, "minute": 0, "second": 0, "microsecond": 0, "timezone": "Nowhere/X"}}',
            id="unknown-zone",
        ),
        pytest.param(
            '{"last_run_at": {"__type__": "crontab", "minute": "0"}}', id="not-a-datetime-object"
        ),
        pytest.param('{"last_run_at": null, "total_run_count": "many"}', id="count-text"),
        pytest.param('{"last_run_at": null, "total_run_count": [1]}', id="count-list"),
    ],
)
def test_unreadable_meta_decodes_to_none(text: str | None) -> None:
    assert decode_meta(text) is None
