"""Who made each change and with which command, as ``reconciler history`` shows it.

The actor is --actor, else RECONCILER_ACTOR, GITHUB_ACTOR, GITLAB_USER_LOGIN, USER, the
login name, the uid; containers often run without USER. The source is the command: apply,
or drift --fix.
"""

from __future__ import annotations

import json
import os
import pwd
from typing import TYPE_CHECKING

import pytest

from tests.integration.plan_apply_support import (
    PREFIX,
    SCHEDULE_KEY,
    assert_unchanged,
    clean_env,
    cli_against,
    cron,
    history_records,
    isolate,
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

# Every variable that names a user, for the CI providers and for getpass.getuser().
USER_VARIABLES = (
    "RECONCILER_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "USER",
    "LOGNAME",
    "LNAME",
    "USERNAME",
)


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    for variable in USER_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("RECONCILER_REVISION", "provenance-tests")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


def login_name() -> str:
    """What a container's process is, without USER: its passwd entry, else its uid."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def test_without_user_the_history_names_the_login_not_unknown(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    env = {key: value for key, value in clean_env().items() if key not in USER_VARIABLES}
    env["RECONCILER_REVISION"] = "provenance-tests"

    applied = run_subprocess("apply", "schedules", "--redis-url", redis_url, cwd=tmp_path, env=env)
    assert applied.code == 0, applied.err
    history = run_subprocess("history", "--redis-url", redis_url, cwd=tmp_path, env=env)

    assert history.code == 0, history.err
    head = history.out.splitlines()[0]
    assert head.endswith(f"  {login_name()}  rev provenance-t  +1  via apply"), head
    assert "unknown" not in history.out
    [record] = history_records(redis_client)
    assert (record["actor"], record["source"]) == (login_name(), "apply")


def test_actor_option_then_the_variables_in_order(
    cli: CliRunner, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_ACTOR", "from-reconciler-actor")
    monkeypatch.setenv("GITHUB_ACTOR", "from-github")
    monkeypatch.setenv("USER", "from-user")
    for hour, argv in enumerate((("--actor", "from-option"), (), ())):
        if hour == 2:
            monkeypatch.delenv("RECONCILER_ACTOR")
        write_schedules(tmp_path / "schedules", {"nightly": cron(f"0 {hour} * * *")})
        assert cli("apply", "schedules", *argv).code == 0

    records = json.loads(cli("history", "--format", "json").out)
    assert [(r["actor"], r["source"]) for r in records] == [
        ("from-github", "apply"),
        ("from-reconciler-actor", "apply"),
        ("from-option", "apply"),
    ]


def test_drift_fix_is_recorded_as_drift_fix_by_its_actor(
    cli: CliRunner,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER", "deployer")
    write_schedules(
        tmp_path / "schedules", {"nightly": cron("0 3 * * *"), "hourly": cron("0 * * * *")}
    )
    assert cli("apply", "schedules").code == 0
    redis_client.delete(PREFIX + "hourly")
    redis_client.zadd(SCHEDULE_KEY, {PREFIX + "nightly": 4_000_000_000})

    before = snapshot(redis_server)
    refused = cli("drift", "schedules", "--no-beat-lock", "--actor", "oncall")
    assert refused.code == 1
    assert "--actor goes with --fix" in refused.err
    assert_unchanged(before, snapshot(redis_server))

    fixed = cli("drift", "schedules", "--no-beat-lock", "--fix", "--actor", "oncall")
    assert fixed.code in (0, 2), fixed.err  # the test server's missing persistence is a finding
    assert "Fixed by drift --fix: 1 created, 0 updated, 0 adopted, 0 deleted, 1 repaired." in (
        fixed.out
    )

    text = cli("history").out.splitlines()
    assert text[0].endswith("  oncall  rev provenance-t  +1 !1  via drift --fix"), text
    assert text[1:3] == ["    create: hourly", "    repair: nightly"]
    assert text[3].endswith("  deployer  rev provenance-t  +2  via apply"), text
    records = json.loads(cli("history", "--format", "json").out)
    assert [(r["actor"], r["source"]) for r in records] == [
        ("oncall", "drift --fix"),
        ("deployer", "apply"),
    ]
    assert records[0]["names"] == {"create": ["hourly"], "repair": ["nightly"]}
