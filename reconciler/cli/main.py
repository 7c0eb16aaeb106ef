"""The command line: declares the commands and their options, maps failures to exit codes.

Shared options are in options.py; turning parsed options into a command's request (settings
by precedence, --app, beat's settings, the console) is settings.py's job. Each command imports
that, and its implementation, when it runs: --help loads click and the option declarations
only, and validate (run by the pre-commit hook on every commit) never loads Redis.

Exit codes follow Terraform's: 0 success, 1 any error (including bad usage: a 2 would be
mistaken for "changes present" by scripts using plan's detailed exit code), 130 on Ctrl-C,
3 for an unexpected crash (a bug: the traceback is printed).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler import __version__
from reconciler.cli.options import (
    actor_option,
    adopt_option,
    app_and_project_options,
    beat_options,
    compared_options,
    embedded_dir_option,
    examples,
    no_colour_option,
    paths_argument,
    project_options,
    prune_option,
    redis_url_option,
    report_format,
    store_options,
    text_or_json_format,
    timezone_option,
)
from reconciler.cli.startup import defer_redbeat_init, long_lived_imports
from reconciler.core.defaults import (
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    DEFAULT_MAX_DELETIONS,
    DEFAULT_REPLICA_TIMEOUT_SECONDS,
)
from reconciler.core.errors import InvalidConfig, InvalidScheduleFiles, ReconcilerError
from reconciler.core.problems import printable

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BUG = 3
EXIT_INTERRUPTED = 130

# validate's --format choices: commands/validate.py's RENDERERS, named here so that --help
# need not import the loader (a unit test keeps the two equal).
VALIDATE_FORMATS = ("github", "json", "text")


@click.group(
    # Every option shows its default, except where said otherwise.
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
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
    type=click.Choice(VALIDATE_FORMATS),
    default="text",
    help="text for people, json for machines, github for workflow annotations "
    "(the default when GITHUB_ACTIONS is 'true').",
)
@timezone_option
@app_and_project_options
def validate(**options: Any) -> int:
    """Check schedule files offline; list every problem as path:line:column.

    PATH is a schedule file or a folder searched for *.yaml and *.yml (default: schedules/).
    With --app, also check tasks, their arguments and queues against the Celery app.
    Without --target, every target of the configuration file is checked, with its overlays.
    """
    with long_lived_imports():
        from reconciler.cli.commands.validate import validate as run
        from reconciler.cli.settings import make_console, validate_request

    return run(validate_request(options), make_console())


@cli.command(
    epilog=examples(
        "reconciler plan --prune --out plan.json",
        "reconciler plan --format markdown --detailed-exitcode",
    )
)
@compared_options
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
@app_and_project_options
def plan(**options: Any) -> int:
    """Show what apply would change in RedBeat; never writes to Redis."""
    with long_lived_imports():
        from reconciler.cli.commands.plan import plan as run
        from reconciler.cli.settings import make_console, plan_request

    return run(plan_request(options), make_console(options["no_colour"]))


@cli.command(
    epilog=examples(
        "reconciler apply --plan plan.json", "reconciler apply --prune --settle 2 --auto-approve"
    )
)
@compared_options
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
    help="Seconds to wait for another apply, drift --fix or move-prefix to finish.",
)
@click.option(
    "--settle",
    "settle_seconds",
    type=click.FloatRange(min=0, max=300),
    default=0.0,
    show_default=False,
    help="Wait this long after writing (a few seconds: longer than one beat tick takes), "
    "re-check the entries touched and repair what a racing beat tick left behind.",
)
@click.option(
    "--min-replicas",
    type=click.IntRange(min=0),
    envvar="RECONCILER_MIN_REPLICAS",
    show_envvar=True,
    help="Replicas that must acknowledge each batch before it is reported applied (default: "
    "as many as acknowledge when the apply starts; 0: do not wait).",
)
@click.option(
    "--replica-timeout",
    type=click.FloatRange(min=0.01, max=10),
    default=DEFAULT_REPLICA_TIMEOUT_SECONDS,
    envvar="RECONCILER_REPLICA_TIMEOUT",
    show_envvar=True,
    help="Seconds each batch waits for the replicas to acknowledge it.",
)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation on a terminal.")
@beat_options
@actor_option("applies")
@no_colour_option
@app_and_project_options
def apply(**options: Any) -> int:
    """Write only the changes, atomically; keeps run history, beat's lock, others' entries."""
    with long_lived_imports():
        from reconciler.cli.commands.apply import apply as run
        from reconciler.cli.settings import apply_request, make_console

    return run(apply_request(options), make_console(options["no_colour"]))


@cli.command(epilog=examples("reconciler history --limit 5", "reconciler history --format json"))
@store_options
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    help="Show at most this many records.",
)
@text_or_json_format
@app_and_project_options
def history(**options: Any) -> int:
    """List the applies recorded in Redis, newest first."""
    with long_lived_imports():
        from reconciler.cli.commands.history import history as run
        from reconciler.cli.settings import history_request, make_console

    return run(history_request(options), make_console())


@cli.command(
    epilog=examples(
        "reconciler drift --format markdown",
        "reconciler drift --watch --interval 60 --metrics-port 9808",
    )
)
@compared_options
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
    help="With --watch: seconds between checks.",
)
@click.option("--checks", type=click.IntRange(min=1), help="With --watch: stop after N checks.")
@click.option(
    "--remind-every",
    type=click.FloatRange(min=0),
    default=3600.0,
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
    help="With --metrics-port: the address to listen on.",
)
@click.option(
    "--overdue-grace",
    type=click.FloatRange(min=0),
    default=300.0,
    help="Seconds past a due run before an entry counts as overdue.",
)
@beat_options
@click.option("--fix", is_flag=True, help="Repair what the reconciler owns (never prunes).")
@actor_option("fixes (with --fix)")
@app_and_project_options
def drift(**options: Any) -> int:
    """Detect drift and schedule health problems; exit 2 when there are findings."""
    with long_lived_imports():
        from reconciler.cli.commands.drift import drift as run
        from reconciler.cli.commands.drift import watch
        from reconciler.cli.settings import drift_request, make_console

    request = drift_request(options)
    if options["watch"]:
        return watch(
            request,
            make_console(),
            interval=options["interval"],
            checks=options["checks"],
            metrics_port=options["metrics_port"],
            metrics_address=options["metrics_address"],
        )
    return run(request, make_console())


@cli.command(
    epilog=examples("reconciler export --output schedules/", "reconciler export --unmanaged")
)
@click.option(
    "--all",
    "scope",
    flag_value="all",
    default=True,
    show_default=False,  # said in the help
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
def export(**options: Any) -> int:
    """Write live RedBeat entries as a schedule file; read-only.

    Entries a schedule file cannot express are listed on stderr with the reason (exit 1).
    """
    with long_lived_imports():
        from reconciler.cli.commands.export import export as run
        from reconciler.cli.settings import export_request, make_console

    return run(export_request(options), make_console())


@cli.command(
    "move-prefix",
    epilog=examples(
        "reconciler move-prefix --from 'redbeat:' --to '{redbeat}:'",
        "reconciler move-prefix --from 'redbeat:' --to '{redbeat}:' --apply",
    ),
)
@click.option("--from", "old_prefix", required=True, help="The key prefix to move from.")
@click.option("--to", "new_prefix", required=True, help="The key prefix to move to.")
@click.option("--apply", is_flag=True, help="Carry the move out (without it: only show the plan).")
@text_or_json_format
@redis_url_option
@embedded_dir_option
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_LOCK_TIMEOUT_SECONDS,
    help="Seconds to wait for an apply on either prefix to finish.",
)
@click.option(
    "--no-beat-lock",
    is_flag=True,
    help="Move even though beat's lock is held under either prefix (no beat uses it).",
)
@actor_option("moves")
def move_prefix(**options: Any) -> int:
    """Move the managed entries to another key prefix, with their run history and scores.

    Shows the move; --apply carries it out. Stop beat before --apply and start it on the
    new prefix after. Unmanaged entries, beat's statics and its lock are left where they are.
    """
    with long_lived_imports():
        from reconciler.cli.commands.move_prefix import MovePrefixRequest
        from reconciler.cli.commands.move_prefix import move_prefix as run
        from reconciler.cli.settings import make_console

    return run(MovePrefixRequest(**options), make_console())


@cli.command(epilog=examples("reconciler schema > schema/schedule-file.v1.json"))
def schema() -> int:
    """Print the JSON Schema of the schedule file format (for yaml-language-server)."""
    with long_lived_imports():
        from reconciler.cli.commands.schema import schema as run
        from reconciler.cli.settings import print_report

    return run(echo=print_report)


def main(argv: Sequence[str] | None = None) -> int:
    # One scrubber per invocation: in-process callers (tests, tools) run many commands, and
    # each must hide exactly the values it resolved.
    from reconciler.core.secrets import Scrubber

    defer_redbeat_init()
    scrubber = Scrubber()

    def say(text: str) -> None:
        click.echo(printable(scrubber(text)), err=True)

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
