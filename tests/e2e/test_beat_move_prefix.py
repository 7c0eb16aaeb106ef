"""A real ``celery beat -S redbeat.RedBeatScheduler`` moved to another key prefix with
``reconciler move-prefix`` keeps each entry's run history.

An entry running every two seconds under ``redbeat:`` has run a few times; beat is stopped,
``move-prefix --from redbeat: --to {redbeat}: --apply`` runs as a real process, and a beat
started with ``redbeat_key_prefix = '{redbeat}:'`` goes on running it: its
``total_run_count`` continues from where it was (never back to 0 or 1), the worker records
exactly as many runs as the count says and never two for one interval, and a plan of the
same files under the new prefix shows no changes.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from redbeat.decoder import RedBeatJSONDecoder

from tests.integration.plan_apply_support import clean_env, run_subprocess, write_schedules
from tests.support.celery_app import RECORD_TASK
from tests.support.celery_processes import wait_for, wait_for_runs

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliResult
    from tests.support.celery_processes import BeatProcess, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

OLD, NEW = "redbeat:", "{redbeat}:"
NAME = "tick"
INTERVAL = 2.0
# Two runs for one interval would be recorded a few milliseconds apart; runs of consecutive
# intervals at least INTERVAL apart, less the worker's jitter.
SLACK = 0.5
BEAT_FAILURES = ("LockNotOwnedError", "TypeError", "Traceback", "ERROR/", "CRITICAL/")


def run_count(client: redis.Redis, prefix: str) -> int | None:
    """The entry's ``total_run_count`` under ``prefix`` (None: no entry or no meta there)."""
    raw = client.hget(prefix + NAME, "meta")
    if not raw:
        return None
    meta: dict[str, Any] = json.loads(raw, cls=RedBeatJSONDecoder)
    return int(meta["total_run_count"])


def test_beat_on_the_new_prefix_continues_the_run_count_and_runs_no_interval_twice(
    beat_factory: Callable[..., BeatProcess],
    worker_factory: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
) -> None:
    write_schedules(
        tmp_path / "schedules",
        {NAME: {"task": RECORD_TASK, "every": f"{INTERVAL:g}s", "kwargs": {"label": NAME}}},
    )
    env = clean_env(REDBEAT_REDIS_URL=redis_url, RECONCILER_REVISION="e2e")

    def reconciler(*argv: str) -> CliResult:
        return run_subprocess(*argv, cwd=tmp_path, env=env)

    worker, beat = worker_factory(wait=False), beat_factory(wait=False, key_prefix=OLD)
    worker.wait_ready()
    beat.wait_ready()
    applied = reconciler("apply", "schedules", "--timezone", "UTC")
    assert applied.code == 0, applied.out + applied.err
    wait_for(lambda: (run_count(redis_client, OLD) or 0) >= 2, timeout=10, message=beat.log_text)
    beat.stop()
    count = run_count(redis_client, OLD)
    assert count is not None
    assert count >= 2
    entry_before = redis_client.hgetall(OLD + NAME)
    score_before = redis_client.zscore(OLD + ":schedule", OLD + NAME)

    moved = reconciler("move-prefix", "--from", OLD, "--to", NEW, "--apply")
    assert moved.code == 0, moved.out + moved.err
    assert "Move complete: 1 moved, 0 finished." in moved.out
    assert redis_client.hgetall(NEW + NAME) == entry_before
    assert redis_client.zscore(NEW + ":schedule", NEW + NAME) == score_before
    assert not redis_client.exists(OLD + NAME)

    # Every count the entry shows from now on, as often as it can be read.
    seen: list[int] = []

    def counted_to(target: int) -> bool:
        now = run_count(redis_client, NEW)
        if now is not None and (not seen or seen[-1] != now):
            seen.append(now)
        return now is not None and now >= target

    moved_beat = beat_factory(wait=False, key_prefix=NEW)
    while not moved_beat.is_ready():
        assert moved_beat.is_running(), moved_beat.log_text()
        counted_to(0)
        time.sleep(0.02)
    wait_for(lambda: counted_to(count + 2), timeout=10, interval=0.02, message=moved_beat.log_text)
    planned = reconciler(
        "plan", "schedules", "--key-prefix", NEW, "--timezone", "UTC", "--detailed-exitcode"
    )
    moved_beat.stop()
    final = run_count(redis_client, NEW)
    assert final is not None

    # The count went on from the one moved, one run at a time: never reset to 0 or 1.
    assert seen[0] == count, seen
    assert seen == list(range(count, seen[-1] + 1)), seen
    # The worker ran exactly what the count says (none doubled, none lost)...
    runs = wait_for_runs(redis_client, final, label=NAME, timeout=5, processes=[worker])
    assert len(runs) == final, (final, runs)
    # ... and never two for one interval, before, across or after the move. Beat is down
    # for about a second here, less than the interval: a clock reset by the move would have
    # run it at once on start, a fraction of an interval after its last run.
    moments = [run["at"] for run in runs]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert min(gaps) >= INTERVAL - SLACK, gaps
    assert planned.code == 0, planned.out + planned.err
    assert planned.out.startswith("No changes"), planned.out
    log = moved_beat.log_text()
    assert f"Sending due task {NAME} (" in log
    for failure in BEAT_FAILURES:
        assert failure not in log, f"beat logged {failure}:\n{log}"
