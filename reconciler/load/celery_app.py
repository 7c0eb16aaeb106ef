"""The team's Celery app (``--app``): found as ``celery -A`` finds it, read as RedBeat reads it.

RedBeat's settings are read here exactly as ``redbeat.schedulers.RedBeatConfig`` (2.4) and
``get_redis`` read them, so the reconciler and beat cannot disagree on where the schedule
lives or in which zone crontabs run. The tests compare the result with ``RedBeatConfig``
itself; it is not called here because it warns and logs while reading (its fallback to
``broker_url`` is deprecated).
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Mapping
from contextlib import redirect_stdout
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from reconciler.core.beat_clock import DEFAULT_MAX_LOOP_INTERVAL, BeatTiming
from reconciler.core.errors import UsageError
from reconciler.store.keys import DEFAULT_KEY_PREFIX
from reconciler.store.redis_urls import (
    SENTINEL_SCHEME,
    SUPPORTED_SCHEMES,
    TLS_PARAMETERS,
    ClusterTarget,
    SentinelTarget,
    mask_url,
    tls_settings,
)

if TYPE_CHECKING:
    from collections.abc import Collection

    from celery import Celery

# Options RedBeat consumes itself to choose Sentinel or Cluster (get_redis).
_TOPOLOGY_OPTIONS = frozenset(
    {"cluster", "sentinels", "service_name", "sentinel_kwargs", "startup_nodes"}
)
# ssl_cert_reqs as redis-py reads it: an ssl constant, its name, or None (no verification).
_CERT_REQS_NAMES: dict[int, str] = {
    ssl.CERT_NONE: "none",
    ssl.CERT_OPTIONAL: "optional",
    ssl.CERT_REQUIRED: "required",
}
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
    # beat_max_loop_interval, redbeat_lock_timeout
    beat_timing: BeatTiming = field(default_factory=BeatTiming)
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
    beat_timing: BeatTiming | None = None  # read from the app; None: not known


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
    interval = _positive(conf.first("beat_max_loop_interval", "CELERYBEAT_MAX_LOOP_INTERVAL"))
    url, url_setting, unsupported = _connection(
        str(redis_url) if redis_url else None,
        "redbeat_redis_url" if has_url else "broker_url",
        options if isinstance(options, Mapping) else {},
        use_ssl,
        client_options=_in_conf(conf, "redbeat_redis_options"),
    )
    return AppSettings(
        app_name=spec,
        redis_url=url,
        redis_url_setting=url_setting,
        key_prefix=key_prefix,
        lock_key=str(lock_key) if lock_key else None,
        lock_key_setting=str(lock_setting) if lock_setting else None,
        timezone_name=_timezone_name(conf),
        # As celery.beat.Scheduler and RedBeatScheduler read them (a ``celery beat
        # --max-interval`` on beat's command line is not visible from here).
        beat_timing=BeatTiming(
            max_loop_interval=interval or DEFAULT_MAX_LOOP_INTERVAL,
            lock_timeout_setting=_positive(_either_or(conf, "redbeat_lock_timeout", None)),
            source=f"the Celery app {spec!r}",
            assumed=False,
        ),
        unsupported_connection=unsupported,
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
    # Kept whole even when the loop interval is given: the app's redbeat_lock_timeout stays.
    return replace(chosen, beat_timing=app.beat_timing)


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
    if "beat_timing" not in keep:
        taken.append(f"beat_max_loop_interval {app.beat_timing.max_loop_interval:g} s")
    shown = ", ".join(taken) or "none (all given as options)"
    return f"Settings from the Celery app {app.app_name!r}: {shown}"


def _in_conf(conf: Any, name: str) -> bool:
    # RedBeatConfig.is_key_in_conf: set in the app's configuration, in either case.
    return name.upper() in {str(key).upper() for key in conf.keys()}  # noqa: SIM118


def _either_or(conf: Any, name: str, default: Any) -> Any:
    # RedBeatConfig.either_or: a key the app sets wins even when falsy (redbeat_lock_key =
    # None means no lock); a key it does not set gives way to the default.
    value = conf.first(name, name.upper())
    return value if value or _in_conf(conf, name) else default


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _timezone_name(conf: Any) -> str | None:
    # Celery's app.timezone, which beat's crontabs use: conf.timezone, else UTC when
    # enable_utc is on, else the host's local time.
    zone = conf.timezone
    if not zone:
        return "UTC" if conf.enable_utc else None
    return str(getattr(zone, "key", None) or zone)  # a name, or a ZoneInfo object


def _connection(
    url: str | None,
    url_setting: str,
    options: Mapping[str, Any],
    use_ssl: object,
    *,
    client_options: bool,
) -> tuple[str | None, str, str | None]:
    """The URL the reconciler opens to reach beat's Redis, the settings it comes from, and
    why it cannot open the connection get_redis opens, if it cannot.

    For Sentinel, get_redis takes nothing from the URL but its ``redis-sentinel`` start:
    everything comes from the options, which become this project's redis-sentinel:// URL.
    """
    if url is None:
        return None, url_setting, None
    setting = "redbeat_redis_options" if client_options else "broker_transport_options"
    # get_redis's order: the 'cluster' option first, then Sentinel, which needs 'sentinels'.
    if options.get("cluster") or url.startswith("redis-cluster"):
        source = f"{setting} 'cluster'" if options.get("cluster") else "a redis-cluster:// URL"
        try:
            target = _cluster_target(url, options, setting)
        except _CannotFollow as exc:
            return url, url_setting, f"Redis Cluster ({source}): {exc}"
        return target.url(), f"{url_setting} and {setting}", None
    if url.startswith("rediss") and isinstance(use_ssl, dict) and use_ssl:
        # get_redis passes them as keyword arguments, under the URL's own query parameters.
        try:
            url = _with_query(url, _tls_query(use_ssl))
        except _CannotFollow as exc:
            return url, url_setting, str(exc)
        url_setting = f"{url_setting} and redbeat_redis_use_ssl"
    if url.startswith(SENTINEL_SCHEME) and "sentinels" in options:
        settings = f"{url_setting} and {setting}"
        if isinstance(use_ssl, dict) and use_ssl:
            settings = f"{url_setting}, {setting} and redbeat_redis_use_ssl"
        try:
            return _sentinel_target(options, use_ssl, setting).url(), settings, None
        except _CannotFollow as exc:
            return url, settings, str(exc)
    return url, url_setting, _unsupported_connection(url, url_setting, setting, options)


class _CannotFollow(Exception):
    """A Sentinel or Cluster setting the reconciler cannot reproduce; the message says
    which."""


def _cluster_target(url: str, options: Mapping[str, Any], setting: str) -> ClusterTarget:
    """What get_redis's cluster branches open: ``RedisCluster.from_url(url, **options)``
    with the 'cluster' option (the URL's host is the startup node), or, for a
    ``redis-cluster`` URL, ``RedisCluster(startup_nodes=..., **options)`` (the URL itself
    is not read; ``startup_nodes`` defaults to localhost:30001). Both pass every option but
    RedBeat's own to the client, whichever setting they come from; of those, only the
    credentials change which Redis is reached and as whom."""
    extra = sorted(
        str(key)
        for key in options
        if key not in _TOPOLOGY_OPTIONS | _TUNING_OPTIONS | {"password", "username"}
    )
    if extra:
        raise _CannotFollow(
            f"{setting} ({', '.join(extra)}) cannot be passed to the cluster's connections "
            "yet (only password and username can)"
        )
    for name in ("password", "username"):
        if options.get(name) is not None and not isinstance(options.get(name), str):
            raise _CannotFollow(f"{setting} {name!r} is not a string")
    username, password = options.get("username") or None, options.get("password") or None
    if options.get("cluster"):
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise _CannotFollow(
                f"a {parts.scheme}:// URL with 'cluster' is not supported yet (TLS to a "
                "cluster is not followed yet; a redis:// URL is)"
            )
        if parts.path not in ("", "/", "/0") or parts.query:
            raise _CannotFollow("a cluster URL takes no database but 0 and no query")
        try:
            port = parts.port or 6379
        except ValueError:
            raise _CannotFollow("the URL's port is not a number") from None
        nodes: tuple[tuple[str, int], ...] = ((parts.hostname or "localhost", port),)
        # As in RedisCluster.from_url, the URL's own user-info wins over the options.
        username = unquote(parts.username) if parts.username else username
        password = unquote(parts.password) if parts.password else password
    else:
        nodes = _cluster_nodes(options.get("startup_nodes"), setting)
    return ClusterTarget(nodes=nodes, username=username, password=password)


def _cluster_nodes(found: object, setting: str) -> tuple[tuple[str, int], ...]:
    if not found:
        return (("localhost", 30001),)  # get_redis's default
    problem = _CannotFollow(
        f"{setting} 'startup_nodes' must be a list of {{'host': ..., 'port': ...}}, as "
        "RedBeat takes them"
    )
    if not isinstance(found, (list, tuple)):
        raise problem
    nodes = []
    for node in found:
        if not isinstance(node, Mapping) or set(node) - {"host", "port"}:
            raise problem
        host, port_value = node.get("host"), node.get("port")
        if isinstance(port_value, bool) or not isinstance(port_value, (int, str)):
            raise problem
        try:
            port = int(port_value)  # get_redis's own int(node["port"])
        except ValueError:
            raise problem from None
        if not isinstance(host, str) or not host or not 0 < port < 65536:
            raise problem
        nodes.append((host, port))
    return tuple(nodes)


def _sentinel_target(options: Mapping[str, Any], use_ssl: object, setting: str) -> SentinelTarget:
    """What get_redis's Sentinel branch opens: ``Sentinel(sentinels, password=, db=,
    username=, sentinel_kwargs=, credential_provider=, ssl + redbeat_redis_use_ssl)``, then
    ``master_for(service_name or 'master', db=)``.

    That branch reads these options whether they come from redbeat_redis_options or from
    RedBeat's fallback, broker_transport_options (unlike the plain-URL branches, which do not
    forward the broker's options to the client); so this does too. It drops every other
    option, so this ignores them too; socket_timeout only tunes, and the reconciler keeps
    its own bounded timeouts.
    """
    if options.get("credential_provider") is not None:
        raise _CannotFollow(
            f"{setting} 'credential_provider' cannot be followed: the reconciler takes the "
            "master's credentials from its URL"
        )
    sentinel_options = options.get("sentinel_kwargs") or {}
    if not isinstance(sentinel_options, Mapping):
        raise _CannotFollow(f"{setting} 'sentinel_kwargs' is not a mapping")
    extra = sorted(
        str(key)
        for key in sentinel_options
        if key not in {"password", "username"} | _TUNING_OPTIONS
    )
    if extra:
        raise _CannotFollow(
            f"{setting} 'sentinel_kwargs' ({', '.join(extra)}) cannot be passed to the "
            "Sentinel connections yet (only password and username can)"
        )
    # Only a dict turns TLS on (for the master, not the Sentinels): get_redis ignores
    # redbeat_redis_use_ssl = True in this branch, and so does beat.
    use_tls = isinstance(use_ssl, dict)
    tls = tls_settings(_tls_query(use_ssl).items()) if isinstance(use_ssl, dict) else {}
    db = options.get("db", 0)
    if db is None:  # no SELECT: redis-py only selects a database that is not 0
        db = 0
    if isinstance(db, str) and db.isascii() and db.isdigit():
        db = int(db)
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise _CannotFollow(f"{setting} 'db' is {db!r}, not a database number")
    service_name = options.get("service_name", "master")  # get_redis's default
    texts = {
        "service_name": service_name,
        "password": options.get("password"),
        "username": options.get("username"),
        "sentinel_kwargs password": sentinel_options.get("password"),
        "sentinel_kwargs username": sentinel_options.get("username"),
    }
    for name, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise _CannotFollow(f"{setting} {name!r} is a {type(value).__name__}, not a string")
    if not service_name:
        raise _CannotFollow(f"{setting} 'service_name' is empty")
    return SentinelTarget(
        sentinels=_sentinel_addresses(options["sentinels"], setting),
        service_name=service_name,
        db=db,
        username=options.get("username") or None,
        password=options.get("password") or None,
        sentinel_username=sentinel_options.get("username") or None,
        sentinel_password=sentinel_options.get("password") or None,
        ssl=use_tls,
        **tls,  # type: ignore[arg-type]  # checked: str for files and cert_reqs, else bool
    )


def _sentinel_addresses(sentinels: object, setting: str) -> tuple[tuple[str, int], ...]:
    problem = _CannotFollow(
        f"{setting} 'sentinels' must be a list of (host, port) pairs, as redis-py's "
        f"Sentinel takes them; got {type(sentinels).__name__}"
    )
    if not isinstance(sentinels, (list, tuple)):
        raise problem
    if not sentinels:
        raise _CannotFollow(f"{setting} 'sentinels' is empty")
    addresses = []
    for pair in sentinels:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise problem
        host, port = pair
        if isinstance(port, str) and port.isascii() and port.isdigit():
            port = int(port)  # redis-py's Connection takes int(port)
        if not isinstance(host, str) or not host or isinstance(port, bool):
            raise problem
        if not isinstance(port, int) or not 0 < port < 65536:
            raise problem
        addresses.append((host, port))
    return tuple(addresses)


def _tls_query(use_ssl: Mapping[Any, Any]) -> dict[str, str]:
    """redbeat_redis_use_ssl as the URL query parameters that mean the same to redis-py."""
    extra = sorted(str(key) for key in use_ssl if key not in TLS_PARAMETERS)
    if extra:
        raise _CannotFollow(
            f"redbeat_redis_use_ssl ({', '.join(extra)}) cannot be passed to the client yet "
            f"(only {', '.join(TLS_PARAMETERS)} can)"
        )
    query = {}
    for name, value in use_ssl.items():
        text = value
        if name == "ssl_cert_reqs" and (value is None or isinstance(value, int)):
            text = "none" if value is None else _CERT_REQS_NAMES.get(value)
        elif name == "ssl_check_hostname":
            # Not a string: redis-py takes any string, even "false", for true.
            text = str(value).lower() if isinstance(value, bool) else None
        elif isinstance(value, os.PathLike):
            text = os.fspath(value)
        if not isinstance(text, str):
            raise _CannotFollow(f"redbeat_redis_use_ssl {name!r} is {value!r}, {_TLS_TYPES[name]}")
        query[name] = text
    try:
        tls_settings(query.items())
    except ValueError as exc:
        raise _CannotFollow(f"redbeat_redis_use_ssl: {exc}") from None
    return query


_TLS_TYPES = {
    "ssl_cert_reqs": "not ssl.CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED or their names",
    "ssl_check_hostname": "not True or False",
    "ssl_ca_certs": "not the path of a file",
    "ssl_certfile": "not the path of a file",
    "ssl_keyfile": "not the path of a file",
}


def _with_query(url: str, query: Mapping[str, str]) -> str:
    """``url`` with the parameters of ``query`` it does not set itself (redis-py's from_url
    lets the URL's query win over keyword arguments)."""
    address, _, fragment = url.partition("#")
    own = {name for name, _value in parse_qsl(address.partition("?")[2], keep_blank_values=True)}
    added = "&".join(
        f"{name}={quote(value, safe='/')}" for name, value in query.items() if name not in own
    )
    if not added:
        return url
    joined = address + ("&" if "?" in address else "?") + added
    return joined + ("#" + fragment if fragment else "")


def _unsupported_connection(
    url: str, url_setting: str, setting: str, options: Mapping[str, Any]
) -> str | None:
    """Why the reconciler cannot open the plain-URL connection get_redis opens, if it cannot."""
    scheme = url.split("://", 1)[0].lower()
    if url.startswith(SENTINEL_SCHEME):
        # get_redis then passes the URL to redis-py, which refuses the scheme.
        return (
            f"{url_setting} is a redis-sentinel:// URL but {setting} has no 'sentinels' (a "
            "list of (host, port)), so RedBeat cannot connect either"
        )
    if scheme not in SUPPORTED_SCHEMES:
        return f"{url_setting} {mask_url(url)!r} is not a redis://, rediss:// or unix:// URL"
    if setting != "redbeat_redis_options":
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
