"""The command line: gathers inputs, calls the commands, maps failures to exit codes.

Exit codes follow Terraform's: 0 success, 1 any error (including bad usage: a 2 would be
mistaken for "changes present" by scripts using plan's detailed exit code), 130 on Ctrl-C,
3 for an unexpected crash (a bug: the traceback is printed).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import __version__
from reconciler.commands.schema import schema as schema_command
from reconciler.commands.validate import RENDERERS
from reconciler.commands.validate import validate as validate_command
from reconciler.errors import InvalidScheduleFiles, ReconcilerError
from reconciler.load.desired_state import DEFAULT_PATHS
from reconciler.schedules.celery_objects import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BUG = 3
EXIT_INTERRUPTED = 130


def _echo(text: str) -> None:
    click.echo(text, nl=False)


paths_argument = click.argument(
    "paths", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]..."
)
timezone_option = click.option(
    "--timezone",
    "timezone_name",
    default=DEFAULT_TIMEZONE,
    envvar="REDBEAT_TIMEZONE",
    show_default=True,
    help="Beat's Celery timezone, in which crontabs are evaluated [env: REDBEAT_TIMEZONE].",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative GitOps for Celery beat schedules stored by RedBeat in Redis."""


@cli.command()
@paths_argument
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(RENDERERS)),
    default="text",
    show_default=True,
    help="text for people, json for machines, github for workflow annotations.",
)
@timezone_option
def validate(paths: tuple[Path, ...], output_format: str, timezone_name: str) -> int:
    """Check schedule files offline; list every problem as path:line:column.

    PATH is a schedule file or a folder searched for *.yaml and *.yml (default: schedules/).
    """
    return validate_command(
        paths or DEFAULT_PATHS,
        output_format=output_format,
        timezone_name=timezone_name,
        echo=_echo,
    )


@cli.command()
def schema() -> int:
    """Print the JSON Schema of the schedule file format (for yaml-language-server)."""
    return schema_command(echo=_echo)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="reconciler",
            standalone_mode=False,
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
    except InvalidScheduleFiles as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"error: {exc}", err=True)
        return EXIT_ERROR
    except ReconcilerError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_ERROR
    except Exception:
        click.echo("reconciler crashed; this is a bug, please report it:", err=True)
        click.echo(traceback.format_exc(), err=True)
        return EXIT_BUG
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
