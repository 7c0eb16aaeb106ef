"""From the parsed options to what a command is asked: settings by precedence (command line,
target, file, --app, environment, defaults), beat's settings, the store, and the console
(reports on stdout, notices on stderr through this invocation's scrubber)."""

from __future__ import annotations

import os
import sys
from dataclasses import fields, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click

from reconciler.cli.commands.requests import (
    ApplyRequest,
    Console,
    Desired,
    DriftRequest,
    ExportRequest,
    HistoryRequest,
    PlanRequest,
    ValidateRequest,
)
from reconciler.core.beat_clock import BeatSettings, BeatTiming
from reconciler.core.problems import printable
from reconciler.core.secrets import Scrubber
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
from reconciler.load.project_config import (
    configurations_to_validate,
    load_project,
    select_target,
)
from reconciler.store.session import StoreSettings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from _typeshed import DataclassInstance

    from reconciler.load.desired_state import EntryCheck
    from reconciler.load.project_config import Selection

    Request = TypeVar("Request", bound=DataclassInstance)


def print_report(text: str) -> None:
    # Reports are masked where they are built (a scrub here would also hit digits and
    # words equal to a short secret, and break JSON); messages on stderr are scrubbed.
    click.echo(printable(text), nl=False)


def current_scrubber() -> Scrubber:
    """This invocation's scrubber (main passes it to click as the context object)."""
    context = click.get_current_context(silent=True)
    found = context.find_object(Scrubber) if context is not None else None
    return found if found is not None else Scrubber()


def print_notice(text: str) -> None:
    click.echo(printable(current_scrubber()(text)), err=True)


def use_colour(no_colour: bool) -> bool:
    """Colours only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return not no_colour and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def check_webhook_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError:
        raise click.UsageError("--webhook is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.UsageError("--webhook takes an http:// or https:// URL")


def make_desired(chosen: Resolved, entry_checks: EntryCheck | None) -> Desired:
    return Desired(
        tuple(chosen.paths),
        chosen.settings.timezone_name,
        tuple(chosen.overlays),
        chosen.target_name,
        entry_checks,
    )


def make_console(no_colour: bool = True) -> Console:
    return Console(
        print_report, print_notice, use_colour(no_colour), reveal=current_scrubber().reveal
    )


def store_settings(shared: SharedSettings) -> StoreSettings:
    embedded_dir = click.get_current_context().params["embedded_dir"]
    return StoreSettings(shared.redis_url, shared.key_prefix, embedded_dir)


def beat_settings(shared: SharedSettings) -> BeatSettings:
    """Beat's loop settings: the option, else the app's, else Celery's and RedBeat's
    defaults (said so wherever an estimate rests on them)."""
    context = click.get_current_context()
    timing = shared.beat_timing or BeatTiming()
    max_loop_interval = context.params["beat_max_loop_interval"]
    if max_loop_interval is not None:
        source = context.get_parameter_source("beat_max_loop_interval")
        given = (
            "RECONCILER_BEAT_MAX_LOOP_INTERVAL"
            if source is click.core.ParameterSource.ENVIRONMENT
            else "--beat-max-loop-interval"
        )
        timing = BeatTiming(max_loop_interval, timing.lock_timeout_setting, given, False)
    return BeatSettings(timing, shared.beat_lock, shared.beat_lock_key)


# Command parameters that the configuration or --app may set, by the SharedSettings field.
SHARED_PARAMETERS = {
    "redis_url": "redis_url",
    "key_prefix": "key_prefix",
    "timezone_name": "timezone_name",
    "beat_lock_key": "beat_lock_key",
    "no_beat_lock": "beat_lock",
}


ORIGINS = {
    click.core.ParameterSource.COMMANDLINE: Origin.COMMAND_LINE,
    click.core.ParameterSource.ENVIRONMENT: Origin.ENVIRONMENT,
}


def current_selection() -> Selection | None:
    """The configuration's settings for this command: --target's, or the default ones."""
    params = click.get_current_context().params
    return select_target(load_project(params["config_file"]), params["target_name"])


def configured_settings(
    selection: Selection | None, *, checks: bool = True, connects: bool = True
) -> tuple[Resolved, EntryCheck | None]:
    """Every setting by precedence (precedence.py), then --app's where none was given."""
    context = click.get_current_context()
    params = context.params

    def origin(parameter: str) -> Origin:
        source = context.get_parameter_source(parameter)  # None: not a parameter of the command
        return ORIGINS.get(source, Origin.DEFAULT) if source is not None else Origin.DEFAULT

    origins = {
        field: origin(parameter)
        for parameter, field in SHARED_PARAMETERS.items()
        if parameter in params
    }
    # The options this command has; the others keep their defaults.
    defaults = SharedSettings()
    given = SharedSettings(
        params.get("redis_url"),
        params.get("key_prefix", defaults.key_prefix),
        params.get("timezone_name", defaults.timezone_name),
        params.get("beat_lock_key"),
        not params.get("no_beat_lock", False),
    )
    typed = Given(
        given, origins, params.get("app_spec"), origin("app_spec"), params.get("paths", ())
    )
    resolved = resolve(typed, selection, os.environ)
    shown: set[str] = context.meta.setdefault("reconciler.notices", set())
    for notice in resolved.notices:
        if notice not in shown:  # validate resolves once per target
            shown.add(notice)
            print_notice(notice)
    # Beat's loop interval comes from the app unless given here (beat's own command line,
    # `celery beat --max-interval`, is invisible in the app), or the command does not use it.
    timing = "beat_max_loop_interval"
    keep_timing = timing not in context.params or origin(timing) is not Origin.DEFAULT
    keep = resolved.explicit | ({"beat_timing"} if keep_timing else set())
    shared, app_spec = resolved.settings, resolved.app_spec
    entry_checks: EntryCheck | None = None
    if app_spec:
        # The app's settings, except where typed, configured, or not used by the command.
        app = load_app(app_spec)
        found = read_app_settings(app, app_spec)
        shared = shared_settings(shared, found, keep)
        if connects:
            print_notice(describe(found, keep))
        if checks:
            import_task_modules(app, app_spec)
            entry_checks = AppChecks(app, app_spec)
    return replace(resolved, settings=shared), entry_checks


def compared_sides(*, checks: bool = True) -> tuple[Desired, StoreSettings, BeatSettings]:
    """What plan, apply and drift compare, from their shared options by precedence: the
    files (with the target's overlays and --app's checks), the store, and beat's settings."""
    chosen, entry_checks = configured_settings(current_selection(), checks=checks)
    shared = chosen.settings
    return make_desired(chosen, entry_checks), store_settings(shared), beat_settings(shared)


def from_options(
    kind: type[Request], options: Mapping[str, Any], *leading: object, **built: object
) -> Request:
    """A request of ``kind``: its ``leading`` fields, the values ``built`` from the options,
    and every other field from the option of the same name (or its default)."""
    named = {
        request_field.name: options[request_field.name]
        for request_field in fields(kind)
        if request_field.name in options and request_field.name not in built
    }
    return kind(*leading, **named, **built)


def validate_request(options: Mapping[str, Any]) -> ValidateRequest:
    selections = configurations_to_validate(
        load_project(options["config_file"]), options["target_name"]
    )
    configurations = tuple(
        make_desired(*configured_settings(selection, connects=False)) for selection in selections
    )
    output_format = options["output_format"]
    given = click.get_current_context().get_parameter_source("output_format")
    if given is click.core.ParameterSource.DEFAULT and os.environ.get("GITHUB_ACTIONS") == "true":
        # On a GitHub runner, problems become annotations on the pull request's lines.
        output_format = "github"
    return ValidateRequest(configurations, output_format)


def plan_request(options: Mapping[str, Any]) -> PlanRequest:
    return from_options(PlanRequest, options, *compared_sides())


def apply_request(options: Mapping[str, Any]) -> ApplyRequest:
    saved = options["plan_file"] is not None
    if saved and (options["paths"] or options["prune"] or options["adopt"]):
        raise click.UsageError(
            "--plan applies the saved plan as it is: give no PATH, --prune or --adopt"
        )
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not options["auto_approve"]
    return from_options(
        ApplyRequest,
        options,
        *compared_sides(checks=not saved),
        confirm=(lambda question: click.confirm(question, default=False)) if interactive else None,
    )


def drift_request(options: Mapping[str, Any]) -> DriftRequest:
    if options["webhook"]:
        check_webhook_url(options["webhook"])
    watch_only = options["metrics_port"] is not None or options["checks"] is not None
    if watch_only and not options["watch"]:
        raise click.UsageError("--metrics-port and --checks go with --watch")
    given = click.get_current_context().get_parameter_source("actor")
    if given is click.core.ParameterSource.COMMANDLINE and not options["fix"]:
        # RECONCILER_ACTOR set for a whole CI job is fine; a typed --actor that records
        # nothing is a mistake.
        raise click.UsageError("--actor goes with --fix (only a fix writes a history record)")
    remind_every = options["remind_every"]
    return from_options(
        DriftRequest,
        options,
        *compared_sides(),
        overdue_grace=timedelta(seconds=options["overdue_grace"]),
        remind_every=timedelta(seconds=remind_every) if remind_every else None,
    )


def history_request(options: Mapping[str, Any]) -> HistoryRequest:
    chosen, _ = configured_settings(current_selection(), checks=False)
    return from_options(HistoryRequest, options, store=store_settings(chosen.settings))


def export_request(options: Mapping[str, Any]) -> ExportRequest:
    chosen, _ = configured_settings(current_selection(), checks=False)
    shared = chosen.settings
    return from_options(
        ExportRequest,
        options,
        store=store_settings(shared),
        timezone_name=shared.timezone_name,
        unmanaged_only=options["scope"] == "unmanaged",
    )
