"""What the plan promises is what a real beat does: first runs and beat's pick-up latency.

A real ``celery beat -S redbeat.RedBeatScheduler`` and worker run on the session Redis.
For each kind of change the plan's preview (``next_runs``, and ``expected_first_run`` once
beat's sleep is counted) is compared with the runs the worker records. With a long loop
interval the predicted pick-up is the moment beat wakes, well after the scheduled time; with
a short one there is no warning and the first run is the scheduled one.

Each comparison is printed (``pytest -s``) as ``predicted ... observed ...``.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from celery.schedules import schedule
from redbeat import RedBeatSchedulerEntry

from reconciler.cli.main import main
from tests.support.celery_app import ENV_LOCK_TIMEOUT, RECORD_TASK, close_app, make_app
from tests.support.celery_processes import recorded_runs, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import redis

    from tests.support.celery_processes import BeatProcess, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

UTC = timezone.utc
PREFIX = "redbeat:"
SCHEDULE_KEY = PREFIX + ":schedule"
LOCK_KEY = PREFIX + ":lock"
# The worker records a run a few tens of milliseconds after beat sends it, and beat ticks
# a moment after it wakes: "within a couple of seconds" is the promise.
TOLERANCE = 2.0
LONG_LOOP = 10.0  # beat's --max-interval in the long-sleep test; its lock lives 5 x that


def every(interval: str, label: str) -> dict[str, Any]:
    return {"task": RECORD_TASK, "every": interval, "kwargs": {"label": label}}


class Reconciler:
    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder = url, folder

    def write(self, entries: dict[str, dict[str, Any]]) -> None:
        lines = ["version: 1", "schedules:"]
        lines += [f"  {name}: {json.dumps(spec)}" for name, spec in entries.items()]
        (self.folder / "schedules.yaml").write_text("\n".join(lines) + "\n")

    def run(self, command: str, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        argv = [command, str(self.folder), "--redis-url", self.url, "--timezone", "UTC"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, *args])
        return code, out.getvalue(), err.getvalue()

    def plan(self, *args: str) -> dict[str, Any]:
        code, out, err = self.run("plan", "--format", "json", *args)
        assert code == 0, out + err
        document: dict[str, Any] = json.loads(out)
        return document

    def apply(self, *args: str) -> str:
        code, out, err = self.run("apply", *args)
        assert code == 0, out + err
        return out


@pytest.fixture
def reconciler(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Reconciler:
    monkeypatch.setenv("RECONCILER_REVISION", "e2e")
    for variable in ("REDBEAT_LOCK_KEY", "RECONCILER_BEAT_MAX_LOOP_INTERVAL", "CI"):
        monkeypatch.delenv(variable, raising=False)
    folder = tmp_path / "schedules"
    folder.mkdir()
    return Reconciler(redis_url, folder)


def first_run_of(
    client: redis.Redis, label: str, after: float, processes: list[Any], timeout: float
) -> float:
    def found() -> float | None:
        runs = [run["at"] for run in recorded_runs(client, label=label) if run["at"] >= after]
        return min(runs) if runs else None

    def logs() -> str:
        return "".join(f"\n--- {p.kind} ---\n{p.log_text()}" for p in processes)

    moment = wait_for(found, timeout=timeout, interval=0.05, message=logs)
    assert moment is not None
    return moment


def wait_for_a_tick(client: redis.Redis, lock_timeout: float) -> None:
    """Return just after beat re-set its lock: it has just ticked and gone to sleep."""
    wait_for(lambda: client.pttl(LOCK_KEY) > 0, timeout=30)
    start = client.pttl(LOCK_KEY)
    wait_for(lambda: client.pttl(LOCK_KEY) > start, timeout=LONG_LOOP + 10, interval=0.02)
    assert client.pttl(LOCK_KEY) > (lock_timeout - 1) * 1000


def at(text: str | None) -> float:
    assert text is not None
    return datetime.fromisoformat(text).timestamp()


def report(what: str, predicted: float, observed: float) -> None:
    def clock(moment: float) -> str:
        return datetime.fromtimestamp(moment, UTC).strftime("%H:%M:%S.%f")[:-3]

    print(
        f"\n{what}: predicted {clock(predicted)} observed {clock(observed)} "
        f"(error {observed - predicted:+.2f} s)"
    )


def test_a_long_loop_interval_delays_the_first_run_to_the_predicted_wake_up(
    beat_factory: Callable[..., BeatProcess],
    worker_factory: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    reconciler: Reconciler,
) -> None:
    worker = worker_factory(wait=False)
    beat = beat_factory(
        wait=False,
        extra_args=["--max-interval", f"{LONG_LOOP:g}"],
        env={ENV_LOCK_TIMEOUT: f"{5 * LONG_LOOP:g}"},
    )
    worker.wait_ready()
    beat.wait_ready()
    wait_for_a_tick(redis_client, 5 * LONG_LOOP)
    reconciler.write({"poll": every("2s", "poll")})

    document = reconciler.plan("--beat-max-loop-interval", f"{LONG_LOOP:g}")
    applied_at = time.time()
    out = reconciler.apply("--beat-max-loop-interval", f"{LONG_LOOP:g}")

    (change,) = document["changes"]
    predicted = at(change["expected_first_run"])
    scheduled = at(change["next_runs"][0])
    assert document["beat"]["state"] == "asleep"
    assert predicted - scheduled > LONG_LOOP / 2  # a real delay is predicted, not the schedule
    assert "warning: beat sleeps until about" in out
    observed = first_run_of(redis_client, "poll", applied_at, [beat, worker], LONG_LOOP + 10)
    report("long loop, create every 2s", predicted, observed)
    assert abs(observed - predicted) < TOLERANCE
    assert observed - scheduled > LONG_LOOP / 2


def test_a_short_loop_interval_runs_at_the_scheduled_time_with_no_warning(
    beat_factory: Callable[..., BeatProcess],
    worker_factory: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    reconciler: Reconciler,
) -> None:
    worker, beat = worker_factory(wait=False), beat_factory(wait=False)
    worker.wait_ready()
    beat.wait_ready()
    reconciler.write({"poll": every("4s", "poll")})

    # The test bed's beat ticks at least every second (--max-interval 1, lock timeout 5).
    document = reconciler.plan("--beat-max-loop-interval", "1")
    applied_at = time.time()
    out = reconciler.apply("--beat-max-loop-interval", "1")

    (change,) = document["changes"]
    assert change["expected_first_run"] is not None
    assert at(change["expected_first_run"]) == at(change["next_runs"][0])
    assert "beat sleeps" not in out
    observed = first_run_of(redis_client, "poll", applied_at, [beat, worker], 10)
    report("short loop, create every 4s", at(change["next_runs"][0]), observed)
    assert abs(observed - at(change["next_runs"][0])) < TOLERANCE


def test_previews_of_update_repair_and_adopt_are_the_runs_beat_makes(
    beat_factory: Callable[..., BeatProcess],
    worker_factory: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    redis_url: str,
    reconciler: Reconciler,
) -> None:
    """Each preview counts from what Redis holds (the stored last run), as beat does."""
    worker, beat = worker_factory(wait=False), beat_factory(wait=False)
    worker.wait_ready()
    beat.wait_ready()
    processes = [beat, worker]
    reconciler.write({"upd": every("8s", "upd"), "rep": every("8s", "rep")})
    reconciler.apply()
    # Let each run once, so the previews below count from a real last run.
    first_run_of(redis_client, "upd", 0, processes, 15)
    first_run_of(redis_client, "rep", 0, processes, 15)

    # update: edit the kwargs just after a run; the next run is last run + 8 s, not now + 8 s.
    reconciler.write(
        {
            "upd": {**every("8s", "upd"), "kwargs": {"label": "upd", "v": 2}},
            "rep": every("8s", "rep"),
        }
    )
    # repair: a score pushed into the far future (runs would be missed).
    redis_client.zadd(SCHEDULE_KEY, {PREFIX + "rep": 4_000_000_000})
    # adopt: an entry the application created with RedBeat's own API, already run once.
    app = make_app(redis_url)
    try:
        RedBeatSchedulerEntry(
            "app-made",
            RECORD_TASK,
            schedule(timedelta(seconds=8)),
            kwargs={"label": "app-made"},
            last_run_at=datetime.now(UTC) - timedelta(seconds=3),
            app=app,
        ).save()
    finally:
        close_app(app)
    files = {
        "upd": {**every("8s", "upd"), "kwargs": {"label": "upd", "v": 2}},
        "rep": every("8s", "rep"),
        "app-made": every("8s", "app-made"),
    }
    reconciler.write(files)

    # Runs from the moment of the plan on: a run beat makes between plan and apply is one
    # the plan predicted too (it counts from the same stored last run).
    planned_at = time.time()
    document = reconciler.plan("--adopt", "--beat-max-loop-interval", "1")
    reconciler.apply("--adopt", "--beat-max-loop-interval", "1")

    changes = {change["name"]: change for change in document["changes"]}
    assert {name: change["action"] for name, change in changes.items()} == {
        "upd": "update",
        "rep": "repair",
        "app-made": "adopt",
    }
    for name, change in changes.items():
        predicted = at(change["expected_first_run"])
        assert predicted == at(change["next_runs"][0])
        observed = first_run_of(redis_client, name, planned_at, processes, 15)
        report(f"{change['action']} {name}", predicted, observed)
        assert abs(observed - predicted) < TOLERANCE, (name, change)
