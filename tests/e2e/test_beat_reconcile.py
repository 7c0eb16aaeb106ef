"""End to end: ``reconciler apply`` against a real ``celery beat -S redbeat.RedBeatScheduler``
and a real worker, proving the starred requirements of the plan/apply issue.

Every test drives the reconciler's own command line (``reconciler.cli.main.main``, in process, so
that apply can be timed to the millisecond for the race test) on schedule files written into
``tmp_path``. The entries call ``tests.support.celery_app.record``, so what beat sent and what
the worker ran can be told apart: beat's log names every entry it sends; the worker appends
every run to ``test:runs``.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from celery.schedules import schedule
from redbeat import RedBeatSchedulerEntry
from redbeat.decoder import RedBeatJSONDecoder

from reconciler.cli.main import main
from tests.support.celery_app import RECORD_TASK
from tests.support.celery_processes import recorded_runs, wait_for, wait_for_runs

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import redis
    from celery import Celery

    from tests.support.celery_processes import BeatProcess, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PREFIX = "redbeat:"
SCHEDULE_KEY = PREFIX + ":schedule"
MANAGED_KEY = PREFIX + ":reconciler:managed"
LOCK_KEY = PREFIX + ":lock"
MARKER_FIELD = "reconciler"
RECHECK_REPAIRED = "Re-check after the writes repaired"
# What a beat must never log while the reconciler writes beside it.
BEAT_FAILURES = ("LockNotOwnedError", "TypeError", "Traceback", "ERROR/", "CRITICAL/")


def every(interval: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"task": RECORD_TASK, "every": interval, "kwargs": {"label": label}, **extra}


def cron(expression: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"task": RECORD_TASK, "cron": expression, "kwargs": {"label": label}, **extra}


def far_away_cron() -> tuple[str, float]:
    """A daily cron about twelve hours from now (never due during a test), and its next
    fire time as a RedBeat score (UTC: the test bed's and the reconciler's timezone)."""
    now = datetime.now(timezone.utc)
    hour = (now.hour + 12) % 24
    fire = now.replace(hour=hour, minute=7, second=0, microsecond=0)
    if fire <= now:
        fire += timedelta(days=1)
    return f"7 {hour} * * *", fire.timestamp()


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@dataclass
class Deployment:
    """A running beat and worker on the session Redis, plus a schedules folder."""

    url: str
    client: redis.Redis
    beat: BeatProcess
    worker: WorkerProcess
    folder: Path
    beat_pid: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.beat_pid = self.beat.pid

    # -- the reconciler ---------------------------------------------------------------

    def write(self, entries: dict[str, dict[str, Any]]) -> Path:
        # JSON is YAML: each entry on one line as a flow mapping.
        lines = ["version: 1", "schedules:"]
        lines += [f"  {name}: {json.dumps(spec)}" for name, spec in entries.items()]
        path = self.folder / "schedules.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def run(self, command: str, *args: str) -> Outcome:
        out, err = io.StringIO(), io.StringIO()
        argv = [command, str(self.folder), "--redis-url", self.url, "--key-prefix", PREFIX]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, "--timezone", "UTC", *args])
        return Outcome(code, out.getvalue(), err.getvalue())

    def apply(self, entries: dict[str, dict[str, Any]], *args: str) -> str:
        self.write(entries)
        outcome = self.run("apply", *args)
        assert outcome.code == 0, f"apply failed ({outcome.code}):\n{outcome.out}{outcome.err}"
        return outcome.out

    def assert_no_changes(self) -> None:
        outcome = self.run("plan", "--prune", "--detailed-exitcode")
        assert outcome.code == 0, outcome.out + outcome.err
        assert outcome.out.startswith("No changes."), outcome.out

    # -- what Redis holds ---------------------------------------------------------------

    def meta(self, name: str) -> dict[str, Any]:
        raw = self.client.hget(PREFIX + name, "meta")
        assert raw, f"{name} has no meta"
        meta: dict[str, Any] = json.loads(raw, cls=RedBeatJSONDecoder)
        return meta

    def run_count(self, name: str) -> int:
        return int(self.meta(name)["total_run_count"])

    def last_run_at(self, name: str) -> float:
        moment: datetime = self.meta(name)["last_run_at"]
        return moment.timestamp()

    def score(self, name: str) -> float | None:
        return self.client.zscore(SCHEDULE_KEY, PREFIX + name)

    def assert_gone(self, name: str) -> None:
        assert self.client.exists(PREFIX + name) == 0, self.client.hgetall(PREFIX + name)
        assert self.score(name) is None
        assert not self.client.sismember(MANAGED_KEY, name)

    # -- what beat and the worker did ---------------------------------------------------

    def runs(self, label: str) -> list[dict[str, Any]]:
        return recorded_runs(self.client, label=label)

    def wait_runs(self, label: str, count: int, timeout: float = 8.0) -> list[dict[str, Any]]:
        return wait_for_runs(
            self.client, count, label=label, timeout=timeout, processes=[self.beat, self.worker]
        )

    def sends(self, name: str) -> int:
        """How many times beat logged sending entry ``name``."""
        return self.beat.log_text().count(f"Sending due task {name} (")

    def assert_beat_healthy(self) -> None:
        """Still the same beat process, never restarted, never failing."""
        log = self.beat.log_text()
        assert self.beat.is_running(), log
        assert self.beat.pid == self.beat_pid
        assert log.count("beat: Starting...") == 1, log
        assert log.count("beat: Acquired lock") == 1, log
        for failure in BEAT_FAILURES:
            assert failure not in log, f"beat logged {failure}:\n{log}"
        worker_log = self.worker.log_text()
        assert "Traceback" not in worker_log, worker_log


@pytest.fixture
def deployment(
    beat_factory: Callable[..., BeatProcess],
    worker_factory: Callable[..., WorkerProcess],
    redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Deployment:
    # Apply records the git revision in its history; naming one spares a git subprocess
    # per apply, which keeps apply's latency small and steady for the race test.
    monkeypatch.setenv("RECONCILER_REVISION", "e2e")
    folder = tmp_path / "schedules"
    folder.mkdir()
    # Start both, then wait for both: their start-ups overlap.
    worker = worker_factory(wait=False)
    beat = beat_factory(wait=False)
    worker.wait_ready()
    beat.wait_ready()
    return Deployment(redis_url, redis_client, beat, worker, folder)


def test_created_interval_entries_fire_repeatedly(deployment: Deployment) -> None:
    started = time.time()
    out = deployment.apply(
        {
            "every-second": every("1s", "every-second", args=["a", 1]),
            "every-two-seconds": every("2s", "every-two-seconds"),
        }
    )
    assert "Apply complete: 2 created" in out

    fast = deployment.wait_runs("every-second", 3)
    slow = deployment.wait_runs("every-two-seconds", 2)
    assert all(run["args"] == ["a", 1] for run in fast)
    assert all(run["kwargs"] == {"label": "every-second"} for run in fast)
    assert all(run["hostname"] == deployment.worker.hostname for run in fast + slow)
    # Created with last_run_at = now: the first run is one interval later, not at once.
    assert fast[0]["at"] >= started + 0.9, (started, fast[0])
    assert slow[0]["at"] >= started + 1.9, (started, slow[0])
    # Each on its own interval (not on every tick).
    assert slow[1]["at"] - slow[0]["at"] >= 1.5, slow

    # What beat ran carries the ownership marker beside (never inside) the definition.
    assert deployment.client.hget(PREFIX + "every-second", MARKER_FIELD)
    definition = json.loads(deployment.client.hget(PREFIX + "every-second", "definition") or "")
    assert set(definition) == {"name", "task", "args", "kwargs", "options", "schedule", "enabled"}

    # Beat keeps the run history: the count grows with the runs.
    count = deployment.run_count("every-second")
    assert count >= 3
    wait_for(
        lambda: deployment.run_count("every-second") >= count + 2,
        timeout=5,
        message=lambda: deployment.beat.log_text(),
    )
    assert deployment.run_count("every-second") >= len(deployment.runs("every-second"))
    assert deployment.run_count("every-two-seconds") >= 2
    deployment.assert_no_changes()
    deployment.assert_beat_healthy()


def test_created_cron_entry_does_not_fire_at_once(deployment: Deployment) -> None:
    expression, next_fire = far_away_cron()
    before = time.time()
    deployment.apply({"nightly": cron(expression, "nightly"), "alive": every("1s", "alive")})
    after = time.time()

    assert deployment.score("nightly") == next_fire
    assert before - 1 <= deployment.last_run_at("nightly") <= after
    assert deployment.run_count("nightly") == 0

    # Beat is alive and ticking (several ticks: max-interval 1 s) ...
    deployment.wait_runs("alive", 3)
    # ... yet never sent the cron entry, which is hours away.
    assert deployment.sends("nightly") == 0, deployment.beat.log_text()
    assert deployment.runs("nightly") == []
    assert deployment.run_count("nightly") == 0
    assert deployment.score("nightly") == next_fire
    deployment.assert_no_changes()
    deployment.assert_beat_healthy()


def test_update_of_args_takes_effect_without_restarting_beat(deployment: Deployment) -> None:
    deployment.apply({"report": every("1s", "report", args=["v1"])})
    deployment.wait_runs("report", 3)
    count_before = deployment.run_count("report")
    assert count_before >= 3

    out = deployment.apply({"report": every("1s", "report", args=["v2"])})
    assert "~ report  (update)" in out
    assert 'args[0]: "v1" -> "v2"' in out
    assert "0 created, 1 updated" in out
    definition = json.loads(deployment.client.hget(PREFIX + "report", "definition") or "{}")
    assert definition["args"] == ["v2"]

    def new_runs() -> list[dict[str, Any]]:
        runs = [run for run in deployment.runs("report") if run["args"] == ["v2"]]
        return runs if len(runs) >= 2 else []

    wait_for(new_runs, timeout=8, message=lambda: deployment.beat.log_text())
    runs = deployment.runs("report")
    assert {tuple(run["args"]) for run in runs} == {("v1",), ("v2",)}
    # One solo worker runs tasks in the order beat sent them: once the new args appear,
    # the old ones never come back.
    first_new = next(index for index, run in enumerate(runs) if run["args"] == ["v2"])
    assert all(run["args"] == ["v2"] for run in runs[first_new:]), runs

    # The run count continued from where it was (update keeps meta), it was not reset.
    count_after = deployment.run_count("report")
    assert count_after >= count_before + 2, (count_before, count_after)
    assert count_after >= len(runs)
    deployment.assert_no_changes()
    # Same beat process throughout: it picked the change up by itself.
    deployment.assert_beat_healthy()


def test_update_of_schedule_takes_effect_at_its_next_time(deployment: Deployment) -> None:
    expression, next_fire = far_away_cron()
    deployment.apply(
        {"speeds-up": every("1h", "speeds-up"), "slows-down": every("1s", "slows-down")}
    )
    created = deployment.last_run_at("speeds-up")
    deployment.wait_runs("slows-down", 2)

    out = deployment.apply(
        {"speeds-up": every("4s", "speeds-up"), "slows-down": cron(expression, "slows-down")}
    )
    assert "0 created, 2 updated" in out
    # Scored from the stored last run and the new schedule, as beat itself would have.
    assert deployment.score("speeds-up") == int(created + 4)
    assert deployment.score("slows-down") == next_fire
    time.sleep(0.3)  # a task beat sent just before the apply may still be on its way
    sent = deployment.sends("slows-down")

    # The new interval counts from the last run (the creation), not from the apply: no
    # lost run, no early one, and no restart of beat.
    (first,) = deployment.wait_runs("speeds-up", 1, timeout=8)
    assert created + 3.9 <= first["at"] <= created + 5, (created, first)
    # Beat then scored the next run itself, on the new interval.
    wait_for(lambda: deployment.run_count("speeds-up") == 1, timeout=2)
    assert deployment.score("speeds-up") == int(deployment.last_run_at("speeds-up") + 4)
    assert deployment.sends("slows-down") == sent, deployment.beat.log_text()
    assert deployment.score("slows-down") == next_fire
    deployment.assert_no_changes()
    deployment.assert_beat_healthy()


def test_a_secret_reaches_the_task_and_its_rotation_takes_effect(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = "e2e-FIRST-secret-41", "e2e-SECOND-secret-42"
    entry = {"token-user": every("1s", "token-user", args=["${env:E2E_TOKEN}"])}
    monkeypatch.setenv("E2E_TOKEN", first)
    created = deployment.apply(entry)
    deployment.wait_runs("token-user", 2)
    assert all(run["args"] == [first] for run in deployment.runs("token-user"))

    monkeypatch.setenv("E2E_TOKEN", second)
    rotated = deployment.apply(entry)

    assert '"(sensitive value) ${env:E2E_TOKEN} (changed)"' in rotated

    def new_runs() -> list[dict[str, Any]]:
        runs = [run for run in deployment.runs("token-user") if run["args"] == [second]]
        return runs if len(runs) >= 2 else []

    wait_for(new_runs, timeout=8, message=lambda: deployment.beat.log_text())
    for text in (created, rotated, deployment.beat.log_text()):
        assert first not in text, text
        assert second not in text, text
    deployment.assert_no_changes()
    deployment.assert_beat_healthy()


def test_pruned_entry_stops_firing(deployment: Deployment) -> None:
    expression, _ = far_away_cron()
    deployment.apply(
        {
            "doomed": every("1s", "doomed"),
            # Beat drops a due member whose hash is gone by itself, with a warning; a member
            # due hours from now would stay: the delete must remove it.
            "doomed-nightly": cron(expression, "doomed-nightly"),
            "keeper": every("1s", "keeper"),
        }
    )
    deployment.wait_runs("doomed", 2)

    out = deployment.apply({"keeper": every("1s", "keeper")}, "--prune", "--settle", "2")
    assert "- doomed  (delete)" in out
    assert "- doomed-nightly  (delete)" in out
    assert "0 created, 0 updated, 0 adopted, 2 deleted" in out
    deployment.assert_gone("doomed")
    deployment.assert_gone("doomed-nightly")

    # Whatever beat sent before the delete has run by now (the settle waited 2 s).
    sent, ran = deployment.sends("doomed"), len(deployment.runs("doomed"))
    keeper = len(deployment.runs("keeper"))
    deployment.wait_runs("keeper", keeper + 3)
    assert deployment.sends("doomed") == sent, deployment.beat.log_text()
    assert len(deployment.runs("doomed")) == ran
    # No meta-only orphan came back after the settle either.
    deployment.assert_gone("doomed")
    deployment.assert_no_changes()
    deployment.assert_beat_healthy()


def test_disable_stops_runs_and_enable_does_not_fire_at_once(deployment: Deployment) -> None:
    expression, next_fire = far_away_cron()
    entries = {
        "pulse": every("2s", "pulse"),
        "nightly": cron(expression, "nightly"),
        "alive": every("1s", "alive"),
    }
    deployment.apply(entries)
    deployment.wait_runs("pulse", 1)

    disabled = {**entries}
    disabled["pulse"] = every("2s", "pulse", enabled=False)
    disabled["nightly"] = cron(expression, "nightly", enabled=False)
    out = deployment.apply(disabled)
    assert "~ pulse  (disable)" in out
    assert "~ nightly  (disable)" in out
    # Parked: beat never even loads them.
    assert deployment.score("pulse") == -1
    assert deployment.score("nightly") == -1

    time.sleep(0.3)  # a task beat sent just before the apply may still be on its way
    sent, ran = deployment.sends("pulse"), len(deployment.runs("pulse"))
    count = deployment.run_count("pulse")
    alive = len(deployment.runs("alive"))
    deployment.wait_runs("alive", alive + 3)  # more than one pulse interval of beat ticks
    assert deployment.sends("pulse") == sent, deployment.beat.log_text()
    assert len(deployment.runs("pulse")) == ran
    assert deployment.score("pulse") == -1
    assert deployment.run_count("pulse") == count

    before = time.time()
    out = deployment.apply(entries)
    after = time.time()
    assert "~ pulse  (enable)" in out
    assert "~ nightly  (enable)" in out
    # The clock restarts at the apply: next run one interval later; the count is kept.
    assert before - 1 <= deployment.last_run_at("pulse") <= after
    assert deployment.run_count("pulse") == count
    assert deployment.score("nightly") == next_fire

    first = deployment.wait_runs("pulse", ran + 1)[ran]
    assert first["at"] >= before + 1.9, (before, first)
    assert first["at"] <= after + 4, (after, first)
    # Over those ~2 s of ticks the re-enabled cron entry was never sent.
    assert deployment.sends("nightly") == 0, deployment.beat.log_text()
    assert deployment.runs("nightly") == []
    wait_for(lambda: deployment.run_count("pulse") >= count + 1, timeout=3)
    deployment.assert_no_changes()
    deployment.assert_beat_healthy()


def test_beat_lock_is_never_touched(deployment: Deployment) -> None:
    client = deployment.client
    token = client.get(LOCK_KEY)
    assert token

    def after_a_tick() -> None:
        # Beat ticked (sent 'alive') after the apply and still holds the same lock.
        sent = deployment.sends("alive")
        wait_for(lambda: deployment.sends("alive") > sent, timeout=5)
        assert client.get(LOCK_KEY) == token
        assert 0 < client.pttl(LOCK_KEY) <= 5000

    expression, _ = far_away_cron()
    entries = {"alive": every("1s", "alive"), "nightly": cron(expression, "nightly")}
    steps: list[tuple[dict[str, dict[str, Any]], tuple[str, ...]]] = [
        (entries, ()),  # create
        ({**entries, "alive": every("1s", "alive", args=[2])}, ()),  # update
        ({**entries, "nightly": cron(expression, "nightly", enabled=False)}, ()),  # disable
        ({**entries, "extra": every("1h", "extra")}, ()),  # enable + create
        (entries, ("--prune", "--settle", "1")),  # delete
        (entries, ()),  # nothing to change
    ]
    for schedules, args in steps:
        assert deployment.apply(schedules, *args)
        after_a_tick()
    assert deployment.run("plan", "--prune").code == 0
    after_a_tick()
    deployment.assert_beat_healthy()

    # Beat still owned its lock at the end: it released it itself on shutdown.
    deployment.beat.stop()
    assert client.exists(LOCK_KEY) == 0
    log = deployment.beat.log_text()
    assert "beat: Releasing lock" in log
    for failure in BEAT_FAILURES:
        assert failure not in log, log


def test_application_entry_is_untouched_and_keeps_firing(
    deployment: Deployment, testbed_app: Celery
) -> None:
    RedBeatSchedulerEntry(
        "app-owned",
        RECORD_TASK,
        schedule(run_every=1),
        args=["app"],
        kwargs={"label": "app-owned"},
        app=testbed_app,
    ).save()
    key = PREFIX + "app-owned"
    definition = deployment.client.hget(key, "definition")
    deployment.wait_runs("app-owned", 1)

    def untouched_and_firing() -> None:
        ran = len(deployment.runs("app-owned"))
        deployment.wait_runs("app-owned", ran + 1)
        assert deployment.client.hget(key, "definition") == definition
        assert set(deployment.client.hkeys(key)) == {"definition", "meta"}
        assert not deployment.client.sismember(MANAGED_KEY, "app-owned")
        assert (deployment.score("app-owned") or 0) > time.time() - 2
        assert deployment.run_count("app-owned") >= len(deployment.runs("app-owned"))

    steps: list[tuple[dict[str, dict[str, Any]], tuple[str, ...]]] = [
        ({"ours": every("1s", "ours"), "temp": every("1s", "temp")}, ()),
        ({"ours": every("1s", "ours", args=["new"]), "temp": every("1s", "temp")}, ()),
        ({"ours": every("1s", "ours", args=["new"])}, ("--prune", "--settle", "1")),
    ]
    for schedules, args in steps:
        out = deployment.apply(schedules, *args)
        assert "app-owned" not in out
        untouched_and_firing()

    # Declaring the application's name is a conflict: refused, and nothing is written.
    deployment.write({"app-owned": every("1s", "app-owned")})
    outcome = deployment.run("apply", "--prune")
    assert outcome.code == 1
    assert "conflict" in outcome.err
    assert deployment.client.hget(PREFIX + "ours", "definition")
    untouched_and_firing()
    deployment.assert_beat_healthy()


class RacingBeat:
    """A beat whose every tick is long enough for an apply to land inside it.

    Beat reads each due entry, then (after sending it) writes its meta and score from what
    it read. An apply that commits in between loses to that write: a just-disabled entry
    gets an active score back; a just-deleted entry comes back as a hash holding only meta.
    The window is normally about a millisecond. Two hundred application entries ("fillers")
    due in the same tick, sorted before the targets, stretch it to the time beat takes to
    send them all (about 0.2 s); each apply starts the moment beat's first write of a tick
    is seen, so it commits after the targets were read and before they are written.
    """

    FILLERS = 200

    def __init__(self, deployment: Deployment, app: Celery, targets: list[str]) -> None:
        self.deployment = deployment
        self.entries = {name: every("1s", name) for name in targets}
        deployment.apply(self.entries)
        # Fillers run on a queue no worker reads. They share the targets' last run, so
        # every tick handles all of them together, the fillers first (same score, and
        # "filler-" sorts before "race-").
        started: datetime = deployment.meta(targets[0])["last_run_at"]
        for index in range(self.FILLERS):
            RedBeatSchedulerEntry(
                f"filler-{index:03d}",
                RECORD_TASK,
                schedule(run_every=1),
                kwargs={"label": "filler"},
                options={"queue": "e2e-fillers"},
                last_run_at=started,
                app=app,
            ).save()
        deployment.wait_runs(targets[0], 2)
        in_one_tick = deployment.last_run_at(targets[0]) - deployment.last_run_at("filler-000")
        assert 0 <= in_one_tick < 0.9, in_one_tick

    def apply_mid_tick(self, *args: str) -> str:
        client = self.deployment.client
        seen = client.hget(PREFIX + "filler-000", "meta")
        wait_for(
            lambda: client.hget(PREFIX + "filler-000", "meta") != seen, timeout=5, interval=0.001
        )
        return self.deployment.apply(self.entries, *args)


def test_settle_repairs_what_a_racing_beat_tick_wrote(
    deployment: Deployment, testbed_app: Celery
) -> None:
    to_disable = ["race-0", "race-1", "race-2"]
    to_delete = ["race-3", "race-4", "race-5"]
    race = RacingBeat(deployment, testbed_app, to_disable + to_delete)

    # Updates: disable a 1-second entry while beat is sending it, several times ...
    stale = 0
    for name in to_disable:
        race.entries[name] = every("1s", name, enabled=False)
        out = race.apply_mid_tick()
        assert f"~ {name}  (disable)" in out
        time.sleep(0.5)  # the rest of the tick
        stale += deployment.score(name) != -1 or RECHECK_REPAIRED in out
    # ... then one apply with --settle: every disabled target ends parked.
    deployment.apply(race.entries, "--settle", "2")
    for name in to_disable:
        assert deployment.score(name) == -1, name

    # Deletes: prune a 1-second entry while beat is sending it; the --settle re-check
    # removes the meta-only hash that tick re-creates.
    orphans = 0
    for name in to_delete:
        del race.entries[name]
        out = race.apply_mid_tick("--prune", "--settle", "1")
        assert f"- {name}  (delete)" in out
        orphans += RECHECK_REPAIRED in out
        deployment.assert_gone(name)

    deployment.assert_no_changes()
    for name in to_disable:
        assert deployment.score(name) == -1, name
    for name in to_delete:
        deployment.assert_gone(name)
    print(
        f"race hit: {stale}/{len(to_disable)} disables left an active score, "
        f"{orphans}/{len(to_delete)} deletes left a meta-only hash (repaired by --settle)"
    )
    # Proof the race was provoked at all: otherwise this test would prove nothing.
    assert stale >= 1, "no disable raced a beat tick"
    assert orphans >= 1, "no delete raced a beat tick"
    deployment.assert_beat_healthy()


def test_orphan_left_by_a_racing_delete_is_cleaned_by_a_later_apply(
    deployment: Deployment, testbed_app: Celery
) -> None:
    """The README: "After writing, apply re-reads the entries it touched and repairs such
    leftovers; --settle SECONDS waits and re-checks once more." Deletes applied without
    --settle, each racing a beat tick (see RacingBeat), then an apply with --settle 2, as
    a CI job would run them: afterwards no meta-only hash of a pruned entry may remain.
    """
    to_delete = ["race-0", "race-1", "race-2"]
    race = RacingBeat(deployment, testbed_app, [*to_delete, "race-kept"])
    for name in to_delete:
        del race.entries[name]
        out = race.apply_mid_tick("--prune")
        assert f"- {name}  (delete)" in out
    time.sleep(0.5)  # the rest of the tick
    deployment.apply(race.entries, "--prune", "--settle", "2")
    deployment.assert_no_changes()
    leftovers = {name: deployment.client.hgetall(PREFIX + name) for name in to_delete}
    assert not any(leftovers.values()), (
        f"pruned entries came back as meta-only hashes that no later plan or apply sees: "
        f"{leftovers}"
    )
    deployment.assert_beat_healthy()
