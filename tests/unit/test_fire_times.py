"""``next_fire_times`` predicts what Celery beat with RedBeat actually does.

The reference is not Celery's ``remaining_estimate`` called once more (that would be a
tautology) but an emulation of beat's loop over RedBeat's own entry code, tick by tick:

- RedBeat keeps per entry a ``definition`` and a ``meta`` JSON field and a sorted-set score;
  ``save()``/``_next_instance()`` write them, ``from_key()`` reads them (the emulation does
  the same, with RedBeat's JSON encoder/decoder, minus the network);
- at each tick beat loads only the entries whose score is due (``ZRANGEBYSCORE 0..now``) and
  asks ``RedBeatSchedulerEntry.is_due()``; when due it sends the task, sets ``last_run_at`` to
  the current time and rewrites the score as ``RedBeatSchedulerEntry.score`` (``due_at``);
- schedules decoded from Redis carry no ``nowfun``: they read ``app.now()``, so the emulation
  runs an app whose clock is simulated.

Ticks are one minute apart for crontab and rrule (their runs fall on whole minutes) and one
second apart for intervals; a run is the tick at which ``is_due()`` first says yes.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from celery.beat import ScheduleEntry
from celery.schedules import crontab, schedule
from croniter import croniter
from redbeat import RedBeatSchedulerEntry
from redbeat.decoder import RedBeatJSONEncoder, to_timestamp
from redbeat.schedules import rrule

from reconciler.beat.celery_objects import celery_schedule
from reconciler.beat.cron import CronError, parse_cron_string
from reconciler.beat.fire_times import next_fire_times
from reconciler.core.model import CronSchedule, IntervalSchedule, RRuleSchedule

if TYPE_CHECKING:
    from celery.schedules import BaseSchedule

    from reconciler.core.model import Schedule

UTC = timezone.utc
PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
# Beat's default beat_max_loop_interval: how far ahead RedBeat peeks at the next entry.
DEFAULT_MAX_INTERVAL = 300


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


# --- the emulation ------------------------------------------------------------------------


class SimulatedClockApp(Celery):
    """Beat's Celery app, with ``now()`` reading a simulated clock instead of the real one."""

    def __init__(self, timezone_name: str) -> None:
        super().__init__("beat-emulation", set_as_current=False)
        # RedBeat reads its configuration when an entry is built; nothing ever connects.
        self.conf.update(
            timezone=timezone_name, enable_utc=True, redbeat_redis_url="redis://127.0.0.1:1/0"
        )
        self.epoch_seconds = 0

    def now(self) -> datetime:
        # Celery's own app.now(): the current UTC instant, expressed in the app's timezone.
        return datetime.fromtimestamp(self.epoch_seconds, UTC).astimezone(self.timezone)


@dataclass
class StoredEntry:
    """What RedBeat keeps in Redis for one entry: two hash fields and a sorted-set score."""

    definition: str
    meta: str
    score: int


def _save(entry: RedBeatSchedulerEntry) -> StoredEntry:
    # RedBeatSchedulerEntry.save(), without the pipeline.
    definition = {
        "name": entry.name,
        "task": entry.task,
        "args": entry.args,
        "kwargs": entry.kwargs,
        "options": entry.options,
        "schedule": entry.schedule,
        "enabled": entry.enabled,
    }
    return StoredEntry(
        definition=json.dumps(definition, cls=RedBeatJSONEncoder),
        meta=json.dumps({"last_run_at": entry.last_run_at}, cls=RedBeatJSONEncoder),
        score=entry.score,
    )


def _load(stored: StoredEntry, app: Celery) -> RedBeatSchedulerEntry:
    # RedBeatSchedulerEntry.from_key(), after its HGETs.
    definition = RedBeatSchedulerEntry.decode_definition(stored.definition)
    meta = RedBeatSchedulerEntry.decode_meta(stored.meta)
    definition.update(meta)
    entry = RedBeatSchedulerEntry(app=app, **definition)
    entry.last_run_at = meta["last_run_at"]
    return entry


def _record_run(entry: RedBeatSchedulerEntry, stored: StoredEntry) -> None:
    # Scheduler.reserve() -> RedBeatSchedulerEntry._next_instance(): last_run_at becomes the
    # schedule's now(); meta and score are rewritten from the new instance.
    following = ScheduleEntry._next_instance(entry)
    stored.meta = json.dumps(
        {"last_run_at": following.last_run_at, "total_run_count": following.total_run_count},
        cls=RedBeatJSONEncoder,
    )
    stored.score = following.score


def beat_fire_times(
    schedule_object: BaseSchedule,
    after: datetime,
    count: int,
    timezone_name: str,
    *,
    tick: int,
    horizon: timedelta,
    lookahead: int = 0,
) -> list[datetime]:
    """When beat runs an entry saved with ``last_run_at=after``: the first ``count`` runs.

    ``lookahead`` > 0 models RedBeat's peek at the single nearest future entry (score within
    ``max_interval``), which beat also hands to ``is_due()``; 0 is an entry that is not the
    nearest one, i.e. only loaded once its score is due.
    """
    assert after.microsecond == 0, "the tick grid is whole seconds"
    app = SimulatedClockApp(timezone_name)
    zone = ZoneInfo(timezone_name)
    start = int(after.timestamp())
    app.epoch_seconds = start
    stored = _save(
        RedBeatSchedulerEntry(
            "emulated", "emulated.task", schedule_object, last_run_at=after, app=app
        )
    )
    runs: list[datetime] = []
    now = start - start % tick
    end = start + int(horizon.total_seconds())
    while len(runs) < count and stored.score >= 0 and now < end:  # score -1: never again
        now += tick
        if stored.score > now + lookahead:
            continue
        app.epoch_seconds = now
        entry = _load(stored, app)
        if isinstance(entry.schedule, crontab):
            assert entry.schedule.tz == app.timezone  # crontabs must be read in beat's zone
        is_due, _next_check = entry.is_due()
        if is_due:
            runs.append(datetime.fromtimestamp(now, zone))
            _record_run(entry, stored)
    if len(runs) < count and stored.score >= 0:
        pytest.fail(f"emulation found {len(runs)} of {count} runs within {horizon}; widen it")
    return runs


def redbeat_object(spec: Schedule) -> BaseSchedule:
    """The object application code would hand to RedBeat, built without the reconciler."""
    if isinstance(spec, CronSchedule):
        return crontab(**asdict(spec))
    if isinstance(spec, IntervalSchedule):
        return schedule(run_every=spec.seconds, relative=spec.relative)
    return rrule(**asdict(spec))


# --- cases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    spec: Schedule
    after: datetime
    count: int
    timezone: str = "UTC"
    horizon: timedelta = timedelta(days=400)

    @property
    def tick(self) -> int:
        return 1 if isinstance(self.spec, IntervalSchedule) else 60


def cron(**fields: int | str) -> CronSchedule:
    return CronSchedule(**fields)  # type: ignore[arg-type]


def daily_at(hour: int, minute: int) -> CronSchedule:
    return CronSchedule(minute=str(minute), hour=str(hour))


JAN_1 = utc(2026, 1, 1)  # a Thursday

CRONTAB_CASES = [
    Case(
        "friday-13th-both", cron(minute="0", hour="0", day_of_month="13", day_of_week="5"), JAN_1, 3
    ),
    Case("monday-0630", cron(minute="30", hour="6", day_of_week="mon"), JAN_1, 3),
    Case(
        "office-hours-over-weekend",
        cron(minute="*/15", hour="9-17", day_of_week="mon-fri"),
        utc(2026, 1, 2, 16, 50),
        7,
    ),
    Case(
        "jan-only-days-1-3",
        cron(minute="0", hour="12", day_of_month="1-3", month_of_year="jan"),
        utc(2026, 1, 2),
        3,
    ),
    Case(
        "quarterly-month-list",
        cron(minute="0", hour="0", day_of_month="1", month_of_year="1,4,7,10"),
        JAN_1,
        4,
    ),
    Case(
        "month-names-jan-jul",
        cron(minute="0", hour="0", day_of_month="1", month_of_year="jan,jul"),
        JAN_1,
        3,
        horizon=timedelta(days=600),
    ),
    Case(
        "feb-29-leap-years",
        cron(minute="0", hour="6,18", day_of_month="29", month_of_year="2"),
        utc(2027, 12, 1),
        3,
        horizon=timedelta(days=5 * 366),
    ),
    Case("day-31-skips-short-months", cron(minute="0", hour="0", day_of_month="31"), JAN_1, 4),
    Case("every-7-minutes-resets-hourly", cron(minute="*/7"), utc(2026, 1, 1, 0, 50), 6),
    Case("stepped-range", cron(minute="5-50/15"), JAN_1, 6),
    Case("hour-list", cron(minute="15", hour="3,9,21"), JAN_1, 5),
    Case("wrap-around-hours-22-2", cron(minute="0", hour="22-2"), JAN_1, 7),
    Case("day-of-month-step", cron(minute="0", hour="0", day_of_month="*/10"), JAN_1, 5),
    Case("weekend-names", cron(minute="0", hour="12", day_of_week="sat,sun"), JAN_1, 4),
    Case("sunday-as-0", cron(minute="0", hour="0", day_of_week="0"), JAN_1, 3),
    Case("last-minute-of-every-hour", cron(minute="59"), utc(2026, 1, 1, 22, 30), 4),
    Case(
        "last-minute-of-month",
        cron(minute="59", hour="23", day_of_month="28-31"),
        utc(2026, 1, 27),
        6,
    ),
    Case(
        "last-minute-of-year",
        cron(minute="59", hour="23", day_of_month="31", month_of_year="12"),
        utc(2025, 12, 31, 23, 59),
        1,
    ),
    Case("integer-fields", cron(minute=0, hour=3), JAN_1, 3),
    Case("after-exactly-on-a-run", daily_at(3, 0), utc(2026, 1, 1, 3, 0), 3),
    Case("half-hour-offset-zone", daily_at(0, 30), JAN_1, 3, timezone="Asia/Kolkata"),
    Case(
        "paris-winter-weekdays",
        cron(minute="0", hour="9", day_of_week="mon-fri"),
        JAN_1,
        4,
        timezone=PARIS,
    ),
]

# 2026 transitions: Paris 03-29 02:00 -> 03:00 and 10-25 03:00 -> 02:00;
# New York 03-08 02:00 -> 03:00 and 11-01 02:00 -> 01:00.
PARIS_SPRING = utc(2026, 3, 27)
PARIS_FALL = utc(2026, 10, 23)
NEW_YORK_SPRING = utc(2026, 3, 6, 12)
NEW_YORK_FALL = utc(2026, 10, 30, 12)
DST_CASES = [
    Case("paris-spring-0230", daily_at(2, 30), PARIS_SPRING, 5, PARIS),
    Case("paris-spring-0130", daily_at(1, 30), PARIS_SPRING, 5, PARIS),
    Case("paris-spring-0300", daily_at(3, 0), PARIS_SPRING, 5, PARIS),
    Case("paris-spring-1200", daily_at(12, 0), PARIS_SPRING, 5, PARIS),
    Case(
        "paris-spring-every-20min-1-3h", cron(minute="*/20", hour="1-3"), utc(2026, 3, 29), 9, PARIS
    ),
    Case(
        "paris-spring-sunday-0230",
        cron(minute="30", hour="2", day_of_week="sun"),
        utc(2026, 3, 20),
        3,
        PARIS,
    ),
    Case(
        "paris-spring-after-in-local-time",
        daily_at(12, 0),
        datetime(2026, 3, 28, 12, 0, tzinfo=ZoneInfo(PARIS)),
        3,
        PARIS,
    ),
    Case("paris-fall-0230", daily_at(2, 30), PARIS_FALL, 5, PARIS),
    Case("paris-fall-0130", daily_at(1, 30), PARIS_FALL, 5, PARIS),
    Case("paris-fall-1200", daily_at(12, 0), PARIS_FALL, 5, PARIS),
    Case(
        "paris-fall-every-20min-1-3h", cron(minute="*/20", hour="1-3"), utc(2026, 10, 25), 9, PARIS
    ),
    Case("new-york-spring-0230", daily_at(2, 30), NEW_YORK_SPRING, 4, NEW_YORK),
    Case("new-york-spring-0130", daily_at(1, 30), NEW_YORK_SPRING, 4, NEW_YORK),
    Case("new-york-fall-0130", daily_at(1, 30), NEW_YORK_FALL, 4, NEW_YORK),
    Case("new-york-fall-0230", daily_at(2, 30), NEW_YORK_FALL, 4, NEW_YORK),
]

INTERVAL_CASES = [
    Case("30s", IntervalSchedule(30), utc(2026, 1, 1, 12, 0, 7), 5),
    Case("1h30m", IntervalSchedule(5400), JAN_1, 4),
    Case("30s-paris-spring", IntervalSchedule(30), utc(2026, 3, 29, 0, 59), 4, PARIS),
    Case("1h30m-paris-spring", IntervalSchedule(5400), utc(2026, 3, 28, 22), 5, PARIS),
    Case("30s-paris-fall", IntervalSchedule(30), utc(2026, 10, 25, 0, 59), 4, PARIS),
    Case("1h30m-new-york-fall", IntervalSchedule(5400), utc(2026, 11, 1, 3), 5, NEW_YORK),
]

RRULE_CASES = [
    Case(
        "monthly-last-day",
        RRuleSchedule(freq=1, dtstart=utc(2026, 1, 1, 23, 0), bymonthday=-1),
        JAN_1,
        4,
    ),
    Case(
        "weekly-mon-fri",
        RRuleSchedule(freq=2, dtstart=utc(2026, 1, 5, 8, 30), byweekday=(0, 4)),
        JAN_1,
        5,
    ),
    Case(
        "count-limited-ends",
        RRuleSchedule(freq=3, dtstart=utc(2026, 1, 1, 6, 0), count=3),
        JAN_1,
        5,
    ),
    Case(
        "until-in-the-future",
        RRuleSchedule(freq=4, interval=6, dtstart=JAN_1, until=utc(2026, 1, 2)),
        utc(2026, 1, 1, 1),
        10,
    ),
    Case(
        "plus-0200-dtstart",
        RRuleSchedule(
            freq=3, dtstart=datetime(2026, 6, 1, 9, 0, tzinfo=timezone(timedelta(hours=2)))
        ),
        utc(2026, 6, 10),
        3,
    ),
    Case(
        "daily-fixed-offset-paris-spring",
        RRuleSchedule(
            freq=3, dtstart=datetime(2026, 3, 20, 12, 0, tzinfo=timezone(timedelta(hours=1)))
        ),
        PARIS_SPRING,
        4,
        PARIS,
    ),
    Case(
        "daily-fixed-offset-paris-fall",
        RRuleSchedule(
            freq=3, dtstart=datetime(2026, 10, 20, 12, 0, tzinfo=timezone(timedelta(hours=2)))
        ),
        PARIS_FALL,
        4,
        PARIS,
    ),
]

ALL_CASES = CRONTAB_CASES + DST_CASES + INTERVAL_CASES + RRULE_CASES


def shown(runs: list[datetime]) -> list[str]:
    # isoformat keeps the offset: the same instant written with the wrong offset differs.
    return [run.isoformat() for run in runs]


# --- next_fire_times against the emulation ------------------------------------------------


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_next_fire_times_match_beat_emulation(case: Case) -> None:
    expected_runs = beat_fire_times(
        redbeat_object(case.spec),
        case.after,
        case.count,
        case.timezone,
        tick=case.tick,
        horizon=case.horizon,
    )

    predicted = next_fire_times(case.spec, case.after, case.count, case.timezone)

    assert shown(predicted) == shown(expected_runs)


def test_rrule_that_ends_returns_fewer_runs() -> None:
    rule = RRuleSchedule(freq=3, dtstart=utc(2026, 1, 1, 6, 0), count=3)
    assert shown(next_fire_times(rule, utc(2026, 1, 2, 12), 5)) == ["2026-01-03T06:00:00+00:00"]
    assert next_fire_times(rule, utc(2026, 1, 3, 6), 5) == []


@pytest.mark.parametrize("case", RRULE_CASES, ids=lambda case: case.id)
def test_the_shared_rrule_answers_as_a_fresh_one_asked_in_any_order(case: Case) -> None:
    """The rrule built once per schedule keeps the occurrences dateutil walked (its cache).
    Entries sharing it ask in any order, before dtstart and past the end too: each answer
    is the one RedBeat's own rrule, uncached as beat has it, gives."""
    shared = celery_schedule(case.spec, case.timezone)
    fresh = redbeat_object(case.spec)
    moments = [case.after + timedelta(hours=7 * step, seconds=step) for step in range(-30, 400)]
    random.Random(11).shuffle(moments)
    for moment in moments + moments[::-1]:
        assert shared.rrule.after(moment) == fresh.rrule.after(moment), moment


# --- the emulation itself, against behaviour read from Celery's and RedBeat's source -------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            Case(
                "friday-13th",
                cron(minute="0", hour="0", day_of_month="13", day_of_week="5"),
                JAN_1,
                3,
            ),
            ["2026-02-13T00:00:00+00:00", "2026-03-13T00:00:00+00:00", "2026-11-13T00:00:00+00:00"],
            id="friday-13th-means-both",
        ),
        pytest.param(
            Case("paris-spring-0230", daily_at(2, 30), utc(2026, 3, 28, 12), 2, PARIS),
            # 02:30 does not exist on 03-29: Celery resolves it to the same UTC instant as
            # 02:30 at the old offset, i.e. 03:30 summer time.
            ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"],
            id="nonexistent-0230-runs-at-0330",
        ),
        pytest.param(
            Case("new-york-fall-0130", daily_at(1, 30), utc(2026, 10, 31, 12), 2, NEW_YORK),
            # 01:30 happens twice on 11-01 and runs once (first occurrence). RedBeat then
            # scores the next run as last_run_at + 25 h in wall-clock arithmetic: 02:30, an
            # hour after Celery's 01:30, and beat only looks at the entry once it is scored.
            ["2026-11-01T01:30:00-04:00", "2026-11-02T02:30:00-05:00"],
            id="fall-back-0130-once-then-an-hour-late",
        ),
        pytest.param(
            Case("30s-paris-fall", IntervalSchedule(30), utc(2026, 10, 25, 0, 59), 3, PARIS),
            # Same arithmetic for intervals: 02:59:30 summer time + 30 s of wall clock is
            # 03:00:00 winter time, an hour and 30 s later. Beat pauses the entry for an hour.
            [
                "2026-10-25T02:59:30+02:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-25T03:00:30+01:00",
            ],
            id="every-30s-pauses-an-hour-at-fall-back",
        ),
    ],
)
def test_emulation_reproduces_beat_behaviour(case: Case, expected: list[str]) -> None:
    runs = beat_fire_times(
        redbeat_object(case.spec),
        case.after,
        case.count,
        case.timezone,
        tick=case.tick,
        horizon=case.horizon,
    )
    assert shown(runs) == expected


def test_redbeat_scores_an_hour_late_across_fall_back() -> None:
    # The root of the late runs above, straight from RedBeatSchedulerEntry: due_at adds
    # Celery's remaining time (elapsed seconds) to a zone-aware last_run_at (wall clock).
    app = SimulatedClockApp(PARIS)
    app.epoch_seconds = int(utc(2026, 10, 25, 0, 59, 30).timestamp())
    entry = RedBeatSchedulerEntry("e", "t", schedule(run_every=30), last_run_at=app.now(), app=app)

    assert entry.schedule.remaining_estimate(entry.last_run_at) == timedelta(seconds=30)
    assert entry.score == to_timestamp(utc(2026, 10, 25, 2, 0, 0))


@pytest.mark.parametrize(
    "case",
    [case for case in DST_CASES if "fall" in case.id],
    ids=lambda case: case.id,
)
def test_peeked_entry_runs_at_most_max_interval_before_the_prediction(case: Case) -> None:
    # RedBeat also evaluates the single nearest not-yet-due entry (score within
    # max_interval): alone in Redis, a late-scored entry may run up to max_interval earlier.
    late = beat_fire_times(
        redbeat_object(case.spec),
        case.after,
        case.count,
        case.timezone,
        tick=case.tick,
        horizon=case.horizon,
    )
    peeked = beat_fire_times(
        redbeat_object(case.spec),
        case.after,
        case.count,
        case.timezone,
        tick=case.tick,
        horizon=case.horizon,
        lookahead=DEFAULT_MAX_INTERVAL,
    )
    predicted = next_fire_times(case.spec, case.after, case.count, case.timezone)

    assert len(peeked) == len(late) == len(predicted) == case.count
    window = timedelta(seconds=DEFAULT_MAX_INTERVAL)
    for early, run, latest in zip(peeked, predicted, late, strict=True):
        assert latest - window <= early <= run <= latest


# --- against croniter, an independent classic-cron implementation -------------------------

CLASSIC_EXPRESSIONS = [
    "* * * * *",
    "*/7 * * * *",
    "5-50/15 * * * *",
    "59 * * * *",
    "15 3,9,21 * * *",
    "0 22-2 * * *",
    "0 */5 * * *",
    "*/15 9-17 * * mon-fri",
    "30 6 * * mon",
    "0 12 * * sat,sun",
    "0 0 * * 0",
    "0 0 * * 1-5",
    "0 0 */10 * *",
    "0 0 31 * *",
    "0 0 1 jan,jul *",
    "0 0 1 1,4,7,10 *",
    "0 12 1-3 jan *",
    "59 23 31 12 *",
    "0 6 29 2 *",
    "0 0 * jan mon-fri",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
]


@pytest.mark.parametrize("expression", CLASSIC_EXPRESSIONS)
@pytest.mark.parametrize(
    "after", [JAN_1, utc(2026, 7, 15, 13, 59, 30)], ids=["jan-1", "mid-july-with-seconds"]
)
def test_cron_string_runs_match_croniter(expression: str, after: datetime) -> None:
    iterator = croniter(expression, after)
    classic = [iterator.get_next(datetime) for _ in range(8)]

    predicted = next_fire_times(parse_cron_string(expression), after, 8, "UTC")

    assert shown(predicted) == shown(classic)


def test_day_of_month_and_day_of_week_differ_between_classic_cron_and_celery() -> None:
    classic_iterator = croniter("0 0 13 * 5", JAN_1)
    classic = [classic_iterator.get_next(datetime) for _ in range(4)]
    celery = next_fire_times(
        CronSchedule(minute="0", hour="0", day_of_month="13", day_of_week="5"), JAN_1, 4
    )

    # Classic cron: the 13th OR any Friday.
    assert shown(classic) == [
        "2026-01-02T00:00:00+00:00",
        "2026-01-09T00:00:00+00:00",
        "2026-01-13T00:00:00+00:00",
        "2026-01-16T00:00:00+00:00",
    ]
    # Celery's crontab: the 13th AND a Friday.
    assert shown(celery) == [
        "2026-02-13T00:00:00+00:00",
        "2026-03-13T00:00:00+00:00",
        "2026-11-13T00:00:00+00:00",
        "2027-08-13T00:00:00+00:00",
    ]
    assert all(run.day == 13 and run.isoweekday() == 5 for run in celery)

    with pytest.raises(CronError, match=r"EITHER matches.*BOTH match.*mapping form"):
        parse_cron_string("0 0 13 * 5")
