"""Redis Sentinel for real: one master redis-server (with ``requirepass``) and one Sentinel
process (with its own ``requirepass``) monitoring it as ``mymaster``, started once for the
module. ``plan``/``apply``/``drift`` reach the master through the Sentinel, from
``--redis-url redis-sentinel://...`` or from a Celery app's RedBeat settings; every
failure is one line with both passwords masked; and a real ``celery beat`` configured for
the same Sentinel fires what the reconciler applied.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from reconciler.store.connection import check_reachable, connect
from tests.integration.plan_apply_support import isolate, run_cli
from tests.support.celery_processes import REPO_ROOT, BeatProcess, wait_for
from tests.support.redis_server import RedisServer, free_port
from tests.support.sentinel import SentinelServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliResult

pytestmark = pytest.mark.integration

SERVICE = "mymaster"
GONE = "gone"  # a second master the Sentinel monitors, at a port where nothing listens
# Characters a URL gives a meaning to: the URL must carry them percent-encoded.
MASTER_PASSWORD = "m4ster/p@ss"
SENTINEL_PASSWORD = "sent1nel&pa55"
PREFIX = "redbeat:"
SCHEDULES = """
    version: 1
    schedules:
      nightly-report:
        task: checked.report
        cron: "0 3 * * *"
        args: [mon]
      hourly-sync:
        task: checked.report
        every: 1h
        args: [tue]
    """


@dataclass(frozen=True)
class SentinelBed:
    master: RedisServer
    sentinel: SentinelServer

    def url(
        self, service_name: str = SERVICE, *, sentinel_password: str = SENTINEL_PASSWORD
    ) -> str:
        return (
            f"redis-sentinel://:{quote(MASTER_PASSWORD, safe='')}@127.0.0.1:{self.sentinel.port}"
            f"/0?service_name={service_name}&sentinel_password={quote(sentinel_password, safe='')}"
        )

    def masked(self, service_name: str = SERVICE) -> str:
        return (
            f"redis-sentinel://:***@127.0.0.1:{self.sentinel.port}/0?service_name={service_name}"
            "&sentinel_password=***"
        )

    def options(self) -> dict[str, Any]:
        """RedBeat's redbeat_redis_options for this Sentinel, as a team writes them."""
        return {
            "sentinels": [("127.0.0.1", self.sentinel.port)],
            "service_name": SERVICE,
            "password": MASTER_PASSWORD,
            "sentinel_kwargs": {"password": SENTINEL_PASSWORD},
            "socket_timeout": 5,
        }


@pytest.fixture(scope="module")
def sentinel_bed() -> Iterator[SentinelBed]:
    with RedisServer() as master:
        # Set after the start and removed before the stop: the test bed's start-up probe
        # and SHUTDOWN do not authenticate.
        master.config_set("requirepass", MASTER_PASSWORD)
        try:
            with SentinelServer(
                master,
                service_name=SERVICE,
                master_password=MASTER_PASSWORD,
                password=SENTINEL_PASSWORD,
                extra_config=[
                    f"sentinel monitor {GONE} 127.0.0.1 {free_port()} 1",
                    f"sentinel down-after-milliseconds {GONE} 100",
                ],
            ) as sentinel:
                yield SentinelBed(master, sentinel)
        finally:
            master.config_set("requirepass", "", password=MASTER_PASSWORD)


@pytest.fixture
def master(sentinel_bed: SentinelBed) -> Iterator[redis.Redis]:
    """A direct client of the master (db 0), emptied (every db) before the test."""
    client = sentinel_bed.master.client(password=MASTER_PASSWORD)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate(monkeypatch, tmp_path)
    for variable in ("RECONCILER_APP", "REDBEAT_LOCK_KEY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "s.yaml").write_text(textwrap.dedent(SCHEDULES), encoding="utf-8")
    return tmp_path


@pytest.fixture
def write_app(workdir: Path) -> Iterator[Callable[[str], str]]:
    """``write_app(source)``: a module in the working folder (found by ``--app`` as by
    ``celery -A``); returns its name, unique and forgotten afterwards."""
    names: list[str] = []

    def write(source: str) -> str:
        name = f"sentinel_app_{uuid.uuid4().hex[:8]}"
        names.append(name)
        (workdir / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    result = run_cli(capsys, *argv)
    for secret in (MASTER_PASSWORD, SENTINEL_PASSWORD, quote(MASTER_PASSWORD, safe="")):
        assert secret not in result.out + result.err, f"{secret!r} printed by {argv}"
    return result


def test_plan_and_apply_reach_the_master_through_the_sentinel(
    capsys: pytest.CaptureFixture[str],
    sentinel_bed: SentinelBed,
    master: redis.Redis,
    workdir: Path,
) -> None:
    url = sentinel_bed.url()
    planned = cli(capsys, "plan", "--redis-url", url, "--format", "json")
    assert planned.code == 0, planned.err
    document = json.loads(planned.out)
    assert document["target"] == sentinel_bed.masked()
    assert sorted(change["action"] for change in document["changes"]) == ["create", "create"]

    applied = cli(capsys, "apply", "--redis-url", url, "--auto-approve")
    assert applied.code == 0, applied.err
    for name in ("nightly-report", "hourly-sync"):
        definition = json.loads(master.hget(PREFIX + name, "definition") or "{}")
        assert (definition["task"], definition["name"]) == ("checked.report", name)
        assert master.zscore(PREFIX + ":schedule", PREFIX + name) is not None

    again = cli(capsys, "plan", "--redis-url", url, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err

    # A deletion goes through the same WATCH/MULTI transaction, through the Sentinel.
    (workdir / "schedules" / "s.yaml").write_text(
        textwrap.dedent(SCHEDULES).split("  hourly-sync:")[0], encoding="utf-8"
    )
    pruned = cli(capsys, "apply", "--redis-url", url, "--prune", "--auto-approve")
    assert pruned.code == 0, pruned.err
    assert not master.exists(PREFIX + "hourly-sync"), pruned.out + pruned.err
    assert master.zscore(PREFIX + ":schedule", PREFIX + "hourly-sync") is None
    assert master.exists(PREFIX + "nightly-report")

    history = cli(capsys, "history", "--redis-url", url, "--format", "json")
    assert history.code == 0, history.err
    assert len(json.loads(history.out)) == 2


def test_the_apps_sentinel_settings_are_followed(
    capsys: pytest.CaptureFixture[str],
    sentinel_bed: SentinelBed,
    master: redis.Redis,
    write_app: Callable[[str], str],
) -> None:
    app = write_app(
        f"""
        from tests.support.checked_app import make_checked_app

        app = make_checked_app(
            redbeat_redis_url="redis-sentinel://",
            redbeat_redis_options={sentinel_bed.options()!r},
            redbeat_key_prefix="team:",
        )
        """
    )
    planned = cli(capsys, "plan", "--app", app)
    assert planned.code == 0, planned.err
    assert planned.err_lines[0] == (
        f"Settings from the Celery app '{app}': Redis {sentinel_bed.masked()} (from "
        "redbeat_redis_url and redbeat_redis_options), key prefix 'team:', timezone "
        "Europe/Paris, beat lock team:beat-lock, beat_max_loop_interval 300 s"
    )
    applied = cli(capsys, "apply", "--app", app, "--auto-approve")
    assert applied.code == 0, applied.err
    assert master.hexists("team:nightly-report", "definition")
    assert not list(master.scan_iter(PREFIX + "*"))
    again = cli(capsys, "plan", "--app", app, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    drift = cli(capsys, "drift", "--app", app, "--format", "json")
    assert drift.code in (0, 2), drift.err
    kinds = {finding["kind"] for finding in json.loads(drift.out)["findings"]}
    assert "beat-not-running" in kinds  # the app's lock key, read through the Sentinel
    assert not kinds & {"missing", "modified", "unscheduled", "stale-score", "no-history"}


@pytest.mark.parametrize(
    ("make_url", "reason"),
    [
        pytest.param(
            lambda bed: bed.url("nope"),
            "Sentinel 127.0.0.1:{port} monitors no master named 'nope' (it monitors 'gone', "
            "'mymaster')",
            id="unknown-service",
        ),
        pytest.param(
            lambda bed: bed.url(sentinel_password="wrong"),
            "Sentinel 127.0.0.1:{port} refused the Sentinel credentials (sentinel_password): "
            "invalid username-password pair or user is disabled",
            id="wrong-sentinel-password",
        ),
    ],
)
def test_a_sentinel_that_cannot_say_where_the_master_is_is_one_line(
    capsys: pytest.CaptureFixture[str],
    sentinel_bed: SentinelBed,
    workdir: Path,
    make_url: Callable[[SentinelBed], str],
    reason: str,
) -> None:
    url = make_url(sentinel_bed)
    run = cli(capsys, "plan", "--redis-url", url)
    assert (run.code, run.out) == (1, "")
    masked = url.split("?")[0].replace(quote(MASTER_PASSWORD, safe=""), "***")
    masked += "?" + url.split("?")[1].split("&sentinel_password=")[0] + "&sentinel_password=***"
    assert run.err == (
        f"error: Redis at {masked} is not usable: "
        + reason.format(port=sentinel_bed.sentinel.port)
        + "\n"
    )
    assert run.seconds < 3


def test_a_master_the_sentinel_reports_down_is_one_line(
    capsys: pytest.CaptureFixture[str], sentinel_bed: SentinelBed, workdir: Path
) -> None:
    probe = sentinel_bed.sentinel.client()
    try:
        wait_for(lambda: probe.sentinel_master(GONE)["is_sdown"], timeout=5.0)
        ip, port = probe.sentinel_get_master_addr_by_name(GONE)
    finally:
        probe.close()
    run = cli(capsys, "plan", "--redis-url", sentinel_bed.url(GONE))
    assert run.code == 1
    head, _, flags = run.err.partition(" as down (flags ")
    assert head == (
        f"error: Redis at {sentinel_bed.masked(GONE)} is not usable: Sentinel "
        f"127.0.0.1:{sentinel_bed.sentinel.port} reports master 'gone' at {ip}:{port}"
    )
    assert "s_down" in flags.rstrip(")\n").split(",")


def test_no_sentinel_reachable_is_one_line_within_seconds(
    capsys: pytest.CaptureFixture[str], sentinel_bed: SentinelBed, workdir: Path
) -> None:
    password = quote(MASTER_PASSWORD, safe="")
    url = f"redis-sentinel://:{password}@127.0.0.1:1,127.0.0.1:2?service_name=m"
    run = cli(capsys, "plan", "--redis-url", url)
    assert run.code == 1
    assert run.err == (
        "error: Redis at redis-sentinel://:***@127.0.0.1:1,127.0.0.1:2?service_name=m is not "
        "usable: Sentinel 127.0.0.1:1: Error 111 connecting to 127.0.0.1:1. Connection "
        "refused; Sentinel 127.0.0.1:2: Error 111 connecting to 127.0.0.1:2. Connection "
        "refused\n"
    )
    assert run.seconds < 3


def test_a_wrong_master_password_names_the_master_the_sentinel_gave(
    capsys: pytest.CaptureFixture[str], sentinel_bed: SentinelBed, workdir: Path
) -> None:
    url = sentinel_bed.url().replace(quote(MASTER_PASSWORD, safe=""), "wrong")
    run = cli(capsys, "plan", "--redis-url", url)
    assert run.code == 1
    assert run.err == (
        f"error: Redis at {sentinel_bed.masked()} is not usable: master 'mymaster' at "
        f"127.0.0.1:{sentinel_bed.master.port} (from Sentinel): authentication failed (wrong "
        "password, or unknown or disabled user); check the password in the URL's user-info, "
        f"as in redis-sentinel://:PASSWORD@127.0.0.1:{sentinel_bed.sentinel.port}/0"
        "?service_name=mymaster (USER:PASSWORD@ for an ACL user), e.g. the CI secret it "
        "comes from\n"
    )


def test_closing_the_client_closes_the_sentinel_connections_too(
    sentinel_bed: SentinelBed, master: redis.Redis
) -> None:
    probe = sentinel_bed.sentinel.client()
    try:

        def connected() -> int:
            return int(probe.info("clients")["connected_clients"])

        before = connected()
        client = connect(sentinel_bed.url())
        check_reachable(client, sentinel_bed.url())
        assert client.set("k", "v")
        assert master.get("k") == "v"
        assert connected() > before
        client.close()
        wait_for(lambda: connected() == before, timeout=2.0, message="Sentinel still connected")
    finally:
        probe.close()


# -- a real beat, configured for the same Sentinel, fires what was applied -----------------


class _SentinelBeat(BeatProcess):
    def is_ready(self) -> bool:
        # The test bed's check reads the lock without a password; the log line says enough.
        return "beat: Acquired lock" in self.log_text()


@pytest.mark.e2e
def test_beat_on_the_sentinel_fires_an_entry_applied_through_it(
    capsys: pytest.CaptureFixture[str],
    sentinel_bed: SentinelBed,
    master: redis.Redis,
    workdir: Path,
    write_app: Callable[[str], str],
) -> None:
    broker = f"redis://:{quote(MASTER_PASSWORD, safe='')}@127.0.0.1:{sentinel_bed.master.port}/1"
    # One module for both: beat loads it with celery -A, the reconciler with --app.
    app = write_app(
        f"""
        from celery import Celery

        app = Celery("sentinel_beat", set_as_current=False)
        app.conf.update(
            broker_url={broker!r},
            redbeat_redis_url="redis-sentinel://",
            redbeat_redis_options={sentinel_bed.options()!r},
            redbeat_lock_timeout=5,
            beat_max_loop_interval=1,
            timezone="UTC",
            enable_utc=True,
            result_expires=None,
        )

        @app.task(name="sentinel.ping")
        def ping(label):
            return label
        """
    )
    (workdir / "schedules" / "s.yaml").write_text(
        "version: 1\nschedules:\n  pinger: {task: sentinel.ping, every: 1s, args: [hi]}\n",
        encoding="utf-8",
    )
    beat = _SentinelBeat(
        sentinel_bed.master,
        app_module=app,
        env={"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(workdir)])},
        log_dir=workdir / "logs",
    )
    beat.start()
    try:
        beat.wait_ready()
        applied = cli(capsys, "apply", "--app", app, "--auto-approve")
        assert applied.code == 0, applied.err
        wait_for(
            lambda: "Sending due task pinger (sentinel.ping)" in beat.log_text(),
            timeout=8.0,
            message=beat.log_text,
        )
        # Beat logs the line just before it publishes: wait for the message too.
        queued = sentinel_bed.master.client(db=1, password=MASTER_PASSWORD)
        try:
            wait_for(lambda: queued.llen("celery") >= 1, timeout=2.0, message="nothing queued")
        finally:
            queued.close()
        assert master.hget(PREFIX + "pinger", "meta") is not None
    finally:
        beat.stop()
    log = beat.log_text()
    for failure in ("Traceback", "ERROR/", "CRITICAL/"):
        assert failure not in log, log
