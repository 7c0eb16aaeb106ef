"""drift against real Redis servers: every finding kind produced for real and detected, the
exit codes, read-only operation, batched reads, --fix, webhooks and Prometheus metrics.

Most tests use a module-scoped server with RDB persistence configured (``save 3600 1``): the
test bed's default server runs without persistence, which drift rightly reports as an
eviction risk, so on it no state could ever be "clean". That report itself is tested on the
default server. Beat's lock is simulated as beat takes it (``SET key token PX 5000``); the
e2e file proves the same against a real beat.

Webhooks go to real HTTP servers on 127.0.0.1; metrics are scraped over HTTP from a real
``reconciler drift --watch`` process.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from celery.schedules import schedule
from prometheus_client.parser import text_string_to_metric_families
from redbeat import RedBeatSchedulerEntry

from reconciler.api import StoreSettings, apply_plan, load_schedules, make_plan, open_store
from reconciler.cli.commands.drift import watch
from reconciler.cli.commands.requests import Console, Desired, DriftRequest
from reconciler.core.beat_clock import BeatSettings
from reconciler.core.drift_findings import Kind, Severity
from tests.integration.plan_apply_support import (
    BEAT_LOCK_KEY,
    MANAGED_KEY,
    PREFIX,
    REPO_ROOT,
    SCHEDULE_KEY,
    STATICS_KEY,
    UTC,
    CliResult,
    assert_unchanged,
    clean_env,
    cron,
    definition_of,
    isolate,
    monitor,
    redbeat_meta,
    run_cli,
    snapshot,
    write_schedules,
)
from tests.support.celery_app import close_app, make_app
from tests.support.redis_server import RedisServer, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from pathlib import Path

    import redis

pytestmark = pytest.mark.integration
NO_BEAT_LOCK = BeatSettings(lock=False)  # these checks run no beat

Finding = tuple[str, str, "str | None"]
HOURLY = {"task": "app.tasks.job", "every": "1h"}
ENTRIES: dict[str, dict[str, Any]] = {
    "nightly": cron("0 3 * * *", args=[1], kwargs={"region": "eu"}),
    "hourly": HOURLY,
    "paused": cron("30 4 * * *", enabled=False),
}
# Persistence on (an RDB save point no test lives long enough to reach), so that the only
# eviction-risk findings are the ones a test asks for. As separate arguments: given as
# config={"save": "3600 1"}, redis-server 6.2 receives one quoted word and keeps save "".
DURABLE = ("--save", "3600", "1")
TOMBSTONE_RACE = "left by a beat tick racing the reconciler's delete"
SUMMARY_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:]+\+00:00: (No drift|Drift):")


# -- the bed ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftRun:
    code: int
    report: dict[str, Any]
    err: str

    @property
    def found(self) -> set[Finding]:
        return {(f["kind"], f["severity"], f["name"]) for f in self.report["findings"]}

    def finding(self, kind: str, name: str | None) -> dict[str, Any]:
        matches = [f for f in self.report["findings"] if (f["kind"], f["name"]) == (kind, name)]
        assert len(matches) == 1, f"{kind} {name} not exactly once in {self.found}"
        found: dict[str, Any] = matches[0]
        return found


@dataclass
class Bed:
    server: RedisServer
    url: str
    client: redis.Redis
    folder: Path
    capsys: pytest.CaptureFixture[str]

    def files(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        write_schedules(self.folder / "schedules", entries)

    def cli(self, command: str, *argv: str, url: str | None = None) -> CliResult:
        return run_cli(self.capsys, command, "schedules", "--redis-url", url or self.url, *argv)

    def apply(self, *argv: str) -> str:
        result = self.cli("apply", *argv)
        assert result.code == 0, result.out + result.err
        return result.out

    def drift(self, *argv: str, url: str | None = None) -> DriftRun:
        result = self.cli("drift", "--format", "json", *argv, url=url)
        assert result.code in (0, 2), f"drift failed ({result.code}):\n{result.out}{result.err}"
        report = json.loads(result.out)
        assert report["drift"] is (result.code == 2), report
        return DriftRun(result.code, report, result.err)

    def hold_beat_lock(self, ms: int = 5000) -> None:
        """Beat's lock as redis-py's Lock (RedBeat's) takes it: a token with a TTL."""
        self.client.set(BEAT_LOCK_KEY, uuid.uuid4().hex, px=ms, nx=True)

    def redbeat_entry(self, name: str, seconds: float = 60) -> None:
        """An entry written by RedBeat's own API, as an application would: unmanaged."""
        app = make_app(self.url)
        try:
            RedBeatSchedulerEntry(
                name, "app.tasks.other", schedule(run_every=seconds), args=[name], app=app
            ).save()
        finally:
            close_app(app)

    def score(self, name: str) -> float | None:
        return self.client.zscore(SCHEDULE_KEY, PREFIX + name)

    def set_definition(self, name: str, **fields: Any) -> None:
        definition = definition_of(self.client, name)
        definition.update(fields)
        self.client.hset(PREFIX + name, "definition", json.dumps(definition))

    def set_last_run(self, name: str, moment: datetime) -> None:
        self.client.hset(PREFIX + name, "meta", redbeat_meta(moment, 5))

    def converge(self) -> None:
        """Plain apply through the Python API (usable from a watcher's thread)."""
        loaded = load_schedules([self.folder / "schedules"])
        with open_store(StoreSettings(redis_url=self.url), notice=lambda _text: None) as store:
            apply_plan(store, make_plan(store, loaded))


def bed_on(server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Bed:
    client = server.client()
    client.flushall()
    return Bed(server, server.url, client, tmp_path, capsys)


@pytest.fixture(scope="module")
def durable_server() -> Iterator[RedisServer]:
    with RedisServer(extra_args=DURABLE) as server:
        yield server


@pytest.fixture
def bed(
    durable_server: RedisServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Bed]:
    isolate(monkeypatch, tmp_path)
    # apply records the git revision; naming one spares a git subprocess per apply.
    monkeypatch.setenv("RECONCILER_REVISION", "drift-tests")
    made = bed_on(durable_server, tmp_path, capsys)
    yield made
    made.client.close()


@pytest.fixture
def applied(bed: Bed) -> Bed:
    """ENTRIES applied with the CLI, and beat's lock held: a clean state."""
    bed.files(ENTRIES)
    bed.apply()
    bed.hold_beat_lock()
    return bed


# -- a clean state -------------------------------------------------------------------------


def test_clean_state_reports_nothing(applied: Bed) -> None:
    run = applied.drift()
    assert run.code == 0, run.report
    assert run.report["findings"] == []
    assert run.report["managed_count"] == 3
    assert run.report["unmanaged_count"] == 0
    assert run.report["summary"] == "No drift: RedBeat matches the schedule files and is healthy."

    text = applied.cli("drift")
    assert (text.code, text.out) == (0, run.report["summary"] + "\n")
    markdown = applied.cli("drift", "--format", "markdown")
    assert markdown.code == 0
    assert markdown.out.startswith("### :white_check_mark: RedBeat drift (`redbeat:`)")
    assert "|" not in markdown.out  # no findings table


def test_default_testbed_server_without_persistence_is_an_eviction_risk(
    redis_url: str,
    redis_server: RedisServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The session server runs with save "" and appendonly no: a restart loses everything.
    isolate(monkeypatch, tmp_path)
    bed = bed_on(redis_server, tmp_path, capsys)
    try:
        bed.files(ENTRIES)
        bed.apply()
        bed.hold_beat_lock()
        run = bed.drift()
    finally:
        bed.client.close()
    assert run.code == 2
    assert run.found == {("eviction-risk", "warning", None)}
    assert "persistence is off" in run.finding("eviction-risk", None)["explanation"]


# -- each finding kind, produced for real ------------------------------------------------


def _missing(bed: Bed) -> None:
    bed.client.delete(PREFIX + "hourly")


def _modified(bed: Bed) -> None:
    bed.set_definition("nightly", args=[2], kwargs={"region": "us"})


def _unexpected(bed: Bed) -> None:
    bed.files({name: spec for name, spec in ENTRIES.items() if name != "hourly"})


def _conflict(bed: Bed) -> None:
    bed.redbeat_entry("adhoc")
    bed.files({**ENTRIES, "adhoc": HOURLY})


def _unmanaged(bed: Bed) -> None:
    bed.redbeat_entry("adhoc")


def _unscheduled(bed: Bed) -> None:
    bed.client.zrem(SCHEDULE_KEY, PREFIX + "hourly")


def _dangling(bed: Bed) -> None:
    bed.client.zadd(SCHEDULE_KEY, {PREFIX + "ghost": time.time() + 60})


def _orphan(bed: Bed) -> None:
    bed.client.hset(PREFIX + "leftover", "meta", redbeat_meta(datetime.now(UTC), 3))


def _late_score(bed: Bed) -> None:
    bed.client.zadd(SCHEDULE_KEY, {PREFIX + "hourly": time.time() + 30 * 86_400})


def _parked_score(bed: Bed) -> None:
    bed.client.zadd(SCHEDULE_KEY, {PREFIX + "hourly": -1})


def _disabled_but_scheduled(bed: Bed) -> None:
    bed.client.zadd(SCHEDULE_KEY, {PREFIX + "paused": time.time() + 3600})


def _no_history(bed: Bed) -> None:
    bed.client.hdel(PREFIX + "hourly", "meta")


def _unreadable_meta(bed: Bed) -> None:
    bed.client.hset(PREFIX + "hourly", "meta", "{not json")


def _future_last_run(bed: Bed) -> None:
    bed.set_last_run("hourly", datetime.now(UTC) + timedelta(days=2))


def _meta_overriding_the_definition(bed: Bed) -> None:
    # Beat merges meta into the definition: this one would disable the entry.
    meta = {"last_run_at": None, "total_run_count": 0, "enabled": False}
    bed.client.hset(PREFIX + "hourly", "meta", json.dumps(meta))


def _expiring(bed: Bed) -> None:
    bed.client.expire(PREFIX + "hourly", 3600)


def _unmarked(bed: Bed) -> None:
    bed.client.srem(MANAGED_KEY, "hourly")


def _overdue(bed: Bed) -> None:
    # What a stopped beat leaves: the last run three hours ago, the score at the run that
    # was due two hours ago and never happened.
    now = datetime.now(UTC)
    bed.set_last_run("hourly", now - timedelta(hours=3))
    bed.client.zadd(SCHEDULE_KEY, {PREFIX + "hourly": (now - timedelta(hours=2)).timestamp()})


def _overdue_score_as_is(bed: Bed) -> None:
    bed.set_last_run("hourly", datetime.now(UTC) - timedelta(hours=3))


def _no_beat_lock(bed: Bed) -> None:
    bed.client.delete(BEAT_LOCK_KEY)


def _beat_lock_without_ttl(bed: Bed) -> None:
    bed.client.persist(BEAT_LOCK_KEY)


def _static_overlap(bed: Bed) -> None:
    bed.client.sadd(STATICS_KEY, "nightly")


KINDS = [
    pytest.param(_missing, {("missing", "error", "hourly")}, id="missing"),
    pytest.param(_modified, {("modified", "error", "nightly")}, id="modified"),
    pytest.param(_unexpected, {("unexpected", "warning", "hourly")}, id="unexpected"),
    pytest.param(_conflict, {("conflict", "error", "adhoc")}, id="conflict"),
    pytest.param(_unscheduled, {("unscheduled", "error", "hourly")}, id="unscheduled"),
    pytest.param(_dangling, {("dangling", "warning", "ghost")}, id="dangling"),
    pytest.param(_orphan, {("orphan", "warning", "leftover")}, id="orphan"),
    pytest.param(_late_score, {("stale-score", "error", "hourly")}, id="stale-score-late"),
    pytest.param(_parked_score, {("stale-score", "error", "hourly")}, id="stale-score-parked"),
    pytest.param(
        _disabled_but_scheduled, {("stale-score", "warning", "paused")}, id="stale-score-unparked"
    ),
    pytest.param(_no_history, {("no-history", "warning", "hourly")}, id="no-history"),
    pytest.param(_unreadable_meta, {("bad-meta", "error", "hourly")}, id="bad-meta-unreadable"),
    pytest.param(_future_last_run, {("bad-meta", "error", "hourly")}, id="bad-meta-future"),
    pytest.param(
        _meta_overriding_the_definition, {("bad-meta", "error", "hourly")}, id="bad-meta-override"
    ),
    pytest.param(_expiring, {("expiring", "error", "hourly")}, id="expiring"),
    pytest.param(_unmarked, {("unmarked", "warning", "hourly")}, id="unmarked"),
    pytest.param(_overdue, {("overdue", "error", "hourly")}, id="overdue"),
    pytest.param(
        _overdue_score_as_is,
        # The untouched score (an hour from now) is later than the missed run: stale too.
        {("overdue", "error", "hourly"), ("stale-score", "error", "hourly")},
        id="overdue-score-as-is",
    ),
    pytest.param(_no_beat_lock, {("beat-not-running", "error", None)}, id="beat-not-running"),
    pytest.param(
        _beat_lock_without_ttl, {("beat-not-running", "error", None)}, id="beat-lock-no-ttl"
    ),
    pytest.param(_static_overlap, {("static-overlap", "error", "nightly")}, id="static-overlap"),
    pytest.param(_unmanaged, {("unmanaged", "info", "adhoc")}, id="unmanaged-info-only"),
]


@pytest.mark.parametrize(("produce", "expected"), KINDS)
def test_each_finding_kind_is_detected(
    applied: Bed, produce: Callable[[Bed], None], expected: set[Finding]
) -> None:
    assert applied.drift().found == set()
    produce(applied)
    run = applied.drift()
    assert run.found == expected
    alerting = any(severity != "info" for _kind, severity, _name in expected)
    assert run.code == (2 if alerting else 0)
    for finding in run.report["findings"]:
        assert finding["explanation"]
        assert finding["action"]
    # The text and markdown renderings carry the same findings and exit code.
    text = applied.cli("drift")
    assert text.code == run.code
    for kind, severity, name in expected:
        assert re.search(rf"^{severity}\s+{kind}{' ' + name if name else ''}:", text.out, re.M)
    markdown = applied.cli("drift", "--format", "markdown")
    assert markdown.code == run.code
    for kind, severity, name in expected:
        assert f"| {severity} | {kind} | {f'`{name}`' if name else ''} |" in markdown.out


@pytest.mark.parametrize(
    ("name", "edit", "details"),
    [
        (
            "nightly",
            {"args": [2], "kwargs": {"region": "us"}},
            ["args[0]: 2 -> 1", 'kwargs.region: "us" -> "eu"'],
        ),
        ("hourly", {"task": "app.tasks.other"}, ['task: "app.tasks.other" -> "app.tasks.job"']),
        ("hourly", {"enabled": False}, ["enabled: false -> true"]),
        ("nightly", {"args": [True]}, ["args[0]: true -> 1"]),
        # Beat passes the definition as keyword arguments: an unknown key crashes it.
        ("hourly", {"expires": 60}, ["expires: 60 -> (none)"]),
        (
            "hourly",
            {"schedule": {"__type__": "interval", "every": 7200.0, "relative": False}},
            ["schedule.every: 7200.0 -> 3600.0"],
        ),
    ],
    ids=["args-kwargs", "task", "enabled", "true-is-not-1", "unknown-key", "schedule"],
)
def test_modified_details_show_the_field_changes(
    applied: Bed, name: str, edit: dict[str, Any], details: list[str]
) -> None:
    applied.set_definition(name, **edit)
    run = applied.drift()
    assert run.found == {("modified", "error", name)}
    assert run.finding("modified", name)["details"] == details
    text = applied.cli("drift").out
    for detail in details:
        assert f"          {detail}\n" in text


def test_unreadable_definition_is_modified(applied: Bed) -> None:
    applied.client.hset(PREFIX + "hourly", "definition", "{not json")
    run = applied.drift()
    assert run.found == {("modified", "error", "hourly")}
    assert run.finding("modified", "hourly")["details"] == ["unreadable definition"]


def test_overdue_names_the_missed_run_and_honours_the_grace(applied: Bed) -> None:
    _overdue(applied)
    explanation = applied.drift().finding("overdue", "hourly")["explanation"]
    assert re.fullmatch(r"last ran at \S+; a run was due at \S+ and has not happened", explanation)
    # Due two hours ago: within a three-hour grace it is not overdue yet.
    assert applied.drift("--overdue-grace", str(3 * 3600)).found == set()
    assert applied.drift("--overdue-grace", str(3600)).found == {("overdue", "error", "hourly")}


def test_check_that_cannot_run_exits_1(applied: Bed) -> None:
    unreachable = applied.cli("drift", url=f"redis://127.0.0.1:{free_port()}/0")
    assert unreachable.code == 1
    assert unreachable.out == ""
    assert unreachable.err.startswith("error: Redis at redis://127.0.0.1:"), unreachable.err
    assert len(unreachable.err.splitlines()) == 1, unreachable.err

    (applied.folder / "schedules" / "schedules.yaml").write_text("version: 1\nschedules: [\n")
    invalid = applied.cli("drift")
    assert invalid.code == 1
    assert "schedules/schedules.yaml:" in invalid.err
    assert "Traceback" not in invalid.err


def test_key_prefix_is_matched_literally(bed: Bed) -> None:
    # '[1]' would be a character class in a SCAN pattern: matching '{rb}1:...' keys too.
    prefix = "{rb}[1]:"
    bed.files(ENTRIES)
    bed.apply("--key-prefix", prefix)
    bed.client.set(prefix + ":lock", "token", px=5000)
    bed.client.hset("{rb}1:lookalike", mapping={"definition": "{}", "meta": "{}"})
    bed.client.hset("redbeat:other-app", mapping={"definition": "{}", "meta": "{}"})
    app = make_app(bed.url, key_prefix=prefix)
    try:
        RedBeatSchedulerEntry("adhoc", "app.tasks.other", schedule(run_every=60), app=app).save()
    finally:
        close_app(app)
    bed.client.zadd(prefix + ":schedule", {prefix + "ghost": time.time()})

    run = bed.drift("--key-prefix", prefix)
    assert run.found == {("unmanaged", "info", "adhoc"), ("dangling", "warning", "ghost")}
    assert run.report["key_prefix"] == prefix
    assert run.report["managed_count"] == 3


def test_no_beat_lock_option_suppresses_beat_not_running(applied: Bed) -> None:
    applied.client.delete(BEAT_LOCK_KEY)
    assert applied.drift().found == {("beat-not-running", "error", None)}
    run = applied.drift("--no-beat-lock")
    assert (run.code, run.found) == (0, set())


def test_no_entries_at_all_needs_no_beat(bed: Bed) -> None:
    bed.files({})
    run = bed.drift()
    assert (run.code, run.found) == (0, set())


def test_orphan_left_by_a_tick_racing_a_prune_is_the_reconcilers_to_clean(applied: Bed) -> None:
    applied.files({"nightly": ENTRIES["nightly"], "paused": ENTRIES["paused"]})
    assert "1 deleted" in applied.apply("--prune")
    assert applied.client.exists(PREFIX + "hourly") == 0
    # A beat tick that read the entry before the delete writes its meta back afterwards.
    applied.client.hset(PREFIX + "hourly", "meta", redbeat_meta(datetime.now(UTC), 8))

    run = applied.drift()
    assert (run.code, run.found) == (2, {("orphan", "warning", "hourly")})
    finding = run.finding("orphan", "hourly")
    assert TOMBSTONE_RACE in finding["explanation"]
    assert finding["action"] == "run 'reconciler apply' (or drift --fix)"

    out = applied.apply()
    assert "1 repaired" in out, out
    assert applied.client.exists(PREFIX + "hourly") == 0
    assert applied.score("hourly") is None
    assert applied.drift().code == 0


# -- server configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "warned"),
    [("allkeys-lru", True), ("allkeys-random", True), ("volatile-lru", False)],
)
def test_eviction_policy(
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
    warned: bool,
) -> None:
    isolate(monkeypatch, tmp_path)
    server = redis_server_factory(config={"maxmemory-policy": policy}, extra_args=DURABLE)
    bed = bed_on(server, tmp_path, capsys)
    try:
        bed.files(ENTRIES)
        bed.apply()
        bed.hold_beat_lock()
        run = bed.drift()
    finally:
        bed.client.close()
    if not warned:
        assert (run.code, run.found) == (0, set())
        return
    assert (run.code, run.found) == (2, {("eviction-risk", "warning", None)})
    assert f"maxmemory-policy is {policy}" in run.finding("eviction-risk", None)["explanation"]


def test_config_not_permitted_is_an_informational_note(
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolate(monkeypatch, tmp_path)
    # allkeys-lru and no persistence: both would be warnings, if drift could see them.
    server = redis_server_factory(config={"maxmemory-policy": "allkeys-lru"})
    url = server.acl_user("noconfig", "~*", "+@all", "-config")
    bed = bed_on(server, tmp_path, capsys)
    try:
        bed.files(ENTRIES)
        bed.apply()
        bed.hold_beat_lock()
        run = bed.drift(url=url)
    finally:
        bed.client.close()
    assert (run.code, run.found) == (0, {("eviction-risk", "info", None)})
    explanation = run.finding("eviction-risk", None)["explanation"]
    assert explanation.startswith("could not read Redis's configuration (")
    assert "NOPERM" in explanation or "permission" in explanation
    assert "s3cret-pw" not in json.dumps(run.report) + run.err
    assert run.report["target"] == f"redis://noconfig:***@127.0.0.1:{server.port}/0"


# -- many findings at once: read-only, no writes, batched reads ------------------------------

MESSY_FILES: dict[str, dict[str, Any]] = {
    "gone": HOURLY,
    "edited": cron("0 3 * * *", args=[1]),
    "unsched": HOURLY,
    "late": HOURLY,
    "parked": HOURLY,
    "amnesiac": HOURLY,
    "mortal": HOURLY,
    "unindexed": HOURLY,
    "static": HOURLY,
    "late-runner": HOURLY,
    "healthy": cron("15 2 * * *"),
}
MESSY_FINDINGS: set[Finding] = {
    ("missing", "error", "gone"),
    ("modified", "error", "edited"),
    ("unscheduled", "error", "unsched"),
    ("stale-score", "error", "late"),
    ("stale-score", "error", "parked"),
    ("no-history", "warning", "amnesiac"),
    ("expiring", "error", "mortal"),
    ("unmarked", "warning", "unindexed"),
    ("static-overlap", "error", "static"),
    ("overdue", "error", "late-runner"),
    ("unexpected", "warning", "dropped"),
    ("conflict", "error", "taken"),
    ("dangling", "warning", "ghost"),
    ("orphan", "warning", "leftover"),
    ("orphan", "warning", "pruned"),
    ("unmanaged", "info", "adhoc"),
    ("beat-not-running", "error", None),
}


def make_messy(bed: Bed) -> None:
    """Every kind of finding at once (beat's lock absent)."""
    bed.client.delete(BEAT_LOCK_KEY)
    bed.files({**MESSY_FILES, "dropped": HOURLY, "pruned": HOURLY})
    bed.apply()
    bed.files({**MESSY_FILES, "dropped": HOURLY})
    bed.apply("--prune")
    bed.files({**MESSY_FILES, "taken": HOURLY})
    bed.redbeat_entry("taken")
    bed.redbeat_entry("adhoc")
    client, now = bed.client, time.time()
    client.delete(PREFIX + "gone")
    bed.set_definition("edited", args=[2])
    client.zrem(SCHEDULE_KEY, PREFIX + "unsched")
    client.zadd(SCHEDULE_KEY, {PREFIX + "late": now + 30 * 86_400, PREFIX + "parked": -1})
    client.hdel(PREFIX + "amnesiac", "meta")
    client.expire(PREFIX + "mortal", 3600)
    client.srem(MANAGED_KEY, "unindexed")
    client.sadd(STATICS_KEY, "static")
    bed.set_last_run("late-runner", datetime.now(UTC) - timedelta(hours=3))
    client.zadd(SCHEDULE_KEY, {PREFIX + "late-runner": now - 7200, PREFIX + "ghost": now})
    client.hset(PREFIX + "leftover", "meta", redbeat_meta(datetime.now(UTC), 1))
    client.hset(PREFIX + "pruned", "meta", redbeat_meta(datetime.now(UTC), 1))


def test_many_findings_at_once(bed: Bed) -> None:
    make_messy(bed)
    run = bed.drift()
    assert run.code == 2
    assert run.found == MESSY_FINDINGS
    assert TOMBSTONE_RACE in run.finding("orphan", "pruned")["explanation"]
    assert TOMBSTONE_RACE not in run.finding("orphan", "leftover")["explanation"]
    assert run.finding("orphan", "leftover")["action"].startswith("not the reconciler's to remove")
    assert run.report["unmanaged_count"] == 1
    # Errors first, then warnings, then information.
    order = [f["severity"] for f in run.report["findings"]]
    assert order == sorted(order, key=["error", "warning", "info"].index)


def test_drift_never_writes(bed: Bed) -> None:
    make_messy(bed)
    before = snapshot(bed.server)
    with monitor(bed.server) as seen:
        for output in ("json", "text", "markdown"):
            assert bed.cli("drift", "--format", output).code == 2
    assert_unchanged(before, snapshot(bed.server))
    assert seen.named("hmget"), "MONITOR saw no drift reads"
    assert seen.writes() == []


def test_drift_reads_are_batched_with_scan_and_count(bed: Bed) -> None:
    names = {f"job-{index:04d}": cron(f"{index % 60} {index % 24} * * *") for index in range(400)}
    bed.files(names)
    bed.apply()
    bed.hold_beat_lock()
    with bed.client.pipeline(transaction=False) as pipe:
        for index in range(400):
            pipe.hset(f"{PREFIX}app-{index:04d}", mapping={"definition": "{}", "meta": "{}"})
        pipe.execute()

    reads_before = int(bed.client.info("stats")["total_reads_processed"])
    run = bed.drift()
    reads = int(bed.client.info("stats")["total_reads_processed"]) - reads_before
    assert run.code == 0
    assert run.report["managed_count"] == 400
    assert run.report["unmanaged_count"] == 400
    # About 2,400 commands (HMGET/ZSCORE/PTTL, TYPE/HEXISTS per key): one round trip per
    # command would be thousands of socket reads.
    assert reads < 60, f"{reads} socket reads for one drift check"

    with monitor(bed.server) as seen:
        assert bed.cli("drift").code == 0
    assert seen.named("keys") == []
    scans = seen.named("scan", "zscan", "sscan", "hscan")
    assert {command.name for command in scans} == {"scan", "zscan"}
    for command in scans:
        upper = [arg.upper() for arg in command.args]
        assert "COUNT" in upper, str(command)
        count = int(command.args[upper.index("COUNT") + 1])
        assert 100 <= count <= 10_000, str(command)
    assert all("MATCH" in [a.upper() for a in c.args] for c in scans if c.name == "scan"), (
        "a SCAN without MATCH walks every key of the database"
    )
    assert len(seen.named("scan")) <= 5
    assert len(seen.named("hmget")) == 400
    assert seen.writes() == []


def test_drift_works_with_a_read_only_user(
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("RECONCILER_REVISION", "drift-tests")
    server = redis_server_factory(extra_args=DURABLE)
    reader = server.acl_user("reader", "~*", "+@read", "+@connection", "+ping", "+info", "-@write")
    bed = bed_on(server, tmp_path, capsys)
    try:
        bed.files(ENTRIES)
        bed.apply()
        bed.hold_beat_lock()
        clean = bed.drift(url=reader)
        # Only the eviction check needs CONFIG; without it, an informational note.
        assert (clean.code, clean.found) == (0, {("eviction-risk", "info", None)})

        make_messy(bed)
        as_admin = bed.drift()
        before = snapshot(server)
        with monitor(server) as seen:
            as_reader = bed.drift(url=reader)
        assert_unchanged(before, snapshot(server))
        assert seen.writes() == []
        assert as_admin.found == MESSY_FINDINGS
        assert as_reader.found == MESSY_FINDINGS | {("eviction-risk", "info", None)}
        assert as_reader.code == 2

        # --fix needs write access: a clear error, not a crash, and nothing written.
        fixing = bed.cli("drift", "--fix", url=reader)
        assert fixing.code == 1, fixing.out + fixing.err
        assert "Traceback" not in fixing.err
        assert "s3cret-pw" not in fixing.out + fixing.err
        assert_unchanged(before, snapshot(server))
    finally:
        bed.client.close()


# -- --fix ----------------------------------------------------------------------------------


FIX_FILES: dict[str, dict[str, Any]] = {
    "gone": HOURLY,
    "edited": cron("0 3 * * *", args=[1]),
    "unsched": HOURLY,
    "late": HOURLY,
    "parked": HOURLY,
    "mortal": HOURLY,
    "amnesiac": HOURLY,
    "garbled": HOURLY,
    "unindexed": HOURLY,
    "healthy": cron("15 2 * * *"),
    "paused": cron("30 4 * * *", enabled=False),
}


def test_fix_brings_the_state_back(bed: Bed) -> None:
    bed.files({**FIX_FILES, "pruned": HOURLY})
    bed.apply()
    bed.files(FIX_FILES)
    bed.apply("--prune")
    # Beat's statics, beat's lock and an application's own entry (in a state drift would
    # call broken, were it managed) must come out of --fix byte for byte.
    bed.client.sadd(STATICS_KEY, "celery.backend_cleanup")
    bed.hold_beat_lock(ms=30_000)
    bed.redbeat_entry("adhoc")
    bed.client.zrem(SCHEDULE_KEY, PREFIX + "adhoc")
    bed.client.expire(PREFIX + "adhoc", 3600)
    untouchable = {STATICS_KEY, BEAT_LOCK_KEY, PREFIX + "adhoc"}

    client, now = bed.client, time.time()
    client.delete(PREFIX + "gone")
    bed.set_definition("edited", args=[2], options={"queue": "elsewhere"})
    client.zrem(SCHEDULE_KEY, PREFIX + "unsched")
    client.zadd(SCHEDULE_KEY, {PREFIX + "late": now + 30 * 86_400, PREFIX + "parked": -1})
    client.expire(PREFIX + "mortal", 3600)
    client.hdel(PREFIX + "amnesiac", "meta")
    client.hset(PREFIX + "garbled", "meta", "{not json")
    client.srem(MANAGED_KEY, "unindexed")
    client.hset(PREFIX + "pruned", "meta", redbeat_meta(datetime.now(UTC), 4))
    healthy_before = snapshot(bed.server)

    broken = bed.drift().found
    assert broken == {
        ("missing", "error", "gone"),
        ("modified", "error", "edited"),
        ("unscheduled", "error", "unsched"),
        ("stale-score", "error", "late"),
        ("stale-score", "error", "parked"),
        ("expiring", "error", "mortal"),
        ("no-history", "warning", "amnesiac"),
        ("bad-meta", "error", "garbled"),
        ("unmarked", "warning", "unindexed"),
        ("orphan", "warning", "pruned"),
        ("unmanaged", "info", "adhoc"),
    }

    with monitor(bed.server) as seen:
        fixed = bed.drift("--fix")
    assert (
        "drift --fix: Apply complete: 1 created, 1 updated, 0 adopted, 0 deleted, 8 repaired."
        in fixed.err
    ), fixed.err
    # The report printed is the check after the repair, with what the fix found and wrote.
    assert (fixed.code, fixed.found) == (0, {("unmanaged", "info", "adhoc")})
    fix = fixed.report["fix"]
    assert {(f["kind"], f["severity"], f["name"]) for f in fix["found"]} == broken
    assert sorted((e["action"], e["name"], *e["repairs"]) for e in fix["written"]) == [
        ("create", "gone"),
        ("repair", "amnesiac", "missing-meta"),
        ("repair", "garbled", "bad-meta"),
        ("repair", "late", "stale-score"),
        ("repair", "mortal", "expiring"),
        ("repair", "parked", "stale-score"),
        ("repair", "pruned", "orphan"),
        ("repair", "unindexed", "unmarked"),
        ("repair", "unsched", "unscheduled"),
        ("update", "edited"),
    ]
    assert fixed.report["summary"] == (
        "No drift: RedBeat matches the schedule files and is healthy (1 informational note). "
        "Fixed by drift --fix: 1 created, 1 updated, 0 adopted, 0 deleted, 8 repaired."
    )

    written = set(seen.keys_written())
    assert {PREFIX + "gone", PREFIX + "edited", PREFIX + "pruned", SCHEDULE_KEY} <= written
    assert not written & untouchable, written & untouchable
    assert_unchanged(healthy_before, snapshot(bed.server), only=untouchable | {PREFIX + "healthy"})
    assert bed.client.zscore(SCHEDULE_KEY, PREFIX + "adhoc") is None

    after = bed.drift()
    assert (after.code, after.found) == (0, {("unmanaged", "info", "adhoc")})
    plan = bed.cli("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err
    assert plan.out.startswith("No changes."), plan.out
    # What --fix wrote: the files' definitions, scores beat would compute, no TTL, no orphan.
    assert definition_of(bed.client, "edited")["args"] == [1]
    assert bed.client.ttl(PREFIX + "mortal") == -1
    assert bed.client.exists(PREFIX + "pruned") == 0
    assert bed.client.hget(PREFIX + "amnesiac", "meta")
    assert bed.client.hget(PREFIX + "garbled", "meta") != "{not json"
    assert (bed.score("parked") or 0) > now


def test_fix_never_prunes_nor_touches_what_it_does_not_own(bed: Bed) -> None:
    bed.files({"kept": HOURLY, "dropped": HOURLY})
    bed.apply()
    bed.hold_beat_lock(ms=30_000)
    bed.files({"kept": HOURLY})
    bed.client.delete(PREFIX + "kept")
    # Someone else's meta-only leftover: reported, but not the reconciler's to delete.
    bed.client.hset(PREFIX + "leftover", "meta", redbeat_meta(datetime.now(UTC), 1))
    dropped_before = snapshot(bed.server)

    fixed = bed.drift("--fix")
    assert "1 created" in fixed.err
    assert fixed.code == 2
    assert fixed.found == {
        ("unexpected", "warning", "dropped"),
        ("orphan", "warning", "leftover"),
    }
    assert_unchanged(
        dropped_before,
        snapshot(bed.server),
        only={PREFIX + "dropped", PREFIX + "leftover", BEAT_LOCK_KEY},
    )
    assert bed.client.sismember(MANAGED_KEY, "dropped")
    assert bed.drift().found == fixed.found


def test_fix_reports_what_it_found_fixed_and_left_in_every_format(applied: Bed) -> None:
    applied.client.delete(BEAT_LOCK_KEY)
    applied.hold_beat_lock(ms=60_000)  # alive for all three checks

    def break_two() -> None:
        applied.client.delete(PREFIX + "hourly")
        applied.client.zadd(SCHEDULE_KEY, {PREFIX + "nightly": time.time() + 30 * 86_400})

    summary = (
        "No drift: RedBeat matches the schedule files and is healthy. "
        "Fixed by drift --fix: 1 created, 0 updated, 0 adopted, 0 deleted, 1 repaired."
    )
    break_two()
    text = applied.cli("drift", "--fix")
    assert text.code == 0
    # On stdout, where a report goes (stderr only logs it).
    assert text.out.splitlines() == [
        "Found before the fix:",
        "  error   missing hourly",
        "  error   stale-score nightly",
        "Fixed by drift --fix:",
        "  created   hourly",
        "  repaired  nightly (stale-score)",
        "Left after the fix:",
        "  nothing",
        "",
        summary,
    ]
    assert text.err.splitlines() == [
        "drift --fix: Apply complete: 1 created, 0 updated, 0 adopted, 0 deleted, 1 repaired. "
        "(create: hourly; repair: nightly)"
    ]

    break_two()
    markdown = applied.cli("drift", "--fix", "--format", "markdown")
    assert markdown.code == 0
    lines = markdown.out.splitlines()
    assert lines[:3] == ["### :white_check_mark: RedBeat drift (`redbeat:`)", "", f"**{summary}**"]
    assert "| error | missing | `hourly` |" in lines
    assert "| error | stale-score | `nightly` |" in lines
    assert lines.index("#### Fixed by drift --fix") < lines.index("| created | `hourly` |")
    assert "| repaired (stale-score) | `nightly` |" in lines
    assert lines[-3:] == ["#### Left after the fix", "", "Nothing."]

    break_two()
    document = applied.drift("--fix").report
    assert (document["summary"], document["findings"]) == (summary, [])
    assert [(e["action"], e["name"]) for e in document["fix"]["written"]] == [
        ("create", "hourly"),
        ("repair", "nightly"),
    ]
    assert [(f["kind"], f["name"]) for f in document["fix"]["found"]] == [
        ("missing", "hourly"),
        ("stale-score", "nightly"),
    ]


def test_fix_that_cannot_repair_the_drift_says_so(applied: Bed) -> None:
    applied.client.delete(BEAT_LOCK_KEY)
    fixed = applied.cli("drift", "--fix")
    assert fixed.code == 2
    assert fixed.out.splitlines()[-1] == (
        "Drift: 1 error(s), 0 warning(s) in redbeat:. Nothing for drift --fix to repair."
    )
    assert "Found before the fix" not in fixed.out


def test_meta_only_hash_of_a_managed_name_is_an_orphan_fix_removes(bed: Bed) -> None:
    bed.files({"kept": HOURLY, "dropped": HOURLY})
    bed.apply()
    bed.hold_beat_lock(ms=30_000)
    bed.files({"kept": HOURLY})
    # Someone deletes the managed entry; a beat tick that had read it writes its meta back.
    bed.client.delete(PREFIX + "dropped")
    bed.client.hset(PREFIX + "dropped", "meta", redbeat_meta(datetime.now(UTC), 2))

    run = bed.drift()
    assert ("orphan", "warning", "dropped") in run.found, run.found
    assert "drift --fix" in bed.cli("drift", "--fix").err
    assert bed.client.exists(PREFIX + "dropped") == 0


def test_watch_with_fix_heals_each_time(applied: Bed, webhooks: Callable[..., Webhook]) -> None:
    hook = webhooks()
    applied.client.delete(PREFIX + "hourly")
    watcher = Watcher(
        applied,
        DriftRequest(webhook=hook.url, beat=NO_BEAT_LOCK, fix=True),
        interval=0.1,
        checks=3,
        actions={1: lambda: applied.client.expire(PREFIX + "nightly", 3600)},
    )
    with watcher.running():
        pass
    assert watcher.result == 0
    assert watcher.notices == [
        "drift --fix: Apply complete: 1 created, 0 updated, 0 adopted, 0 deleted, 0 repaired. "
        "(create: hourly)",
        "drift --fix: Apply complete: 0 created, 0 updated, 0 adopted, 0 deleted, 1 repaired. "
        "(repair: nightly)",
    ]
    assert applied.client.ttl(PREFIX + "nightly") == -1
    assert hook.posts == []  # healed before anything was left to alert about


def test_fix_with_nothing_to_fix_writes_nothing(applied: Bed) -> None:
    applied.client.delete(BEAT_LOCK_KEY)
    before = snapshot(applied.server)
    with monitor(applied.server) as seen:
        run = applied.drift("--fix")
    assert run.found == {("beat-not-running", "error", None)}
    assert "drift --fix" not in run.err
    assert seen.writes() == []
    assert_unchanged(before, snapshot(applied.server))


# -- webhooks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    at: float
    path: str
    content_type: str
    body: bytes
    answered: int

    @property
    def json(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded

    @property
    def status(self) -> str:
        return str(self.json["status"])

    @property
    def found(self) -> set[Finding]:
        return {(f["kind"], f["severity"], f["name"]) for f in self.json["findings"]}


class Webhook:
    """A real HTTP server on 127.0.0.1 recording each POST; answers ``statuses`` in turn,
    then 200."""

    def __init__(self, statuses: tuple[int, ...] = (), port: int = 0) -> None:
        self.posts: list[Posted] = []
        self._statuses = list(statuses)
        self._lock = threading.Lock()
        self.received = threading.Condition(self._lock)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.received:
                    answer = hook._statuses.pop(0) if hook._statuses else 200
                    hook.posts.append(
                        Posted(
                            time.monotonic(),
                            self.path,
                            self.headers.get("Content-Type", ""),
                            body,
                            answer,
                        )
                    )
                    hook.received.notify_all()
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/drift"

    @property
    def delivered(self) -> list[Posted]:
        return [post for post in self.posts if 200 <= post.answered < 300]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Posted]:
        with self.received:
            assert self.received.wait_for(lambda: len(self.posts) >= count, timeout), self.posts
            return list(self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class JunkServer:
    """Answers its first ``junk`` connections with bytes that are not HTTP, then 200s."""

    def __init__(self, junk: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.junk = junk
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                data = _read_request(connection)
                self.requests.append(data)
                if len(self.requests) <= self.junk:
                    connection.sendall(b"garbage\r\n\r\n")
                else:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def _read_request(connection: socket.socket) -> bytes:
    """The whole request (headers and body): closing with unread bytes would reset the
    connection before the client reads the answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def webhooks() -> Iterator[Callable[..., Webhook]]:
    started: list[Webhook] = []

    def start(statuses: tuple[int, ...] = (), port: int = 0) -> Webhook:
        hook = Webhook(statuses, port)
        started.append(hook)
        return hook

    yield start
    for hook in started:
        hook.close()


@dataclass
class Watcher:
    """``watch()`` in a thread; ``actions[n]`` runs (in the watcher's thread) right after
    check n has read Redis, so it changes what check n + 1 sees."""

    bed: Bed
    options: DriftRequest
    interval: float
    checks: int
    actions: dict[int, Callable[[], object]] = field(default_factory=dict)
    out: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    done: int = 0
    result: int | None = None
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    noticed: threading.Event = field(default_factory=threading.Event)

    def _echo(self, text: str) -> None:
        self.out.append(text)
        if SUMMARY_LINE.match(text):
            self.done += 1
            action = self.actions.get(self.done)
            if action is not None:
                action()

    def _notice(self, text: str) -> None:
        self.notices.append(text)
        self.noticed.set()

    def _run(self) -> None:
        try:
            request = replace(
                self.options,
                desired=Desired((self.bed.folder / "schedules",)),
                store=StoreSettings(redis_url=self.bed.url),
            )
            self.result = watch(
                request,
                Console(self._echo, self._notice),
                interval=self.interval,
                checks=self.checks,
                stop=self.stop,
            )
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    @contextlib.contextmanager
    def running(self, timeout: float = 30.0) -> Iterator[Watcher]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
            thread.join(timeout)
            assert not thread.is_alive(), f"the watcher did not finish within {timeout}s"
        finally:
            self.stop.set()
            thread.join(10)
        assert self.error is None, f"the watcher died: {self.error!r}"
        assert self.done == self.checks, (self.done, self.out, self.notices)


def test_single_run_posts_only_when_there_are_findings(
    applied: Bed, webhooks: Callable[..., Webhook]
) -> None:
    hook = webhooks()
    clean = applied.cli("drift", "--webhook", hook.url)
    assert clean.code == 0
    applied.redbeat_entry("adhoc")  # information only: no alert either
    assert applied.cli("drift", "--webhook", hook.url).code == 0
    assert hook.posts == []

    applied.client.delete(PREFIX + "hourly")
    run = applied.cli("drift", "--webhook", hook.url)
    assert run.code == 2
    (post,) = hook.wait_for(1)
    assert post.path == "/hooks/drift"
    assert post.content_type == "application/json"
    body = post.json
    assert body["status"] == "firing"
    assert body["text"].startswith(":rotating_light: RedBeat drift firing: Drift: 1 error(s)")
    assert "• *error* missing: `hourly` in the schedule files but not in Redis" in body["text"]
    assert "adhoc" not in body["text"]  # the Slack summary lists what alerts only
    assert post.found == {("missing", "error", "hourly"), ("unmanaged", "info", "adhoc")}
    assert body["target"] == applied.url
    assert body["key_prefix"] == PREFIX
    assert body["summary"] == "Drift: 1 error(s), 0 warning(s) in redbeat:."
    assert run.err == ""


def test_watch_alerts_are_deduplicated(applied: Bed, webhooks: Callable[..., Webhook]) -> None:
    hook = webhooks()
    applied.client.delete(PREFIX + "hourly")
    watcher = Watcher(
        applied,
        DriftRequest(output_format="text", webhook=hook.url, beat=NO_BEAT_LOCK),
        interval=0.1,
        checks=7,
        actions={
            2: lambda: applied.client.zrem(SCHEDULE_KEY, PREFIX + "nightly"),
            4: applied.converge,
        },
    )
    with watcher.running():
        pass
    assert watcher.result == 0
    assert [post.status for post in hook.posts] == ["firing", "firing", "resolved"]
    first, changed, resolved = hook.posts
    assert first.found == {("missing", "error", "hourly")}
    assert changed.found == {("missing", "error", "hourly"), ("unscheduled", "error", "nightly")}
    assert resolved.found == set()
    assert resolved.json["text"].startswith(":white_check_mark: RedBeat drift resolved: No drift")
    summaries = [line for line in watcher.out if SUMMARY_LINE.match(line)]
    assert [line.split(": ", 1)[1].split(":")[0] for line in summaries] == [
        "Drift",
        "Drift",
        "Drift",
        "Drift",
        "No drift",
        "No drift",
        "No drift",
    ]
    assert watcher.notices == []


def test_watch_reminds_while_unchanged(applied: Bed, webhooks: Callable[..., Webhook]) -> None:
    hook = webhooks()
    applied.client.delete(PREFIX + "hourly")
    watcher = Watcher(
        applied,
        DriftRequest(webhook=hook.url, beat=NO_BEAT_LOCK, remind_every=timedelta(seconds=1)),
        interval=0.25,
        checks=10,
    )
    with watcher.running():
        pass
    statuses = [post.status for post in hook.posts]
    assert statuses[0] == "firing"
    assert set(statuses[1:]) == {"reminder"}, statuses
    assert 2 <= len(statuses) <= 3, statuses  # about 2.25 s of checks, reminding every second
    gaps = [
        later.at - earlier.at for earlier, later in zip(hook.posts, hook.posts[1:], strict=False)
    ]
    assert all(gap >= 0.95 for gap in gaps), gaps
    reminder = hook.posts[1].json
    assert reminder["text"].startswith(":bell: RedBeat drift reminder: Drift: 1 error(s)")
    assert {(f["kind"], f["name"]) for f in reminder["findings"]} == {("missing", "hourly")}


def test_watch_cli_reminds_every_interval(
    applied: Bed, webhooks: Callable[..., Webhook], tmp_path: Path
) -> None:
    hook = webhooks()
    applied.client.delete(PREFIX + "hourly")
    result = run_reconciler(
        tmp_path,
        "drift",
        "schedules",
        "--redis-url",
        applied.url,
        "--watch",
        "--interval",
        "1",
        "--checks",
        "3",
        "--remind-every",
        "1",
        "--no-beat-lock",
        "--webhook",
        hook.url,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert [post.status for post in hook.posts] == ["firing", "reminder", "reminder"]
    # The full report is printed when an alert fires, not for each reminder.
    assert result.stdout.count("error   missing hourly:") == 1, result.stdout
    assert len([line for line in result.stdout.splitlines() if SUMMARY_LINE.match(line)]) == 3


def test_failing_webhook_is_retried_with_backoff_and_never_stops_the_watcher(
    applied: Bed, webhooks: Callable[..., Webhook]
) -> None:
    hook = webhooks(statuses=(500, 500, 500))
    applied.client.delete(PREFIX + "hourly")
    watcher = Watcher(
        applied, DriftRequest(webhook=hook.url, beat=NO_BEAT_LOCK), interval=0.1, checks=3
    )
    with watcher.running():
        pass
    assert watcher.result == 2
    assert [post.answered for post in hook.posts] == [500, 500, 500, 200]
    assert [post.status for post in hook.posts] == ["firing"] * 4
    first, second, third = (post.at for post in hook.posts[:3])
    # Backoff: 1 s, then 2 s.
    assert second - first >= 0.95, hook.posts
    assert third - second >= 1.95, hook.posts
    assert watcher.notices == [
        f"webhook delivery failed (attempt {n} of 3): HTTP 500" for n in (1, 2, 3)
    ]
    # Delivered on the next check, then nothing new to say on the third.
    assert len(hook.delivered) == 1


def test_single_run_reports_a_failed_delivery_on_stderr_and_retries(
    applied: Bed, webhooks: Callable[..., Webhook]
) -> None:
    hook = webhooks(statuses=(503,))
    applied.client.delete(PREFIX + "hourly")
    run = applied.cli("drift", "--webhook", hook.url)
    assert run.code == 2
    assert run.err == "webhook delivery failed (attempt 1 of 3): HTTP 503\n"
    assert [post.answered for post in hook.posts] == [503, 200]
    assert hook.posts[1].at - hook.posts[0].at >= 0.95
    assert hook.posts[0].body == hook.posts[1].body


def test_webhook_on_a_closed_port_is_retried_until_it_answers(
    applied: Bed, webhooks: Callable[..., Webhook]
) -> None:
    port = free_port()
    applied.client.delete(PREFIX + "hourly")
    watcher = Watcher(
        applied,
        DriftRequest(webhook=f"http://127.0.0.1:{port}/hooks/drift", beat=NO_BEAT_LOCK),
        interval=0.1,
        checks=2,
    )
    with watcher.running():
        assert watcher.noticed.wait(5)
        hook = webhooks(port=port)  # comes up during the backoff
    assert "webhook delivery failed (attempt 1 of 3)" in watcher.notices[0]
    assert "refused" in watcher.notices[0].lower(), watcher.notices
    assert [post.status for post in hook.posts] == ["firing"]
    assert watcher.result == 2


def test_webhook_answering_garbage_does_not_kill_the_watcher(applied: Bed) -> None:
    # A webhook URL pointing at something that is not an HTTP server (a wrong port, a broken
    # proxy) answers bytes that are not an HTTP status line.
    junk = JunkServer(junk=1)
    try:
        applied.client.delete(PREFIX + "hourly")
        watcher = Watcher(
            applied, DriftRequest(webhook=junk.url, beat=NO_BEAT_LOCK), interval=0.1, checks=2
        )
        with watcher.running():
            pass
        assert len(junk.requests) == 2
        assert watcher.notices[0].startswith("webhook delivery failed (attempt 1 of 3)")
        assert watcher.result == 2
    finally:
        junk.close()


def test_single_run_with_a_webhook_answering_garbage_still_reports(applied: Bed) -> None:
    junk = JunkServer(junk=1)
    try:
        applied.client.delete(PREFIX + "hourly")
        run = applied.cli("drift", "--webhook", junk.url)
    finally:
        junk.close()
    assert "error   missing hourly:" in run.out
    failures = [line for line in run.err.splitlines() if line.startswith("webhook delivery")]
    assert failures == [failures[0]], run.err
    assert failures[0].startswith("webhook delivery failed (attempt 1 of 3): "), run.err
    assert len(junk.requests) == 2  # retried, then answered
    assert "crashed" not in run.err, run.err
    assert run.code == 2


# -- metrics ----------------------------------------------------------------------------------


def run_reconciler(cwd: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        cwd=cwd,
        env=clean_env(PYTHONPATH=str(REPO_ROOT)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def wait_for_scrape(
    port: int, predicate: Callable[[dict[Any, float]], bool], process: subprocess.Popen[str]
) -> dict[Any, float]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        samples = scrape(port)
        if samples is not None and predicate(samples):
            return samples
        time.sleep(0.1)
    raise AssertionError(f"metrics never matched; last scrape: {scrape(port)}")


FINDINGS_GAUGE = "redbeat_reconciler_drift_findings"
LAST_CHECK = "redbeat_reconciler_drift_last_check_timestamp_seconds"
DURATION = "redbeat_reconciler_drift_check_duration_seconds"
ENTRIES_GAUGE = "redbeat_reconciler_entries"
FAILURES = "redbeat_reconciler_drift_check_failures_total"


def test_metrics_are_served_while_watching(
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("RECONCILER_REVISION", "drift-tests")
    server = redis_server_factory(extra_args=DURABLE)
    bed = bed_on(server, tmp_path, capsys)
    try:
        bed.files(ENTRIES)
        bed.apply()
        bed.redbeat_entry("adhoc")
        bed.client.delete(PREFIX + "hourly")
        bed.client.sadd(STATICS_KEY, "nightly")
    finally:
        bed.client.close()

    port = free_port()
    started = time.time()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "drift",
            "schedules",
            "--redis-url",
            server.url,
            "--watch",
            "--interval",
            "1",
            "--checks",
            "100",
            "--metrics-port",
            str(port),
            "--metrics-address",
            "127.0.0.1",
        ],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(REPO_ROOT)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        samples = wait_for_scrape(port, lambda s: s.get((LAST_CHECK, ()), 0) > 0, process)
        findings = {
            (dict(labels)["kind"], dict(labels)["severity"]): value
            for (name, labels), value in samples.items()
            if name == FINDINGS_GAUGE
        }
        nonzero = {key: value for key, value in findings.items() if value}
        assert nonzero == {
            ("missing", "error"): 1,
            ("static-overlap", "error"): 1,
            ("beat-not-running", "error"): 1,
            ("unmanaged", "info"): 1,
        }
        assert len(findings) == len(Kind) * len(Severity)  # every pair, zeros included
        assert started - 1 <= samples[(LAST_CHECK, ())] <= time.time()
        assert 0 < samples[(DURATION, ())] < 5
        assert samples[(ENTRIES_GAUGE, (("state", "managed"),))] == 3
        assert samples[(ENTRIES_GAUGE, (("state", "unmanaged"),))] == 1
        assert samples[(FAILURES, ())] == 0

        # Redis goes away: the check fails, is counted, and the watcher goes on.
        last_check = samples[(LAST_CHECK, ())]
        server.stop()
        samples = wait_for_scrape(port, lambda s: s.get((FAILURES, ()), 0) >= 1, process)
        assert samples[(LAST_CHECK, ())] == last_check  # the last *successful* check
        wait_for_scrape(port, lambda s: s.get((FAILURES, ()), 0) >= 2, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    # Stopped by SIGTERM: a clean shutdown (exit 0), even though the last check failed.
    assert process.returncode == 0, (process.returncode, out, err)
    assert f"Serving Prometheus metrics on 127.0.0.1:{port}/metrics" in err
    assert "drift check failed: Redis at" in err
    assert "Traceback" not in err
    assert "error   missing hourly:" in out


def test_metrics_port_in_use_is_a_clear_error(applied: Bed, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_reconciler(
            tmp_path,
            "drift",
            "schedules",
            "--redis-url",
            applied.url,
            "--watch",
            "--checks",
            "1",
            "--metrics-port",
            str(port),
            "--metrics-address",
            "127.0.0.1",
        )
    # An expected failure (another exporter holds the port): exit 1 and one clear line.
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert str(port) in result.stderr
    assert "in use" in result.stderr
