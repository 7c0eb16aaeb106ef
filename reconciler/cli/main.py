"""The command line: declares the commands, calls them, maps failures to exit codes.

Shared options are in options.py; turning parsed options into a command's request (settings
by precedence, --app, beat's settings, the console) is settings.py's job.

Exit codes follow Terraform's: 0 success, 1 any error (including bad usage: a 2 would be
mistaken for "changes present" by scripts using plan's detailed exit code), 130 on Ctrl-C,
3 for an unexpected crash (a bug: the traceback is printed).
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import __version__
from reconciler.cli.commands.apply import apply as apply_command
from reconciler.cli.commands.drift import drift as drift_command
from reconciler.cli.commands.drift import watch as drift_watch
from reconciler.cli.commands.export import export as export_command
from reconciler.cli.commands.history import history as history_command
from reconciler.cli.commands.plan import plan as plan_command
from reconciler.cli.commands.requests import (
    ApplyRequest,
    DriftRequest,
    PlanRequest,
)
from reconciler.cli.commands.schema import schema as schema_command
from reconciler.cli.commands.validate import RENDERERS, ValidationRun
from reconciler.cli.commands.validate import validate as validate_command
from reconciler.core.errors import InvalidConfig, InvalidScheduleFiles, ReconcilerError
from reconciler.core.secrets import Scrubber
from reconciler.load.celery_app import (
    SharedSettings,
)
from reconciler.load.project_config import configurations_to_validate, load_project
from reconciler.services.apply import DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_MAX_DELETIONS

if TYPE_CHECKING:
    from collections.abc import Sequence


from reconciler.cli.options import (
    actor_option,
    adopt_option,
    app_option,
    beat_options,
    examples,
    no_colour_option,
    paths_argument,
    project_options,
    prune_option,
    report_format,
    store_options,
    timezone_option,
)
from reconciler.cli.settings import (
    check_webhook_url,
    compared_sides,
    configured_settings,
    current_selection,
    make_console,
    print_notice,
    print_report,
    store_settings,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BUG = 3
EXIT_INTERRUPTED = 130


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples("reconciler validate", "reconciler plan --out plan.json"),
)
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative GitOps for Celery beat schedules stored by RedBeat in Redis."""


@cli.command(
    epilog=examples(
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
@project_options
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
        chosen, entry_checks = configured_settings(
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
    return validate_command(runs, output_format=output_format, echo=print_report)


@cli.command(
    epilog=examples(
        "reconciler plan --prune --out plan.json",
        "reconciler plan --format markdown --detailed-exitcode",
    )
)
@paths_argument
@store_options
@timezone_option
@prune_option
@adopt_option
@report_format("markdown for pull-request comments")
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
@beat_options
@no_colour_option
@app_option
@project_options
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
    desired, store, beat = compared_sides(
        redis_url,
        key_prefix,
        embedded_dir,
        timezone_name,
        beat_lock_key,
        no_beat_lock,
        beat_max_loop_interval,
        app_spec,
        paths,
    )
    request = PlanRequest(
        desired,
        store,
        beat,
        output_format=output_format,
        out=out,
        detailed_exitcode=detailed_exitcode,
        prune=prune,
        adopt=adopt,
    )
    return plan_command(request, make_console(no_colour))


@cli.command(
    epilog=examples(
        "reconciler apply --plan plan.json", "reconciler apply --prune --settle 2 --auto-approve"
    )
)
@paths_argument
@store_options
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
@beat_options
@actor_option("applies")
@no_colour_option
@app_option
@project_options
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
    desired, store, beat = compared_sides(
        redis_url,
        key_prefix,
        embedded_dir,
        timezone_name,
        beat_lock_key,
        no_beat_lock,
        beat_max_loop_interval,
        app_spec,
        paths,
        checks=plan_file is None,
    )
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not auto_approve
    request = ApplyRequest(
        desired,
        store,
        beat,
        plan_file=plan_file,
        prune=prune,
        adopt=adopt,
        max_deletions=max_deletions,
        lock_timeout=lock_timeout,
        settle_seconds=settle_seconds,
        actor=actor,
        confirm=(lambda question: click.confirm(question, default=False)) if interactive else None,
    )
    return apply_command(request, make_console(no_colour))


@cli.command(epilog=examples("reconciler history --limit 5", "reconciler history --format json"))
@store_options
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
@project_options
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
    chosen, _ = configured_settings(
        current_selection(), SharedSettings(redis_url, key_prefix), app_spec, checks=False
    )
    shared = chosen.settings
    return history_command(
        store_settings(shared.redis_url, shared.key_prefix, embedded_dir),
        limit=limit,
        output_format=output_format,
        echo=print_report,
        notice=print_notice,
    )


@cli.command(
    epilog=examples(
        "reconciler drift --format markdown",
        "reconciler drift --watch --interval 60 --metrics-port 9808",
    )
)
@paths_argument
@store_options
@timezone_option
@report_format("markdown for a CI job summary")
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
@beat_options
@click.option("--fix", is_flag=True, help="Repair what the reconciler owns (never prunes).")
@actor_option("fixes (with --fix)")
@app_option
@project_options
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
        check_webhook_url(webhook)
    if (metrics_port is not None or checks is not None) and not watch:
        raise click.UsageError("--metrics-port and --checks go with --watch")
    given = click.get_current_context().get_parameter_source("actor")
    if given is click.core.ParameterSource.COMMANDLINE and not fix:
        # RECONCILER_ACTOR set for a whole CI job is fine; a typed --actor that records
        # nothing is a mistake.
        raise click.UsageError("--actor goes with --fix (only a fix writes a history record)")
    desired, store, beat = compared_sides(
        redis_url,
        key_prefix,
        embedded_dir,
        timezone_name,
        beat_lock_key,
        no_beat_lock,
        beat_max_loop_interval,
        app_spec,
        paths,
    )
    request = DriftRequest(
        desired,
        store,
        beat,
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
            make_console(no_colour=True),
            interval=interval,
            checks=checks,
            metrics_port=metrics_port,
            metrics_address=metrics_address,
        )
    return drift_command(request, make_console(no_colour=True))


@cli.command(
    epilog=examples("reconciler export --output schedules/", "reconciler export --unmanaged")
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
@store_options
@timezone_option
@project_options
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
    chosen, _ = configured_settings(
        current_selection(),
        SharedSettings(redis_url, key_prefix, timezone_name),
        None,
        checks=False,
    )
    shared = chosen.settings
    return export_command(
        store_settings(shared.redis_url, shared.key_prefix, embedded_dir),
        unmanaged_only=scope == "unmanaged",
        output=output,
        timezone_name=shared.timezone_name,
        echo=print_report,
        notice=print_notice,
    )


@cli.command(epilog=examples("reconciler schema > schema/schedule-file.v1.json"))
def schema() -> int:
    """Print the JSON Schema of the schedule file format (for yaml-language-server)."""
    return schema_command(echo=print_report)


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
