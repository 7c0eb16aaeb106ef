"""Which value each setting takes: command line > target > configuration file > --app >
environment variables > built-in defaults.

The table composes the two pure steps as the CLI does: ``precedence.resolve`` (command
line, target, file, environment) and ``celery_app.shared_settings`` (the app over what is
left). Then the same through the CLI, with no server: a closed port shows which URL won.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.core.errors import UsageError
from reconciler.load.celery_app import AppSettings, SharedSettings, shared_settings
from reconciler.load.precedence import Given, Origin, resolve
from reconciler.load.project_config import ProjectConfig, TargetSettings, select_target

if TYPE_CHECKING:
    from reconciler.load.project_config import Selection


LAYERS = ("command line", "target", "file", "app", "environment", "default")
# Per SharedSettings field: its value in each layer (None: the layer cannot set it).
VALUES: dict[str, dict[str, Any]] = {
    "key_prefix": {
        "command line": "cli:",
        "target": "target:",
        "file": "file:",
        "app": "app:",
        "environment": "env:",
        "default": "redbeat:",
    },
    "timezone_name": {
        "command line": "Asia/Tokyo",
        "target": "Europe/Paris",
        "file": "America/New_York",
        "app": "Europe/Berlin",
        "environment": "Australia/Sydney",
        "default": "UTC",
    },
    "beat_lock_key": {
        "command line": "cli-lock",
        "target": "target-lock",
        "file": "file-lock",
        "app": "app-lock",
        "environment": "env-lock",
        "default": None,
    },
    "redis_url": {
        "command line": "redis://cli:6379/0",
        "target": "redis://target:6379/0",
        "file": "redis://file:6379/0",
        "app": "redis://app:6379/0",
        "environment": "redis://env:6379/0",
        "default": None,
    },
}
# The file names the variable holding each URL, never the URL.
ENVIRON = {"TARGET_URL": "redis://target:6379/0", "FILE_URL": "redis://file:6379/0"}
CONFIG_FIELDS = {"key_prefix": "key_prefix", "timezone_name": "timezone"}
CONFIG_FIELDS |= {"beat_lock_key": "beat_lock_key", "redis_url": "redis_url_env"}


def _configured(name: str, layer: str) -> TargetSettings:
    if name == "redis_url":
        return TargetSettings(redis_url_env="TARGET_URL" if layer == "target" else "FILE_URL")
    return TargetSettings(**{CONFIG_FIELDS[name]: VALUES[name][layer]})


def _selection(name: str, layers: set[str]) -> Selection | None:
    top = _configured(name, "file") if "file" in layers else TargetSettings()
    target = _configured(name, "target") if "target" in layers else TargetSettings()
    config = ProjectConfig(Path("reconciler.toml"), "reconciler.toml", top, {"prod": target})
    return select_target(config, "prod")


def _app(name: str) -> AppSettings:
    values = {key: VALUES[key]["app"] for key in VALUES}
    return AppSettings(
        app_name="team",
        redis_url=values["redis_url"],
        redis_url_setting="redbeat_redis_url",
        key_prefix=values["key_prefix"],
        lock_key="app:" + values["beat_lock_key"],
        lock_key_setting=values["beat_lock_key"],
        timezone_name=values["timezone_name"],
    )


def _chosen(name: str, layers: set[str]) -> object:
    """The value of one setting with the given layers present, as the CLI computes it."""
    value, origin = VALUES[name]["default"], Origin.DEFAULT
    if "environment" in layers:
        value, origin = VALUES[name]["environment"], Origin.ENVIRONMENT
    if "command line" in layers:
        value, origin = VALUES[name]["command line"], Origin.COMMAND_LINE
    origins = {name: origin}
    if name == "beat_lock_key":
        origins["beat_lock"] = Origin.DEFAULT  # drift's --no-beat-lock, not typed
    given = Given(replace(SharedSettings(), **{name: value}), origins)
    resolved = resolve(given, _selection(name, layers), ENVIRON)
    settings = resolved.settings
    if "app" in layers:
        settings = shared_settings(settings, _app(name), resolved.explicit)
    return getattr(settings, name)


@pytest.mark.parametrize("name", list(VALUES))
@pytest.mark.parametrize("top", range(len(LAYERS)), ids=LAYERS)
def test_each_layer_wins_over_every_layer_below_it(name: str, top: int) -> None:
    layers = set(LAYERS[top:])
    assert _chosen(name, layers) == VALUES[name][LAYERS[top]]


@pytest.mark.parametrize("name", list(VALUES))
@pytest.mark.parametrize("missing", ["target", "file", "app", "environment"])
def test_a_missing_layer_lets_the_next_one_through(name: str, missing: str) -> None:
    layers = set(LAYERS[1:]) - {missing}
    winner = next(layer for layer in LAYERS[1:] if layer in layers)
    assert _chosen(name, layers) == VALUES[name][winner]


# --- the app, the paths, the overlays ----------------------------------------------------

TARGET = TargetSettings(app="target_app", paths=(Path("t"),), overlays=(Path("o.yaml"),))
TOP = TargetSettings(app="file_app", paths=(Path("f"),))


@pytest.mark.parametrize(
    ("given", "top", "target", "expected"),
    [
        pytest.param(
            Given(app_spec="cli_app", app_origin=Origin.COMMAND_LINE),
            TOP,
            TARGET,
            "cli_app",
            id="command-line",
        ),
        pytest.param(
            Given(app_spec="env_app", app_origin=Origin.ENVIRONMENT),
            TOP,
            TARGET,
            "target_app",
            id="target-over-environment",
        ),
        pytest.param(Given(), TOP, TargetSettings(), "file_app", id="file"),
        pytest.param(
            Given(app_spec="env_app", app_origin=Origin.ENVIRONMENT),
            TargetSettings(),
            TargetSettings(),
            "env_app",
            id="environment",
        ),
        pytest.param(Given(), TargetSettings(), TargetSettings(), None, id="none"),
    ],
)
def test_the_app_is_chosen_the_same_way(
    given: Given, top: TargetSettings, target: TargetSettings, expected: str | None
) -> None:
    config = ProjectConfig(Path("reconciler.toml"), "reconciler.toml", top, {"p": target})
    assert resolve(given, select_target(config, "p"), {}).app_spec == expected


@pytest.mark.parametrize(
    ("typed", "target", "expected"),
    [
        pytest.param((Path("typed"),), TARGET, (Path("typed"),), id="typed-paths"),
        pytest.param((), TARGET, (Path("t"),), id="target-paths"),
        pytest.param((), TargetSettings(), (Path("f"),), id="file-paths"),
    ],
)
def test_paths(typed: tuple[Path, ...], target: TargetSettings, expected: tuple[Path]) -> None:
    config = ProjectConfig(Path("reconciler.toml"), "reconciler.toml", TOP, {"p": target})
    assert resolve(Given(paths=typed), select_target(config, "p"), {}).paths == expected


def test_without_configuration_everything_is_as_the_command_line_parser_found_it() -> None:
    given = Given(SharedSettings("redis://env:6379/0", "env:"), {"redis_url": Origin.ENVIRONMENT})
    resolved = resolve(given, None, {})
    assert (resolved.settings, resolved.paths, resolved.overlays) == (
        given.settings,
        (Path("schedules"),),
        (),
    )
    assert (resolved.target_name, resolved.notices) == (None, ())
    assert "redis_url" not in resolved.explicit  # the app may still set it
    assert "key_prefix" in resolved.explicit  # not a parameter here: left alone


def test_the_target_brings_its_overlays_and_name() -> None:
    config = ProjectConfig(Path("reconciler.toml"), "reconciler.toml", TOP, {"p": TARGET})
    resolved = resolve(Given(), select_target(config, "p"), {})
    assert (resolved.overlays, resolved.target_name) == ((Path("o.yaml"),), "p")


# --- notices when an environment variable is overridden ----------------------------------


def _notices(
    given: Given, top: TargetSettings, target: TargetSettings | None, environ: dict[str, str]
) -> tuple[str, ...]:
    targets = {"production": target} if target is not None else {}
    config = ProjectConfig(Path("reconciler.toml"), "reconciler.toml", top, targets)
    return resolve(given, select_target(config, "production" if target else None), environ).notices


FROM_ENV = Given(
    SharedSettings("redis://env:6379/0", "env:", "UTC"),
    {"redis_url": Origin.ENVIRONMENT, "key_prefix": Origin.ENVIRONMENT},
    app_spec="env_app",
    app_origin=Origin.ENVIRONMENT,
)


def test_a_notice_when_the_target_overrides_an_environment_variable() -> None:
    target = TargetSettings(key_prefix="prod:", redis_url_env="PRODUCTION_REDIS_URL", app="a")
    notices = _notices(FROM_ENV, TargetSettings(), target, {"PRODUCTION_REDIS_URL": "redis://p"})
    assert notices == (
        "notice: REDBEAT_KEY_PREFIX is set but target 'production' sets key-prefix; using the "
        "target's",
        "notice: REDBEAT_REDIS_URL is set but target 'production' sets redis-url-env "
        "($PRODUCTION_REDIS_URL); using the target's",
        "notice: RECONCILER_APP is set but target 'production' sets app; using the target's",
    )


def test_a_notice_names_the_file_for_top_level_settings() -> None:
    notices = _notices(FROM_ENV, TargetSettings(key_prefix="file:"), None, {})
    assert notices == (
        "notice: REDBEAT_KEY_PREFIX is set but reconciler.toml sets key-prefix; using "
        "reconciler.toml's",
    )


def test_no_notice_when_the_values_agree_or_the_option_was_typed() -> None:
    same = TargetSettings(key_prefix="env:", app="env_app")
    assert _notices(FROM_ENV, same, None, {}) == ()
    typed = replace(FROM_ENV, origins={"key_prefix": Origin.COMMAND_LINE})
    assert _notices(typed, TargetSettings(key_prefix="file:"), None, {}) == ()


# --- the Redis URL from the variable the configuration names ----------------------------


def _url_selection(variable: str = "PRODUCTION_REDIS_URL") -> Selection | None:
    target = TargetSettings(redis_url_env=variable)
    config = ProjectConfig(
        Path("reconciler.toml"), "reconciler.toml", targets={"production": target}
    )
    return select_target(config, "production")


CONNECTS = Given(origins={"redis_url": Origin.DEFAULT})


@pytest.mark.parametrize(
    ("environ", "state"),
    [({}, "which is not set"), ({"PRODUCTION_REDIS_URL": ""}, "which is empty")],
)
def test_an_unset_variable_is_an_error_never_another_redis(
    environ: dict[str, str], state: str
) -> None:
    with pytest.raises(UsageError) as raised:
        resolve(CONNECTS, _url_selection(), environ)
    assert str(raised.value) == (
        f"target 'production' takes its Redis URL from $PRODUCTION_REDIS_URL, {state}"
    )


def test_the_variable_is_read_only_by_commands_that_connect() -> None:
    # validate and schema take no --redis-url: the variable need not be set for them.
    resolved = resolve(Given(), _url_selection(), {})
    assert resolved.settings.redis_url is None


def test_a_typed_url_is_used_without_reading_the_variable() -> None:
    typed = Given(SharedSettings("redis://typed:6379/0"), {"redis_url": Origin.COMMAND_LINE})
    assert resolve(typed, _url_selection(), {}).settings.redis_url == "redis://typed:6379/0"


def test_the_url_comes_from_the_named_variable() -> None:
    environ = {"PRODUCTION_REDIS_URL": "rediss://u:pw@prod:6380/0"}
    resolved = resolve(CONNECTS, _url_selection(), environ)
    assert resolved.settings.redis_url == "rediss://u:pw@prod:6380/0"
    assert "redis_url" in resolved.explicit  # the app's URL never replaces it


# --- through the CLI, with no server: the error names the URL that was used --------------
