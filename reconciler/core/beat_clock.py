"""When beat will next look at the schedule: its sleep, dated by its lock (pure).

Beat sleeps between ticks for ``min(time until the earliest entry it loaded is due,
max_interval)`` (Celery's ``beat_max_loop_interval``, default 300 s), loading at each tick
the due entries and the next one within ``max_interval``. An entry an apply scores earlier
is not seen until beat wakes: its first run is late, and a missed cron slot runs once.
Every tick re-sets beat's lock TTL to ``redbeat_lock_timeout`` (default 5 x
``max_interval``; RedBeat's extend sets, not adds), so the lock's remaining TTL dates the
last tick, and the earliest score after that tick bounds how long beat chose to sleep.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

DEFAULT_MAX_LOOP_INTERVAL = 300.0  # celery.beat.DEFAULT_MAX_INTERVAL
LOCK_TIMEOUT_FACTOR = 5  # RedBeatScheduler: lock_timeout = max_interval * 5 unless set
# A tick takes a moment between re-setting the lock and computing its sleep, and beat's
# clock and ours differ a little: a wake-up this close to now counts as "awake now".
TICK_SLACK = timedelta(seconds=2)


@dataclass(frozen=True)
class BeatTiming:
    """Beat's loop settings, and where they were read."""

    max_loop_interval: float = DEFAULT_MAX_LOOP_INTERVAL
    lock_timeout_setting: float | None = None  # redbeat_lock_timeout; None: 5 x the interval
    source: str = "Celery's and RedBeat's defaults"
    assumed: bool = True  # not read from the app or given as an option

    @property
    def lock_timeout(self) -> float:
        return self.lock_timeout_setting or self.max_loop_interval * LOCK_TIMEOUT_FACTOR

    def describe(self) -> str:
        return (
            f"beat_max_loop_interval {self.max_loop_interval:g} s, lock timeout "
            f"{self.lock_timeout:g} s ({self.source})"
        )


@dataclass(frozen=True)
class BeatSettings:
    """What plan and apply need to date beat's sleep: its loop settings and its lock."""

    timing: BeatTiming = BeatTiming()
    lock: bool = True  # False: beat runs without RedBeat's lock
    lock_key: str | None = None  # redbeat_lock_key as configured; None: <prefix>:lock


class BeatState(str, Enum):
    ASLEEP = "asleep"  # wakes at a known moment
    AWAKE = "awake"  # its sleep ends about now: it picks up changes at once
    NO_LOCK = "no-lock"  # the lock key is absent: no beat runs, or it takes no lock
    UNKNOWN = "unknown"  # no lock to date it by (beat runs without one), or no TTL on it
    STALLED = "stalled"  # it should have ticked again by now and has not re-set its lock
    MISMATCH = "mismatch"  # the lock's TTL cannot come from these settings


@dataclass(frozen=True)
class BeatWake:
    """What Redis says about beat's sleep at ``observed_at``."""

    state: BeatState
    timing: BeatTiming
    observed_at: datetime
    lock_key: str | None = None
    last_tick: datetime | None = None
    wakes_at: datetime | None = None  # for ASLEEP (and AWAKE: about now)

    def first_run(self, scheduled: datetime | None) -> datetime | None:
        """When beat is expected to run an entry whose score says ``scheduled``.

        Beat looks ``max_interval`` ahead at every tick, so once awake it never misses a due
        time; only a time before its wake-up waits for it. None where no estimate exists.
        """
        if scheduled is None:
            return None
        if self.state is BeatState.AWAKE:
            return max(scheduled, self.observed_at)
        if self.state is BeatState.ASLEEP and self.wakes_at is not None:
            return max(scheduled, self.wakes_at)
        return None

    def describe(self) -> str:
        """One line for people, saying what the estimate rests on."""
        settings = self.timing.describe()
        if self.state is BeatState.ASLEEP and self.wakes_at and self.last_tick:
            return (
                f"beat last ticked at about {_clock(self.last_tick)} and sleeps until about "
                f"{_clock(self.wakes_at)} (from its lock's TTL; {settings}); changes due "
                "before then start when it wakes"
            )
        if self.state is BeatState.AWAKE:
            return (
                f"beat is due to tick now (from its lock's TTL; {settings}); changes are "
                "picked up at once"
            )
        if self.state is BeatState.NO_LOCK:
            why = (
                f"its lock {self.lock_key} is absent (beat is not running, or runs with another "
                "redbeat_lock_key: pass --beat-lock-key or --app)"
            )
        elif self.state is BeatState.STALLED and self.last_tick:
            why = (
                f"it last ticked at about {_clock(self.last_tick)} and should have ticked again "
                f"by now ({settings}); beat may be stopped or stuck"
            )
        elif self.state is BeatState.MISMATCH:
            why = (
                f"its lock's TTL does not fit {settings}; beat runs with other settings (pass "
                "--app or --beat-max-loop-interval) or has stopped"
            )
        elif self.lock_key is None:
            why = "beat takes no lock to date it by"
        else:
            why = f"its lock {self.lock_key} has no TTL"
        return f"no estimate of when beat picks up changes: {why}"


def estimate_wake(
    timing: BeatTiming,
    now: datetime,
    *,
    lock_key: str | None,
    lock_ttl_ms: int,
    next_score: float | None,
    due_at_tick: bool = False,
) -> BeatWake:
    """Beat's wake-up, from the PTTL of its lock (-2: no key, -1: no TTL) and the earliest
    schedule score after its last tick (``next_score``, UTC epoch seconds; scores of the
    last couple of seconds are left out by the store, see score_windows).

    ``due_at_tick``: an entry was due at the tick and is still scored so (a disabled entry
    left due, which RedBeat re-checks every 5 s), so beat wakes within 5 s of it."""
    if lock_key is None:
        return BeatWake(BeatState.UNKNOWN, timing, now)
    if lock_ttl_ms == -2:
        return BeatWake(BeatState.NO_LOCK, timing, now, lock_key)
    if lock_ttl_ms < 0:
        return BeatWake(BeatState.UNKNOWN, timing, now, lock_key)
    elapsed = timing.lock_timeout - lock_ttl_ms / 1000
    if elapsed < -TICK_SLACK.total_seconds():
        return BeatWake(BeatState.MISMATCH, timing, now, lock_key)
    last_tick = now - timedelta(seconds=max(elapsed, 0.0))
    wake = last_tick + timedelta(seconds=timing.max_loop_interval)
    if due_at_tick:
        wake = min(wake, last_tick + DISABLED_RECHECK)
    if next_score is not None:
        # A score no clock reaches (another writer's milliseconds, inf) is none beat sleeps to.
        with contextlib.suppress(ValueError, OverflowError, OSError):
            wake = min(wake, datetime.fromtimestamp(next_score, now.tzinfo))
    if wake <= now + TICK_SLACK:
        overdue = now - (last_tick + timedelta(seconds=timing.max_loop_interval))
        if overdue > _STALL_AFTER:
            # A live beat re-sets its lock at least once per interval; this lock was left
            # by a beat that stopped (SIGKILL leaves it until its TTL runs out) or hangs.
            state = BeatState.MISMATCH if timing.assumed else BeatState.STALLED
            return BeatWake(state, timing, now, lock_key, last_tick)
        return BeatWake(BeatState.AWAKE, timing, now, lock_key, last_tick, now)
    return BeatWake(BeatState.ASLEEP, timing, now, lock_key, last_tick, wake)


# RedBeat's is_due for a disabled entry: "5 second delay for re-enable".
DISABLED_RECHECK = timedelta(seconds=5)
# A tick that sends many tasks can take a while before it sleeps again.
_STALL_AFTER = timedelta(seconds=30)


def score_windows(timing: BeatTiming, now: datetime, lock_ttl_ms: int) -> tuple[float, float]:
    """For the store's two score look-ups (UTC epoch seconds): beat's last tick (a score at
    or before it that is still there was due at the tick), and the moment after which the
    earliest score bounds beat's sleep.

    A score between the tick and a moment ago cannot be one beat sleeps towards: beat
    would have woken for it and ticked again, re-setting its lock. Such a score was
    written after the tick (an apply's catch-up or run-now score) and is not counted.
    """
    elapsed = max(timing.lock_timeout - max(lock_ttl_ms, 0) / 1000, 0.0)
    tick = (now - timedelta(seconds=elapsed)).timestamp()
    return tick, max(tick, (now - TICK_SLACK).timestamp())


def _clock(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
