"""Which value each setting takes: the command line, then the selected target, then the
configuration file's top level, then the Celery app (--app), then environment variables,
then the built-in defaults.

Terraform's order: a value typed for this run beats the committed files, and the files beat
ambient environment variables, so an explicit target is never silently redirected by a
variable left on a CI runner (a notice says when that happens). The app comes after the
file and is applied by celery_app.shared_settings to the fields left unset here.
Pure: the environment is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING

from reconciler.core.defaults import DEFAULT_PATHS
from reconciler.core.errors import UsageError
from reconciler.load.celery_app import SharedSettings

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from reconciler.load.project_config import Selection


class Origin(Enum):
    """Where the command line parser found a value."""

    COMMAND_LINE = "command line"
    ENVIRONMENT = "environment"
    DEFAULT = "default"


# The variable each setting is read from when neither the command line nor the file sets it.
ENVIRONMENT_VARIABLES = {
    "redis_url": "REDBEAT_REDIS_URL",
    "key_prefix": "REDBEAT_KEY_PREFIX",
    "timezone_name": "REDBEAT_TIMEZONE",
    "beat_lock_key": "REDBEAT_LOCK_KEY",
    "app_spec": "RECONCILER_APP",
}
# SharedSettings field -> (TargetSettings field, key in the file).
_CONFIGURED = {
    "key_prefix": ("key_prefix", "key-prefix"),
    "timezone_name": ("timezone", "timezone"),
    "beat_lock_key": ("beat_lock_key", "beat-lock-key"),
}


@dataclass(frozen=True)
class Given:
    """What the command line parser returned: typed, from an environment variable, or the
    default. ``origins`` names the SharedSettings fields the command takes; the others
    are left alone by every later layer."""

    settings: SharedSettings = field(default_factory=SharedSettings)
    origins: Mapping[str, Origin] = field(default_factory=dict)
    app_spec: str | None = None
    app_origin: Origin = Origin.DEFAULT
    paths: tuple[Path, ...] = ()  # PATH arguments; none typed: () here


@dataclass(frozen=True)
class Resolved:
    settings: SharedSettings
    app_spec: str | None
    paths: tuple[Path, ...]
    overlays: tuple[Path, ...] = ()
    target_name: str | None = None
    # Typed, configured, or not taken by the command: the app must not override these.
    explicit: frozenset[str] = frozenset()
    notices: tuple[str, ...] = ()


def resolve(given: Given, selection: Selection | None, environ: Mapping[str, str]) -> Resolved:
    """The configuration's settings over what the command line parser found, except where
    it was typed. The Redis URL is read from the variable the configuration names only
    when the command connects (takes --redis-url) and no URL was typed; an unset variable
    is an error, never a fall back to another Redis."""
    explicit = {
        name
        for name in ("redis_url", "key_prefix", "timezone_name", "beat_lock_key", "beat_lock")
        if given.origins.get(name, Origin.COMMAND_LINE) is Origin.COMMAND_LINE
    }
    if selection is None:
        paths = given.paths or DEFAULT_PATHS
        return Resolved(given.settings, given.app_spec, paths, explicit=frozenset(explicit))
    configured = selection.settings
    # SharedSettings field -> (value, the TargetSettings field that set it, its key).
    values = {
        name: (getattr(configured, attribute), attribute, key)
        for name, (attribute, key) in _CONFIGURED.items()
        if getattr(configured, attribute) is not None
    }
    variable = configured.redis_url_env
    if variable is not None and "redis_url" not in explicit:
        url = _url_from(variable, selection, environ)
        values["redis_url"] = (url, "redis_url_env", f"redis-url-env (${variable})")
    chosen, notices = given.settings, []
    for name, (value, attribute, key) in values.items():
        if name in explicit:
            continue
        if given.origins.get(name) is Origin.ENVIRONMENT and getattr(chosen, name) != value:
            notices.append(_overridden(ENVIRONMENT_VARIABLES[name], selection, attribute, key))
        chosen = replace(chosen, **{name: value})
        explicit.add(name)
    app_spec = given.app_spec
    if configured.app is not None and given.app_origin is not Origin.COMMAND_LINE:
        if given.app_origin is Origin.ENVIRONMENT and given.app_spec != configured.app:
            notices.append(_overridden("RECONCILER_APP", selection, "app", "app"))
        app_spec = configured.app
    return Resolved(
        settings=chosen,
        app_spec=app_spec,
        paths=given.paths or configured.paths or DEFAULT_PATHS,
        overlays=configured.overlays,
        target_name=selection.target,
        explicit=frozenset(explicit),
        notices=tuple(notices),
    )


def _url_from(variable: str, selection: Selection, environ: Mapping[str, str]) -> str:
    url = environ.get(variable)
    if not url:
        state = "which is not set" if url is None else "which is empty"
        raise UsageError(
            f"{selection.origin('redis_url_env')} takes its Redis URL from ${variable}, {state}"
        )
    return url


def _overridden(variable: str, selection: Selection, attribute: str, key: str) -> str:
    origin = selection.origin(attribute)
    whose = "the target's" if origin.startswith("target ") else f"{origin}'s"
    return f"notice: {variable} is set but {origin} sets {key}; using {whose}"
