"""``${env:NAME}`` against a real Redis: beat's definition gets the value, nothing else does.

Every output of every command (stdout, stderr, saved plans, history, exported files) and
every Redis command the reconciler sends (MONITOR) is searched for the secret values.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.core.secrets import sensitive_in_marker
from reconciler.store.keys import MARKER_FIELD
from tests.integration.plan_apply_support import (
    HISTORY_KEY,
    PREFIX,
    assert_unchanged,
    cli_against,
    definition_of,
    isolate,
    monitor,
    run_cli,
    snapshot,
)

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliResult, CliRunner
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

FIRST = "tok-FIRST-5e1f9a"
SECOND = "tok-SECOND-77b3c0"
SCHEDULES = """\
version: 1
schedules:
  billing-sync:
    task: app.tasks.sync
    every: 5m
    args: ["${env:BILLING_TOKEN}"]
    kwargs: {auth: {header: "Bearer ${env:BILLING_TOKEN}"}, note: "literal $${env:X}"}
    options: {queue: billing}
  plain:
    task: app.tasks.plain
    every: 1h
"""


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("RECONCILER_REVISION", "secrets-test")
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "billing.yaml").write_text(SCHEDULES)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


def shown(*results: CliResult) -> str:
    return "\n".join(result.out + result.err for result in results)


def assert_hidden(text: str) -> None:
    for secret in (FIRST, SECOND):
        assert secret not in text, f"{secret} shown in:\n{text}"


def planned_rotation(cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Apply with the first secret, then save the plan that rotates it to the second."""
    monkeypatch.setenv("BILLING_TOKEN", FIRST)
    assert cli("apply", "--auto-approve").code == 0
    monkeypatch.setenv("BILLING_TOKEN", SECOND)
    saved = tmp_path / "rotate.json"
    assert cli("plan", "--out", str(saved)).code == 0
    return saved


def assert_refused(cli: CliRunner, server: RedisServer, saved: Path, message: str) -> CliResult:
    """``apply --plan saved`` exits 1 saying ``message``, with Redis byte for byte as it was."""
    before = snapshot(server)
    result = cli("apply", "--plan", str(saved), "--auto-approve")
    assert result.code == 1, shown(result)
    assert message in result.err
    assert_unchanged(before, snapshot(server))
    return result


def test_apply_gives_beat_the_value_and_shows_it_nowhere(
    cli: CliRunner,
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", FIRST)
    outputs = [cli("plan", "--format", fmt) for fmt in ("text", "json", "markdown")]
    saved = tmp_path / "plan.json"
    outputs.append(cli("plan", "--out", str(saved)))
    with monitor(redis_server) as seen:
        outputs.append(cli("apply", "--auto-approve"))
    outputs.append(cli("history", "--format", "json"))
    outputs.append(cli("drift", "schedules", "--format", "json", "--no-beat-lock"))

    assert outputs[4].code == 0, shown(outputs[4])
    definition = definition_of(redis_client, "billing-sync")
    assert definition["args"] == [FIRST]
    assert definition["kwargs"] == {
        "auth": {"header": f"Bearer {FIRST}"},
        "note": "literal ${env:X}",
    }
    marker = redis_client.hget(PREFIX + "billing-sync", MARKER_FIELD)
    assert sensitive_in_marker(marker) == {
        ("args", 0): "${env:BILLING_TOKEN}",
        ("kwargs", "auth", "header"): "Bearer ${env:BILLING_TOKEN}",
    }
    # The plain entry's marker is the plain one.
    assert sensitive_in_marker(redis_client.hget(PREFIX + "plain", MARKER_FIELD)) == {}
    # The value travelled to Redis exactly once per place: in the definition HSET.
    carrying = [command for command in seen.commands if FIRST in str(command)]
    assert [command.name for command in carrying] == ["hset"], carrying
    assert_hidden(shown(*outputs[:4], *outputs[5:]) + saved.read_text())
    assert_hidden(json.dumps(redis_client.xrange(HISTORY_KEY)))
    # The test server runs without persistence (a warning); the entries match the files.
    findings = json.loads(outputs[-1].out)["findings"]
    assert [finding["kind"] for finding in findings] == ["eviction-risk"], findings


def test_a_rotated_secret_is_detected_applied_and_masked(
    cli: CliRunner, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", FIRST)
    assert cli("apply", "--auto-approve").code == 0
    meta_before = redis_client.hget(PREFIX + "billing-sync", "meta")

    monkeypatch.setenv("BILLING_TOKEN", SECOND)
    plan = cli("plan", "--detailed-exitcode")
    drift = cli("drift", "schedules")
    apply = cli("apply", "--auto-approve")
    again = cli("plan", "--detailed-exitcode")

    assert plan.code == 2, shown(plan)
    assert "~ billing-sync  (update)" in plan.out
    assert (
        'args[0]: "(sensitive value) ${env:BILLING_TOKEN}" -> '
        '"(sensitive value) ${env:BILLING_TOKEN} (changed)"'
    ) in plan.out
    assert drift.code == 2, shown(drift)
    assert "billing-sync" in drift.out
    assert apply.code == 0, shown(apply)
    assert definition_of(redis_client, "billing-sync")["args"] == [SECOND]
    # An update keeps the run history.
    assert redis_client.hget(PREFIX + "billing-sync", "meta") == meta_before
    assert again.code == 0, shown(again)
    assert_hidden(shown(plan, drift, apply, again))


def test_a_missing_variable_stops_everything_before_redis(
    cli: CliRunner, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BILLING_TOKEN", raising=False)
    before = snapshot(redis_server)

    with monitor(redis_server) as seen:
        results = [cli(command) for command in ("plan", "apply", "drift")]

    for result in results:
        assert result.code == 1, shown(result)
        assert result.err_lines[0] == (
            "schedules/billing.yaml:6:12: ${env:BILLING_TOKEN} is not set (or is empty), but "
            "schedule 'billing-sync' passes it in args[0]; set it in the environment of "
            "plan, apply and drift (e.g. from a CI secret)"
        ), result.err
        assert result.err_lines[-1] == (
            "error: 1 environment variable referenced by the schedule files is not set "
            "(BILLING_TOKEN); nothing was read from or written to Redis"
        )
    # Not a single command from the reconciler (HELLO is the monitor's end probe connecting).
    assert [command for command in seen.commands if command.name != "hello"] == []
    assert_unchanged(before, snapshot(redis_server))


def test_validate_needs_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "validate")
    assert result.code == 0, shown(result)


def test_a_saved_plan_applies_only_with_the_same_secret(
    cli: CliRunner,
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    saved = planned_rotation(cli, monkeypatch, tmp_path)
    document: dict[str, Any] = json.loads(saved.read_text())
    [change] = document["changes"]
    assert change["sensitive_paths"] == [["args", 0], ["kwargs", "auth", "header"]]
    assert document["secret_digest"].startswith("scrypt:")
    assert_hidden(saved.read_text())

    # Between plan and apply the secret changed again: the plan is not what runs now.
    monkeypatch.setenv("BILLING_TOKEN", "tok-THIRD")
    stale = assert_refused(
        cli, redis_server, saved, "a value from the environment changed since the plan was made"
    )

    # With the secret it was planned with, the saved plan applies exactly.
    monkeypatch.setenv("BILLING_TOKEN", SECOND)
    applied = cli("apply", "--plan", str(saved), "--auto-approve")
    assert applied.code == 0, shown(applied)
    assert definition_of(redis_client, "billing-sync")["args"] == [SECOND]
    assert cli("plan", "--detailed-exitcode").code == 0
    assert_hidden(shown(stale, applied))


def test_export_gives_back_the_reference(
    cli: CliRunner,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", FIRST)
    assert cli("apply", "--auto-approve").code == 0

    exported = cli("export")
    assert exported.code == 0, shown(exported)
    assert_hidden(shown(exported))
    assert '"${env:BILLING_TOKEN}"' in exported.out or "${env:BILLING_TOKEN}" in exported.out
    assert "literal $${env:X}" in exported.out

    # The exported file is a valid replacement: validate passes and a plan of it (with the
    # same secret) finds nothing to change.
    (tmp_path / "schedules" / "billing.yaml").unlink()
    (tmp_path / "schedules" / "exported.yaml").write_text(exported.out)
    assert run_cli(capsys, "validate").code == 0
    assert cli("plan", "--detailed-exitcode").code == 0


def test_a_refused_write_does_not_quote_the_secret(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A user allowed everything but HSET: redis-py's error quotes the refused command, i.e.
    # the definition with the secret in it.
    redis_client.execute_command("ACL", "SETUSER", "nohset", "on", ">pw", "~*", "&*", "+@all")
    redis_client.execute_command("ACL", "SETUSER", "nohset", "-hset")
    try:
        url = f"redis://nohset:pw@{redis_server.host}:{redis_server.port}/0"
        monkeypatch.setenv("BILLING_TOKEN", FIRST)
        result = run_cli(capsys, "apply", "--auto-approve", "--redis-url", url)
    finally:
        redis_client.execute_command("ACL", "DELUSER", "nohset")

    assert result.code == 1, shown(result)
    assert "Redis refused a write: " in result.err
    assert "nothing was written" in result.err
    assert_hidden(shown(result))


def test_a_secret_changed_in_redis_after_the_plan_makes_it_stale(
    cli: CliRunner,
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    saved = planned_rotation(cli, monkeypatch, tmp_path)

    # Someone writes yet another value into Redis by hand: the masked live fingerprint
    # cannot see it, the plan's digest of the masked values does.
    definition = definition_of(redis_client, "billing-sync")
    definition["args"] = ["tok-BY-HAND"]
    redis_client.hset(PREFIX + "billing-sync", "definition", json.dumps(definition))

    assert_refused(
        cli, redis_server, saved, "a value from the environment changed since the plan was made"
    )


def test_a_saved_plan_whose_repair_drops_the_sensitive_paths_is_refused(
    cli: CliRunner,
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("BILLING_TOKEN", FIRST)
    assert cli("apply", "--auto-approve").code == 0
    redis_client.persist(PREFIX + "billing-sync")
    redis_client.expire(PREFIX + "billing-sync", 3600)  # a TTL: planned as a repair
    saved = tmp_path / "repair.json"
    assert cli("plan", "--out", str(saved)).code == 0
    document = json.loads(saved.read_text())
    [repair] = document["changes"]
    assert repair["action"] == "repair"
    repair["marker"] = '{"managed_by": "redbeat-reconciler", "format": 1}'
    saved.write_text(json.dumps(document))

    assert_refused(cli, redis_server, saved, "does not match what its schedule files")


def test_a_short_secret_does_not_corrupt_machine_output(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A one-character value appears in any JSON text; reports are masked where they are
    # built, so the JSON still parses and shows no value.
    monkeypatch.setenv("BILLING_TOKEN", "1")
    result = cli("plan", "--format", "json")

    assert result.code == 0, shown(result)
    document = json.loads(result.out)
    assert document["format_version"] == 2
    assert document["summary"]["create"] == 2
