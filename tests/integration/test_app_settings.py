"""``--app`` against a real Redis: plan, apply, drift and history take RedBeat's URL, key
prefix, timezone and lock key from the team's Celery app, an explicit option wins over the
app, the app wins over environment variables, and no password is ever printed.

The app is a module written into the test's working folder (so ``--app`` finds it as
``celery -A`` does, from the current directory) holding ``make_checked_app`` configured for
the test's server.
"""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from tests.integration.plan_apply_support import (
    REPO_ROOT,
    clean_env,
    isolate,
    run_cli,
    run_subprocess,
)
from tests.support.checked_app import PASSWORD

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliResult
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

PREFIX = "team:"
LOCK_KEY = "team:beat-lock"
PARIS = ZoneInfo("Europe/Paris")
SCHEDULES = """
    version: 1
    schedules:
      nightly-report:
        task: checked.report
        cron: "0 3 * * *"
        args: [mon]
        options: {queue: reports}
    """


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    for variable in ("RECONCILER_APP", "REDBEAT_LOCK_KEY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "s.yaml").write_text(textwrap.dedent(SCHEDULES), encoding="utf-8")


@pytest.fixture
def write_app(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``write_app(redbeat_redis_url=...)``: a module in the working folder holding the
    team's app with those settings; returns its name (unique, forgotten afterwards)."""
    names: list[str] = []

    def write(**settings: Any) -> str:
        name = f"team_app_{uuid.uuid4().hex[:8]}"
        names.append(name)
        (tmp_path / f"{name}.py").write_text(
            "from tests.support.checked_app import make_checked_app\n\n"
            f"app = make_checked_app(**{settings!r})\n",
            encoding="utf-8",
        )
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture
def team_app(write_app: Callable[..., str], redis_url: str) -> str:
    return write_app(
        redbeat_redis_url=redis_url,
        redbeat_key_prefix=PREFIX,
        redbeat_lock_key="beat-lock",
        timezone="Europe/Paris",
    )


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    return run_cli(capsys, *argv)


def next_3am_paris(now: datetime) -> datetime:
    local = now.astimezone(PARIS)
    candidate = local.replace(hour=3, minute=0, second=0, microsecond=0)
    return candidate if candidate > local else candidate + timedelta(days=1)


def test_plan_and_apply_use_the_apps_redis_prefix_and_timezone(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, redis_url: str, team_app: str
) -> None:
    planned = cli(capsys, "plan", "--app", team_app, "--format", "json")
    assert planned.code == 0, planned.err
    document = json.loads(planned.out)
    assert (document["target"], document["key_prefix"], document["timezone"]) == (
        redis_url,
        PREFIX,
        "Europe/Paris",
    )
    assert [change["action"] for change in document["changes"]] == ["create"]
    assert planned.err_lines[0] == (
        f"Settings from the Celery app '{team_app}': Redis {redis_url} (from "
        "redbeat_redis_url), key prefix 'team:', timezone Europe/Paris, beat lock "
        "team:beat-lock, beat_max_loop_interval 300 s"
    )

    before = datetime.now(PARIS)
    applied = cli(capsys, "apply", "--app", team_app)
    assert applied.code == 0, applied.err
    assert redis_client.hexists(PREFIX + "nightly-report", "definition")
    assert not list(redis_client.scan_iter("redbeat:*"))
    score = redis_client.zscore(PREFIX + ":schedule", PREFIX + "nightly-report")
    assert score is not None
    # The crontab runs in the app's timezone: the next run is 03:00 in Paris.
    assert datetime.fromtimestamp(score, PARIS) == next_3am_paris(before)

    again = cli(capsys, "plan", "--app", team_app, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err


def test_explicit_options_win_over_the_app(
    capsys: pytest.CaptureFixture[str],
    redis_server: RedisServer,
    redis_client: redis.Redis,
    team_app: str,
) -> None:
    other_db = redis_server.url_for(2)
    run = cli(
        capsys,
        "apply",
        "--app",
        team_app,
        "--redis-url",
        other_db,
        "--key-prefix",
        "typed:",
        "--timezone",
        "UTC",
        "--beat-max-loop-interval",
        "30",
    )
    assert run.code == 0, run.err
    assert (
        run.err_lines[0]
        == f"Settings from the Celery app '{team_app}': none (all given as options)"
    )
    assert not list(redis_client.scan_iter("*"))  # the app's db 0 is untouched
    other = redis_server.client(db=2)
    try:
        score = other.zscore("typed::schedule", "typed:nightly-report")
    finally:
        other.close()
    assert score is not None
    assert datetime.fromtimestamp(score, ZoneInfo("UTC")).hour == 3


def test_the_app_wins_over_environment_variables(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_client: redis.Redis,
    team_app: str,
) -> None:
    monkeypatch.setenv("REDBEAT_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("REDBEAT_KEY_PREFIX", "env:")
    monkeypatch.setenv("REDBEAT_TIMEZONE", "Asia/Tokyo")
    monkeypatch.setenv("REDBEAT_LOCK_KEY", "env-lock")
    run = cli(capsys, "plan", "--app", team_app, "--format", "json")
    assert run.code == 0, run.err
    document = json.loads(run.out)
    assert (document["key_prefix"], document["timezone"]) == (PREFIX, "Europe/Paris")


def test_environment_fills_what_the_app_leaves_unset(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    write_app: Callable[..., str],
    redis_url: str,
) -> None:
    # No redbeat_redis_url and no broker_url: beat could not run; the variable says where.
    app = write_app(redbeat_redis_url=None, broker_url=None)
    monkeypatch.setenv("REDBEAT_REDIS_URL", redis_url)
    run = cli(capsys, "plan", "--app", app, "--format", "json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["target"] == redis_url


def test_drift_checks_the_apps_beat_lock_key(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, team_app: str
) -> None:
    assert cli(capsys, "apply", "--app", team_app).code == 0

    def kinds() -> set[str]:
        run = cli(capsys, "drift", "--app", team_app, "--format", "json")
        assert run.code in (0, 2), run.err
        return {finding["kind"] for finding in json.loads(run.out)["findings"]}

    assert "beat-not-running" in kinds()
    redis_client.set("team::lock", "token", px=60_000)  # the default key: not beat's here
    assert "beat-not-running" in kinds()
    redis_client.set(LOCK_KEY, "token", px=60_000)
    assert "beat-not-running" not in kinds()


def test_drift_of_an_app_without_a_beat_lock_does_not_look_for_one(
    capsys: pytest.CaptureFixture[str], write_app: Callable[..., str], redis_url: str
) -> None:
    app = write_app(redbeat_redis_url=redis_url, redbeat_lock_key=None)
    assert cli(capsys, "apply", "--app", app).code == 0
    run = cli(capsys, "drift", "--app", app, "--format", "json")
    assert "beat-not-running" not in {f["kind"] for f in json.loads(run.out)["findings"]}
    typed = cli(capsys, "drift", "--app", app, "--beat-lock-key", "lock", "--format", "json")
    assert "beat-not-running" in {f["kind"] for f in json.loads(typed.out)["findings"]}


def test_the_apps_password_is_never_printed(
    capsys: pytest.CaptureFixture[str],
    redis_server_factory: Callable[..., RedisServer],
    write_app: Callable[..., str],
) -> None:
    server = redis_server_factory()
    # Set after the start and removed before the stop: the test bed's start-up probe and
    # SHUTDOWN do not authenticate (as in test_plan_outputs_and_failures).
    client = server.client()
    client.config_set("requirepass", PASSWORD)
    client.close()
    url = f"redis://:{PASSWORD}@{server.host}:{server.port}/0"
    app = write_app(redbeat_redis_url=url)
    masked = f"redis://:***@{server.host}:{server.port}/0"
    outputs = []
    for argv in (
        ("plan", "--app", app),
        ("plan", "--app", app, "--format", "json"),
        ("apply", "--app", app),
        ("drift", "--app", app),
        ("history", "--app", app),
    ):
        run = cli(capsys, *argv)
        assert run.code in (0, 2), run.err
        outputs.append(run.out + run.err)
    client = server.client(password=PASSWORD)
    try:
        client.config_set("requirepass", "")
    finally:
        client.close()
    assert all(PASSWORD not in output for output in outputs)
    assert masked in outputs[0]
    assert json.loads(_stdout_json(outputs[1]))["target"] == masked


def _stdout_json(output: str) -> str:
    return output[output.index("{") : output.rindex("}") + 1]


def test_files_the_app_refuses_write_nothing(
    capsys: pytest.CaptureFixture[str], redis_client: redis.Redis, team_app: str, tmp_path: Path
) -> None:
    (tmp_path / "schedules" / "s.yaml").write_text(
        textwrap.dedent(SCHEDULES).replace("args: [mon]", "args: [mon, pdf, extra]"),
        encoding="utf-8",
    )
    run = cli(capsys, "apply", "--app", team_app)
    assert run.code == 1
    assert (
        "schedules/s.yaml:7:22: schedule 'nightly-report': task 'checked.report' takes "
        "(day, fmt='pdf'); too many positional arguments" in run.err
    )
    assert not list(redis_client.scan_iter("*"))


def test_an_app_that_fails_to_import_is_one_line_from_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "team_broken.py").write_text(
        "import os\nDATABASE_URL = os.environ['DATABASE_URL']\n", encoding="utf-8"
    )
    env = clean_env(PYTHONPATH=str(REPO_ROOT))
    for command in ("validate", "plan", "apply", "drift", "history"):
        run = run_subprocess(command, "--app", "team_broken", cwd=tmp_path, env=env)
        assert (run.code, run.out) == (1, ""), run.err
        assert run.err == (
            "error: --app 'team_broken': importing module 'team_broken' failed: "
            "KeyError: 'DATABASE_URL'\n"
        )
