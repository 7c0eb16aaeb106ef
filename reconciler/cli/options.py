"""The options the commands share, and the examples that end each --help page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

# Only light modules: every command's --help is built from these declarations.
from reconciler.core.defaults import DEFAULT_FOLDER, DEFAULT_TIMEZONE
from reconciler.store.keys import DEFAULT_KEY_PREFIX

if TYPE_CHECKING:
    from collections.abc import Callable

    Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def examples(*commands: str) -> str:
    """A --help epilog listing example commands; '\\b' keeps click from rewrapping them."""
    return "\b\nExamples:\n" + "\n".join(f"  {command}" for command in commands)


def stacked(*decorators: Decorator) -> Decorator:
    """One decorator applying ``decorators`` as if written one above the other (--help lists
    the options in that order)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return decorate


redis_url_option = click.option(
    "--redis-url",
    envvar="REDBEAT_REDIS_URL",
    show_envvar=True,
    help="RedBeat's Redis (redis://, rediss://, unix://, redis-sentinel://, redis-cluster://). "
    "Without one, an embedded local Redis is used (refused when CI is set).",
)


embedded_dir_option = click.option(
    "--embedded-dir",
    envvar="RECONCILER_EMBEDDED_DIR",
    show_envvar=True,
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_FOLDER,
    help="Where the embedded Redis keeps its data.",
)


store_options = stacked(
    redis_url_option,
    click.option(
        "--key-prefix",
        envvar="REDBEAT_KEY_PREFIX",
        show_envvar=True,
        default=DEFAULT_KEY_PREFIX,
        help="RedBeat's redbeat_key_prefix.",
    ),
    embedded_dir_option,
)


text_or_json_format = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    help="text for people, json for machines.",
)


def report_format(markdown_use: str) -> Decorator:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json", "markdown"]),
        default="text",
        help=f"text for people, json for machines, {markdown_use}.",
    )


paths_argument = click.argument(
    "paths", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]..."
)


timezone_option = click.option(
    "--timezone",
    "timezone_name",
    default=DEFAULT_TIMEZONE,
    envvar="REDBEAT_TIMEZONE",
    show_envvar=True,
    help="Beat's Celery timezone, in which crontabs are evaluated.",
)


# What plan, apply and drift compare: the files, and the store in beat's zone.
compared_options = stacked(paths_argument, store_options, timezone_option)


# What dates beat's sleep (its lock) and bounds it (its loop interval).
beat_options = stacked(
    click.option(
        "--beat-lock-key",
        envvar="REDBEAT_LOCK_KEY",
        show_envvar=True,
        help="Beat's redbeat_lock_key, if not the default <prefix>:lock.",
    ),
    click.option(
        "--no-beat-lock",
        is_flag=True,
        help="Beat runs without RedBeat's lock: do not report 'beat not running', "
        "and estimate no wake-up.",
    ),
    click.option(
        "--beat-max-loop-interval",
        "beat_max_loop_interval",
        envvar="RECONCILER_BEAT_MAX_LOOP_INTERVAL",
        show_envvar=True,
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="Beat's beat_max_loop_interval, the longest it sleeps between ticks "
        "(default: the --app's setting, else Celery's 300).",
    ),
)


project_options = stacked(
    click.option(
        "--config",
        "config_file",
        envvar="RECONCILER_CONFIG",
        show_envvar=True,
        type=click.Path(path_type=Path, dir_okay=False),
        help="The configuration file: reconciler.toml, or pyproject.toml's [tool.reconciler] "
        "(default: found from the current folder up to the repository root).",
    ),
    click.option(
        "--target",
        "target_name",
        envvar="RECONCILER_TARGET",
        show_envvar=True,
        metavar="NAME",
        help="A target declared in the configuration file: its paths, overlays, key prefix, "
        "timezone and Redis URL variable.",
    ),
)


app_option = click.option(
    "--app",
    "app_spec",
    envvar="RECONCILER_APP",
    show_envvar=True,
    metavar="MODULE[:ATTRIBUTE]",
    help="The team's Celery app, found as 'celery -A' finds it: RedBeat's Redis URL, key "
    "prefix, lock key and timezone, and beat's loop interval and lock timeout, come from it "
    "unless given as options; tasks, arguments and queues are checked against it.",
)


# Where the settings come from besides the options: the team's app and the configuration.
app_and_project_options = stacked(app_option, project_options)


prune_option = click.option(
    "--prune", is_flag=True, help="Delete managed entries that are no longer in the files."
)


adopt_option = click.option(
    "--adopt",
    is_flag=True,
    help="Take over entries of the same name created elsewhere, keeping their run history.",
)


no_colour_option = click.option("--no-color", "no_colour", is_flag=True, help="Plain text.")


def actor_option(when: str) -> Decorator:
    return click.option(
        "--actor",
        envvar="RECONCILER_ACTOR",
        show_envvar=True,
        metavar="NAME",
        help=f"Who {when}, as the history records it (default: GITHUB_ACTOR, "
        "GITLAB_USER_LOGIN, USER, the login name, else the uid).",
    )
