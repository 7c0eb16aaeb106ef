"""Targets and overlays against a real Redis: each target takes its Redis URL from the
variable its configuration names, its own key prefix and its overlays; what apply writes
is what the plan showed; a missing variable writes nothing and never falls back to the
embedded Redis; a saved plan goes stale when an overlay changes.

Both targets live in the one test server under different key prefixes, so each test also
shows that a target never touches another's keys.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.plan_apply_support import (
    assert_unchanged,
    isolate,
    run_cli,
    snapshot,
)

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliResult
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

CLOSED = "redis://127.0.0.1:1/0"  # nothing listens: a URL that must not be used
CONFIG = """
paths = ["schedules"]

[targets.staging]
redis-url-env = "STAGING_REDIS_URL"
key-prefix = "staging:"

[targets.production]
redis-url-env = "PRODUCTION_REDIS_URL"
key-prefix = "production:"
overlays = ["overlays/production.yaml"]
"""
SCHEDULES = """
version: 1
defaults:
  options: {queue: reports}
schedules:
  nightly-report:
    task: app.tasks.report
    cron: "0 3 * * *"
    kwargs: {fmt: pdf}
  heartbeat:
    task: app.tasks.ping
    every: 30s
"""
PRODUCTION = """
version: 1
patches:
  nightly-report:
    options: {queue: reports-prod}
"""


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Path:
    """A repository with schedules/, overlays/ and reconciler.toml; both targets' URL
    variables point at the test server."""
    isolate(monkeypatch, tmp_path)
    for variable in ("RECONCILER_APP", "RECONCILER_CONFIG", "RECONCILER_TARGET"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("REDBEAT_LOCK_KEY", raising=False)
    (tmp_path / ".git").mkdir()
    write(tmp_path, "reconciler.toml", CONFIG)
    write(tmp_path, "schedules/reports.yaml", SCHEDULES)
    write(tmp_path, "overlays/production.yaml", PRODUCTION)
    monkeypatch.setenv("STAGING_REDIS_URL", redis_url)
    monkeypatch.setenv("PRODUCTION_REDIS_URL", redis_url)
    return tmp_path


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def definition(client: redis.Redis, key: str) -> dict[str, Any]:
    text = client.hget(key, "definition")
    assert text is not None, f"{key} has no definition"
    decoded: dict[str, Any] = json.loads(text)
    return decoded


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    return run_cli(capsys, *argv)


def test_plan_and_apply_a_target_with_the_url_its_configuration_names(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis
) -> None:
    planned = cli(capsys, "plan", "--target", "staging")
    assert planned.code == 0, planned.err
    assert planned.out.splitlines()[0] == "Target: staging"
    assert "Plan: 2 to create" in planned.out
    assert redis_client.dbsize() == 0  # plan never writes

    applied = cli(capsys, "apply", "--target", "staging")
    assert applied.code == 0, applied.err
    assert "Apply complete: 2 created" in applied.out
    assert definition(redis_client, "staging:nightly-report")["options"] == {"queue": "reports"}
    assert redis_client.zscore("staging::schedule", "staging:heartbeat") is not None
    assert not [key for key in redis_client.scan_iter() if not key.startswith("staging:")]
    assert (
        cli(capsys, "plan", "--target", "staging")
        .out.rstrip()
        .endswith("No changes. RedBeat matches the schedule files (2 unchanged).")
    )


def test_the_production_overlay_changes_the_queue_and_the_plan_says_so(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis
) -> None:
    planned = cli(capsys, "plan", "--target", "production")
    assert planned.code == 0, planned.err
    lines = planned.out.splitlines()
    nightly = lines.index("  + nightly-report  (create)")
    assert lines[nightly + 1] == (
        "        from schedules/reports.yaml:5:3, overlay overlays/production.yaml:3:3"
    )
    heartbeat = lines.index("  + heartbeat  (create)")
    assert lines[heartbeat + 1] == "        from schedules/reports.yaml:9:3"

    document = json.loads(cli(capsys, "plan", "--target", "production", "--format", "json").out)
    assert document["target_name"] == "production"
    assert document["key_prefix"] == "production:"
    overlays = {change["name"]: change["overlays"] for change in document["changes"]}
    assert overlays == {"nightly-report": ["overlays/production.yaml:3:3"], "heartbeat": []}
    markdown = cli(capsys, "plan", "--target", "production", "--format", "markdown").out
    assert markdown.startswith("### RedBeat schedule plan for target `production`")

    assert cli(capsys, "apply", "--target", "production").code == 0
    assert cli(capsys, "apply", "--target", "staging").code == 0
    stored = definition(redis_client, "production:nightly-report")
    assert stored["options"] == {"queue": "reports-prod"}
    assert stored["kwargs"] == {"fmt": "pdf"}
    assert definition(redis_client, "staging:nightly-report")["options"] == {"queue": "reports"}


def test_drift_export_and_history_follow_the_target(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis
) -> None:
    assert cli(capsys, "apply", "--target", "production").code == 0

    def findings() -> set[tuple[str, str | None]]:
        # The test server runs without persistence, which drift warns about ('eviction-risk'),
        # and beat's loop interval is not given ('slow-pickup', a note for the heartbeat).
        result = cli(
            capsys, "drift", "--target", "production", "--no-beat-lock", "--format", "json"
        )
        assert result.code in (0, 2), result.err
        found = {(item["kind"], item.get("name")) for item in json.loads(result.out)["findings"]}
        return {item for item in found if item[0] not in ("eviction-risk", "slow-pickup")}

    # With the overlay the live entries match; the plain files would not (the queue).
    assert findings() == set()
    redis_client.hset(
        "production:nightly-report",
        "definition",
        json.dumps({**definition(redis_client, "production:nightly-report"), "options": {}}),
    )
    assert ("modified", "nightly-report") in findings()

    exported = cli(capsys, "export", "--target", "production")
    assert exported.code == 0, exported.err
    assert "heartbeat:" in exported.out
    assert "production:" in exported.err  # the source it read: the target's prefix
    history = cli(capsys, "history", "--target", "production", "--format", "json")
    assert history.code == 0
    assert len(json.loads(history.out)) == 1
    staging_history = cli(capsys, "history", "--target", "staging", "--format", "json")
    assert json.loads(staging_history.out) == []


def test_a_typed_redis_url_beats_the_configuration(
    capsys: pytest.CaptureFixture[str],
    redis_client: redis.Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRODUCTION_REDIS_URL", CLOSED)
    applied = cli(capsys, "apply", "--target", "production", "--redis-url", redis_url)
    assert applied.code == 0, applied.err
    assert definition(redis_client, "production:nightly-report")["options"]["queue"] == (
        "reports-prod"
    )


def test_the_target_beats_an_environment_variable_with_a_notice(
    capsys: pytest.CaptureFixture[str],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDBEAT_REDIS_URL", CLOSED)
    monkeypatch.setenv("REDBEAT_KEY_PREFIX", "ambient:")
    applied = cli(capsys, "apply", "--target", "production")
    assert applied.code == 0, applied.err
    assert applied.err_lines[:2] == [
        "notice: REDBEAT_KEY_PREFIX is set but target 'production' sets key-prefix; using the "
        "target's",
        "notice: REDBEAT_REDIS_URL is set but target 'production' sets redis-url-env "
        "($PRODUCTION_REDIS_URL); using the target's",
    ]
    assert redis_client.exists("production:nightly-report")
    assert not list(redis_client.scan_iter("ambient:*"))


@pytest.mark.parametrize("command", ["plan", "apply", "drift", "history", "export"])
def test_a_missing_url_variable_writes_nothing_and_starts_no_embedded_redis(
    capsys: pytest.CaptureFixture[str],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    project: Path,
    command: str,
) -> None:
    assert cli(capsys, "apply", "--target", "staging").code == 0
    before = snapshot(redis_server)
    monkeypatch.delenv("PRODUCTION_REDIS_URL")

    result = cli(capsys, command, "--target", "production")

    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "error: target 'production' takes its Redis URL from $PRODUCTION_REDIS_URL, which is "
        "not set\n"
    )
    assert_unchanged(before, snapshot(redis_server))
    assert not (project / ".reconciler").exists()  # the embedded Redis's folder


def test_a_saved_plan_goes_stale_when_the_overlay_changes(
    capsys: pytest.CaptureFixture[str], redis_server: RedisServer, project: Path
) -> None:
    saved = cli(capsys, "plan", "--target", "production", "--out", "plan.json")
    assert saved.code == 0, saved.err
    document = json.loads((project / "plan.json").read_text())
    assert (document["target_name"], document["overlay_paths"]) == (
        "production",
        ["overlays/production.yaml"],
    )
    write(project, "overlays/production.yaml", PRODUCTION.replace("reports-prod", "reports-eu"))
    before = snapshot(redis_server)

    stale = cli(capsys, "apply", "--target", "production", "--plan", "plan.json")

    assert stale.code == 1
    assert "the schedule files changed since the plan was made; nothing was written" in stale.err
    assert_unchanged(before, snapshot(redis_server))


def test_a_saved_plan_applies_with_its_overlays_and_only_to_its_target(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    assert cli(capsys, "plan", "--target", "production", "--out", "plan.json").code == 0
    before = snapshot(redis_server)
    wrong = cli(capsys, "apply", "--target", "staging", "--plan", "plan.json")
    assert wrong.code == 1
    assert wrong.err.rstrip().endswith(
        "plan.json was made for target 'production', not for target 'staging' (pass --target "
        "production); nothing was written"
    )
    assert_unchanged(before, snapshot(redis_server))

    applied = cli(capsys, "apply", "--target", "production", "--plan", "plan.json")
    assert applied.code == 0, applied.err
    assert applied.out.splitlines()[0] == "Target: production"
    assert definition(redis_client, "production:nightly-report")["options"] == {
        "queue": "reports-prod"
    }
