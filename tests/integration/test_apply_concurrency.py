"""Concurrent applies and the apply history: the lock, its wait and timeout, no interleaving,
and the capped history stream shown by ``reconciler history``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from reconciler.api import StoreSettings, apply_plan, load_schedules, make_plan, open_store
from reconciler.core.errors import StalePlan
from reconciler.store.history import HISTORY_MAX_RECORDS
from tests.integration.plan_apply_support import (
    APPLY_LOCK_KEY,
    HISTORY_KEY,
    UTC,
    applies_recorded,
    assert_unchanged,
    bulk_entries,
    clean_env,
    cli_against,
    cron,
    definition_of,
    isolate,
    monitor,
    run_subprocess,
    snapshot,
    write_schedules,
)

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliRunner
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


def hold_apply_lock(client: redis.Redis, ttl_ms: int = 60_000) -> str:
    """Take the apply lock as another apply (another CI job, another pod) would."""
    value = json.dumps(
        {"token": "0" * 32, "holder": "ci-job-7@runner-3 pid 4242", "since": "2026-01-01T00:00:00"}
    )
    assert client.set(APPLY_LOCK_KEY, value, nx=True, px=ttl_ms)
    return value


# -- the apply lock -------------------------------------------------------------------


def test_apply_gives_up_on_a_held_lock_then_works_once_released(
    redis_url: str, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    held = hold_apply_lock(redis_client)
    before = snapshot(redis_server)

    refused = run_subprocess(
        "apply", "schedules", "--redis-url", redis_url, "--lock-timeout", "1", cwd=tmp_path
    )
    assert refused.code == 1, refused.out + refused.err
    assert refused.err_lines[-1].startswith("error: another apply holds the lock")
    assert "ci-job-7@runner-3 pid 4242" in refused.err
    assert len(refused.err_lines) == 1, refused.err
    assert "Traceback" not in refused.err
    assert refused.seconds < 5, f"took {refused.seconds:.1f} s"
    assert_unchanged(before, snapshot(redis_server))
    assert redis_client.get(APPLY_LOCK_KEY) == held

    redis_client.delete(APPLY_LOCK_KEY)
    applied = run_subprocess("apply", "schedules", "--redis-url", redis_url, cwd=tmp_path)
    assert applied.code == 0, applied.err
    assert "1 created" in applied.out
    assert redis_client.exists(APPLY_LOCK_KEY) == 0


def test_apply_waits_for_the_lock_and_takes_it_with_a_ttl(
    redis_url: str, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    hold_apply_lock(redis_client)
    with monitor(redis_server) as seen:
        started = time.monotonic()
        waiting = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", "schedules", "--redis-url", redis_url],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Release only once the apply has surely read its plan and is polling the lock.
            while time.monotonic() - started < 1.5 and waiting.poll() is None:
                time.sleep(0.05)
            assert waiting.poll() is None, "apply did not wait for the held lock"
            redis_client.delete(APPLY_LOCK_KEY)
            out, err = waiting.communicate(timeout=20)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
    assert waiting.returncode == 0, err
    assert "1 created" in out
    assert time.monotonic() - started >= 1.5
    takes = [
        command
        for command in seen.named("set")
        if len(command.args) > 1 and command.args[1] == APPLY_LOCK_KEY
    ]
    assert len(takes) >= 2, "the apply did not poll the held lock before taking it"
    for command in takes:
        options = [arg.upper() for arg in command.args[3:]]
        assert "NX" in options
        assert "PX" in options or "EX" in options  # a crashed apply frees it by itself
    assert redis_client.exists(APPLY_LOCK_KEY) == 0


class ConcurrentApplies:
    """Entries applied without args; files 'a' and 'b' set them all to [1] and [2]; each
    apply runs as its own process (a CI job), output to files so a full pipe never blocks."""

    def __init__(self, redis_url: str, client: redis.Redis, folder: Path, count: int) -> None:
        self.redis_url, self.client, self.folder = redis_url, client, folder
        self.base = bulk_entries(count)
        write_schedules(folder / "base", self.base)
        with open_store(StoreSettings(redis_url=redis_url)) as store:
            apply_plan(store, make_plan(store, load_schedules([folder / "base"])))
        for label, value in (("a", 1), ("b", 2)):
            entries = {name: {**fields, "args": [value]} for name, fields in self.base.items()}
            write_schedules(folder / label, entries)
        self.history_before = len(applies_recorded(client))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, label: str) -> None:
        with (
            (self.folder / f"{label}.out").open("wb") as out,
            (self.folder / f"{label}.err").open("wb") as err,
        ):
            self.processes[label] = subprocess.Popen(
                [sys.executable, "-m", "reconciler", "apply", label, "--redis-url", self.redis_url],
                cwd=self.folder,
                env=clean_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def printed(self, label: str) -> str:
        return (self.folder / f"{label}.out").read_text()

    def args_of(self, name: str) -> str:
        return json.dumps(definition_of(self.client, name)["args"])

    def assert_never_interleaved(self) -> None:
        outcomes = {}
        for label, process in self.processes.items():
            process.wait(timeout=60)
            err = (self.folder / f"{label}.err").read_text().strip()
            outcomes[label] = (process.returncode, err)
        values = Counter(self.args_of(name) for name in self.base)
        records = applies_recorded(self.client)[self.history_before :]
        report = f"exits {outcomes}; final args {dict(values)}; {len(records)} new history records"
        succeeded = {label for label, (code, _) in outcomes.items() if code == 0}
        assert succeeded, report
        for code, err in outcomes.values():
            assert code in (0, 1), report
            if code == 1:
                assert len(err.splitlines()) == 1, report
                assert "nothing was written" in err, report
        assert len(values) == 1, f"a mix of both applies: {report}"
        assert set(values) <= {"[1]" if label == "a" else "[2]" for label in succeeded}, report
        assert len(records) == len(succeeded), report
        for record in records:
            assert record.state == "complete", report
            assert len(record.names["update"]) == len(self.base), report
        assert self.client.exists(APPLY_LOCK_KEY) == 0


def test_two_applies_started_together_never_interleave(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    applies = ConcurrentApplies(redis_url, redis_client, tmp_path, count=1200)
    applies.start("a")
    applies.start("b")
    applies.assert_never_interleaved()


def test_apply_started_while_another_is_between_batches_never_interleaves(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """B reads its plan while A, holding the lock, is between two write batches.

    A slow network or a busy Redis stretches that moment; here CLIENT PAUSE WRITE holds
    every write (reads go on) from A's first committed batch until B has printed its plan.
    """
    applies = ConcurrentApplies(redis_url, redis_client, tmp_path, count=1200)
    first, last = min(applies.base), max(applies.base)
    applies.start("a")
    deadline = time.monotonic() + 30
    while applies.args_of(first) != "[1]":
        assert time.monotonic() < deadline
        assert applies.processes["a"].poll() is None, (tmp_path / "a.err").read_text()
        time.sleep(0.002)
    redis_client.client_pause(10_000, all=False)  # WRITE mode: reads are still served
    try:
        assert applies.args_of(last) == "[]", "A finished before the pause: no overlap"
        applies.start("b")
        while "Plan: " not in applies.printed("b"):
            assert time.monotonic() < deadline
            assert applies.processes["b"].poll() is None, (tmp_path / "b.err").read_text()
            time.sleep(0.02)
    finally:
        redis_client.client_unpause()
    applies.assert_never_interleaved()


def test_apply_planned_during_another_apply_is_all_or_nothing(
    redis_url: str, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Apply B reads its plan while apply A (holding the lock) is between two batches.

    B then waits for the lock and runs once A is done: whatever happens, B's changes must
    commit together or not at all, never leave a mix of A's and B's values.
    """
    names = [f"entry-{index}" for index in range(6)]

    def files(label: str, value: int) -> Path:
        return write_schedules(
            tmp_path / label, {name: cron("0 3 * * *", args=[value]) for name in names}
        ).parent

    settings = StoreSettings(redis_url=redis_url)
    with open_store(settings) as store_a, open_store(settings) as store_b:
        apply_plan(store_a, make_plan(store_a, load_schedules([files("base", 0)])))
        plan_a = make_plan(store_a, load_schedules([files("a", 1)]))
        loaded_b = load_schedules([files("b", 2)])
        plans_b = []

        def clock() -> datetime:
            # apply_plan asks for the time before each batch: once A is part-way, B plans.
            written = sum(definition_of(redis_client, name)["args"] == [1] for name in names)
            if not plans_b and 0 < written < len(names):
                plans_b.append(make_plan(store_b, loaded_b))
            return datetime.now(UTC)

        apply_plan(store_a, plan_a, batch_size=2, now=clock)
        assert len(plans_b) == 1, "B never planned while A was part-way"
        after_a = snapshot(redis_server)
        try:
            apply_plan(store_b, plans_b[0], batch_size=2)
            failure = None
        except StalePlan as exc:
            failure = str(exc)

    values = {name: definition_of(redis_client, name)["args"] for name in names}
    if failure is None:
        assert set(map(json.dumps, values.values())) == {"[2]"}, values
    else:
        assert "nothing was written" in failure
        assert set(map(json.dumps, values.values())) == {"[1]"}, (
            f"B failed with {failure!r} but left: {values}"
        )
        assert_unchanged(after_a, snapshot(redis_server))


# -- history --------------------------------------------------------------------------


def test_history_lists_applies_newest_first_with_counts_and_names(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    assert cli("history").out == "No applies recorded yet.\n"
    monkeypatch.setenv("RECONCILER_ACTOR", "alice")
    monkeypatch.setenv("RECONCILER_REVISION", "0123456789abcdef0123")
    write_schedules(tmp_path / "schedules", {"one": cron("0 3 * * *"), "two": cron("0 4 * * *")})
    assert cli("apply", "schedules").code == 0
    monkeypatch.setenv("RECONCILER_ACTOR", "bob")
    monkeypatch.setenv("RECONCILER_REVISION", "fedcba9876543210fedc")
    write_schedules(tmp_path / "schedules", {"two": cron("0 5 * * *"), "three": cron("0 6 * * *")})
    assert cli("apply", "schedules", "--prune").code == 0
    assert cli("apply", "schedules", "--prune").out.endswith("nothing to change.\n")

    text = cli("history")
    assert text.code == 0
    lines = text.out.splitlines()
    heads = [line for line in lines if not line.startswith(" ")]
    assert len(heads) == 2  # the apply with nothing to change left no record
    assert "bob  rev fedcba987654  +1 -1 ~1" in heads[0]
    assert "alice  rev 0123456789ab  +2" in heads[1]
    assert lines.index(heads[1]) > lines.index(heads[0])
    assert "    create: three" in lines
    assert "    delete: one" in lines
    assert "    update: two" in lines
    assert "    create: one, two" in lines

    records = json.loads(cli("history", "--format", "json").out)
    assert [record["actor"] for record in records] == ["bob", "alice"]
    assert records[0]["counts"] == {"create": 1, "delete": 1, "update": 1}
    assert records[0]["names"] == {"create": ["three"], "delete": ["one"], "update": ["two"]}
    assert records[1]["revision"] == "0123456789abcdef0123"
    limited = json.loads(cli("history", "--format", "json", "--limit", "1").out)
    assert [record["actor"] for record in limited] == ["bob"]


def test_history_stream_is_capped(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    with redis_client.pipeline(transaction=False) as pipe:
        for index in range(HISTORY_MAX_RECORDS + 1500):
            pipe.xadd(HISTORY_KEY, {"at": f"old-{index}", "counts": "{}", "names": "{}"})
        pipe.execute()
    write_schedules(tmp_path / "schedules", {"one": cron("0 3 * * *")})
    with monitor(redis_server) as seen:
        assert cli("apply", "schedules").code == 0
    (xadd,) = seen.named("xadd")
    assert [arg.upper() for arg in xadd.args[2:4]] == ["MAXLEN", "~"]
    length = redis_client.xlen(HISTORY_KEY)
    # Approximate trimming keeps whole stream nodes (of 100 records by default).
    assert HISTORY_MAX_RECORDS <= length <= HISTORY_MAX_RECORDS + 100, length
    newest = redis_client.xrevrange(HISTORY_KEY, count=1)[0][1]
    assert json.loads(newest["names"]) == {"create": ["one"]}
