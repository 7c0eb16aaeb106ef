"""export against a real Redis: entries written by RedBeat's own API become a schedule file
that validates and that ``plan --adopt`` / ``apply --adopt`` take over without changing a
byte of their run history; what a file cannot express is reported; export never writes.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from celery.schedules import crontab, schedule
from dateutil.rrule import FR, MO
from redbeat import RedBeatScheduler, RedBeatSchedulerEntry
from redbeat.schedules import rrule
from ruamel.yaml import YAML

from reconciler.core.definitions import essence
from tests.integration.plan_apply_support import (
    MANAGED_KEY,
    PREFIX,
    STATICS_KEY,
    UTC,
    assert_unchanged,
    clean_env,
    cli_against,
    cron,
    definition_of,
    is_managed,
    isolate,
    monitor,
    redbeat_meta,
    run_cli,
    run_subprocess,
    snapshot,
    write_schedules,
)

if TYPE_CHECKING:
    from pathlib import Path

    import redis
    from celery import Celery

    from tests.integration.plan_apply_support import CliResult, CliRunner
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

PLUS_2 = timezone(timedelta(hours=2))


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


@pytest.fixture
def validate(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """``reconciler validate`` (offline: no Redis URL)."""

    def run(*paths: str) -> CliResult:
        return run_cli(capsys, "validate", *paths)

    return run


def save(app: Celery, name: str, schedule_object: Any, **fields: Any) -> None:
    """As application code creates entries: RedBeat's own API."""
    fields.setdefault("task", "app.tasks.job")
    RedBeatSchedulerEntry(name, schedule=schedule_object, app=app, **fields).save()


def save_raw(client: redis.Redis, name: str, schedule_json: Any, **fields: Any) -> None:
    """As foreign tools write entries: raw JSON, with a sorted-set member."""
    definition = {"name": name, "task": "app.tasks.job", "args": [], "kwargs": {}}
    definition.update({"options": {}, "schedule": schedule_json, "enabled": True})
    definition.update(fields)
    client.hset(PREFIX + name, "definition", json.dumps(definition))
    client.zadd(PREFIX + ":schedule", {PREFIX + name: 0})


def canonical(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True)


def read_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def application_entries(app: Celery, client: redis.Redis) -> None:
    """One of each schedule kind and option, as an application creates them."""
    save(app, "hourly", crontab(minute=0))
    save(app, "friday-13th", crontab(minute=0, hour=0, day_of_month=13, day_of_week=5))
    save(
        app,
        "nightly-report",
        crontab(minute="0", hour="3"),
        args=[1, "two", None, {"nested": [1.5, True]}],
        kwargs={"region": "eu", "on": "12:30"},
        options={
            "queue": "reports",
            "expires": 3600,
            "priority": 5,
            "headers": {"trace": {"id": "abc"}, "snowman": "☃"},
            "retry_policy": {"max_retries": 3, "interval_start": 0},
        },
    )
    save(app, "heartbeat", schedule(run_every=30))
    save(app, "rebuild", schedule(run_every=5400))
    save(app, "jitter", schedule(run_every=2.5), options={"countdown": 1})
    save(
        app,
        "month-end",
        rrule("MONTHLY", dtstart=datetime(2026, 1, 1, tzinfo=UTC), bymonthday=-1, app=app),
    )
    save(
        app,
        "mon-fri",
        rrule(
            "WEEKLY",
            dtstart=datetime(2026, 1, 5, 9, tzinfo=PLUS_2),
            byweekday=[MO, FR],
            byhour=9,
            byminute=0,
            app=app,
        ),
    )
    save(app, "paused", crontab(minute="30", hour="4"), enabled=False)
    # Beat has run some of them since.
    last_run = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    client.hset(PREFIX + "hourly", "meta", redbeat_meta(last_run, 41))
    client.hset(PREFIX + "heartbeat", "meta", redbeat_meta(datetime.now(UTC), 1_000))


APPLICATION_NAMES = [
    "friday-13th",
    "heartbeat",
    "hourly",
    "jitter",
    "mon-fri",
    "month-end",
    "nightly-report",
    "paused",
    "rebuild",
]


def test_export_validate_and_adopt_keep_every_byte_of_history(
    cli: CliRunner,
    validate: CliRunner,
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
    testbed_app: Celery,
) -> None:
    application_entries(testbed_app, redis_client)
    # And one the reconciler already manages: --all exports it too.
    write_schedules(tmp_path / "earlier", {"managed-one": cron("15 2 * * *")})
    assert cli("apply", "earlier").code == 0
    names = sorted([*APPLICATION_NAMES, "managed-one"])
    metas = {name: redis_client.hget(PREFIX + name, "meta") for name in names}
    definitions = {name: redis_client.hget(PREFIX + name, "definition") for name in names}
    assert all(metas.values())

    exported = cli("export", "--output", "schedules/")

    assert exported.code == 0, exported.err
    assert exported.out == ""
    path = tmp_path / "schedules" / "exported.yaml"
    assert exported.err_lines[-1] == (
        f"Exported 10 entries from {redis_url} (key prefix 'redbeat:'). "
        f"Wrote {path.relative_to(tmp_path)}."
    )
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Exported by redbeat-reconciler ")
    assert "key prefix 'redbeat:'" in text.splitlines()[1]
    data = read_yaml(path)
    assert data["version"] == 1
    assert list(data["schedules"]) == names
    entries = data["schedules"]
    assert entries["hourly"] == {"task": "app.tasks.job", "cron": {"minute": 0}}
    assert entries["friday-13th"]["cron"] == {
        "minute": 0,
        "hour": 0,
        "day_of_month": 13,
        "day_of_week": 5,
    }
    assert entries["nightly-report"] == {
        "task": "app.tasks.job",
        "cron": "0 3 * * *",
        "args": [1, "two", None, {"nested": [1.5, True]}],
        "kwargs": {"region": "eu", "on": "12:30"},
        "options": {
            "queue": "reports",
            "expires": 3600,
            "priority": 5,
            "headers": {"trace": {"id": "abc"}, "snowman": "☃"},
            "retry_policy": {"max_retries": 3, "interval_start": 0},
        },
    }
    assert entries["heartbeat"]["every"] == "30s"
    assert entries["rebuild"]["every"] == "1h30m"
    assert entries["jitter"]["every"] == 2.5
    assert entries["month-end"]["rrule"] == {
        "freq": "MONTHLY",
        "dtstart": "2026-01-01T00:00:00+00:00",
        "bymonthday": -1,
    }
    assert entries["mon-fri"]["rrule"] == {
        "freq": "WEEKLY",
        "dtstart": "2026-01-05T09:00:00+02:00",
        "byweekday": ["MO", "FR"],
        "byhour": 9,
        "byminute": 0,
    }
    assert entries["paused"] == {"task": "app.tasks.job", "cron": "30 4 * * *", "enabled": False}
    assert entries["managed-one"] == {"task": "app.tasks.job", "cron": "15 2 * * *"}

    validated = validate("schedules")
    assert validated.code == 0, validated.out + validated.err
    assert "10 schedules in 1 file are valid" in validated.out

    conflicting = cli("plan", "schedules")
    assert conflicting.code == 1  # not owned yet: conflicts until adopted
    plan = cli("plan", "schedules", "--adopt", "--format", "json")
    assert plan.code == 0, plan.err
    changes = json.loads(plan.out)["changes"]
    assert sorted(change["name"] for change in changes) == APPLICATION_NAMES
    assert {change["action"] for change in changes} == {"adopt"}
    assert all(change["field_changes"] == [] for change in changes), changes

    applied = cli("apply", "schedules", "--adopt")
    assert applied.code == 0, applied.err
    assert applied.out.endswith(
        f"Apply complete: 0 created, 0 updated, {len(APPLICATION_NAMES)} adopted, 0 deleted, "
        "0 repaired.\n"
    )

    for name in names:
        assert redis_client.hget(PREFIX + name, "meta") == metas[name], name
        assert is_managed(redis_client, name), name
    assert redis_client.smembers(MANAGED_KEY) == set(names)
    for name in names:
        stored = redis_client.hget(PREFIX + name, "definition") or ""
        before = definitions[name] or ""
        assert essence(json.loads(stored)) == essence(json.loads(before)), name
        if name == "mon-fri":
            # dateutil weekday objects are re-encoded as the integers they mean.
            assert definition_of(redis_client, name)["schedule"]["byweekday"] == [0, 4]
        else:
            # The same JSON values, types included (crontab ints stay ints), but for RedBeat's
            # null for no args; only the order of options may differ.
            assert canonical(stored) == canonical(before.replace('"args": null', '"args": []'))

    again = cli("plan", "schedules", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "No changes" in again.out


def test_what_a_file_cannot_express_is_reported_and_the_rest_exported(
    cli: CliRunner,
    validate: CliRunner,
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    testbed_app: Celery,
) -> None:
    save(testbed_app, "report", crontab(minute="0", hour="3"))
    save(testbed_app, "ping", schedule(run_every=30))
    save_raw(
        redis_client, "sunrise", {"__type__": "solar", "event": "sunrise", "lat": 48.8, "lon": 2.3}
    )
    save(testbed_app, "linked", schedule(run_every=60), options={"queue": "q", "link_error": "x"})
    save(testbed_app, "aligned", schedule(run_every=3600, relative=True))
    save(testbed_app, "two\nlines", schedule(run_every=60))
    save_raw(redis_client, ":reserved", {"__type__": "interval", "every": 5, "relative": False})
    redis_client.hset(PREFIX + "garbled", "definition", "{not json")
    save(testbed_app, "beat-own", crontab(minute="*/5"))
    redis_client.sadd(STATICS_KEY, "beat-own")

    result = cli("export")

    assert result.code == 1
    reported = [line for line in result.err_lines if line.startswith("not exported: ")]
    assert reported == [
        "not exported: :reserved: the schedule file format refuses its name: schedule name "
        "':reserved' starts with ':', reserved for RedBeat's own keys (:schedule, :statics, "
        ":lock) and the reconciler's bookkeeping (:reconciler:...)",
        "not exported: aligned: its interval is relative (runs aligned to the clock), which a "
        "schedule file cannot express",
        "not exported: beat-own: beat installs it from its own beat_schedule (it is in the "
        ":statics set); the reconciler never manages such names, keep it in beat's "
        "configuration",
        "not exported: garbled: its definition is not a readable JSON object",
        "not exported: linked: its options hold 'link_error', which the schedule file format "
        "does not accept (valid: queue, exchange, routing_key, priority, expires, countdown, "
        "time_limit, soft_time_limit, serializer, compression, headers, retry, retry_policy, "
        "ignore_result, shadow, delivery_mode)",
        "not exported: sunrise: solar schedules cannot be written in a schedule file (only "
        "cron, every and rrule)",
        "not exported: two\\nlines: the schedule file format refuses its name: schedule name "
        "'two\\nlines' contains the invisible or control character U+000A at position 4",
    ]
    assert result.err_lines[-1].endswith("; 7 left out (listed above).")
    assert result.err_lines[-1].startswith("Exported 2 entries from ")
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "exported.yaml").write_text(result.out, encoding="utf-8")
    assert sorted(read_yaml(tmp_path / "schedules" / "exported.yaml")["schedules"]) == [
        "ping",
        "report",
    ]
    assert validate("schedules").code == 0

    # As users see it: a real process, its exit code and streams.
    process = run_subprocess(
        "export", "--redis-url", redis_server.url, "--output", "out.yaml", cwd=tmp_path
    )
    assert process.code == 1
    assert process.out == ""
    assert process.err.count("not exported: ") == 7
    assert "Traceback" not in process.err
    assert sorted(read_yaml(tmp_path / "out.yaml")["schedules"]) == ["ping", "report"]


def test_unmanaged_leaves_out_what_the_reconciler_manages(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis, testbed_app: Celery
) -> None:
    write_schedules(tmp_path / "schedules", {"mine": cron("0 3 * * *")})
    assert cli("apply", "schedules").code == 0
    save(testbed_app, "theirs", crontab(minute="0", hour="4"))
    # Another RedBeat prefix on the same database is never read.
    redis_client.hset("other:stranger", "definition", json.dumps({"name": "stranger"}))

    everything = cli("export")
    unmanaged = cli("export", "--unmanaged")
    explicit_all = cli("export", "--all")

    assert everything.code == unmanaged.code == explicit_all.code == 0
    for result, names in ((everything, ["mine", "theirs"]), (unmanaged, ["theirs"])):
        path = tmp_path / "out.yaml"
        path.write_text(result.out, encoding="utf-8")
        assert sorted(read_yaml(path)["schedules"]) == names
    assert "(entries the reconciler does not manage)" in unmanaged.out.splitlines()[0]
    assert "(every entry, managed or not)" in everything.out.splitlines()[0]
    assert explicit_all.out.splitlines()[3:] == everything.out.splitlines()[3:]

    # The unmanaged export goes beside the managed files, then adoption converges.
    (tmp_path / "schedules" / "adopted.yaml").write_text(unmanaged.out, encoding="utf-8")
    assert cli("apply", "schedules", "--adopt").code == 0
    assert is_managed(redis_client, "theirs")
    assert "No changes" in cli("plan", "schedules").out


BEAT_BUILTIN_NOTE = (
    "skipped: celery.backend_cleanup: Celery beat's own built-in entry (beat rewrites it on "
    "every start)"
)


def start_beats_scheduler(app: Celery, tmp_path: Path) -> None:
    """What beat does on every start: RedBeat's scheduler installs Celery's default entries.
    With results that expire and a backend that cannot expire them by itself (files here),
    that is celery.backend_cleanup, daily at 04:00 (celery.beat.install_default_entries)."""
    (tmp_path / "results").mkdir()
    app.conf.result_backend = f"file://{tmp_path / 'results'}"
    app.conf.result_expires = timedelta(days=1)
    RedBeatScheduler(app=app)


def test_beats_built_in_entry_is_skipped_with_a_note_and_no_failure(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis, testbed_app: Celery
) -> None:
    start_beats_scheduler(testbed_app, tmp_path)
    assert definition_of(redis_client, "celery.backend_cleanup")["task"] == "celery.backend_cleanup"
    assert not redis_client.sismember(STATICS_KEY, "celery.backend_cleanup")
    save(testbed_app, "theirs", crontab(minute="0", hour="4"))

    for scope in ("--all", "--unmanaged"):
        result = cli("export", scope)
        assert result.code == 0, result.err
        assert result.err_lines == [
            BEAT_BUILTIN_NOTE,
            f"Exported 1 entry from {redis_client_url(redis_client)} (key prefix 'redbeat:'); "
            "1 skipped (listed above).",
        ]
        (tmp_path / "out.yaml").write_text(result.out, encoding="utf-8")
        assert sorted(read_yaml(tmp_path / "out.yaml")["schedules"]) == ["theirs"]

    # Adopting the export converges, and leaves beat's entry to beat.
    (tmp_path / "schedules").mkdir()
    (tmp_path / "out.yaml").rename(tmp_path / "schedules" / "adopted.yaml")
    assert cli("apply", "schedules", "--adopt").code == 0
    assert not is_managed(redis_client, "celery.backend_cleanup")
    assert "No changes" in cli("plan", "schedules").out


def test_drift_and_plan_never_suggest_adopting_beats_built_in_entry(
    cli: CliRunner, tmp_path: Path, testbed_app: Celery
) -> None:
    start_beats_scheduler(testbed_app, tmp_path)
    write_schedules(tmp_path / "schedules", {"mine": cron("0 3 * * *")})
    assert cli("apply", "schedules").code == 0

    drift = cli("drift", "schedules", "--no-beat-lock", "--format", "json")
    builtin = [
        finding
        for finding in json.loads(drift.out)["findings"]
        if finding["name"] == "celery.backend_cleanup"
    ]
    assert [(f["kind"], f["severity"], f["explanation"], f["action"]) for f in builtin] == [
        (
            "unmanaged",
            "info",
            "Celery beat's own built-in entry (beat rewrites it on every start)",
            "nothing to do; it is beat's, not one to export or adopt",
        )
    ]

    # Declared in the files anyway (an old export, say): refused, without a word of --adopt.
    write_schedules(
        tmp_path / "schedules",
        {"mine": cron("0 3 * * *"), "celery.backend_cleanup": cron("0 4 * * *")},
    )
    plan = cli("plan", "schedules")
    assert plan.code == 1
    conflict = [line for line in plan.out.splitlines() if "celery.backend_cleanup" in line]
    assert len(conflict) == 1, plan.out
    assert conflict[0].endswith(
        "exists in Redis but is not managed by the reconciler: it is Celery beat's own "
        "built-in entry (beat rewrites it on every start). Remove it from the schedule files"
    )
    drift = cli("drift", "schedules", "--no-beat-lock")
    assert "-> remove it from the schedule files: it is Celery beat's own built-in" in drift.out
    assert "--adopt" not in plan.out + plan.err + drift.out


def redis_client_url(client: redis.Redis) -> str:
    options = client.connection_pool.connection_kwargs
    return f"redis://{options['host']}:{options['port']}/0"


def test_output_to_a_file_a_folder_and_a_new_folder(
    cli: CliRunner, validate: CliRunner, tmp_path: Path, testbed_app: Celery
) -> None:
    save(testbed_app, "ping", schedule(run_every=30))
    (tmp_path / "existing").mkdir()
    umask = os.umask(0o022)
    os.umask(umask)
    to_stdout = cli("export")

    runs = {
        tmp_path / "single.yaml": cli("export", "--output", "single.yaml"),
        tmp_path / "nested" / "deeper" / "x.yml": cli("export", "--output", "nested/deeper/x.yml"),
        tmp_path / "existing" / "exported.yaml": cli("export", "--output", "existing"),
        tmp_path / "new-folder" / "exported.yaml": cli("export", "--output", "new-folder/"),
    }

    for path, result in runs.items():
        assert result.code == 0, result.err
        assert result.out == ""
        assert result.err_lines[-1].endswith(f"Wrote {path.relative_to(tmp_path)}.")
        written = path.read_text(encoding="utf-8")
        # The same file as on stdout, but for the time in the header.
        assert written.splitlines()[1:] == to_stdout.out.splitlines()[1:]
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain new file
        assert [leftover.name for leftover in path.parent.glob(".*")] == []

    again = cli("export", "--output", "single.yaml")
    assert again.code == 0
    assert validate("single.yaml").code == 0


def test_export_never_writes(
    cli: CliRunner,
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    testbed_app: Celery,
) -> None:
    application_entries(testbed_app, redis_client)
    write_schedules(tmp_path / "schedules", {"mine": cron("0 3 * * *")})
    assert cli("apply", "schedules").code == 0
    save_raw(redis_client, "sunrise", {"__type__": "solar", "event": "noon", "lat": 0, "lon": 0})
    redis_client.hset(PREFIX + "orphan", "meta", redbeat_meta(datetime.now(UTC), 3))
    before = snapshot(redis_server)

    with monitor(redis_server) as seen:
        runs = [
            cli("export"),
            cli("export", "--unmanaged"),
            cli("export", "--output", "out/"),
        ]

    assert [run.code for run in runs] == [1, 1, 1]
    assert seen.named("scan"), "export did not SCAN: is the MONITOR working?"
    assert [str(command) for command in seen.writes()] == []
    assert seen.named("keys") == []
    assert_unchanged(before, snapshot(redis_server))
    assert "orphan" not in runs[0].out


def test_an_unreachable_redis_is_one_clear_line(tmp_path: Path) -> None:
    result = run_subprocess(
        "export", "--redis-url", "redis://127.0.0.1:1/0", cwd=tmp_path, env=clean_env()
    )

    assert result.code == 1
    assert result.err.strip().startswith("error: Redis at redis://127.0.0.1:1/0 is not usable")
    assert "Traceback" not in result.err
