"""Work done once: Celery's schedule objects per distinct schedule, fire times per exact
question (for a crontab, per minute of the last run), metas per plan. Every cache is proven
by a case where an equal-looking value must not share the answer (``1 == 1.0``, the same
instant in another zone or fold), or by asking each question alone and together."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from reconciler.beat import celery_objects, fire_times, redbeat_rules
from reconciler.beat.celery_objects import celery_schedule, exact_key
from reconciler.beat.fire_times import next_fire_times
from reconciler.beat.redbeat_codec import check_schedule_encodes, encode_definition, encode_meta
from reconciler.beat.redbeat_rules import RedBeatRules
from reconciler.core.diff import compute_plan
from reconciler.core.live import LiveEntry, LiveState
from reconciler.core.model import CronSchedule, DesiredEntry, IntervalSchedule, RRuleSchedule
from reconciler.core.ownership import MARKER_VALUE
from reconciler.core.scores import score_of
from reconciler.core.secrets import entry_marker
from reconciler.load.desired_state import read_schedule_files

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from celery.schedules import BaseSchedule

    from reconciler.core.model import Schedule

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True)
def _empty_caches() -> None:
    celery_objects.clear_schedule_cache()
    fire_times.clear_fire_times_cache()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Counter[Any]:
    """How often each schedule's Celery object is built."""
    counted: Counter[Any] = Counter()
    build = celery_objects._build

    def counting(spec: Schedule, timezone: str) -> BaseSchedule:
        counted[exact_key(spec)] += 1
        return build(spec, timezone)

    monkeypatch.setattr(celery_objects, "_build", counting)
    return counted


def test_each_distinct_schedule_is_built_once_for_validation_and_plan(
    tmp_path: Path, builds: Counter[Any]
) -> None:
    body = "".join(
        f"  job-{index:03d}:\n    task: app.tasks.job\n    {schedule}\n    args: [{index}]\n"
        for index, schedule in enumerate(
            ['cron: "0 3 * * *"', "every: 5m", 'cron: "*/15 9-17 * * mon-fri"'] * 20
        )
    )
    (tmp_path / "jobs.yaml").write_text("version: 1\nschedules:\n" + body)
    loaded = read_schedule_files([tmp_path])
    assert loaded.valid, loaded.problems
    ran = encode_meta(NOW - timedelta(hours=1), 3, "UTC")
    live = LiveState(
        {
            entry.name: LiveEntry(
                entry.name, encode_definition(entry), ran, MARKER_VALUE, 4102444800.0, True
            )
            for entry in loaded.entries
        },
        frozenset(entry.name for entry in loaded.entries),
    )
    plan = compute_plan(loaded.entries, live, now=NOW, rules=RedBeatRules())
    assert len(plan.changes) == 60  # scores in 2100: every entry's schedule was asked
    assert len(builds) == 3
    assert set(builds.values()) == {1}


def test_a_pinned_clock_does_not_leak_into_the_shared_object() -> None:
    shared = celery_schedule(IntervalSchedule(60.0))
    pinned = celery_schedule(IntervalSchedule(60.0), nowfun=lambda: NOW)
    assert pinned is not shared
    assert shared.nowfun is None
    assert pinned.now() == NOW
    assert celery_schedule(IntervalSchedule(60.0)) is shared


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # The same instant, written in two zones: RedBeat stores dtstart_tz, so the bytes differ.
        (
            RRuleSchedule(freq=3, dtstart=datetime(2026, 1, 1, tzinfo=timezone.utc)),
            RRuleSchedule(freq=3, dtstart=datetime(2026, 1, 1, 1, tzinfo=PARIS)),
        ),
        (CronSchedule(minute=5), CronSchedule(minute="5")),
        (IntervalSchedule(30.0), IntervalSchedule(30.0, relative=True)),
    ],
)
def test_equal_looking_schedules_keep_their_own_encoding(first: Schedule, second: Schedule) -> None:
    entries = [DesiredEntry("job", "app.tasks.job", spec) for spec in (first, second)]
    cached = [encode_definition(entry) for entry in entries]
    fresh = []
    for entry in entries:
        celery_objects.clear_schedule_cache()
        fresh.append(encode_definition(entry))
    assert cached == fresh
    assert first != second or cached[0] != cached[1]


@pytest.mark.parametrize(
    "after",
    [
        datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc),
        datetime(2026, 3, 29, 1, 30, tzinfo=PARIS),  # the same instant, Paris time
        datetime(2026, 10, 25, 2, 30, tzinfo=PARIS),  # fold 0 and 1: an hour apart
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS),
    ],
)
@pytest.mark.parametrize("spec", [CronSchedule(minute="0", hour="3"), IntervalSchedule(3600.0)])
def test_fire_times_answer_each_exact_question(after: datetime, spec: Schedule) -> None:
    questions = [
        datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc),
        datetime(2026, 3, 29, 1, 30, tzinfo=PARIS),
        datetime(2026, 10, 25, 2, 30, tzinfo=PARIS),
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS),
    ]
    for question in questions:  # fill the cache with the look-alikes first
        next_fire_times(spec, question, 3, "Europe/Paris")
    cached = next_fire_times(spec, after, 3, "Europe/Paris")
    fire_times.clear_fire_times_cache()
    celery_objects.clear_schedule_cache()
    assert cached == next_fire_times(spec, after, 3, "Europe/Paris")
    assert [moment.utcoffset() for moment in cached] == [
        moment.utcoffset() for moment in next_fire_times(spec, after, 3, "Europe/Paris")
    ]


def test_an_answer_handed_out_cannot_change_the_next_one() -> None:
    first = next_fire_times(IntervalSchedule(60.0), NOW, 2)
    first.clear()
    assert len(next_fire_times(IntervalSchedule(60.0), NOW, 2)) == 2


def test_metas_are_decoded_once_per_plan_and_each_text_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[str | None] = []
    original = redbeat_rules.decode_meta

    def counting(text: str | None, *, strict: bool = True) -> Any:
        decoded.append(text)
        return original(text, strict=strict)

    monkeypatch.setattr(redbeat_rules, "decode_meta", counting)
    rules = RedBeatRules()
    ran = encode_meta(NOW - timedelta(hours=1), 3, "UTC")
    other = ran.replace('"total_run_count": 3', '"total_run_count": 4')
    first = rules.meta(ran)
    assert rules.meta(ran) is first
    second = rules.meta(other)
    assert first is not None
    assert second is not None
    assert (first.total_run_count, second.total_run_count) == (3, 4)
    assert decoded == [ran, other]


def test_a_refused_schedule_is_refused_every_time() -> None:
    refused = CronSchedule(minute="61")
    for _ in range(2):
        with pytest.raises(ValueError, match="61"):
            check_schedule_encodes(refused)
    check_schedule_encodes(CronSchedule(minute="59"))


@pytest.mark.parametrize(
    ("stored", "outcome"),
    [
        (lambda text: text, None),  # the same bytes: nothing parsed, nothing changed
        (lambda text: text.replace('"n": 1', '"n": 7'), "update"),  # one byte
        (lambda text: text.replace('"n": 1', '"n": 1.0'), "update"),  # 1 and 1.0 differ
        (lambda text: text.replace(", ", ",  ", 1), None),  # other bytes, same essence
    ],
)
def test_the_plan_sees_one_changed_byte_of_a_definition(
    stored: Callable[[str], str], outcome: str | None
) -> None:
    desired = DesiredEntry("job", "app.tasks.job", CronSchedule("0", "3"), kwargs={"n": 1})
    text = encode_definition(desired)
    ran = encode_meta(NOW - timedelta(hours=1), 3, "UTC")
    score = score_of(next_fire_times(desired.schedule, NOW - timedelta(hours=1), 1)[0])
    rules = RedBeatRules()
    live = LiveState(
        {"job": LiveEntry("job", stored(text), ran, entry_marker(desired), score, True)},
        frozenset({"job"}),
    )
    plan = compute_plan([desired], live, now=NOW, rules=rules)
    assert [change.action.value for change in plan.changes] == ([outcome] if outcome else [])


CRONTABS = [
    CronSchedule(minute="0", hour="3"),
    CronSchedule(minute="*/15", hour="9-17", day_of_week="mon-fri"),
    CronSchedule(minute="0", hour="10", day_of_month="13"),  # Celery's _delta_to_next
    CronSchedule(minute="30", hour="2", day_of_month="1,15,29", month_of_year="3,10,11"),
    CronSchedule(minute="0,30", hour="*"),
    CronSchedule(minute="*"),
]
# Half-hour and 45-minute offsets, a half-hour DST, and Monrovia's -0:44:30 until 1972.
BEAT_ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Africa/Monrovia",
]


def _answer(spec: Schedule, after: datetime, zone: str) -> list[tuple[str, int]] | str:
    try:
        return [(run.isoformat(), run.fold) for run in next_fire_times(spec, after, 3, zone)]
    except (ValueError, RuntimeError) as error:
        return type(error).__name__


def test_last_runs_in_one_minute_share_a_crontab_answer_that_is_each_ones_own() -> None:
    """A crontab's answer is shared by the last runs inside one minute (entries beat ran in
    one tick). Asked in one cache, in any order, each gets what it gets asked alone: exactly
    on the minute or inside it, in beat's zone or another, across DST changes, in zones with
    half-hour offsets and one whose offset is not whole minutes."""
    rng = random.Random(20261203)
    shared = 0
    for _ in range(400):
        spec, zone = rng.choice(CRONTABS), rng.choice(BEAT_ZONES)
        year = 1968 if zone == "Africa/Monrovia" and rng.random() < 0.5 else 2026
        start = datetime(year, 1, 1, tzinfo=timezone.utc) + timedelta(
            seconds=rng.randrange(2 * 365 * 86400)
        )
        if rng.random() < 0.5:  # where last runs are: at the schedule's runs
            runs = next_fire_times(spec, start, 1, zone)
            start = runs[0] if runs else start
        minute = start.astimezone(timezone.utc).replace(second=0, microsecond=0)
        own = rng.choice([timezone.utc, timezone(timedelta(hours=2)), PARIS, ZoneInfo(zone)])
        members = [
            (minute + timedelta(microseconds=offset)).astimezone(own)
            for offset in (0, 1, rng.randrange(1, 60_000_000), 59_999_999)
        ]
        rng.shuffle(members)
        fire_times.clear_fire_times_cache()
        together = [_answer(spec, member, zone) for member in members]
        shared += len(members) - len(fire_times._ANSWERS)
        alone = []
        for member in members:
            fire_times.clear_fire_times_cache()
            alone.append(_answer(spec, member, zone))
        assert together == alone, (spec, zone, members)
    assert shared > 300  # the answers really were shared
