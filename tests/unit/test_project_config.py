"""The configuration file: where it is found, what it may say, and every error at its line.

reconciler.toml holds the keys at the top level, pyproject.toml under [tool.reconciler].
Each test works in its own folder holding a ``.git`` marker, so the search upwards never
leaves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reconciler.core.errors import InvalidConfig, UsageError
from reconciler.load.project_config import (
    ProjectConfig,
    Selection,
    TargetSettings,
    configurations_to_validate,
    find_config,
    load_project,
    read_config,
    select_target,
)

if TYPE_CHECKING:
    from .cli_runner import Workspace

FULL = """
paths = ["schedules", "shared/common.yaml"]
key-prefix = "rb:"
timezone = "UTC"
app = "proj.celery:app"
default-target = "staging"

[targets.staging]
redis-url-env = "STAGING_REDIS_URL"
key-prefix = "staging:"

[targets.production]
redis-url-env = "PRODUCTION_REDIS_URL"
timezone = "Europe/Paris"
beat-lock-key = "beat-lock"
overlays = ["overlays/production.yaml", "overlays/eu"]
paths = ["schedules"]
"""


@pytest.fixture
def project(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The workspace as the root of a repository (the search stops at its .git)."""
    for variable in ("RECONCILER_CONFIG", "RECONCILER_TARGET"):
        monkeypatch.delenv(variable, raising=False)
    (workspace.root / ".git").mkdir()
    return workspace


def _errors(workspace: Workspace, text: str, name: str = "reconciler.toml") -> list[str]:
    path = workspace.write(name, text)
    with pytest.raises(InvalidConfig) as raised:
        read_config(path)
    return list(raised.value.problems)


def _one_error(workspace: Workspace, text: str, name: str = "reconciler.toml") -> str:
    errors = _errors(workspace, text, name)
    assert len(errors) == 1, errors
    return errors[0]


# --- discovery -------------------------------------------------------------------------


def test_found_in_the_working_directory(project: Workspace) -> None:
    project.write("reconciler.toml", 'paths = ["a"]\n')
    assert find_config(None, project.root) == project.root / "reconciler.toml"


def test_found_in_a_parent_folder(project: Workspace) -> None:
    project.write("reconciler.toml", 'paths = ["a"]\n')
    below = project.root / "src" / "deep"
    below.mkdir(parents=True)
    assert find_config(None, below) == project.root / "reconciler.toml"


def test_reconciler_toml_wins_over_pyproject_in_the_same_folder(project: Workspace) -> None:
    project.write("pyproject.toml", '[tool.reconciler]\nkey-prefix = "py:"\n')
    project.write("reconciler.toml", 'key-prefix = "toml:"\n')
    config = load_project(None, project.root)
    assert config is not None
    assert (config.shown, config.top.key_prefix) == ("reconciler.toml", "toml:")


def test_pyproject_with_the_table_is_read(project: Workspace) -> None:
    project.write(
        "pyproject.toml",
        '[project]\nname = "team"\n\n[tool.reconciler]\nkey-prefix = "py:"\n\n'
        '[tool.reconciler.targets.production]\nredis-url-env = "PROD_URL"\n',
    )
    config = load_project(None, project.root)
    assert config is not None
    assert config.top.key_prefix == "py:"
    assert config.targets["production"].redis_url_env == "PROD_URL"


def test_a_nearer_pyproject_without_the_table_is_passed_over(project: Workspace) -> None:
    project.write("reconciler.toml", 'key-prefix = "root:"\n')
    project.write("service/pyproject.toml", '[project]\nname = "service-reconciler"\n')
    config = load_project(None, project.root / "service")
    assert config is not None
    assert config.top.key_prefix == "root:"


def test_the_nearest_folder_with_a_configuration_wins(project: Workspace) -> None:
    project.write("reconciler.toml", 'key-prefix = "root:"\n')
    project.write("service/pyproject.toml", '[tool.reconciler]\nkey-prefix = "service:"\n')
    config = load_project(None, project.root / "service")
    assert config is not None
    assert config.top.key_prefix == "service:"


def test_the_search_stops_at_the_repository_root(project: Workspace) -> None:
    # A configuration above the repository belongs to something else.
    project.write("reconciler.toml", 'key-prefix = "outside:"\n')
    (project.root / "repo" / ".git").mkdir(parents=True)
    (project.root / "repo" / "sub").mkdir()
    assert find_config(None, project.root / "repo" / "sub") is None
    assert find_config(None, project.root / "repo") is None


def test_a_configuration_at_the_repository_root_is_found(project: Workspace) -> None:
    project.write("repo/reconciler.toml", 'key-prefix = "repo:"\n')
    (project.root / "repo" / ".git").mkdir()
    (project.root / "repo" / "sub").mkdir()
    assert find_config(None, project.root / "repo" / "sub") == (
        project.root / "repo" / "reconciler.toml"
    )


def test_no_configuration_is_none(project: Workspace) -> None:
    assert load_project(None, project.root) is None
    assert select_target(None, None) is None


def test_config_option_names_the_file(project: Workspace) -> None:
    project.write("reconciler.toml", 'key-prefix = "found:"\n')
    project.write("ci/production.toml", 'key-prefix = "named:"\n')
    config = load_project(Path("ci/production.toml"), project.root)
    assert config is not None
    assert (config.shown, config.top.key_prefix) == ("ci/production.toml", "named:")


def test_config_option_may_name_a_pyproject(project: Workspace) -> None:
    project.write("elsewhere/pyproject.toml", '[tool.reconciler]\nkey-prefix = "py:"\n')
    config = load_project(Path("elsewhere/pyproject.toml"), project.root)
    assert config is not None
    assert config.top.key_prefix == "py:"


def test_config_option_naming_a_missing_file_fails(project: Workspace) -> None:
    with pytest.raises(UsageError, match=r"^--config nowhere\.toml: no such file$"):
        load_project(Path("nowhere.toml"), project.root)


def test_a_named_pyproject_without_the_table_fails(project: Workspace) -> None:
    project.write("pyproject.toml", '[project]\nname = "x"\n')
    with pytest.raises(InvalidConfig, match=r"^pyproject\.toml: no \[tool\.reconciler\] table"):
        load_project(Path("pyproject.toml"), project.root)


# --- reading ---------------------------------------------------------------------------


def test_a_full_configuration(project: Workspace) -> None:
    config = read_config(project.write("reconciler.toml", FULL))
    assert config.top == TargetSettings(
        paths=(Path("schedules"), Path("shared/common.yaml")),
        key_prefix="rb:",
        timezone="UTC",
        app="proj.celery:app",
    )
    assert list(config.targets) == ["staging", "production"]
    assert config.targets["production"] == TargetSettings(
        paths=(Path("schedules"),),
        timezone="Europe/Paris",
        redis_url_env="PRODUCTION_REDIS_URL",
        beat_lock_key="beat-lock",
        overlays=(Path("overlays/production.yaml"), Path("overlays/eu")),
    )
    assert config.default_target == "staging"


def test_paths_are_relative_to_the_configuration_file(project: Workspace) -> None:
    project.write(
        "deploy/reconciler.toml",
        'paths = ["../schedules", "/abs/files"]\n[targets.p]\noverlays = ["overlays"]\n',
    )
    # Shown from the working directory, as schedule paths are.
    config = load_project(Path("deploy/reconciler.toml"), project.root)
    assert config is not None
    assert config.top.paths == (Path("schedules"), Path("/abs/files"))
    assert config.targets["p"].overlays == (Path("deploy/overlays"),)


def test_paths_outside_the_working_directory_are_absolute(
    project: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write("reconciler.toml", 'paths = ["schedules"]\n')
    (project.root / "sub").mkdir()
    monkeypatch.chdir(project.root / "sub")
    config = load_project(None)
    assert config is not None
    assert config.shown == str(project.root / "reconciler.toml")
    assert config.top.paths == (project.root / "schedules",)


def test_a_target_takes_the_top_level_settings_it_does_not_set(project: Workspace) -> None:
    config = read_config(project.write("reconciler.toml", FULL))
    selection = select_target(config, "production")
    assert selection is not None
    assert selection.settings == TargetSettings(
        paths=(Path("schedules"),),
        key_prefix="rb:",
        timezone="Europe/Paris",
        redis_url_env="PRODUCTION_REDIS_URL",
        app="proj.celery:app",
        beat_lock_key="beat-lock",
        overlays=(Path("overlays/production.yaml"), Path("overlays/eu")),
    )
    assert selection.origin("timezone") == "target 'production'"
    assert selection.origin("key_prefix") == "reconciler.toml"


def test_without_target_the_default_target_is_chosen(project: Workspace) -> None:
    config = read_config(project.write("reconciler.toml", FULL))
    selection = select_target(config, None)
    assert selection is not None
    assert (selection.target, selection.settings.key_prefix) == ("staging", "staging:")


def test_without_target_or_default_target_the_top_level_is_used(project: Workspace) -> None:
    config = read_config(project.write("reconciler.toml", 'key-prefix = "rb:"\n[targets.a]\n'))
    assert select_target(config, None) == Selection(config, None, config.top)


def test_an_unknown_target_lists_the_declared_ones(project: Workspace) -> None:
    config = read_config(project.write("reconciler.toml", FULL))
    with pytest.raises(UsageError) as raised:
        select_target(config, "prod")
    assert str(raised.value) == (
        "--target 'prod': no such target in reconciler.toml; did you mean 'production'? "
        "(declared: staging, production)"
    )


def test_a_target_without_any_declared(project: Workspace) -> None:
    config = read_config(project.write("reconciler.toml", 'key-prefix = "rb:"\n'))
    with pytest.raises(UsageError, match=r"reconciler\.toml declares no targets"):
        select_target(config, "production")


def test_a_target_without_a_configuration_file(project: Workspace) -> None:
    with pytest.raises(UsageError, match=r"^--target 'production': no reconciler\.toml"):
        select_target(None, "production")


def test_validate_checks_every_target_and_the_top_level(project: Workspace) -> None:
    text = 'paths = ["s"]\n[targets.staging]\n[targets.production]\n'
    config = read_config(project.write("reconciler.toml", text))
    chosen = configurations_to_validate(config, None)
    assert [item.target if item else "-" for item in chosen] == [None, "staging", "production"]
    # The top level alone is never deployed when a default-target stands in for it.
    config = read_config(project.write("reconciler.toml", 'default-target = "staging"\n' + text))
    chosen = configurations_to_validate(config, None)
    assert [item.target if item else "-" for item in chosen] == ["staging", "production"]
    assert [
        item.target if item else "-" for item in configurations_to_validate(config, "production")
    ] == ["production"]


# --- errors: every one names the file and the line -------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(
            'paths = ["s"]\nkey_prefix = "x:"\n',
            "reconciler.toml:2:1: unknown key 'key_prefix'; did you mean 'key-prefix'? (valid: "
            "paths, key-prefix, timezone, redis-url-env, app, beat-lock-key, default-target, "
            "targets)",
            id="unknown-top-level-key",
        ),
        pytest.param(
            '[targets.production]\nredis-url-env = "P"\novrelays = ["o.yaml"]\n',
            "reconciler.toml:3:1: unknown key 'ovrelays' in [targets.production]; did you mean "
            "'overlays'? (valid: paths, key-prefix, timezone, redis-url-env, app, "
            "beat-lock-key, overlays)",
            id="unknown-target-key",
        ),
        pytest.param(
            'overlays = ["o.yaml"]\n',
            "reconciler.toml:1:1: unknown key 'overlays': overlays belong to a target, e.g. "
            "[targets.production] overlays = [...]",
            id="overlays-at-the-top-level",
        ),
        pytest.param(
            '[targets.production]\ndefault-target = "production"\n',
            "reconciler.toml:2:1: unknown key 'default-target' in [targets.production]: "
            "default-target is a top-level key",
            id="default-target-in-a-target",
        ),
        pytest.param(
            'paths = "schedules"\n',
            "reconciler.toml:1:1: 'paths' must be a list of files or folders, e.g. paths = "
            "[\"schedules\"]; got the string 'schedules'",
            id="paths-not-a-list",
        ),
        pytest.param(
            "paths = []\n",
            "reconciler.toml:1:1: 'paths' must name at least one file or folder",
            id="paths-empty",
        ),
        pytest.param(
            "[targets.p]\noverlays = [1]\n",
            "reconciler.toml:2:1: 'overlays' must be a list of files or folders, e.g. overlays "
            '= ["overlays/production.yaml"]; got a list',
            id="overlays-not-strings",
        ),
        pytest.param(
            "key-prefix = 5\n",
            "reconciler.toml:1:1: 'key-prefix' must be a string, got the number 5",
            id="prefix-not-a-string",
        ),
        pytest.param(
            'key-prefix = ""\n',
            "reconciler.toml:1:1: 'key-prefix' must not be empty",
            id="prefix-empty",
        ),
        pytest.param(
            '# zone\n\ntimezone = "Europe/Pariss"\n',
            "reconciler.toml:3:1: 'timezone': unknown timezone 'Europe/Pariss'; use an IANA "
            "name such as UTC or Europe/Paris",
            id="unknown-timezone",
        ),
        pytest.param(
            "app = true\n",
            "reconciler.toml:1:1: 'app' must be a string, got the boolean true",
            id="app-not-a-string",
        ),
        pytest.param(
            '[targets.p]\nredis-url-env = "PROD-URL"\n',
            "reconciler.toml:2:1: 'redis-url-env' must be the name of an environment variable "
            "(letters, digits and _, not starting with a digit), got 'PROD-URL'",
            id="variable-name",
        ),
        pytest.param(
            'default-target = "prodution"\n[targets.production]\n',
            "reconciler.toml:1:1: default-target 'prodution': no such target in "
            "reconciler.toml; did you mean 'production'? (declared: production)",
            id="default-target-unknown",
        ),
        pytest.param(
            'targets = ["production"]\n',
            "reconciler.toml:1:1: 'targets' must be a table of targets ([targets.NAME]), got a "
            "list",
            id="targets-not-a-table",
        ),
        pytest.param(
            '[targets]\nproduction = "prod"\n',
            "reconciler.toml:2:1: target 'production' must be a table ([targets.production]), "
            "got the string 'prod'",
            id="target-not-a-table",
        ),
        pytest.param(
            'paths = ["s"]\nkey-prefix = "x:\n',
            "reconciler.toml:2:17: invalid TOML: Illegal character '\\n'",
            id="toml-syntax",
        ),
    ],
)
def test_errors_name_the_file_and_line(project: Workspace, text: str, error: str) -> None:
    assert _one_error(project, text) == error


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param(
            '[targets]\nproduction = { key-prefix = "", timezone = "UTC" }\n',
            "reconciler.toml:2:16",
            id="inline-table",
        ),
        pytest.param(
            '[targets]\nproduction.key-prefix = ""\n', "reconciler.toml:2:12", id="dotted-key"
        ),
        pytest.param(
            'targets.production.key-prefix = ""\n', "reconciler.toml:1:20", id="dotted-top-level"
        ),
        pytest.param(
            '[targets."production"]\n"key-prefix" = ""\n', "reconciler.toml:2:1", id="quoted"
        ),
    ],
)
def test_keys_are_found_however_toml_spells_them(project: Workspace, text: str, where: str) -> None:
    assert _one_error(project, text) == f"{where}: 'key-prefix' must not be empty"


def test_a_value_spread_over_lines_points_at_its_table(project: Workspace) -> None:
    text = '[targets.production]\nredis-url-env = "P"\n\n[targets.production.paths]\nx = 1\n'
    assert _one_error(project, text).startswith("reconciler.toml:4:1: 'paths' must be a list")


def test_errors_in_pyproject_name_its_table_and_line(project: Workspace) -> None:
    text = '[project]\nname = "x"\n\n[tool.reconciler]\npaths = ["s"]\nkey_prefix = "rb:"\n'
    error = _one_error(project, text, "pyproject.toml")
    assert error.startswith(
        "pyproject.toml:6:1: unknown key 'key_prefix' in [tool.reconciler]; did you mean "
        "'key-prefix'?"
    )


def test_keys_of_reconciler_toml_are_top_level(project: Workspace) -> None:
    error = _one_error(project, '[tool.reconciler]\nkey-prefix = "x:"\n')
    assert error == (
        "reconciler.toml:1:1: unknown key 'tool': in reconciler.toml the keys are top-level; "
        "[tool.reconciler] is for pyproject.toml"
    )


@pytest.mark.parametrize("key", ["redis-url", "redis_url"])
def test_a_redis_url_is_refused_and_never_repeated(project: Workspace, key: str) -> None:
    error = _one_error(project, f'[targets.production]\n{key} = "redis://:s3cret@db:6379/0"\n')
    assert error.startswith(f"reconciler.toml:2:1: '{key}' is refused: a Redis URL carries its ")
    assert "put the URL in an environment variable" in error
    assert "redis-url-env" in error
    assert "s3cret" not in error


def test_a_url_in_redis_url_env_is_refused_and_never_repeated(project: Workspace) -> None:
    error = _one_error(project, 'redis-url-env = "rediss://u:s3cret@db:6379/0"\n')
    assert error.startswith(
        "reconciler.toml:1:1: 'redis-url-env' takes the NAME of an environment variable "
        "holding the URL, not a URL"
    )
    assert "s3cret" not in error


def test_every_problem_is_reported_in_line_order(project: Workspace) -> None:
    errors = _errors(
        project,
        'default-target = "nope"\nkey_prefix = "a"\n[targets.p]\ntimezone = 3\napp = ""\n',
    )
    assert [error.split(": ", 1)[0] for error in errors] == [
        "reconciler.toml:1:1",
        "reconciler.toml:2:1",
        "reconciler.toml:4:1",
        "reconciler.toml:5:1",
    ]


# --- through the command line: exit 1 and one line per problem, no traceback -----------


def test_a_broken_configuration_stops_every_command(project: Workspace) -> None:
    project.write("schedules/a.yaml", "version: 1\nschedules: {}\n")
    project.write("reconciler.toml", 'paths = ["schedules"]\nkey_prefix = "x:"\n')
    for command in ("validate", "plan", "apply", "drift", "history", "export"):
        run = project.run(command)
        assert run.exit_code == 1, command
        assert run.err.startswith("error: reconciler.toml:2:1: unknown key 'key_prefix'"), run.err
        assert len(run.err.splitlines()) == 1
        assert "Traceback" not in run.err


def test_target_without_a_configuration_file_fails(project: Workspace) -> None:
    run = project.run("plan", "--target", "production")
    assert run.exit_code == 1
    assert run.err.startswith("error: --target 'production': no reconciler.toml")


def test_target_from_the_environment(project: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write("reconciler.toml", '[targets.production]\nredis-url-env = "NOT_SET_HERE"\n')
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    monkeypatch.setenv("RECONCILER_TARGET", "production")
    run = project.run("plan")
    assert (run.exit_code, run.out) == (1, "")
    assert run.err == (
        "error: target 'production' takes its Redis URL from $NOT_SET_HERE, which is not set\n"
    )


def test_config_from_the_environment(project: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write("schedules/a.yaml", "version: 1\nschedules:\n  a: {task: t, every: 5m}\n")
    project.write("ci/reconciler.toml", 'paths = ["../schedules"]\n[targets.p]\n')
    monkeypatch.setenv("RECONCILER_CONFIG", "ci/reconciler.toml")
    run = project.validate("--target", "p")
    assert (run.exit_code, run.out) == (0, "1 schedule in 1 file is valid (target p)\n")


def test_no_configuration_changes_nothing(project: Workspace) -> None:
    project.write("schedules/a.yaml", "version: 1\nschedules:\n  a: {task: t, every: 5m}\n")
    run = project.validate()
    assert (run.exit_code, run.out, run.err) == (0, "1 schedule in 1 file is valid\n", "")


def test_project_config_is_plain_data() -> None:
    config = ProjectConfig(Path("reconciler.toml"), "reconciler.toml")
    assert (config.top, config.targets, config.default_target) == (TargetSettings(), {}, None)
