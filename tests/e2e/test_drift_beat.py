"""drift beside a real ``celery beat -S redbeat.RedBeatScheduler`` and a real worker.

Proves what only a real beat can: the run history beat rewrites after every run is never
reported as drift, and a beat that stops (crashed, so its lock expires; or shut down, so it
releases the lock) is reported as "beat-not-running", with watch-mode alerts that fire and
resolve with it.

The Redis server is a dedicated one with RDB persistence configured: on the test bed's
default server (no persistence) drift reports an eviction risk, and nothing could be clean.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from redbeat.decoder import RedBeatJSONDecoder

from reconciler.api import StoreSettings
from reconciler.cli.commands.drift import watch
from reconciler.cli.commands.requests import Console, Desired, DriftRequest
from tests.integration.plan_apply_support import (
    BEAT_LOCK_KEY,
    PREFIX,
    CliResult,
    isolate,
    run_cli,
    write_schedules,
)
from tests.support.celery_app import RECORD_TASK
from tests.support.celery_processes import (
    recorded_runs,
    start_beat,
    start_worker,
    wait_for,
    wait_for_runs,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import redis

    from tests.support.celery_processes import BeatProcess, CeleryProcess, WorkerProcess
    from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# RDB persistence on (a save point no test reaches), as separate arguments: redis-server
# 6.2 turns config={"save": "3600 1"} into one quoted word and keeps save "".
DURABLE = ("--save", "3600", "1")
LOCK_TIMEOUT_SECONDS = 5  # the test bed's redbeat_lock_timeout
BEAT_FAILURES = ("Traceback", "ERROR/", "CRITICAL/", "LockNotOwnedError")


def every(interval: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"task": RECORD_TASK, "every": interval, "kwargs": {"label": label}, **extra}


def far_away_cron() -> str:
    """A daily cron about twelve hours from now: never due during a test."""
    hour = (datetime.now(timezone.utc).hour + 12) % 24
    return f"7 {hour} * * *"


@dataclass
class Site:
    """A dedicated Redis, a schedules folder, and real beat/worker processes on demand."""

    server: RedisServer
    client: redis.Redis
    folder: Path
    capsys: pytest.CaptureFixture[str]
    started: list[CeleryProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def cli(self, command: str, *argv: str) -> CliResult:
        return run_cli(self.capsys, command, "schedules", "--redis-url", self.url, *argv)

    def apply(self, entries: dict[str, dict[str, Any]]) -> None:
        write_schedules(self.folder / "schedules", entries)
        result = self.cli("apply")
        assert result.code == 0, result.out + result.err

    def drift(self, *argv: str) -> tuple[int, set[tuple[str, str, str | None]]]:
        # The test bed's beat ticks at least every second (--max-interval 1): said here, so
        # its every-second entries are no slow-pickup note.
        result = self.cli("drift", "--format", "json", "--beat-max-loop-interval", "1", *argv)
        assert result.code in (0, 2), result.out + result.err + self.logs()
        report = json.loads(result.out)
        return result.code, {(f["kind"], f["severity"], f["name"]) for f in report["findings"]}

    def beat(self, timezone: str = "UTC") -> BeatProcess:
        process = start_beat(
            self.server, timezone=timezone, log_dir=self.folder / "celery-logs", wait=False
        )
        self.started.append(process)
        return process

    def worker(self, timezone: str = "UTC") -> WorkerProcess:
        process = start_worker(
            self.server, timezone=timezone, log_dir=self.folder / "celery-logs", wait=False
        )
        self.started.append(process)
        return process

    def meta(self, name: str) -> dict[str, Any]:
        raw = self.client.hget(PREFIX + name, "meta")
        assert raw, f"{name} has no meta"
        meta: dict[str, Any] = json.loads(raw, cls=RedBeatJSONDecoder)
        return meta

    def logs(self) -> str:
        return "".join(f"\n--- {p.kind} pid={p.pid} ---\n{p.log_text()}" for p in self.started)


@pytest.fixture
def site(
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Site]:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("RECONCILER_REVISION", "drift-e2e")
    server = redis_server_factory(extra_args=DURABLE)
    client = server.client()
    made = Site(server, client, tmp_path, capsys)
    try:
        yield made
    finally:
        for process in reversed(made.started):
            process.stop()
        client.close()


def assert_beat_healthy(site: Site, beat: BeatProcess) -> None:
    log = beat.log_text()
    for failure in BEAT_FAILURES:
        assert failure not in log, f"beat logged {failure}:{site.logs()}"


def test_runtime_fields_written_by_a_real_beat_are_not_drift(site: Site) -> None:
    site.apply(
        {
            "every-second": every("1s", "every-second", args=["a"]),
            "every-two-seconds": every("2s", "every-two-seconds"),
            "nightly": {"task": RECORD_TASK, "cron": far_away_cron()},
            "paused": every("1s", "paused", enabled=False),
        }
    )
    applied_at = datetime.now(timezone.utc)
    worker, beat = site.worker(), site.beat()
    worker.wait_ready()
    beat.wait_ready()

    wait_for_runs(site.client, 3, label="every-second", timeout=10, processes=[beat, worker])
    wait_for_runs(site.client, 2, label="every-two-seconds", timeout=10, processes=[beat, worker])
    # Beat has rewritten the run history (and the scores) since the apply.
    meta = site.meta("every-second")
    assert meta["total_run_count"] >= 3
    assert meta["last_run_at"] > applied_at
    assert site.meta("every-two-seconds")["total_run_count"] >= 2

    # Checks while beat keeps ticking: whatever moment they read, nothing is drift.
    for _ in range(8):
        code, found = site.drift()
        assert (code, found) == (0, set()), site.logs()
        time.sleep(0.25)
    count = site.meta("every-second")["total_run_count"]
    assert count >= meta["total_run_count"] + 1, "beat did not run between the checks"

    plan = site.cli("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err
    assert plan.out.startswith("No changes."), plan.out
    assert recorded_runs(site.client, label="paused") == []
    assert recorded_runs(site.client, label="nightly") == []
    assert_beat_healthy(site, beat)


@dataclass
class Alerts:
    """A real webhook receiver on 127.0.0.1 recording each POSTed JSON body."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    server: HTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/drift"

    @property
    def statuses(self) -> list[str]:
        return [str(body["status"]) for body in self.bodies]

    @contextlib.contextmanager
    def serving(self) -> Iterator[Alerts]:
        alerts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                alerts.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)


@contextlib.contextmanager
def watching(site: Site, webhook: str) -> Iterator[list[str]]:
    """``drift --watch`` (the watch loop, in a thread) with alerts to ``webhook``."""
    stop = threading.Event()
    problems: list[str] = []

    def run() -> None:
        try:
            watch(
                DriftRequest(
                    Desired((site.folder / "schedules",)),
                    StoreSettings(redis_url=site.url),
                    webhook=webhook,
                    remind_every=None,
                ),
                Console(lambda _text: None, problems.append),
                interval=0.25,
                stop=stop,
            )
        except BaseException as exc:  # reported by the test, not lost in the thread
            problems.append(f"watcher died: {exc!r}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield problems
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_stopped_beat_is_reported_and_alerted(site: Site) -> None:
    site.apply({"nightly": {"task": RECORD_TASK, "cron": far_away_cron()}})
    first = site.beat()
    first.wait_ready()
    assert site.drift() == (0, set())
    beat_gone = {("beat-not-running", "error", None)}

    with Alerts().serving() as alerts, watching(site, alerts.url) as problems:
        time.sleep(0.6)  # a couple of healthy checks: nothing to say
        assert alerts.bodies == []

        # A crash: the lock is not released, it expires (the test bed's timeout is 5 s).
        first.kill()
        killed_at = time.monotonic()
        assert 0 < site.client.pttl(BEAT_LOCK_KEY) <= LOCK_TIMEOUT_SECONDS * 1000
        assert site.drift() == (0, set())  # still within the dead beat's lock
        wait_for(
            lambda: site.client.pttl(BEAT_LOCK_KEY) == -2,
            timeout=LOCK_TIMEOUT_SECONDS + 3,
            message="the dead beat's lock never expired",
        )
        assert time.monotonic() - killed_at <= LOCK_TIMEOUT_SECONDS + 1
        assert site.drift() == (2, beat_gone)
        assert site.drift("--no-beat-lock") == (0, set())
        wait_for(lambda: alerts.statuses == ["firing"], timeout=5, message=str(alerts.statuses))
        assert {(f["kind"], f["name"]) for f in alerts.bodies[0]["findings"]} == {
            ("beat-not-running", None)
        }

        # A new beat takes the lock: resolved.
        second = site.beat()
        second.wait_ready()
        assert site.drift() == (0, set())
        wait_for(
            lambda: alerts.statuses == ["firing", "resolved"],
            timeout=5,
            message=str(alerts.statuses),
        )

        # A clean shutdown releases the lock at once: reported without waiting for a TTL.
        second.stop()
        assert "beat: Releasing lock" in second.log_text(), site.logs()
        assert site.client.exists(BEAT_LOCK_KEY) == 0
        assert site.drift() == (2, beat_gone)
        wait_for(
            lambda: alerts.statuses == ["firing", "resolved", "firing"],
            timeout=5,
            message=str(alerts.statuses),
        )
        time.sleep(0.6)  # unchanged: no new alert
    assert alerts.statuses == ["firing", "resolved", "firing"]
    assert problems == []
    assert alerts.bodies[1]["text"].startswith(":white_check_mark: RedBeat drift resolved")
    assert_beat_healthy(site, second)


def test_lock_of_a_live_beat_is_never_touched_by_drift_fix(site: Site) -> None:
    # --fix repairs entries beside a running beat and leaves beat's lock and beat alone.
    site.apply({"every-second": every("1s", "every-second")})
    worker, beat = site.worker(), site.beat()
    worker.wait_ready()
    beat.wait_ready()
    wait_for_runs(site.client, 1, label="every-second", timeout=10, processes=[beat, worker])
    token = site.client.get(BEAT_LOCK_KEY)
    # Scored a month away (beat stops running it) and given a TTL.
    key, schedule_key = PREFIX + "every-second", PREFIX + ":schedule"

    def scored_far_away() -> bool:
        # A tick that read the entry just before the ZADD writes its own score after it.
        site.client.zadd(schedule_key, {key: time.time() + 30 * 86_400})
        time.sleep(1.2)
        return (site.client.zscore(schedule_key, key) or 0) > time.time() + 86_400

    wait_for(scored_far_away, timeout=10, message=site.logs)
    site.client.expire(key, 3600)

    assert site.drift() == (
        2,
        {("stale-score", "error", "every-second"), ("expiring", "error", "every-second")},
    )
    result = site.cli("drift", "--fix")
    assert (
        "drift --fix: Apply complete: 0 created, 0 updated, 0 adopted, 0 deleted, 1 repaired."
        in result.err
    ), result.out + result.err
    assert site.client.ttl(key) == -1
    assert site.client.get(BEAT_LOCK_KEY) == token
    assert 0 < site.client.pttl(BEAT_LOCK_KEY) <= LOCK_TIMEOUT_SECONDS * 1000

    count = len(recorded_runs(site.client, label="every-second"))
    wait_for_runs(
        site.client, count + 2, label="every-second", timeout=10, processes=[beat, worker]
    )
    assert site.drift() == (0, set())
    assert beat.is_running()
    assert_beat_healthy(site, beat)
    assert site.meta("every-second")["last_run_at"] > datetime.now(timezone.utc) - timedelta(
        seconds=5
    )


def test_beat_in_another_timezone_is_reported(site: Site) -> None:
    # Beat's Celery timezone is Asia/Tokyo (UTC+9, no DST); its runs record that offset.
    site.apply({"every-second": every("1s", "every-second")})
    worker, beat = site.worker("Asia/Tokyo"), site.beat("Asia/Tokyo")
    worker.wait_ready()
    beat.wait_ready()
    wait_for_runs(site.client, 2, label="every-second", timeout=10, processes=[beat, worker])
    assert site.meta("every-second")["last_run_at"].utcoffset() == timedelta(hours=9)

    code, found = site.drift("--timezone", "UTC")
    assert code == 2
    assert ("timezone-mismatch", "error", None) in found, found
    assert site.drift("--timezone", "Asia/Tokyo") == (0, set())
    assert_beat_healthy(site, beat)
