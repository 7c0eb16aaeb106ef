"""Beat's sleep, dated by its lock: the estimate plan and apply show (pure, no Redis).

RedBeat re-sets its lock's TTL to the lock timeout at every tick and then sleeps for
min(time until the earliest entry it loaded is due, max_interval); these tests pin the
arithmetic that turns a PTTL and the earliest score into a wake-up, and the first runs that
follow from it. The real beat is in tests/e2e/test_beat_pickup.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from reconciler.core.beat_clock import BeatState, BeatTiming, BeatWake, estimate_wake
from reconciler.core.live import LiveState
from reconciler.core.model import CronSchedule, DesiredEntry, IntervalSchedule
from reconciler.core.plan import Action, Clock
from tests.support.core import compute_plan

UTC = timezone.utc
NOW = datetime(2026, 12, 2, 2, 1, 7, tzinfo=UTC)
DEFAULTS = BeatTiming()
APP_TIMING = BeatTiming(10.0, None, "the Celery app 'proj'", assumed=False)
LOCK = "redbeat::lock"


def ttl_after(timing: BeatTiming, seconds_since_tick: float) -> int:
    """The lock's PTTL ``seconds_since_tick`` after a tick re-set it."""
    return int((timing.lock_timeout - seconds_since_tick) * 1000)


def wake(
    timing: BeatTiming = DEFAULTS,
    since_tick: float = 13.0,
    next_in: float | None = None,
    ttl_ms: int | None = None,
    lock_key: str | None = LOCK,
) -> BeatWake:
    next_score = None if next_in is None else (NOW + timedelta(seconds=next_in)).timestamp()
    return estimate_wake(
        timing,
        NOW,
        lock_key=lock_key,
        lock_ttl_ms=ttl_after(timing, since_tick) if ttl_ms is None else ttl_ms,
        next_score=next_score,
    )


def test_defaults_lock_timeout_is_five_loop_intervals() -> None:
    assert DEFAULTS.lock_timeout == 1500.0
    assert BeatTiming(10.0).lock_timeout == 50.0
    assert BeatTiming(10.0, 45.0).lock_timeout == 45.0


def test_a_sleeping_beat_wakes_one_loop_interval_after_its_last_tick() -> None:
    found = wake(since_tick=13.0)

    assert found.state is BeatState.ASLEEP
    assert found.last_tick == NOW - timedelta(seconds=13)
    assert found.wakes_at == NOW + timedelta(seconds=287)


def test_an_earlier_score_shortens_the_sleep() -> None:
    found = wake(since_tick=13.0, next_in=40.0)

    assert found.state is BeatState.ASLEEP
    assert found.wakes_at == NOW + timedelta(seconds=40)


def test_a_score_after_the_loop_interval_does_not_lengthen_it() -> None:
    assert wake(since_tick=13.0, next_in=900.0).wakes_at == NOW + timedelta(seconds=287)


def test_a_beat_whose_sleep_ends_now_is_awake() -> None:
    found = wake(APP_TIMING, since_tick=9.0)

    assert found.state is BeatState.AWAKE
    assert found.wakes_at == NOW


@pytest.mark.parametrize(
    ("lock_key", "ttl_ms", "state"),
    [
        pytest.param(LOCK, -2, BeatState.NO_LOCK, id="no-lock-key-in-redis"),
        pytest.param(LOCK, -1, BeatState.UNKNOWN, id="lock-without-ttl"),
        pytest.param(None, -2, BeatState.UNKNOWN, id="beat-takes-no-lock"),
    ],
)
def test_no_estimate_without_a_lock_to_date_it(
    lock_key: str | None, ttl_ms: int, state: BeatState
) -> None:
    found = wake(ttl_ms=ttl_ms, lock_key=lock_key)

    assert found.state is state
    assert found.wakes_at is None
    assert found.first_run(NOW + timedelta(seconds=5)) is None
    assert found.describe().startswith("no estimate of when beat picks up changes")


def test_a_lock_not_reset_for_longer_than_the_loop_interval_is_a_stalled_beat() -> None:
    # Beat was killed 40 s into a 10 s loop: its lock lives on for its timeout.
    found = wake(APP_TIMING, since_tick=45.0)

    assert found.state is BeatState.STALLED
    assert "beat may be stopped or stuck" in found.describe()


def test_assumed_defaults_that_the_lock_contradicts_ask_for_the_settings() -> None:
    # A beat ticking every 10 s with lock timeout 50 s, read with the defaults (1500 s).
    found = wake(ttl_ms=42_000)

    assert found.state is BeatState.MISMATCH
    assert "pass --app or --beat-max-loop-interval" in found.describe()


def test_a_ttl_longer_than_the_lock_timeout_cannot_come_from_these_settings() -> None:
    assert wake(APP_TIMING, ttl_ms=900_000).state is BeatState.MISMATCH


def test_first_run_is_the_later_of_schedule_and_wake_up() -> None:
    asleep = wake(since_tick=13.0)
    assert asleep.wakes_at is not None
    early, late = NOW + timedelta(seconds=5), NOW + timedelta(seconds=600)

    assert asleep.first_run(early) == asleep.wakes_at
    assert asleep.first_run(late) == late
    assert wake(APP_TIMING, since_tick=9.0).first_run(early) == early


def test_the_description_names_the_settings_it_rests_on() -> None:
    text = wake(since_tick=13.0).describe()

    assert "2026-12-02T02:00:54+00:00" in text  # the last tick
    assert "2026-12-02T02:05:54+00:00" in text  # beat wakes
    assert "beat_max_loop_interval 300 s, lock timeout 1500 s" in text
    assert "Celery's and RedBeat's defaults" in text


# --- the plan: expected first runs and the warning that says what to change -------------


def plan_for(entry: DesiredEntry, beat: BeatWake | None) -> tuple[Action, ...]:
    return tuple(c.action for c in compute_plan([entry], LiveState(), now=NOW, beat=beat).changes)


EVERY_MINUTE = DesiredEntry("tick", "app.tasks.tick", CronSchedule())
EVERY_10S = DesiredEntry("poll", "app.tasks.poll", IntervalSchedule(10.0))
HOURLY = DesiredEntry("hourly", "app.tasks.h", CronSchedule(minute="0"))


def test_a_create_due_before_beat_wakes_starts_when_it_wakes() -> None:
    # The observed case: applied at 02:01:07, beat asleep until 02:05:54.
    beat = wake(since_tick=13.0)
    change = compute_plan([EVERY_MINUTE], LiveState(), now=NOW, beat=beat).changes[0]

    assert change.clock is Clock.FRESH
    assert change.next_runs[0] == datetime(2026, 12, 2, 2, 2, tzinfo=UTC)
    assert change.expected_first_run == beat.wakes_at
    (warning,) = change.warnings
    assert warning.startswith(
        "beat sleeps until about 2026-12-02T02:05:54+00:00, so the first run comes then, "
        "not at 2026-12-02T02:02:00+00:00; the missed cron slot runs once then, as catch-up"
    )
    assert "beat_max_loop_interval (now 300 s, Celery's and RedBeat's defaults)" in warning


def test_an_interval_entry_gets_no_catch_up_wording() -> None:
    change = compute_plan([EVERY_10S], LiveState(), now=NOW, beat=wake(since_tick=13.0))
    (warning,) = change.changes[0].warnings

    assert "catch-up" not in warning


def test_no_warning_when_beat_is_awake_before_the_first_run() -> None:
    beat = wake(since_tick=13.0)
    change = compute_plan([HOURLY], LiveState(), now=NOW, beat=beat).changes[0]

    assert change.expected_first_run == change.next_runs[0]
    assert change.warnings == ()


def test_no_estimate_leaves_expected_first_run_unknown() -> None:
    beat = wake(ttl_ms=-2)
    change = compute_plan([EVERY_MINUTE], LiveState(), now=NOW, beat=beat).changes[0]

    assert change.expected_first_run is None
    assert change.warnings == ()
    assert plan_for(EVERY_MINUTE, None) == (Action.CREATE,)


def test_a_score_no_clock_reaches_is_ignored_not_a_crash() -> None:
    for score in (1.7e12, float("inf")):  # another writer's milliseconds; infinity
        found = estimate_wake(
            DEFAULTS, NOW, lock_key=LOCK, lock_ttl_ms=ttl_after(DEFAULTS, 13), next_score=score
        )
        assert found.wakes_at == NOW + timedelta(seconds=287)


def test_an_entry_due_at_the_tick_wakes_beat_within_five_seconds() -> None:
    # RedBeat re-checks a disabled entry left due every 5 s: beat never sleeps longer.
    found = estimate_wake(
        DEFAULTS,
        NOW,
        lock_key=LOCK,
        lock_ttl_ms=ttl_after(DEFAULTS, 2),
        next_score=None,
        due_at_tick=True,
    )
    assert found.wakes_at == NOW + timedelta(seconds=3)


def test_the_warning_says_when_the_run_after_the_late_one_comes() -> None:
    change = compute_plan([EVERY_MINUTE], LiveState(), now=NOW, beat=wake(since_tick=13.0))
    (warning,) = change.changes[0].warnings
    # Beat runs it once at 02:05:54, and counts on from that run: the 02:06 slot follows.
    assert ", and next at 2026-12-02T02:06:00+00:00." in warning


def test_a_run_now_entry_has_no_missed_slot_to_catch_up() -> None:
    run_now = DesiredEntry("tick", "app.tasks.tick", CronSchedule(), run_on_create=True)
    change = compute_plan([run_now], LiveState(), now=NOW, beat=wake(since_tick=13.0))
    late = [w for w in change.changes[0].warnings if w.startswith("beat sleeps")]
    assert late
    assert "catch-up" not in late[0]
