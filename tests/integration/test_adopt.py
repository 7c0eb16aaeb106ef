"""Adopting an entry whose definition already matches the files: its own action, same writes.

Until plan format 2 such an adoption was an update with ``adopt`` set. The writer must
still write exactly what it wrote then (the files' bytes, the marker, the index entry, the
score beat would compute from the kept run history), and leave the run history alone.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from celery.schedules import crontab
from redbeat import RedBeatSchedulerEntry

from reconciler.api import StoreSettings, apply_plan, load_schedules, make_plan, open_store
from reconciler.core.plan import Action
from reconciler.store.keys import KeySpace
from tests.integration.plan_apply_support import (
    MARKER_FIELD,
    MARKER_VALUE,
    UTC,
    CliRunner,
    cli_against,
    cron,
    history_records,
    is_managed,
    isolate,
    next_daily,
    redbeat_meta,
    timestamp,
    write_schedules,
)
from tests.support.celery_app import close_app, make_app

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def _application_entry(redis_url: str, client: redis.Redis, prefix: str, meta: str) -> None:
    """'report' as the application saved it with RedBeat's API, run by beat since, its
    definition's keys since reordered (as a web UI writing raw JSON would): the same essence,
    other bytes, so adopting must write the files' bytes."""
    app = make_app(redis_url, key_prefix=prefix)
    try:
        RedBeatSchedulerEntry(
            "report", "app.tasks.job", crontab(minute="0", hour="3"), args=[1], app=app
        ).save()
    finally:
        close_app(app)
    definition = json.loads(client.hget(prefix + "report", "definition") or "")
    reordered = json.dumps(dict(reversed(definition.items())))
    client.hset(prefix + "report", mapping={"definition": reordered, "meta": meta})


def test_adopt_writes_exactly_what_an_adopting_update_wrote(
    redis_url: str,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("RECONCILER_REVISION", "adopt-tests")
    write_schedules(tmp_path / "schedules", {"report": cron("0 3 * * *", args=[1])})
    loaded = load_schedules([tmp_path / "schedules"])
    moment = datetime.now(UTC).replace(microsecond=0)
    last_run = moment - timedelta(hours=2)
    meta = redbeat_meta(last_run, 17)
    raw = redis_server.client(decode_responses=False)
    dumps, names, definitions = {}, {}, {}
    # The same entry under two prefixes: written as format 1 planned it, and as format 2 does.
    for prefix, action in (("old:", Action.UPDATE), ("new:", Action.ADOPT)):
        _application_entry(redis_url, redis_client, prefix, meta)
        settings = StoreSettings(redis_url=redis_url, key_prefix=prefix)
        with open_store(settings, notice=lambda _text: None) as store:
            plan = make_plan(store, loaded, adopt=True, now=moment)
            [change] = plan.changes
            assert (change.action, change.adopt, change.field_changes) == (Action.ADOPT, True, ())
            plan = replace(plan, changes=(replace(change, action=action),))
            result = apply_plan(store, plan, now=lambda: moment)
        names[prefix] = {action: found for action, found in result.names.items() if found}
        definitions[prefix] = change.definition
        keys = KeySpace(prefix)
        dumps[prefix] = (
            raw.dump(keys.entry("report")),
            raw.zscore(keys.schedule, keys.entry("report")),
            raw.smembers(keys.managed),
            raw.pttl(keys.entry("report")),
        )
    raw.close()

    assert dumps["new:"] == dumps["old:"]
    assert names == {"old:": {"update": ["report"]}, "new:": {"adopt": ["report"]}}
    stored = redis_client.hgetall("new:report")
    assert stored == {"definition": definitions["new:"], "meta": meta, MARKER_FIELD: MARKER_VALUE}
    assert json.loads(stored["definition"])["args"] == [1]
    # Beat's own next run after the kept last run: no immediate run, none lost.
    assert redis_client.zscore("new::schedule", "new:report") == timestamp(
        next_daily(3, 0, last_run)
    )
    [record] = redis_client.xrange(KeySpace("new:").history)
    assert json.loads(record[1]["names"]) == {"adopt": ["report"]}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


def test_a_saved_adoption_applies_as_adopted(
    cli: CliRunner,
    redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolate(monkeypatch, tmp_path)
    meta = redbeat_meta(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2), 17)
    _application_entry(redis_url, redis_client, "redbeat:", meta)
    write_schedules(tmp_path / "schedules", {"report": cron("0 3 * * *", args=[1])})
    saved = cli("plan", "schedules", "--adopt", "--out", "saved.json")
    assert saved.code == 0, saved.err
    assert "  = report  (adopt)" in saved.out
    path = tmp_path / "saved.json"
    document = json.loads(path.read_text())
    assert [change["action"] for change in document["changes"]] == ["adopt"]
    assert document["changes"][0]["clock"] == "keep"

    applied = cli("apply", "--plan", "saved.json")

    assert applied.code == 0, applied.err
    assert "  = report  (adopt)" in applied.out
    assert applied.out.endswith(
        "Apply complete: 0 created, 0 updated, 1 adopted, 0 deleted, 0 repaired.\n"
    )
    assert is_managed(redis_client, "report")
    assert redis_client.hget("redbeat:report", "meta") == meta
    [record] = history_records(redis_client)
    assert json.loads(record["names"]) == {"adopt": ["report"]}
