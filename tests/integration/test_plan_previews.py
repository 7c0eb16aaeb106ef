"""What the plan shows is what apply writes: next runs and beat's wake-up, on a real Redis.

For every kind of change the first of the plan's ``next_runs`` must be the score apply then
writes (the moment beat obeys): both come from one arithmetic (scheduling.clock_outcome).
An update counts from the stored last run, never from now. Beat's lock, set here as beat
sets it (a token with a PX that every tick re-sets), dates beat's sleep; the real beat is in
tests/e2e/test_beat_pickup.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.plan_apply_support import (
    BEAT_LOCK_KEY,
    PREFIX,
    SCHEDULE_KEY,
    UTC,
    cli_against,
    cron,
    isolate,
    redbeat_meta,
    write_schedules,
)

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliRunner

pytestmark = pytest.mark.integration
EVERY_10S = {"task": "app.tasks.poll", "every": "10s"}


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.delenv("REDBEAT_LOCK_KEY", raising=False)
    monkeypatch.delenv("RECONCILER_BEAT_MAX_LOOP_INTERVAL", raising=False)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


def planned(cli: CliRunner, *argv: str) -> dict[str, Any]:
    result = cli("plan", "schedules", "--format", "json", *argv)
    assert result.code == 0, result.err
    document: dict[str, Any] = json.loads(result.out)
    return document


def only(document: dict[str, Any]) -> dict[str, Any]:
    (change,) = document["changes"]
    return change


def first_run(change: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(change["next_runs"][0])


def applied(cli: CliRunner) -> None:
    result = cli("apply", "schedules")
    assert result.code == 0, result.err


def score(client: redis.Redis, name: str) -> float:
    found = client.zscore(SCHEDULE_KEY, PREFIX + name)
    assert found is not None
    return float(found)


def stored(client: redis.Redis, name: str, *, last_run: datetime | None, **fields: Any) -> None:
    """An entry as beat left it after a run at ``last_run`` (applied first, then run)."""
    client.hset(PREFIX + name, "meta", redbeat_meta(last_run, 4))
    for key, value in fields.items():
        client.hset(PREFIX + name, key, value)


# -- next runs: the plan's first run is the score apply writes --------------------------


def test_an_update_counts_from_the_stored_last_run(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    """The observed case: an every-10s entry that ran 3 s ago has its kwargs edited; the
    next run is 7 s away (last run + 10 s), not 10 s from now."""
    write_schedules(tmp_path / "schedules", {"poll": EVERY_10S})
    applied(cli)
    last_run = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=3)
    stored(redis_client, "poll", last_run=last_run)
    write_schedules(tmp_path / "schedules", {"poll": {**EVERY_10S, "kwargs": {"n": 1}}})

    change = only(planned(cli))
    applied(cli)

    assert (change["action"], change["clock"]) == ("update", "keep")
    assert first_run(change) == last_run + timedelta(seconds=10)
    assert score(redis_client, "poll") == first_run(change).timestamp()


def test_a_due_update_runs_at_beats_next_tick(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # Last run 3 h ago, schedule now hourly: a slot was missed, beat runs it once at once.
    write_schedules(tmp_path / "schedules", {"job": cron("0 3 * * *")})
    applied(cli)
    stored(redis_client, "job", last_run=datetime.now(UTC) - timedelta(hours=3))
    write_schedules(tmp_path / "schedules", {"job": cron("0 * * * *")})

    before = datetime.now(UTC)
    change = only(planned(cli))
    applied(cli)

    assert before <= first_run(change) <= datetime.now(UTC)
    assert any(warning.startswith("catch-up:") for warning in change["warnings"])
    assert score(redis_client, "job") <= datetime.now(UTC).timestamp()  # due: beat runs it


@pytest.mark.parametrize(
    ("entry", "clock"),
    [
        pytest.param(cron("0 3 * * *"), "fresh", id="create"),
        pytest.param(cron("0 3 * * *", enabled=False), "fresh", id="create-disabled"),
        pytest.param(cron("0 3 * * *", run_on_create=True), "run-now", id="run-on-create"),
    ],
)
def test_a_create_shows_the_score_it_writes(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis, entry: dict[str, Any], clock: str
) -> None:
    write_schedules(tmp_path / "schedules", {"job": entry})

    change = only(planned(cli))
    applied(cli)

    assert change["clock"] == clock
    if not change["enabled"]:
        assert change["next_runs"] == []
        assert score(redis_client, "job") == -1
    elif clock == "run-now":
        # Due at once: both the shown first run and the score are "now", seconds apart.
        assert abs(score(redis_client, "job") - first_run(change).timestamp()) < 5
    else:
        assert score(redis_client, "job") == first_run(change).timestamp()


def test_enabling_restarts_the_clock_as_shown(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"job": cron("0 3 * * *", enabled=False)})
    applied(cli)
    stored(redis_client, "job", last_run=datetime.now(UTC) - timedelta(days=3))
    write_schedules(tmp_path / "schedules", {"job": cron("0 3 * * *")})

    change = only(planned(cli))
    applied(cli)

    assert (change["clock"], change["enabling"]) == ("restart", True)
    assert score(redis_client, "job") == first_run(change).timestamp()
    assert first_run(change) > datetime.now(UTC)  # no run at once, no catch-up


@pytest.mark.parametrize(
    ("damage", "clock"),
    [
        pytest.param("score", "keep", id="stale-score"),
        pytest.param("member", "keep", id="unscheduled"),
        pytest.param("meta", "keep", id="missing-meta"),  # keep starts a history now
    ],
)
def test_a_repair_shows_the_score_it_writes(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis, damage: str, clock: str
) -> None:
    write_schedules(tmp_path / "schedules", {"job": cron("*/5 * * * *")})
    applied(cli)
    # The last 5-minute slot: the next one is ahead, so nothing is a catch-up.
    now = datetime.now(UTC)
    last_run = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    stored(redis_client, "job", last_run=last_run)
    if damage == "score":
        redis_client.zadd(SCHEDULE_KEY, {PREFIX + "job": 4_000_000_000})
    elif damage == "member":
        redis_client.zrem(SCHEDULE_KEY, PREFIX + "job")
    else:
        redis_client.hdel(PREFIX + "job", "meta")

    change = only(planned(cli))
    applied(cli)

    assert (change["action"], change["clock"]) == ("repair", clock)
    assert score(redis_client, "job") == first_run(change).timestamp()


def test_adopting_keeps_the_run_history_the_preview_counts_from(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"poll": EVERY_10S})
    applied(cli)
    last_run = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=4)
    stored(redis_client, "poll", last_run=last_run)
    redis_client.hdel(PREFIX + "poll", "reconciler")  # created by the application, say
    redis_client.srem(PREFIX + ":reconciler:managed", "poll")

    change = only(planned(cli, "--adopt"))
    result = cli("apply", "schedules", "--adopt")

    assert result.code == 0, result.err
    assert (change["clock"], change["adopt"]) == ("keep", True)
    assert first_run(change) == last_run + timedelta(seconds=10)
    assert score(redis_client, "poll") == first_run(change).timestamp()


# -- beat's wake-up, dated by its lock --------------------------------------------------


def beat_ticked(client: redis.Redis, seconds_ago: float, lock_timeout: float = 1500.0) -> None:
    """Beat's lock as a tick ``seconds_ago`` left it (RedBeat's extend re-sets the PX)."""
    client.set(BEAT_LOCK_KEY, "beat-token", px=int((lock_timeout - seconds_ago) * 1000))


def test_a_change_due_before_beat_wakes_is_expected_when_it_wakes(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"tick": cron("* * * * *")})
    beat_ticked(redis_client, seconds_ago=13)

    document = planned(cli)
    change = only(document)
    text = cli("plan", "schedules")

    beat = document["beat"]
    wakes_at = datetime.fromisoformat(beat["wakes_at"])
    expected = datetime.now(UTC) + timedelta(seconds=287)
    assert beat["state"] == "asleep"
    assert abs((wakes_at - expected).total_seconds()) < 3
    assert (beat["max_loop_interval"], beat["lock_timeout"]) == (300.0, 1500.0)
    assert beat["settings_from"] == "Celery's and RedBeat's defaults"
    assert datetime.fromisoformat(change["expected_first_run"]) == wakes_at
    assert first_run(change) < wakes_at
    assert "note: beat last ticked at about" in text.out
    assert "(from its lock's TTL; beat_max_loop_interval 300 s" in text.out
    assert "warning: beat sleeps until about" in text.out
    assert "the missed cron slot runs once then, as catch-up" in text.out
    assert redis_client.pttl(BEAT_LOCK_KEY) > 0  # read, never touched
    assert redis_client.get(BEAT_LOCK_KEY) == "beat-token"


def test_an_earlier_score_wakes_beat_sooner(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"tick": cron("* * * * *")})
    beat_ticked(redis_client, seconds_ago=13)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    redis_client.zadd(SCHEDULE_KEY, {PREFIX + "someone-elses": soon.timestamp()})

    beat = planned(cli)["beat"]

    assert datetime.fromisoformat(beat["wakes_at"]) == soon


def test_a_short_loop_interval_gives_no_warning(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # Every 30 s: a beat sleeping up to 300 s would start it late, one sleeping 5 s never.
    write_schedules(tmp_path / "schedules", {"poll": {**EVERY_10S, "every": "30s"}})
    beat_ticked(redis_client, seconds_ago=13)
    assert [w for w in only(planned(cli))["warnings"] if "beat sleeps" in w]
    beat_ticked(redis_client, seconds_ago=2, lock_timeout=25)

    document = planned(cli, "--beat-max-loop-interval", "5")
    change = only(document)

    assert document["beat"]["settings_from"] == "--beat-max-loop-interval"
    assert (
        change["expected_first_run"]
        == datetime.fromisoformat(change["next_runs"][0]).astimezone(UTC).isoformat()
    )
    assert not [w for w in change["warnings"] if "beat sleeps" in w]


def test_without_beats_lock_no_estimate_is_made_and_the_plan_says_so(
    cli: CliRunner, tmp_path: Path
) -> None:
    write_schedules(tmp_path / "schedules", {"tick": cron("* * * * *")})

    document = planned(cli)
    text = cli("plan", "schedules")

    assert only(document)["expected_first_run"] is None
    assert document["beat"]["state"] == "no-lock"
    assert (
        "note: no estimate of when beat picks up changes: its lock redbeat::lock is absent"
        in text.out
    )


def test_a_custom_lock_key_is_read_where_beat_keeps_it(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"tick": cron("* * * * *")})
    redis_client.set(PREFIX + "beat-lock", "t", px=1_490_000)

    document = planned(cli, "--beat-lock-key", "beat-lock")

    assert document["beat"]["lock_key"] == "redbeat:beat-lock"
    assert document["beat"]["state"] == "asleep"


def test_no_beat_lock_means_no_estimate(cli: CliRunner, tmp_path: Path) -> None:
    write_schedules(tmp_path / "schedules", {"tick": cron("* * * * *")})

    document = planned(cli, "--no-beat-lock")

    assert document["beat"]["state"] == "unknown"
    assert "beat takes no lock" in document["beat"]["message"]


# -- drift: a loop interval long for the schedules beat runs ----------------------------


def test_drift_warns_when_beats_loop_is_longer_than_the_shortest_schedule(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"poll": {**EVERY_10S, "every": "30s"}})
    applied(cli)
    beat_ticked(redis_client, seconds_ago=1)

    assumed = cli("drift", "schedules", "--format", "json")
    known = cli("drift", "schedules", "--format", "json", "--beat-max-loop-interval", "300")
    short = cli("drift", "schedules", "--format", "json", "--beat-max-loop-interval", "10")

    def pickup(result: Any) -> list[tuple[str, str]]:
        findings = json.loads(result.out)["findings"]
        return [(f["severity"], f["action"]) for f in findings if f["kind"] == "slow-pickup"]

    advice = "set beat_max_loop_interval to 30 s or less in beat's Celery configuration"
    # The defaults are assumed: a note, not an alert; beat's real setting makes it one.
    assert [severity for severity, _ in pickup(assumed)] == ["info"]
    ((severity, action),) = pickup(known)
    assert severity == "warning"
    assert action.startswith(advice)
    assert pickup(short) == []
    alerting = [
        sum(f["severity"] != "info" for f in json.loads(result.out)["findings"])
        for result in (assumed, known)
    ]
    assert alerting[1] == alerting[0] + 1
    assert known.code == 2


def test_the_loop_interval_from_the_environment_is_named_as_such(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_schedules(tmp_path / "schedules", {"tick": cron("* * * * *")})
    beat_ticked(redis_client, seconds_ago=1, lock_timeout=50)
    monkeypatch.setenv("RECONCILER_BEAT_MAX_LOOP_INTERVAL", "10")

    beat = planned(cli)["beat"]

    assert (beat["settings_from"], beat["max_loop_interval"]) == (
        "RECONCILER_BEAT_MAX_LOOP_INTERVAL",
        10.0,
    )
    assert beat["state"] == "asleep"


# -- policies that must survive the time between plan and apply ----------------------------


def test_a_saved_repair_with_an_edited_clock_is_refused(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"job": cron("0 3 * * *")})
    applied(cli)
    redis_client.expire(PREFIX + "job", 3600)  # a repair that touches neither meta nor score
    assert cli("plan", "schedules", "--out", "p.json").code == 0
    path = tmp_path / "p.json"
    document = json.loads(path.read_text())
    assert document["changes"][0]["clock"] == "untouched"
    meta = redis_client.hget(PREFIX + "job", "meta")
    document["changes"][0]["clock"] = "run-now"  # would wipe the run history and fire it
    path.write_text(json.dumps(document))

    refused = cli("apply", "--plan", "p.json")

    assert refused.code == 1
    assert "the plan file does not match" in refused.err
    assert redis_client.hget(PREFIX + "job", "meta") == meta


def test_a_saved_plan_edited_to_delete_an_entry_as_an_orphan_is_refused(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    """An orphan repair deletes the key; one added by hand, for an entry the plan leaves
    alone (so the live fingerprint covers it already), must never delete it."""
    write_schedules(tmp_path / "schedules", {"job": cron("0 3 * * *"), "keep": cron("0 4 * * *")})
    applied(cli)
    redis_client.expire(PREFIX + "job", 3600)  # one change to save
    assert cli("plan", "schedules", "--out", "p.json").code == 0
    path = tmp_path / "p.json"
    document = json.loads(path.read_text())
    assert [change["name"] for change in document["changes"]] == ["job"]
    assert "keep" in document["unchanged"]
    forged = {**document["changes"][0], "name": "keep", "clock": "untouched"}
    forged["repairs"] = [{"kind": "orphan", "text": "a beat tick re-created it"}]
    # As the writer's check under the lock would find it: the entry as it is in Redis.
    forged["live_definition"] = redis_client.hget(PREFIX + "keep", "definition")
    document["changes"].append(forged)
    path.write_text(json.dumps(document))
    before = redis_client.hgetall(PREFIX + "keep")

    refused = cli("apply", "--plan", "p.json")

    assert refused.code == 1
    assert "the plan file does not match" in refused.err
    assert redis_client.hgetall(PREFIX + "keep") == before


def test_run_history_beat_writes_after_the_plan_is_kept(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    """An update planned for an entry with no run history (so it would start one now) is
    applied after beat ran the entry: the saved plan still applies, and beat's history is
    kept rather than restarted."""
    write_schedules(tmp_path / "schedules", {"poll": {**EVERY_10S, "every": "1h"}})
    applied(cli)
    redis_client.hdel(PREFIX + "poll", "meta")
    write_schedules(tmp_path / "schedules", {"poll": {**EVERY_10S, "every": "1h", "args": [1]}})
    assert cli("plan", "schedules", "--out", "p.json").code == 0
    ran = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=50)
    stored(redis_client, "poll", last_run=ran)  # beat ran it meanwhile (no meta: at once)

    result = cli("apply", "--plan", "p.json")

    assert result.code == 0, result.err
    assert json.loads(redis_client.hget(PREFIX + "poll", "meta"))["total_run_count"] == 4
    assert score(redis_client, "poll") == (ran + timedelta(hours=1)).timestamp()


def test_a_score_written_after_beats_tick_does_not_wake_it(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"tick": cron("* * * * *")})
    beat_ticked(redis_client, seconds_ago=10)
    # An earlier apply's catch-up score, 3 s ago: beat, asleep since its tick, never saw it.
    written = datetime.now(UTC) - timedelta(seconds=3)
    redis_client.zadd(SCHEDULE_KEY, {PREFIX + "caught-up": written.timestamp()})

    beat = planned(cli)["beat"]

    assert beat["state"] == "asleep"
    wakes_at = datetime.fromisoformat(beat["wakes_at"])
    assert abs((wakes_at - (datetime.now(UTC) + timedelta(seconds=290))).total_seconds()) < 3


def test_an_entry_left_due_at_the_tick_keeps_beat_waking(
    cli: CliRunner, tmp_path: Path, redis_client: redis.Redis
) -> None:
    write_schedules(tmp_path / "schedules", {"tick": cron("* * * * *")})
    beat_ticked(redis_client, seconds_ago=1)
    # A disabled entry left due: RedBeat re-checks it every 5 s, so beat wakes that often.
    redis_client.zadd(SCHEDULE_KEY, {PREFIX + "paused": 1_000_000.0})

    beat = planned(cli)["beat"]

    wakes_at = datetime.fromisoformat(beat["wakes_at"])
    assert (wakes_at - datetime.now(UTC)).total_seconds() < 5
