"""The team's Celery app (``--app``): found as ``celery -A`` finds it, read as RedBeat reads it.

RedBeat's settings are read here exactly as ``redbeat.schedulers.RedBeatConfig`` (2.4) and
``get_redis`` read them, so the reconciler and beat cannot disagree on where the schedule
lives or in which zone crontabs run. The tests compare the result with ``RedBeatConfig``
itself; it is not called here because it warns and logs while reading (its fallback to
``broker_url`` is deprecated).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import redirect_stdout
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from reconciler.errors import UsageError
from reconciler.store.connection import SUPPORTED_SCHEMES, mask_url
from reconciler.store.keys import DEFAULT_KEY_PREFIX

if TYPE_CHECKING:
    from collections.abc import Collection

    from celery import Celery

# Options RedBeat consumes itself to choose Sentinel or Cluster (get_redis).
_TOPOLOGY_OPTIONS = frozenset(
    {"cluster", "sentinels", "service_name", "sentinel_kwargs", "startup_nodes"}
)
# Client options that only tune timeouts, retries and pooling: the reconciler keeps its own
# bounded ones, and ignoring these cannot make it reach another Redis than beat's.
_TUNING_OPTIONS = frozenset(
    {
        "retry_period",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_keepalive_options",
        "health_check_interval",
        "retry_on_timeout",
        "retry_on_error",
        "retry",
        "max_connections",
        "single_connection_client",
        "client_name",
        "decode_responses",
    }
)


@dataclass(frozen=True)
class AppSettings:
    """RedBeat's settings as beat reads them from one Celery app."""

    app_name: str  # the --app value, for messages
    redis_url: str | None
    redis_url_setting: str  # 'redbeat_redis_url', or 'broker_url' (RedBeat's fallback)
    key_prefix: str
    lock_key: str | None  # the full key, prefixed as RedBeat does; None: beat takes no lock
    lock_key_setting: str | None  # redbeat_lock_key as written, when the app sets one
    timezone_name: str | None  # None: enable_utc is off and no timezone (the host's zone)
    # Why the reconciler cannot open the connection beat opens (Sentinel, Cluster, options).
    unsupported_connection: str | None = None


@dataclass(frozen=True)
class SharedSettings:
    """What the reconciler and beat must agree on; each command uses its part of it."""

    redis_url: str | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    timezone_name: str = "UTC"
    beat_lock_key: str | None = None  # None: RedBeat's default <prefix>:lock
    beat_lock: bool = True


def load_app(spec: str) -> Celery:
    """Import ``module:attribute`` (or ``module``) as ``celery -A`` does, cwd on sys.path.

    Every failure is one line naming the module: the team's import error is an input error
    here, not a crash of the reconciler.
    """
    from celery import Celery
    from celery.app.utils import find_app
    from celery.utils.imports import cwd_in_path

    module, _, attribute = spec.partition(":")
    if not module or (":" in spec and not attribute):
        raise UsageError(f"--app {spec!r}: expected module:attribute, e.g. proj.celery:app")
    try:
        # What the team's modules print while importing must not mix with JSON on stdout.
        with cwd_in_path(), redirect_stdout(sys.stderr):
            found = find_app(spec)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == spec and attribute:
            # find_app retries a missing attribute as a module named 'module:attribute'.
            raise UsageError(
                f"--app {spec!r}: module {module!r} has no attribute {attribute!r}"
            ) from None
        if missing and (module == missing or module.startswith(missing + ".")):
            raise UsageError(
                f"--app {spec!r}: no module named {missing!r} (searched the current "
                "directory and sys.path)"
            ) from None
        raise UsageError(_import_failure(spec, module, exc)) from None
    except AttributeError:
        raise UsageError(
            f"--app {spec!r}: module {module!r} has no 'app' or 'celery' attribute; name the "
            "app as module:attribute"
        ) from None
    except Exception as exc:  # whatever the team's module raises while importing
        raise UsageError(_import_failure(spec, module, exc)) from None
    if not isinstance(found, Celery):
        what = repr(attribute) if attribute else "what it found"
        raise UsageError(
            f"--app {spec!r}: {what} in module {module!r} is a {type(found).__name__}, "
            "not a Celery app"
        )
    return found


def import_task_modules(app: Celery, spec: str) -> None:
    """Register every task as a worker does when it starts: the ``imports``/``include``
    modules and autodiscovery (``import_default_modules``), then pending task decorators."""
    from celery.utils.imports import cwd_in_path

    try:
        with cwd_in_path(), redirect_stdout(sys.stderr):
            app.loader.import_default_modules()
            app.finalize(auto=False)
    except Exception as exc:
        raise UsageError(
            f"--app {spec!r}: importing the app's task modules failed: "
            f"{type(exc).__name__}: {_one_line(exc)}"
        ) from None


def read_app_settings(app: Celery, spec: str) -> AppSettings:
    """What ``RedBeatConfig(app)`` and ``get_redis(app)`` use, without connecting."""
    conf = app.conf
    key_prefix = _either_or(conf, "redbeat_key_prefix", "redbeat:")
    if not isinstance(key_prefix, str):
        raise UsageError(
            f"--app {spec!r}: redbeat_key_prefix is {key_prefix!r}, not a string; beat "
            "cannot start with it either"
        )
    has_url = _in_conf(conf, "redbeat_redis_url")
    redis_url = _either_or(conf, "redbeat_redis_url", conf["BROKER_URL"])
    options = _either_or(conf, "redbeat_redis_options", conf["BROKER_TRANSPORT_OPTIONS"])
    use_ssl = _either_or(conf, "redbeat_redis_use_ssl", conf["BROKER_USE_SSL"])
    lock_key = _either_or(conf, "redbeat_lock_key", key_prefix + ":lock")
    if lock_key and not str(lock_key).startswith(key_prefix):
        lock_key = key_prefix + str(lock_key)
    lock_setting = conf.first("redbeat_lock_key", "REDBEAT_LOCK_KEY")
    url = str(redis_url) if redis_url else None
    url_setting = "redbeat_redis_url" if has_url else "broker_url"
    return AppSettings(
        app_name=spec,
        redis_url=url,
        redis_url_setting=url_setting,
        key_prefix=key_prefix,
        lock_key=str(lock_key) if lock_key else None,
        lock_key_setting=str(lock_setting) if lock_setting else None,
        timezone_name=_timezone_name(conf),
        unsupported_connection=_unsupported_connection(
            url,
            url_setting,
            options if isinstance(options, Mapping) else {},
            use_ssl,
            client_options=_in_conf(conf, "redbeat_redis_options"),
        ),
    )


def shared_settings(
    given: SharedSettings, app: AppSettings, keep: Collection[str]
) -> SharedSettings:
    """The app's settings over ``given``, except the fields named in ``keep`` (typed on the
    command line, or unused by the command). Environment variables and defaults only fill
    what the app leaves unset: a setting RedBeat defaults is still the app's, since beat
    uses that default."""
    chosen = given
    if "redis_url" not in keep and app.redis_url:
        if app.unsupported_connection:
            raise UsageError(
                f"--app {app.app_name!r}: {app.unsupported_connection}; pass --redis-url to "
                "reach beat's Redis another way"
            )
        chosen = replace(chosen, redis_url=app.redis_url)
    if "key_prefix" not in keep:
        chosen = replace(chosen, key_prefix=app.key_prefix)
    if "timezone_name" not in keep:
        if app.timezone_name is None:
            raise UsageError(
                f"--app {app.app_name!r}: the app sets enable_utc = False and no timezone, so "
                "beat runs crontabs in its host's local time; set the app's timezone, or pass "
                "--timezone"
            )
        chosen = replace(chosen, timezone_name=app.timezone_name)
    if not {"beat_lock_key", "beat_lock"} & set(keep):
        chosen = replace(chosen, beat_lock_key=app.lock_key_setting, beat_lock=bool(app.lock_key))
    return chosen


def describe(app: AppSettings, keep: Collection[str]) -> str:
    """One line naming the settings taken from the app; the URL's password is masked."""
    taken = []
    if "redis_url" not in keep and app.redis_url:
        taken.append(f"Redis {mask_url(app.redis_url)} (from {app.redis_url_setting})")
    if "key_prefix" not in keep:
        taken.append(f"key prefix {app.key_prefix!r}")
    if "timezone_name" not in keep:
        taken.append(f"timezone {app.timezone_name}")
    if not {"beat_lock_key", "beat_lock", "key_prefix"} & set(keep):
        taken.append(f"beat lock {app.lock_key}" if app.lock_key else "no beat lock")
    shown = ", ".join(taken) or "none (all given as options)"
    return f"Settings from the Celery app {app.app_name!r}: {shown}"


def _in_conf(conf: Any, name: str) -> bool:
    # RedBeatConfig.is_key_in_conf: set in the app's configuration, in either case.
    return name.upper() in {str(key).upper() for key in conf.keys()}  # noqa: SIM118


def _either_or(conf: Any, name: str, default: Any) -> Any:
    # RedBeatConfig.either_or: a key the app sets wins even when falsy (redbeat_lock_key =
    # None means no lock); a key it does not set gives way to the default.
    if _in_conf(conf, name):
        return conf.first(name, name.upper())
    return conf.first(name, name.upper()) or default


def _timezone_name(conf: Any) -> str | None:
    # Celery's app.timezone, which beat's crontabs use: conf.timezone, else UTC when
    # enable_utc is on, else the host's local time.
    zone = conf.timezone
    if not zone:
        return "UTC" if conf.enable_utc else None
    if isinstance(zone, str):
        return zone
    return str(getattr(zone, "key", None) or zone)  # a ZoneInfo object


def _unsupported_connection(
    url: str | None,
    url_setting: str,
    options: Mapping[str, Any],
    use_ssl: object,
    *,
    client_options: bool,
) -> str | None:
    """Why the reconciler cannot open the connection get_redis opens, if it cannot."""
    if url is None:
        return None
    scheme = url.split("://", 1)[0].lower()
    if options.get("cluster") or url.startswith("redis-cluster"):
        return "Redis Cluster (redbeat_redis_options 'cluster') is not supported yet"
    if url.startswith("redis-sentinel"):
        return "Redis Sentinel (a redis-sentinel:// URL) is not supported yet"
    if scheme not in SUPPORTED_SCHEMES:
        return f"{url_setting} {mask_url(url)!r} is not a redis://, rediss:// or unix:// URL"
    if scheme == "rediss" and isinstance(use_ssl, Mapping) and use_ssl:
        names = ", ".join(sorted(str(key) for key in use_ssl))
        return f"redbeat_redis_use_ssl ({names}) cannot be passed to the client yet"
    if not client_options:
        return None  # broker_transport_options are not forwarded to RedBeat's client
    passed = sorted(str(key) for key in options if key not in _TOPOLOGY_OPTIONS | _TUNING_OPTIONS)
    if passed:
        return (
            f"redbeat_redis_options ({', '.join(passed)}) cannot be passed to the client "
            "yet; put them in redbeat_redis_url"
        )
    return None


def _import_failure(spec: str, module: str, exc: BaseException) -> str:
    return (
        f"--app {spec!r}: importing module {module!r} failed: "
        f"{type(exc).__name__}: {_one_line(exc)}"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")
