"""``encode_definition`` writes exactly the bytes RedBeat's own ``save()`` writes.

Each case builds the RedBeat side by hand, the way application code does
(``RedBeatSchedulerEntry(..., schedule=crontab(...)).save()`` against the real test server),
and compares what lands in Redis with the reconciler's encoding of the matching
``DesiredEntry``. The schedule objects on the RedBeat side are built directly from Celery and
RedBeat, never through the reconciler's helpers, so two independent paths meet in the bytes.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from celery.schedules import crontab, schedule
from dateutil.rrule import FR, MO
from redbeat import RedBeatSchedulerEntry
from redbeat.schedules import rrule

from reconciler.beat.cron import parse_cron_string
from reconciler.beat.redbeat_codec import encode_definition
from reconciler.core.definitions import DEFINITION_KEYS
from reconciler.core.model import CronSchedule, DesiredEntry, IntervalSchedule, RRuleSchedule
from reconciler.load.desired_state import load_desired_state

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import redis
    from celery import Celery
    from celery.schedules import BaseSchedule

    from reconciler.core.model import JsonValue
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

UTC = timezone.utc
PLUS_2 = timezone(timedelta(hours=2))
KEY_PREFIX = "redbeat:"  # the test bed's RedBeat prefix
CRON_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
RRULE_FIELDS = (
    "freq",
    "interval",
    "wkst",
    "count",
    "bysetpos",
    "bymonth",
    "bymonthday",
    "byyearday",
    "byeaster",
    "byweekno",
    "byweekday",
    "byhour",
    "byminute",
    "bysecond",
)

RICH_ARGS: list[JsonValue] = [1, "deux", None, 2.5, True, {"nested": [1, {"x": "é"}]}]
RICH_KWARGS: dict[str, JsonValue] = {"période": "hier", "list": [1, 2], "empty": {}}
RICH_OPTIONS: dict[str, JsonValue] = {
    "queue": "reports",
    "priority": 3,
    "expires": 3600,
    "headers": {"trace": {"id": "abc", "tags": ["a", "b"]}, "snowman": "☃"},
    "retry_policy": {"max_retries": 3, "interval_start": 0},
}


@dataclass(frozen=True)
class Case:
    """A desired entry and the schedule object application code would give RedBeat for it."""

    id: str
    entry: DesiredEntry
    # Built lazily: RedBeat's rrule reads the current Celery app when constructed.
    redbeat_schedule: Callable[[], BaseSchedule] = field(compare=False)


def desired(name: str, schedule_spec: Any, **extra: Any) -> DesiredEntry:
    return DesiredEntry(
        name=name, task=f"app.tasks.{name.replace('-', '_')}", schedule=schedule_spec, **extra
    )


CASES = [
    Case(
        "cron-string",
        desired("nightly", parse_cron_string("0 3 * * *"), args=[1], options={"queue": "reports"}),
        lambda: crontab(minute="0", hour="3"),
    ),
    Case(
        "cron-string-names-steps",
        desired("office-hours", parse_cron_string("*/15 9-17 * * mon-fri")),
        lambda: crontab(minute="*/15", hour="9-17", day_of_week="mon-fri"),
    ),
    Case(
        "cron-macro",
        desired("hourly", parse_cron_string("@hourly")),
        lambda: crontab(minute="0"),
    ),
    Case(
        "cron-mapping-ints",
        desired("at-three", CronSchedule(minute=0, hour=3)),
        lambda: crontab(minute=0, hour=3),
    ),
    Case(
        "cron-mapping-friday-13th",
        desired(
            "friday-13th",
            CronSchedule(minute=0, hour=0, day_of_month=13, day_of_week=5),
        ),
        lambda: crontab(minute=0, hour=0, day_of_month=13, day_of_week=5),
    ),
    Case(
        "every-30s",
        desired("heartbeat", IntervalSchedule(30.0)),
        lambda: schedule(run_every=30),
    ),
    Case(
        "every-1.5s",
        desired("fast", IntervalSchedule(1.5)),
        lambda: schedule(run_every=1.5),
    ),
    Case(
        "every-1h30m",
        desired("purge", IntervalSchedule(5400.0)),
        lambda: schedule(run_every=timedelta(hours=1, minutes=30)),
    ),
    Case(
        "rrule-monthly-last-day-utc",
        desired(
            "month-end",
            RRuleSchedule(freq=1, dtstart=datetime(2026, 1, 31, 23, 0, tzinfo=UTC), bymonthday=-1),
        ),
        lambda: rrule("MONTHLY", dtstart=datetime(2026, 1, 31, 23, 0, tzinfo=UTC), bymonthday=-1),
    ),
    Case(
        "rrule-plus-0200-with-until",
        desired(
            "summer-mornings",
            RRuleSchedule(
                freq=3,
                dtstart=datetime(2026, 6, 1, 9, 0, tzinfo=PLUS_2),
                until=datetime(2026, 12, 31, 9, 0, tzinfo=PLUS_2),
            ),
        ),
        lambda: rrule(
            "DAILY",
            dtstart=datetime(2026, 6, 1, 9, 0, tzinfo=PLUS_2),
            until=datetime(2026, 12, 31, 9, 0, tzinfo=PLUS_2),
        ),
    ),
    Case(
        "rrule-byweekday-list",
        desired(
            "mon-fri-mornings",
            RRuleSchedule(
                freq=2, dtstart=datetime(2026, 1, 5, 8, 30, tzinfo=UTC), byweekday=(0, 4)
            ),
        ),
        lambda: rrule("WEEKLY", dtstart=datetime(2026, 1, 5, 8, 30, tzinfo=UTC), byweekday=[0, 4]),
    ),
    Case(
        "rrule-count-byhour",
        desired(
            "three-times",
            RRuleSchedule(
                freq=3,
                dtstart=datetime(2026, 1, 1, tzinfo=UTC),
                count=3,
                byhour=(6, 18),
                byminute=0,
            ),
        ),
        lambda: rrule(
            "DAILY", dtstart=datetime(2026, 1, 1, tzinfo=UTC), count=3, byhour=[6, 18], byminute=0
        ),
    ),
    Case(
        "args-kwargs-options-unicode",
        desired(
            "rich",
            parse_cron_string("30 6 * * mon"),
            args=RICH_ARGS,
            kwargs=RICH_KWARGS,
            options=RICH_OPTIONS,
        ),
        lambda: crontab(minute="30", hour="6", day_of_week="mon"),
    ),
    Case(
        "disabled",
        desired("paused", parse_cron_string("@daily"), enabled=False),
        lambda: crontab(minute="0", hour="0"),
    ),
    Case(
        "empty-args-kwargs-options",
        desired("bare", IntervalSchedule(60.0), args=[], kwargs={}, options={}),
        lambda: schedule(run_every=60),
    ),
]


@pytest.fixture
def raw_client(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    """A client that returns bytes, for byte-for-byte comparisons."""
    client = redis_server.client(decode_responses=False)
    yield client
    client.close()


def save_by_hand(app: Celery, entry: DesiredEntry, schedule_object: BaseSchedule) -> str:
    """Write the entry the way application code does with RedBeat's API; return its key."""
    redbeat_entry = RedBeatSchedulerEntry(
        entry.name,
        entry.task,
        schedule=schedule_object,
        args=list(entry.args),
        kwargs=dict(entry.kwargs),
        options=dict(entry.options),
        enabled=entry.enabled,
        app=app,
    )
    redbeat_entry.save()
    return str(redbeat_entry.key)


def stored_definition(client: redis.Redis, key: str) -> bytes:
    raw = client.hget(key, "definition")
    assert isinstance(raw, bytes), f"no definition stored under {key}"
    return raw


def assert_same_schedule(loaded: BaseSchedule, expected: BaseSchedule) -> None:
    # Field by field: Celery's and RedBeat's __eq__ are too lenient to prove anything
    # (any two rrules compare equal; crontab ignores how fields were written).
    assert type(loaded) is type(expected)
    if isinstance(expected, crontab):
        for name in CRON_FIELDS:
            assert getattr(loaded, f"_orig_{name}") == getattr(expected, f"_orig_{name}"), name
            assert getattr(loaded, name) == getattr(expected, name), name
    elif isinstance(expected, rrule):
        for name in RRULE_FIELDS:
            assert _plain(getattr(loaded, name)) == _plain(getattr(expected, name)), name
        for name in ("dtstart", "until"):
            loaded_moment, expected_moment = getattr(loaded, name), getattr(expected, name)
            assert loaded_moment == expected_moment, name
            if expected_moment is not None:
                assert loaded_moment.utcoffset() == expected_moment.utcoffset(), name
        assert str(loaded.rrule) == str(expected.rrule)
    else:
        assert isinstance(expected, schedule)
        assert loaded.run_every == expected.run_every
        assert loaded.relative is expected.relative


def _plain(value: object) -> object:
    # RedBeat hands back JSON lists where the model holds tuples.
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_encode_definition_matches_redbeat_save(
    case: Case, testbed_app: Celery, raw_client: redis.Redis
) -> None:
    key = save_by_hand(testbed_app, case.entry, case.redbeat_schedule())

    expected = stored_definition(raw_client, key)

    assert key == KEY_PREFIX + case.entry.name
    assert encode_definition(case.entry).encode() == expected
    # Beat's timezone is not part of the stored definition.
    assert encode_definition(case.entry, "Europe/Paris").encode() == expected


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_redbeat_loads_what_was_encoded(
    case: Case, testbed_app: Celery, raw_client: redis.Redis
) -> None:
    # Written with the reconciler's bytes (not by RedBeat), read back by RedBeat itself.
    key = KEY_PREFIX + case.entry.name
    raw_client.hset(key, "definition", encode_definition(case.entry))

    definition = json.loads(stored_definition(raw_client, key))
    loaded = RedBeatSchedulerEntry.from_key(key, app=testbed_app)

    assert list(definition) == list(DEFINITION_KEYS)
    assert loaded.name == case.entry.name
    assert loaded.task == case.entry.task
    assert loaded.args == list(case.entry.args)
    assert loaded.kwargs == dict(case.entry.kwargs)
    assert loaded.options == dict(case.entry.options)
    assert loaded.enabled is case.entry.enabled
    assert loaded.last_run_at is None  # no meta written: beat would run it on its next tick
    assert_same_schedule(loaded.schedule, case.redbeat_schedule())

    is_due, next_check = loaded.is_due()
    assert isinstance(is_due, bool)
    assert next_check is None or next_check >= 0
    if not case.entry.enabled:
        assert (is_due, next_check) == (False, 5.0)
    assert isinstance(loaded.due_at, datetime)
    assert isinstance(loaded.score, (int, float))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_round_trip_after_redbeat_save(
    case: Case, testbed_app: Celery, raw_client: redis.Redis
) -> None:
    key = save_by_hand(testbed_app, case.entry, case.redbeat_schedule())

    loaded = RedBeatSchedulerEntry.from_key(key, app=testbed_app)

    assert_same_schedule(loaded.schedule, case.redbeat_schedule())
    assert isinstance(loaded.last_run_at, datetime)
    is_due, _next_check = loaded.is_due()
    assert isinstance(is_due, bool)
    due_at = loaded.due_at
    assert due_at is None or isinstance(due_at, datetime)
    assert raw_client.zscore(KEY_PREFIX + ":schedule", key) is not None


# --- the whole path: file -> DesiredEntry -> definition ------------------------------------

SCHEDULE_FILE = """\
version: 1
defaults:
  options: {queue: reports}
schedules:
  nightly:
    task: app.tasks.nightly
    cron: "0 3 * * *"
    args: [1]
  friday-13th:
    task: app.tasks.friday_13th
    cron: {minute: 0, hour: 0, day_of_month: 13, day_of_week: 5}
    options: {queue: null}
  heartbeat:
    task: app.tasks.heartbeat
    every: 30s
    options: {expires: 25}
  fast:
    task: app.tasks.fast
    every: 1.5
  purge:
    task: app.tasks.purge
    every: 1h30m
  month-end:
    task: app.tasks.month_end
    rrule:
      freq: MONTHLY
      dtstart: "2026-01-31T23:00:00+00:00"
      bymonthday: -1
  summer-mornings:
    task: app.tasks.summer_mornings
    rrule:
      freq: DAILY
      dtstart: 2026-06-01T09:00:00+02:00
      until: "2026-12-31T09:00:00+02:00"
  mon-fri-mornings:
    task: app.tasks.mon_fri_mornings
    rrule:
      freq: WEEKLY
      dtstart: "2026-01-05T08:30:00+00:00"
      byweekday: [MO, FR]
  rich:
    task: app.tasks.rich
    cron: "30 6 * * mon"
    args: [1, "deux", null, 2.5, true, {nested: [1, {x: "é"}]}]
    kwargs: {période: hier, list: [1, 2], empty: {}}
    options:
      retry_policy: {max_retries: 3, interval_start: 0}
      headers: {trace: {id: abc, tags: [a, b]}, snowman: "☃"}
      priority: 3
      expires: 3600
  paused:
    task: app.tasks.paused
    cron: "@daily"
    enabled: false
    description: for people only, never stored
    run_on_create: true
"""


@dataclass(frozen=True)
class HandBuilt:
    """How application code would create the same entry with RedBeat's API."""

    task: str
    schedule: Callable[[], BaseSchedule]
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True


FROM_FILE = {
    "nightly": HandBuilt(
        "app.tasks.nightly",
        lambda: crontab(minute="0", hour="3"),
        args=[1],
        options={"queue": "reports"},
    ),
    "friday-13th": HandBuilt(
        "app.tasks.friday_13th",
        lambda: crontab(minute=0, hour=0, day_of_month=13, day_of_week=5),
    ),
    "heartbeat": HandBuilt(
        "app.tasks.heartbeat",
        lambda: schedule(run_every=30),
        options={"queue": "reports", "expires": 25},
    ),
    "fast": HandBuilt(
        "app.tasks.fast", lambda: schedule(run_every=1.5), options={"queue": "reports"}
    ),
    "purge": HandBuilt(
        "app.tasks.purge",
        lambda: schedule(run_every=timedelta(hours=1, minutes=30)),
        options={"queue": "reports"},
    ),
    "month-end": HandBuilt(
        "app.tasks.month_end",
        lambda: rrule("MONTHLY", dtstart=datetime(2026, 1, 31, 23, 0, tzinfo=UTC), bymonthday=-1),
        options={"queue": "reports"},
    ),
    "summer-mornings": HandBuilt(
        "app.tasks.summer_mornings",
        lambda: rrule(
            "DAILY",
            dtstart=datetime(2026, 6, 1, 9, 0, tzinfo=PLUS_2),
            until=datetime(2026, 12, 31, 9, 0, tzinfo=PLUS_2),
        ),
        options={"queue": "reports"},
    ),
    "mon-fri-mornings": HandBuilt(
        "app.tasks.mon_fri_mornings",
        lambda: rrule("WEEKLY", dtstart=datetime(2026, 1, 5, 8, 30, tzinfo=UTC), byweekday=[0, 4]),
        options={"queue": "reports"},
    ),
    "rich": HandBuilt(
        "app.tasks.rich",
        lambda: crontab(minute="30", hour="6", day_of_week="mon"),
        args=RICH_ARGS,
        kwargs=RICH_KWARGS,
        # The loader orders options as the file format declares them (queue, priority,
        # expires, headers, retry_policy), not as the file lists them.
        options=RICH_OPTIONS,
    ),
    "paused": HandBuilt(
        "app.tasks.paused",
        lambda: crontab(minute="0", hour="0"),
        options={"queue": "reports"},
        enabled=False,
    ),
}
FILE_NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def entries_from_file(tmp_path: Path) -> dict[str, DesiredEntry]:
    schedule_file = tmp_path / "schedules" / "all.yaml"
    schedule_file.parent.mkdir()
    schedule_file.write_text(textwrap.dedent(SCHEDULE_FILE), encoding="utf-8")
    loaded = load_desired_state([schedule_file.parent], now=FILE_NOW)
    return {entry.name: entry for entry in loaded.entries}


def test_file_declares_every_hand_built_entry(entries_from_file: dict[str, DesiredEntry]) -> None:
    assert sorted(entries_from_file) == sorted(FROM_FILE)


@pytest.mark.parametrize("name", list(FROM_FILE))
def test_file_entry_encodes_as_hand_built_redbeat_entry(
    name: str,
    entries_from_file: dict[str, DesiredEntry],
    testbed_app: Celery,
    raw_client: redis.Redis,
) -> None:
    hand_built = FROM_FILE[name]
    redbeat_entry = RedBeatSchedulerEntry(
        name,
        hand_built.task,
        schedule=hand_built.schedule(),
        args=hand_built.args,
        kwargs=hand_built.kwargs,
        options=hand_built.options,
        enabled=hand_built.enabled,
        app=testbed_app,
    ).save()

    expected = stored_definition(raw_client, redbeat_entry.key)

    assert encode_definition(entries_from_file[name]).encode() == expected


# --- differences the diff must tolerate: same meaning, other bytes ------------------------


def test_dateutil_weekday_objects_are_stored_differently_from_integers(
    testbed_app: Celery, raw_client: redis.Redis
) -> None:
    # Application code often writes byweekday=[MO, FR]; RedBeat stores those as objects.
    dtstart = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    entry = desired("mon-fri-mornings", RRuleSchedule(freq=2, dtstart=dtstart, byweekday=(0, 4)))
    key = save_by_hand(testbed_app, entry, rrule("WEEKLY", dtstart=dtstart, byweekday=[MO, FR]))

    stored = stored_definition(raw_client, key)
    loaded = RedBeatSchedulerEntry.from_key(key, app=testbed_app)

    assert b'"byweekday": [{"__type__": "weekday", "wkday": 0}' in stored
    assert encode_definition(entry).encode() != stored
    assert str(loaded.schedule.rrule) == str(
        rrule("WEEKLY", dtstart=dtstart, byweekday=[0, 4]).rrule
    )


def test_redbeat_entry_built_without_args_stores_null(
    testbed_app: Celery, raw_client: redis.Redis
) -> None:
    # ScheduleEntry keeps args=None as given, while kwargs and options default to {}.
    RedBeatSchedulerEntry("no-args", "app.tasks.x", schedule(run_every=60), app=testbed_app).save()

    stored = json.loads(stored_definition(raw_client, KEY_PREFIX + "no-args"))
    reconciler = json.loads(encode_definition(desired("no-args", IntervalSchedule(60.0))))

    assert (stored["args"], stored["kwargs"], stored["options"]) == (None, {}, {})
    assert (reconciler["args"], reconciler["kwargs"], reconciler["options"]) == ([], {}, {})
