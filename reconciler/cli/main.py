"""The command line: gathers inputs, calls the commands, maps failures to exit codes.

Exit codes follow Terraform's: 0 success, 1 any error (including bad usage: a 2 would be
mistaken for "changes present" by scripts using plan's detailed exit code), 130 on Ctrl-C,
3 for an unexpected crash (a bug: the traceback is printed).
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from reconciler import __version__
from reconciler.beat.celery_objects import DEFAULT_TIMEZONE
from reconciler.cli.commands.apply import apply as apply_command
from reconciler.cli.commands.drift import drift as drift_command
from reconciler.cli.commands.drift import watch as drift_watch
from reconciler.cli.commands.export import export as export_command
from reconciler.cli.commands.history import history as history_command
from reconciler.cli.commands.plan import plan as plan_command
from reconciler.cli.commands.requests import (
    ApplyRequest,
    Console,
    Desired,
    DriftRequest,
    PlanRequest,
)
from reconciler.cli.commands.schema import schema as schema_command
from reconciler.cli.commands.validate import RENDERERS, ValidationRun
from reconciler.cli.commands.validate import validate as validate_command
from reconciler.core.beat_clock import BeatSettings, BeatTiming
from reconciler.core.errors import InvalidConfig, InvalidScheduleFiles, ReconcilerError
from reconciler.core.secret_refs import Scrubber
from reconciler.load.app_checks import AppChecks
from reconciler.load.celery_app import (
    SharedSettings,
    describe,
    import_task_modules,
    load_app,
    read_app_settings,
    shared_settings,
)
from reconciler.load.precedence import Given, Origin, Resolved, resolve
from reconciler.load.project_config import configurations_to_validate, load_project, select_target
from reconciler.services.apply import DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_MAX_DELETIONS
from reconciler.store.embedded import DEFAULT_FOLDER
from reconciler.store.keys import DEFAULT_KEY_PREFIX
from reconciler.store.session import StoreSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from reconciler.load.desired_state import EntryCheck
    from reconciler.load.project_config import Selection

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BUG = 3
EXIT_INTERRUPTED = 130


def _echo(text: str) -> None:
    # Reports are masked where they are built (a scrub here would also hit digits and
    # words equal to a short secret, and break JSON); messages on stderr are scrubbed.
    click.echo(text, nl=False)


def _scrubber() -> Scrubber:
    """This invocation's scrubber (main passes it to click as the context object)."""
    context = click.get_current_context(silent=True)
    found = context.find_object(Scrubber) if context is not None else None
    return found if found is not None else Scrubber()


def _notice(text: str) -> None:
    click.echo(_scrubber()(text), err=True)


def _examples(*commands: str) -> str:
    """A --help epilog listing example commands; '\\b' keeps click from rewrapping them."""
    return "\b\nExamples:\n" + "\n".join(f"  {command}" for command in commands)


def _colour(no_colour: bool) -> bool:
    """Colours only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return not no_colour and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _store_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--redis-url",
                envvar="REDBEAT_REDIS_URL",
                show_envvar=True,
                help="RedBeat's Redis (redis://, rediss://, unix://, redis-sentinel://). "
                "Without one, an embedded local Redis is used (refused when CI is set).",
            ),
            click.option(
                "--key-prefix",
                envvar="REDBEAT_KEY_PREFIX",
                show_envvar=True,
                default=DEFAULT_KEY_PREFIX,
                show_default=True,
                help="RedBeat's redbeat_key_prefix.",
            ),
            click.option(
                "--embedded-dir",
                envvar="RECONCILER_EMBEDDED_DIR",
                show_envvar=True,
                type=click.Path(path_type=Path, file_okay=False),
                default=DEFAULT_FOLDER,
                show_default=True,
                help="Where the embedded Redis keeps its data.",
            ),
        ]
    ):
        function = option(function)
    return function


def _report_format(markdown_use: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json", "markdown"]),
        default="text",
        show_default=True,
        help=f"text for people, json for machines, {markdown_use}.",
    )


def _check_webhook_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError:
        raise click.UsageError("--webhook is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.UsageError("--webhook takes an http:// or https:// URL")


def _desired(chosen: Resolved, entry_checks: EntryCheck | None) -> Desired:
    return Desired(
        tuple(chosen.paths),
        chosen.settings.timezone_name,
        tuple(chosen.overlays),
        chosen.target_name,
        entry_checks,
    )


def _console(no_colour: bool) -> Console:
    return Console(_echo, _notice, _colour(no_colour), reveal=_scrubber().reveal)


def _settings(redis_url: str | None, key_prefix: str, embedded_dir: Path) -> StoreSettings:
    return StoreSettings(redis_url=redis_url, key_prefix=key_prefix, embedded_folder=embedded_dir)


paths_argument = click.argument(
    "paths", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]..."
)
timezone_option = click.option(
    "--timezone",
    "timezone_name",
    default=DEFAULT_TIMEZONE,
    envvar="REDBEAT_TIMEZONE",
    show_envvar=True,
    show_default=True,
    help="Beat's Celery timezone, in which crontabs are evaluated.",
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


def _beat_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """What dates beat's sleep (its lock) and bounds it (its loop interval)."""
    for option in reversed(
        [
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
        ]
    ):
        function = option(function)
    return function


def _beat_settings(shared: SharedSettings, max_loop_interval: float | None) -> BeatSettings:
    """Beat's loop settings: the option, else the app's, else Celery's and RedBeat's
    defaults (said so wherever an estimate rests on them)."""
    timing = shared.beat_timing or BeatTiming()
    if max_loop_interval is not None:
        source = click.get_current_context().get_parameter_source("beat_max_loop_interval")
        given = (
            "RECONCILER_BEAT_MAX_LOOP_INTERVAL"
            if source is click.core.ParameterSource.ENVIRONMENT
            else "--beat-max-loop-interval"
        )
        timing = BeatTiming(max_loop_interval, timing.lock_timeout_setting, given, False)
    return BeatSettings(timing, shared.beat_lock, shared.beat_lock_key)


def _project_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--target",
        "target_name",
        envvar="RECONCILER_TARGET",
        show_envvar=True,
        metavar="NAME",
        help="A target declared in the configuration file: its paths, overlays, key prefix, "
        "timezone and Redis URL variable.",
    )(function)
    return click.option(
        "--config",
        "config_file",
        envvar="RECONCILER_CONFIG",
        show_envvar=True,
        type=click.Path(path_type=Path, dir_okay=False),
        help="The configuration file: reconciler.toml, or pyproject.toml's [tool.reconciler] "
        "(default: found from the current folder up to the repository root).",
    )(function)


# Command parameters that the configuration or --app may set, by the SharedSettings field.
_SHARED_PARAMETERS = {
    "redis_url": "redis_url",
    "key_prefix": "key_prefix",
    "timezone_name": "timezone_name",
    "beat_lock_key": "beat_lock_key",
    "no_beat_lock": "beat_lock",
}
_ORIGINS = {
    click.core.ParameterSource.COMMANDLINE: Origin.COMMAND_LINE,
    click.core.ParameterSource.ENVIRONMENT: Origin.ENVIRONMENT,
}


def _selection() -> Selection | None:
    """The configuration's settings for this command: --target's, or the default ones."""
    params = click.get_current_context().params
    return select_target(load_project(params["config_file"]), params["target_name"])


def _configured(
    selection: Selection | None,
    given: SharedSettings,
    app_spec: str | None,
    paths: tuple[Path, ...] = (),
    *,
    checks: bool = True,
    connects: bool = True,
) -> tuple[Resolved, EntryCheck | None]:
    """Every setting by precedence (precedence.py), then --app's where none was given."""
    context = click.get_current_context()

    def origin(parameter: str) -> Origin:
        source = context.get_parameter_source(parameter)  # None: not a parameter of the command
        return _ORIGINS.get(source, Origin.DEFAULT) if source is not None else Origin.DEFAULT

    origins = {
        field: origin(parameter)
        for parameter, field in _SHARED_PARAMETERS.items()
        if parameter in context.params
    }
    resolved = resolve(
        Given(given, origins, app_spec, origin("app_spec"), paths), selection, os.environ
    )
    shown: set[str] = context.meta.setdefault("reconciler.notices", set())
    for notice in resolved.notices:
        if notice not in shown:  # validate resolves once per target
            shown.add(notice)
            _notice(notice)
    # Beat's loop interval comes from the app unless given here (beat's own command line,
    # `celery beat --max-interval`, is invisible in the app), or the command does not use it.
    timing = "beat_max_loop_interval"
    keep_timing = timing not in context.params or origin(timing) is not Origin.DEFAULT
    keep = resolved.explicit | ({"beat_timing"} if keep_timing else set())
    shared, entry_checks = _with_app(
        resolved.app_spec, resolved.settings, keep, checks=checks, connects=connects
    )
    return replace(resolved, settings=shared), entry_checks


def _with_app(
    app_spec: str | None,
    given: SharedSettings,
    keep: frozenset[str],
    *,
    checks: bool = True,
    connects: bool = True,
) -> tuple[SharedSettings, EntryCheck | None]:
    """With --app: the app's settings over ``given`` except the fields in ``keep`` (typed,
    configured, or not used by the command), and the checks against the app."""
    if not app_spec:
        return given, None
    app = load_app(app_spec)
    found = read_app_settings(app, app_spec)
    shared = shared_settings(given, found, keep)
    if connects:
        _notice(describe(found, keep))
    if not checks:
        return shared, None
    import_task_modules(app, app_spec)
    return shared, AppChecks(app, app_spec)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=_examples("reconciler validate", "reconciler plan --out plan.json"),
)
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative GitOps for Celery beat schedules stored by RedBeat in Redis."""


@cli.command(
    epilog=_examples(
        "reconciler validate", "reconciler validate --app proj.celery:app --format json schedules/"
    )
)
@paths_argument
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(RENDERERS)),
    default="text",
    show_default=True,
    help="text for people, json for machines, github for workflow annotations "
    "(the default when GITHUB_ACTIONS is 'true').",
)
@timezone_option
@app_option
@_project_options
def validate(
    paths: tuple[Path, ...],
    output_format: str,
    timezone_name: str,
    app_spec: str | None,
    config_file: Path | None,
    target_name: str | None,
) -> int:
    """Check schedule files offline; list every problem as path:line:column.

    PATH is a schedule file or a folder searched for *.yaml and *.yml (default: schedules/).
    With --app, also check tasks, their arguments and queues against the Celery app.
    Without --target, every target of the configuration file is checked, with its overlays.
    """
    runs = []
    for selection in configurations_to_validate(load_project(config_file), target_name):
        chosen, entry_checks = _configured(
            selection, SharedSettings(timezone_name=timezone_name), app_spec, paths, connects=False
        )
        runs.append(
            ValidationRun(
                chosen.paths,
                chosen.settings.timezone_name,
                entry_checks,
                chosen.overlays,
                chosen.target_name,
            )
        )
    given = click.get_current_context().get_parameter_source("output_format")
    if given is click.core.ParameterSource.DEFAULT and os.environ.get("GITHUB_ACTIONS") == "true":
        # On a GitHub runner, problems become annotations on the pull request's lines.
        output_format = "github"
    return validate_command(runs, output_format=output_format, echo=_echo)


prune_option = click.option(
    "--prune", is_flag=True, help="Delete managed entries that are no longer in the files."
)
adopt_option = click.option(
    "--adopt",
    is_flag=True,
    help="Take over entries of the same name created elsewhere, keeping their run history.",
)
no_colour_option = click.option("--no-color", "no_colour", is_flag=True, help="Plain text.")


def _actor_option(when: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--actor",
        envvar="RECONCILER_ACTOR",
        show_envvar=True,
        metavar="NAME",
        help=f"Who {when}, as the history records it (default: GITHUB_ACTOR, "
        "GITLAB_USER_LOGIN, USER, the login name, else the uid).",
    )


@cli.command(
    epilog=_examples(
        "reconciler plan --prune --out plan.json",
        "reconciler plan --format markdown --detailed-exitcode",
    )
)
@paths_argument
@_store_options
@timezone_option
@prune_option
@adopt_option
@_report_format("markdown for pull-request comments")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan for 'apply --plan' (refused there once files or Redis change).",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when there are changes (0: none, 1: error), as Terraform does.",
)
@_beat_options
@no_colour_option
@app_option
@_project_options
def plan(
    paths: tuple[Path, ...],
    redis_url: str | None,
    key_prefix: str,
    embedded_dir: Path,
    timezone_name: str,
    prune: bool,
    adopt: bool,
    output_format: str,
    out: Path | None,
    detailed_exitcode: bool,
    beat_lock_key: str | None,
    no_beat_lock: bool,
    beat_max_loop_interval: float | None,
    no_colour: bool,
    app_spec: str | None,
    config_file: Path | None,
    target_name: str | None,
) -> int:
    """Show what apply would change in RedBeat; never writes to Redis."""
    chosen, entry_checks = _configured(
        _selection(),
        SharedSettings(redis_url, key_prefix, timezone_name, beat_lock_key, not no_beat_lock),
        app_spec,
        paths,
    )
    shared = chosen.settings
    request = PlanRequest(
        _desired(chosen, entry_checks),
        _settings(shared.redis_url, shared.key_prefix, embedded_dir),
        _beat_settings(shared, beat_max_loop_interval),
        output_format=output_format,
        out=out,
        detailed_exitcode=detailed_exitcode,
        prune=prune,
        adopt=adopt,
    )
    return plan_command(request, _console(no_colour))


@cli.command(
    epilog=_examples(
        "reconciler apply --plan plan.json", "reconciler apply --prune --settle 2 --auto-approve"
    )
)
@paths_argument
@_store_options
@timezone_option
@prune_option
@adopt_option
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Apply exactly this saved plan (from 'plan --out').",
)
@click.option(
    "--max-deletions",
    type=click.IntRange(min=0),
    help=f"Refuse to delete more entries than this (default {DEFAULT_MAX_DELETIONS}; deleting "
    "every managed entry always needs it given explicitly).",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_LOCK_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds to wait for another apply to finish.",
)
@click.option(
    "--settle",
    "settle_seconds",
    type=click.FloatRange(min=0, max=300),
    default=0.0,
    help="Wait this long after writing (a few seconds: longer than one beat tick takes), "
    "re-check the entries touched and repair what a racing beat tick left behind.",
)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation on a terminal.")
@_beat_options
@_actor_option("applies")
@no_colour_option
@app_option
@_project_options
def apply(
    paths: tuple[Path, ...],
    redis_url: str | None,
    key_prefix: str,
    embedded_dir: Path,
    timezone_name: str,
    prune: bool,
    adopt: bool,
    plan_file: Path | None,
    max_deletions: int | None,
    lock_timeout: float,
    settle_seconds: float,
    auto_approve: bool,
    beat_lock_key: str | None,
    no_beat_lock: bool,
    beat_max_loop_interval: float | None,
    actor: str | None,
    no_colour: bool,
    app_spec: str | None,
    config_file: Path | None,
    target_name: str | None,
) -> int:
    """Write only the changes, atomically; keeps run history, beat's lock, others' entries."""
    if plan_file is not None and (paths or prune or adopt):
        raise click.UsageError(
            "--plan applies the saved plan as it is: give no PATH, --prune or --adopt"
        )
    chosen, entry_checks = _configured(
        _selection(),
        SharedSettings(redis_url, key_prefix, timezone_name, beat_lock_key, not no_beat_lock),
        app_spec,
        paths,
        checks=plan_file is None,
    )
    shared = chosen.settings
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not auto_approve
    request = ApplyRequest(
        _desired(chosen, entry_checks),
        _settings(shared.redis_url, shared.key_prefix, embedded_dir),
        _beat_settings(shared, beat_max_loop_interval),
        plan_file=plan_file,
        prune=prune,
        adopt=adopt,
        max_deletions=max_deletions,
        lock_timeout=lock_timeout,
        settle_seconds=settle_seconds,
        actor=actor,
        confirm=(lambda question: click.confirm(question, default=False)) if interactive else None,
    )
    return apply_command(request, _console(no_colour))


@cli.command(epilog=_examples("reconciler history --limit 5", "reconciler history --format json"))
@_store_options
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show at most this many records.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines.",
)
@app_option
@_project_options
def history(
    redis_url: str | None,
    key_prefix: str,
    embedded_dir: Path,
    limit: int,
    output_format: str,
    app_spec: str | None,
    config_file: Path | None,
    target_name: str | None,
) -> int:
    """List the applies recorded in Redis, newest first."""
    chosen, _ = _configured(
        _selection(), SharedSettings(redis_url, key_prefix), app_spec, checks=False
    )
    shared = chosen.settings
    return history_command(
        _settings(shared.redis_url, shared.key_prefix, embedded_dir),
        limit=limit,
        output_format=output_format,
        echo=_echo,
        notice=_notice,
    )


@cli.command(
    epilog=_examples(
        "reconciler drift --format markdown",
        "reconciler drift --watch --interval 60 --metrics-port 9808",
    )
)
@paths_argument
@_store_options
@timezone_option
@_report_format("markdown for a CI job summary")
@click.option(
    "--webhook",
    envvar="RECONCILER_WEBHOOK_URL",
    show_envvar=True,
    help="POST findings as JSON (with a Slack-compatible 'text') on drift.",
)
@click.option("--watch", is_flag=True, help="Keep checking every --interval seconds.")
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="With --watch: seconds between checks.",
)
@click.option("--checks", type=click.IntRange(min=1), help="With --watch: stop after N checks.")
@click.option(
    "--remind-every",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="With --watch: re-send an unchanged alert after this many seconds (0: never).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    help="With --watch: serve Prometheus metrics on this port.",
)
@click.option(
    "--metrics-address",
    default="0.0.0.0",
    show_default=True,
    help="With --metrics-port: the address to listen on.",
)
@click.option(
    "--overdue-grace",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds past a due run before an entry counts as overdue.",
)
@_beat_options
@click.option("--fix", is_flag=True, help="Repair what the reconciler owns (never prunes).")
@_actor_option("fixes (with --fix)")
@app_option
@_project_options
def drift(
    paths: tuple[Path, ...],
    redis_url: str | None,
    key_prefix: str,
    embedded_dir: Path,
    timezone_name: str,
    output_format: str,
    webhook: str | None,
    watch: bool,
    interval: float,
    checks: int | None,
    remind_every: float,
    metrics_port: int | None,
    metrics_address: str,
    overdue_grace: float,
    beat_lock_key: str | None,
    no_beat_lock: bool,
    beat_max_loop_interval: float | None,
    fix: bool,
    actor: str | None,
    app_spec: str | None,
    config_file: Path | None,
    target_name: str | None,
) -> int:
    """Detect drift and schedule health problems; exit 2 when there are findings."""
    if webhook:
        _check_webhook_url(webhook)
    if (metrics_port is not None or checks is not None) and not watch:
        raise click.UsageError("--metrics-port and --checks go with --watch")
    given = click.get_current_context().get_parameter_source("actor")
    if given is click.core.ParameterSource.COMMANDLINE and not fix:
        # RECONCILER_ACTOR set for a whole CI job is fine; a typed --actor that records
        # nothing is a mistake.
        raise click.UsageError("--actor goes with --fix (only a fix writes a history record)")
    chosen, entry_checks = _configured(
        _selection(),
        SharedSettings(redis_url, key_prefix, timezone_name, beat_lock_key, not no_beat_lock),
        app_spec,
        paths,
    )
    shared = chosen.settings
    request = DriftRequest(
        _desired(chosen, entry_checks),
        _settings(shared.redis_url, shared.key_prefix, embedded_dir),
        _beat_settings(shared, beat_max_loop_interval),
        output_format=output_format,
        overdue_grace=timedelta(seconds=overdue_grace),
        fix=fix,
        actor=actor,
        webhook=webhook,
        remind_every=timedelta(seconds=remind_every) if remind_every else None,
    )
    if watch:
        return drift_watch(
            request,
            _console(no_colour=True),
            interval=interval,
            checks=checks,
            metrics_port=metrics_port,
            metrics_address=metrics_address,
        )
    return drift_command(request, _console(no_colour=True))


@cli.command(
    epilog=_examples("reconciler export --output schedules/", "reconciler export --unmanaged")
)
@click.option(
    "--all",
    "scope",
    flag_value="all",
    default=True,
    help="Every entry with a definition, managed or not (the default).",
)
@click.option(
    "--unmanaged",
    "scope",
    flag_value="unmanaged",
    help="Only entries the reconciler does not manage.",
)
@click.option(
    "--output",
    # A plain string: Path() would drop the trailing slash that marks a new folder.
    type=click.Path(),
    help="Write to this file, or to FOLDER/exported.yaml for a folder (default: stdout).",
)
@_store_options
@timezone_option
@_project_options
def export(
    scope: str,
    output: str | None,
    redis_url: str | None,
    key_prefix: str,
    embedded_dir: Path,
    timezone_name: str,
    config_file: Path | None,
    target_name: str | None,
) -> int:
    """Write live RedBeat entries as a schedule file; read-only.

    Entries a schedule file cannot express are listed on stderr with the reason (exit 1).
    """
    chosen, _ = _configured(
        _selection(), SharedSettings(redis_url, key_prefix, timezone_name), None, checks=False
    )
    shared = chosen.settings
    return export_command(
        _settings(shared.redis_url, shared.key_prefix, embedded_dir),
        unmanaged_only=scope == "unmanaged",
        output=output,
        timezone_name=shared.timezone_name,
        echo=_echo,
        notice=_notice,
    )


@cli.command(epilog=_examples("reconciler schema > schema/schedule-file.v1.json"))
def schema() -> int:
    """Print the JSON Schema of the schedule file format (for yaml-language-server)."""
    return schema_command(echo=_echo)


def main(argv: Sequence[str] | None = None) -> int:
    # One scrubber per invocation: in-process callers (tests, tools) run many commands, and
    # each must hide exactly the values it resolved.
    scrubber = Scrubber()

    def say(text: str) -> None:
        click.echo(scrubber(text), err=True)

    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="reconciler",
            standalone_mode=False,
            obj=scrubber,
        )
    except click.exceptions.Exit as exc:  # --help and --version
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_ERROR
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    except InvalidConfig as exc:
        for line in exc.problems:
            click.echo(f"error: {line}", err=True)
        return EXIT_ERROR
    except InvalidScheduleFiles as exc:
        for problem in exc.problems:
            say(str(problem))
        say(f"error: {exc}")
        return EXIT_ERROR
    except ReconcilerError as exc:
        say(f"error: {exc}")
        return EXIT_ERROR
    except Exception:
        click.echo("reconciler crashed; this is a bug, please report it:", err=True)
        # A traceback may quote a definition: values from the environment are scrubbed.
        say(traceback.format_exc())
        return EXIT_BUG
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
