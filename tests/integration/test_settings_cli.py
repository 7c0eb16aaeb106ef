"""Which Redis the CLI connects to, and what it says about it: ``--app``, targets, options
and environment variables in their order of precedence. No server: a closed port on
127.0.0.1 refuses the connection, and the error names the URL that was chosen (with every
password masked). The settings themselves, without a connection, are tested in
tests/unit/test_app_settings.py and tests/unit/test_precedence.py."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from tests.support import checked_app

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.unit.cli_runner import CliRun, Workspace

APP = "tests.support.checked_app"
CLOSED_1 = "redis://127.0.0.1:1/0"  # nothing listens: the error names the URL that was used
CLOSED_2 = "redis://127.0.0.1:2/0"


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("RECONCILER_APP", "GITHUB_ACTIONS", "CI", checked_app.ENV_REDIS_URL):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("REDBEAT_REDIS_URL", "REDBEAT_KEY_PREFIX", "REDBEAT_TIMEZONE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("REDBEAT_LOCK_KEY", raising=False)


def _plan(workspace: Workspace, *argv: str) -> CliRun:
    workspace.write("schedules/s.yaml", "version: 1\nschedules: {}\n")
    return workspace.run("plan", *argv)


def test_plan_uses_the_apps_url_and_never_prints_its_password(workspace: Workspace) -> None:
    run = _plan(workspace, "--app", APP)
    assert run.exit_code == 1
    notice, error = run.err.splitlines()
    assert notice == (
        f"Settings from the Celery app '{APP}': Redis redis://:***@127.0.0.1:1/0 (from "
        "redbeat_redis_url), key prefix 'checked:', timezone Europe/Paris, beat lock "
        "checked:beat-lock, beat_max_loop_interval 300 s"
    )
    assert error.startswith("error: Redis at redis://:***@127.0.0.1:1/0 is not usable: ")
    assert checked_app.PASSWORD not in run.out + run.err


def test_the_app_wins_over_environment_variables(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDBEAT_REDIS_URL", "redis://127.0.0.1:2/0")
    monkeypatch.setenv("REDBEAT_KEY_PREFIX", "env:")
    run = _plan(workspace, "--app", APP)
    assert "key prefix 'checked:'" in run.err
    assert "error: Redis at redis://:***@127.0.0.1:1/0 is not usable" in run.err


def test_an_explicit_url_wins_over_the_app(workspace: Workspace) -> None:
    run = _plan(workspace, "--app", APP, "--redis-url", "redis://127.0.0.1:2/0")
    assert run.err.splitlines()[0] == (
        f"Settings from the Celery app '{APP}': key prefix 'checked:', timezone Europe/Paris, "
        "beat lock checked:beat-lock, beat_max_loop_interval 300 s"
    )
    assert "error: Redis at redis://127.0.0.1:2/0 is not usable" in run.err


@pytest.fixture
def sentinel_app(workspace: Workspace) -> Iterator[str]:
    # Port 1: no Sentinel listens there. RedBeat reads nothing but the scheme from the URL.
    workspace.write(
        "sentinel_team_app.py",
        f"""
        from tests.support.checked_app import make_checked_app

        app = make_checked_app(
            redbeat_redis_url="redis-sentinel://ignored:26379/0",
            redbeat_redis_options={{
                "sentinels": [("127.0.0.1", 1)],
                "service_name": "m",
                "password": "{checked_app.PASSWORD}",
                "sentinel_kwargs": {{"password": "{checked_app.PASSWORD}-s"}},
            }},
        )
        """,
    )
    yield "sentinel_team_app"
    sys.modules.pop("sentinel_team_app", None)


def test_sentinel_app_is_followed_and_its_passwords_never_printed(
    workspace: Workspace, sentinel_app: str
) -> None:
    run = _plan(workspace, "--app", sentinel_app)
    assert run.exit_code == 1
    masked = "redis-sentinel://:***@127.0.0.1:1/0?service_name=m&sentinel_password=***"
    notice, error = run.err.splitlines()
    assert notice == (
        f"Settings from the Celery app 'sentinel_team_app': Redis {masked} (from "
        "redbeat_redis_url and redbeat_redis_options), key prefix 'checked:', timezone "
        "Europe/Paris, beat lock checked:beat-lock, beat_max_loop_interval 300 s"
    )
    assert error == (
        f"error: Redis at {masked} is not usable: Sentinel 127.0.0.1:1: Error 111 connecting "
        "to 127.0.0.1:1. Connection refused"
    )
    assert checked_app.PASSWORD not in run.out + run.err


@pytest.mark.parametrize("given", ["option", "variable"])
def test_a_given_loop_interval_is_not_announced_as_the_apps(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    # beat's own `celery beat --max-interval` is invisible in the app: a value given here
    # wins, and the notice must not claim the app's.
    argv = ["--app", APP]
    if given == "option":
        argv += ["--beat-max-loop-interval", "7"]
    else:
        monkeypatch.setenv("RECONCILER_BEAT_MAX_LOOP_INTERVAL", "7")
    run = _plan(workspace, *argv)
    assert run.err.splitlines()[0] == (
        f"Settings from the Celery app '{APP}': Redis redis://:***@127.0.0.1:1/0 (from "
        "redbeat_redis_url), key prefix 'checked:', timezone Europe/Paris, beat lock "
        "checked:beat-lock"
    )


@pytest.fixture
def cli_project(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    for variable in (
        "REDBEAT_REDIS_URL",
        "REDBEAT_KEY_PREFIX",
        "REDBEAT_TIMEZONE",
        "REDBEAT_LOCK_KEY",
        "RECONCILER_APP",
        "RECONCILER_CONFIG",
        "RECONCILER_TARGET",
        "CI",
        checked_app.ENV_REDIS_URL,
    ):
        monkeypatch.delenv(variable, raising=False)
    (workspace.root / ".git").mkdir()
    workspace.write("schedules/s.yaml", "version: 1\nschedules: {}\n")
    workspace.write(
        "reconciler.toml",
        """
        [targets.production]
        redis-url-env = "PRODUCTION_REDIS_URL"
        key-prefix = "prod:"
        """,
    )
    monkeypatch.setenv("PRODUCTION_REDIS_URL", CLOSED_1)
    return workspace


def test_cli_target_url_over_the_environment_with_a_notice(
    cli_project: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDBEAT_REDIS_URL", CLOSED_2)
    run = cli_project.run("plan", "--target", "production")
    assert run.exit_code == 1
    assert run.err.splitlines() == [
        "notice: REDBEAT_REDIS_URL is set but target 'production' sets redis-url-env "
        "($PRODUCTION_REDIS_URL); using the target's",
        run.err.splitlines()[1],
    ]
    assert run.err.splitlines()[1].startswith(f"error: Redis at {CLOSED_1} is not usable")


def test_cli_typed_url_over_the_target(cli_project: Workspace) -> None:
    run = cli_project.run("plan", "--target", "production", "--redis-url", CLOSED_2)
    assert run.exit_code == 1
    assert run.err.startswith(f"error: Redis at {CLOSED_2} is not usable")


def test_cli_configuration_over_the_app(cli_project: Workspace) -> None:
    run = cli_project.run("plan", "--target", "production", "--app", APP)
    assert run.exit_code == 1
    notice, error = run.err.splitlines()
    # The target gives URL and prefix; the timezone and beat's lock and loop interval come
    # from the app (the lock key follows the target's prefix, so it is not listed).
    assert notice == (
        f"Settings from the Celery app '{APP}': timezone Europe/Paris, beat_max_loop_interval 300 s"
    )
    assert error.startswith(f"error: Redis at {CLOSED_1} is not usable")


def test_cli_app_named_in_the_configuration(cli_project: Workspace) -> None:
    cli_project.write(
        "reconciler.toml", f'app = "{APP}"\n[targets.production]\nkey-prefix = "p:"\n'
    )
    run = cli_project.run("plan", "--target", "production")
    assert run.exit_code == 1
    assert run.err.splitlines()[0] == (
        f"Settings from the Celery app '{APP}': Redis redis://:***@127.0.0.1:1/0 (from "
        "redbeat_redis_url), timezone Europe/Paris, beat_max_loop_interval 300 s"
    )
    assert checked_app.PASSWORD not in run.err


def test_cli_validate_needs_no_redis_variable(
    cli_project: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRODUCTION_REDIS_URL")
    run = cli_project.validate("--target", "production")
    assert (run.exit_code, run.err) == (0, "")
    assert cli_project.run("schema").exit_code == 0
