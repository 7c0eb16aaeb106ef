"""Connecting to Redis: the URL forms RedBeat accepts, bounded timeouts, masked passwords.

``redis://``, ``rediss://`` and ``unix://`` URLs go to redis-py as they are. A
``redis-sentinel://`` URL (see :data:`SENTINEL_URL_FORM`) is this project's own form: it
carries in one string what RedBeat takes from ``redbeat_redis_options`` (``sentinels``,
``service_name``, ``password``…), and is opened as RedBeat's ``get_redis`` opens those. A
``redis-cluster://`` URL (see :data:`CLUSTER_URL_FORM`) names a Redis Cluster's startup
nodes, and is opened as ``get_redis`` opens a cluster (``RedisCluster``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, quote, unquote

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import AskError, RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from reconciler.core.errors import StoreUnavailable, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

SENTINEL_SCHEME = "redis-sentinel"
CLUSTER_SCHEME = "redis-cluster"
SUPPORTED_SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME, CLUSTER_SCHEME)
CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 15.0
# A Sentinel answers one small command; short timeouts and a single retry each keep a dead
# Sentinel from costing more than a few seconds before the next one is asked.
SENTINEL_TIMEOUT_SECONDS = 2.0
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_URL_FORM = (
    "redis-sentinel://[[username]:password@]host:port[,host:port...][/db]?service_name=NAME"
    "[&sentinel_username=...][&sentinel_password=...][&ssl=true[&ssl_ca_certs=...]"
    "[&ssl_certfile=...][&ssl_keyfile=...][&ssl_cert_reqs=...][&ssl_check_hostname=...]]"
)
DEFAULT_REDIS_PORT = 6379
CLUSTER_URL_FORM = "redis-cluster://[[username]:password@]host:port[,host:port...]"
# TLS to a cluster is not followed yet: refused by name rather than taken for plaintext.
CLUSTER_TLS_SCHEME = "rediss-cluster"
# The TLS settings of the connection to Redis (to the master, for Sentinel), named as
# redis-py names them; files are PEM. Not secrets: a key file's path is not its content.
TLS_PARAMETERS = (
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
)
_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
CERT_REQS = ("none", "optional", "required")
_SENTINEL_QUERY_NAMES = (
    "service_name",
    "sentinel_username",
    "sentinel_password",
    "ssl",
    *TLS_PARAMETERS,
)
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


# A query parameter; it holds a password when its name, percent-decoded, ends with
# 'password' (password, sentinel_password, sentinel%5Fpassword...).
_QUERY_PARAMETER = re.compile(r"(?P<head>[?&](?P<name>[^=&#\s]*)=)(?P<value>[^&#\s]*)")
UNENCODED = (
    "'/', '?' and '#' in a user name or password must be percent-encoded (%2F, %3F, %23), "
    "and so must an '@' after the host (%40)"
)
_URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)


def mask_url(url: str) -> str:
    """The URL with any password replaced by '***', safe for logs, plans and history.

    Works on the text, not on a parsed URL, so that a malformed URL (a bad port, say) is
    masked too rather than crashing. Query parameters naming a password are masked, and the
    user-info ends at the last '@' outside them. A user-info that holds a '/', '?' or '#'
    means the URL cannot be parsed entirely (a password its owner forgot to percent-encode,
    or an '@' after the host): which part is the password is then anyone's guess, so all of
    it is masked.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        _before, at, after = url.rpartition("@")
        return f"***@{after}" if at else url
    end = _userinfo_end(rest)
    after = _QUERY_PARAMETER.sub(_masked_parameter, rest[end + 1 :])
    if end < 0:
        return f"{scheme}://{after}"
    userinfo = rest[:end]
    if any(mark in userinfo for mark in "/?#"):
        return f"{scheme}://***@{after}"
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{after}"


def _masked_parameter(match: re.Match[str]) -> str:
    return match["head"] + "***" if _names_password(match) else match.group(0)


def _names_password(match: re.Match[str]) -> bool:
    return unquote(match["name"]).lower().endswith("password")


def _userinfo_end(rest: str) -> int:
    """Where the user-info of ``rest`` (the URL after '://') ends: its last '@' outside the
    values of password parameters (which may hold '@'), or -1. A URL with no host (a socket
    path, 'unix:///run/redis@6379.sock') has none."""
    if rest.startswith("/"):
        return -1
    hidden = [m.span("value") for m in _QUERY_PARAMETER.finditer(rest) if _names_password(m)]
    ats = (i for i, char in enumerate(rest) if char == "@")
    return max((i for i in ats if not any(a <= i < b for a, b in hidden)), default=-1)


def _split_userinfo(rest: str) -> tuple[str, str | None, str]:
    """User, password (None without a ':') and what follows the '@' in ``rest``."""
    end = _userinfo_end(rest)
    user, colon, password = rest[: max(end, 0)].partition(":")
    return user, password if colon else None, rest[end + 1 :]


def mask_secrets(text: str, url: str) -> str:
    """Remove the configured URL's password from any message (redis-py errors may quote
    the URL, or parts of it), and mask every URL the message holds."""
    for secret in _passwords(url):
        text = text.replace(secret, "***")
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def _passwords(url: str) -> list[str]:
    _scheme, separator, rest = url.partition("://")
    found = [_split_userinfo(rest)[1] or ""] if separator else []
    found += [match["value"] for match in _QUERY_PARAMETER.finditer(url) if _names_password(match)]
    decoded = [unquote(secret) for secret in found]
    return sorted({secret for secret in (*found, *decoded) if secret}, key=len, reverse=True)


def connect(url: str) -> redis.Redis:
    """A client with bounded timeouts and a couple of quick retries, never endless ones."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == SENTINEL_SCHEME:
        target = parse_sentinel_url(url)
        try:
            _check_tls_files(target.tls_options())
        except ValueError as exc:
            raise UsageError(f"invalid Redis Sentinel URL {mask_url(url)!r}: {exc}") from None
        return _connect_sentinel(target)
    if scheme == CLUSTER_SCHEME:
        return connect_cluster(parse_cluster_url(url), url)
    if scheme not in SUPPORTED_SCHEMES:
        raise _unsupported_scheme(url, scheme)
    rest = url.partition("://")[2]
    if scheme in ("redis", "rediss") and _userinfo_end(rest) > _host_end(rest):
        # The user-info reaches past the first '/', '?' or '#': redis-py would cut the
        # password there and take the rest for the host, which its errors then print: a
        # piece of the password, past any masking.
        raise UsageError(f"invalid Redis URL {mask_url(url)!r}: {UNENCODED}")
    tls: dict[str, str | bool] = {}
    if scheme == "rediss":
        try:
            tls = tls_settings(parse_qsl(_query(url), keep_blank_values=True))
            _check_tls_files(tls)
        except ValueError as exc:
            raise UsageError(f"invalid Redis URL {mask_url(url)!r}: {exc}") from None
    try:
        # Keyword arguments: below the URL's own query parameters.
        client = redis.Redis.from_url(url, **_no_hostname_check(tls), **_client_options())
        pool = client.connection_pool
        # Builds a connection without connecting: a query parameter that no connection takes
        # fails here, as a usage error, rather than at the first command.
        pool.connection_class(**pool.connection_kwargs)
    except ValueError as exc:
        reason = mask_secrets(str(exc), url)
        raise UsageError(f"invalid Redis URL {mask_url(url)!r}: {reason}") from None
    except TypeError as exc:
        raise UsageError(
            f"invalid Redis URL {mask_url(url)!r}: {_unknown_parameter(exc, scheme)}"
        ) from None
    return client


def tls_settings(parameters: Iterable[tuple[str, str]]) -> dict[str, str | bool]:
    """The TLS parameters among ``parameters`` (name, percent-decoded value), checked: one
    bad value is a ValueError naming the parameter. Others are left to their reader."""
    settings: dict[str, str | bool] = {}
    for name, value in parameters:
        if name not in TLS_PARAMETERS:
            continue
        if name in settings:
            raise ValueError(f"{name} is given twice")
        if name == "ssl_cert_reqs":
            if value not in CERT_REQS:
                raise ValueError(f"ssl_cert_reqs must be none, optional or required, not {value!r}")
            settings[name] = value
        elif name == "ssl_check_hostname":
            flag = _BOOLEANS.get(value.lower())
            if flag is None:
                raise ValueError(f"ssl_check_hostname must be true or false, not {value!r}")
            settings[name] = flag
        elif not value:
            raise ValueError(f"{name} is empty; it takes the path of a PEM file")
        else:
            settings[name] = value
    if settings.get("ssl_check_hostname") is True and settings.get("ssl_cert_reqs") == "none":
        raise ValueError(
            "ssl_check_hostname=true needs a certificate to check the name in: not "
            "ssl_cert_reqs=none"
        )
    if "ssl_keyfile" in settings and "ssl_certfile" not in settings:
        # redis-py would ignore the key: no client certificate would be sent.
        raise ValueError("ssl_keyfile is given without ssl_certfile (the client certificate)")
    return settings


def _no_hostname_check(tls: Mapping[str, str | bool]) -> dict[str, bool]:
    """ssl_check_hostname=False when verification is off and the URL does not say: redis-py
    6.0.0 checks host names by default even then, which Python's ssl refuses."""
    if tls.get("ssl_cert_reqs") == "none" and "ssl_check_hostname" not in tls:
        return {"ssl_check_hostname": False}
    return {}


def _query(url: str) -> str:
    return url.partition("?")[2].partition("#")[0]


def _check_tls_files(settings: Mapping[str, str | bool]) -> None:
    """A TLS file that cannot be read is refused by the parameter's name, before any
    connection (redis-py would report it as a failure to connect, naming no parameter)."""
    for name in _TLS_FILES:
        path = settings.get(name)
        if not isinstance(path, str):
            continue
        if os.path.isdir(path):
            raise ValueError(f"{name} {path!r} is a folder, not a PEM file")
        if not os.path.exists(path):
            raise ValueError(f"{name} {path!r}: no such file")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{name} {path!r}: the file cannot be read (permissions)")


def _unknown_parameter(error: TypeError, scheme: str) -> str:
    found = re.search(r"keyword argument '([^']+)'", str(error))
    name = found.group(1) if found else "?"
    tls = (
        "; TLS settings need a rediss:// URL"
        if name.startswith("ssl") and scheme != "rediss"
        else ""
    )
    return f"the query parameter {name!r} is not one a {scheme}:// connection takes{tls}"


def _host_end(rest: str) -> int:
    """Where the host list of ``rest`` (the URL after '://') ends, as redis-py splits URLs:
    at the first '/', '?' or '#'."""
    return min((index for index in map(rest.find, "/?#") if index >= 0), default=len(rest))


def _unsupported_scheme(url: str, scheme: str) -> UsageError:
    shown = mask_url(url)
    if scheme == CLUSTER_TLS_SCHEME:
        return UsageError(
            f"unsupported Redis URL {shown!r}: TLS to a Redis Cluster is not supported yet; "
            f"expected {CLUSTER_URL_FORM}"
        )
    what = f"the scheme '{scheme}://' is not one of" if scheme else "it has no scheme; expected"
    return UsageError(
        f"unsupported Redis URL {shown!r}: {what} redis://, rediss://, unix://, "
        "redis-sentinel:// or redis-cluster://, as in redis://HOST:6379/0"
    )


def _client_options() -> dict[str, Any]:
    """Bounded timeouts and a couple of quick retries, never endless ones."""
    return {
        "decode_responses": True,  # as RedBeat's own client: the same view of the data
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.2), retries=2),
        "health_check_interval": 0,
    }


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis-sentinel://`` URL names, in the terms of RedBeat's
    ``redbeat_redis_options``: the Sentinels, the master's ``service_name``, and the
    master's ``db`` and credentials; the Sentinels' own credentials are RedBeat's
    ``sentinel_kwargs``, and ``ssl`` with the ``ssl_*`` settings its ``redbeat_redis_use_ssl``
    (for the master only). An ``ssl_*`` setting left None is redis-py's default."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str | None = None  # none, optional or required
    ssl_check_hostname: bool | None = None

    def tls_options(self) -> dict[str, str | bool]:
        """The ``ssl_*`` settings given, as redis-py's connection takes them."""
        return {
            name: value for name in TLS_PARAMETERS if (value := getattr(self, name)) is not None
        }

    def url(self) -> str:
        """The URL :func:`parse_sentinel_url` reads back as this target; every part is
        percent-encoded, so any password survives the trip."""
        userinfo = ""
        if self.username or self.password:
            userinfo = _encoded(self.username or "")
            userinfo += f":{_encoded(self.password)}@" if self.password else "@"
        hosts = ",".join(
            f"[{host}]:{port}" if ":" in host else f"{_encoded(host)}:{port}"
            for host, port in self.sentinels
        )
        query = [("service_name", self.service_name)]
        query += [("sentinel_username", self.sentinel_username)] if self.sentinel_username else []
        query += [("sentinel_password", self.sentinel_password)] if self.sentinel_password else []
        query += [("ssl", "true")] if self.ssl else []
        parameters = "&".join(f"{name}={_encoded(value)}" for name, value in query)
        for name, value in self.tls_options().items():
            # A path keeps its '/' readable; it is no secret.
            text = str(value).lower() if isinstance(value, bool) else quote(value, safe="/")
            parameters += f"&{name}={text}"
        return f"{SENTINEL_SCHEME}://{userinfo}{hosts}/{self.db}?{parameters}"


def _encoded(text: str) -> str:
    return quote(text, safe="")


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Read :data:`SENTINEL_URL_FORM`; any problem is a UsageError showing the URL masked.

    Split as redis-py splits its own URLs (the host list ends at the first '/', '?' or
    '#'), with percent-decoding but no '+'-to-space, so '+' in a password stays a '+'.
    """

    def invalid(problem: str) -> UsageError:
        return UsageError(
            f"invalid Redis Sentinel URL {mask_url(url)!r}: {problem}; expected {SENTINEL_URL_FORM}"
        )

    rest = url.partition("://")[2]
    netloc, tail = rest[: _host_end(rest)], rest[_host_end(rest) :]
    if "@" in tail:
        raise invalid(UNENCODED)
    if "#" in tail:
        raise invalid("a fragment ('#...') means nothing here")
    path, _, query = tail.partition("?")
    userinfo, at, host_list = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    try:
        sentinels = tuple(_sentinel_address(part) for part in host_list.split(","))
    except ValueError as exc:
        raise invalid(str(exc)) from None
    db_text = path[1:]
    if db_text and not (db_text.isascii() and db_text.isdigit()):
        raise invalid("the database after '/' must be a number")
    parameters: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        name, _, value = pair.partition("=")
        if name not in _SENTINEL_QUERY_NAMES:
            accepted = ", ".join(_SENTINEL_QUERY_NAMES)
            raise invalid(f"unknown parameter {unquote(name)!r} (accepted: {accepted})")
        if name in parameters:
            raise invalid(f"{name} is given twice")
        parameters[name] = unquote(value)
    service_name = parameters.get("service_name", "")
    if not service_name:
        raise invalid("service_name (the master's name the Sentinels monitor) is missing")
    ssl = _BOOLEANS.get(parameters.get("ssl", "false").lower())
    if ssl is None:
        raise invalid("ssl must be true or false")
    try:
        tls = tls_settings(parameters.items())
    except ValueError as exc:
        raise invalid(str(exc)) from None
    if tls and not ssl:
        raise invalid(f"{next(iter(tls))} needs ssl=true (TLS to the master)")
    return SentinelTarget(
        sentinels=sentinels,
        service_name=service_name,
        db=int(db_text or 0),
        username=unquote(user) if at and user else None,
        password=unquote(password) if at and colon and password else None,
        sentinel_username=parameters.get("sentinel_username") or None,
        sentinel_password=parameters.get("sentinel_password") or None,
        ssl=ssl,
        **tls,  # type: ignore[arg-type]  # checked: str for files and cert_reqs, else bool
    )


def _sentinel_address(text: str) -> tuple[str, int]:
    return _address(text, DEFAULT_SENTINEL_PORT, "Sentinel")


def _address(text: str, default_port: int, what: str) -> tuple[str, int]:
    if not text:
        raise ValueError(f"a {what} host is missing (an empty URL, or an extra ',')")
    if text.startswith("["):
        host, bracket, port_text = text[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise ValueError(f"the IPv6 host {text!r} must be written [address]:port")
        port_text = port_text[1:]
    else:
        host, colon, port_text = text.partition(":")
        if colon and not port_text:
            raise ValueError(f"the port of {what} host {host!r} is empty")
    host = unquote(host)
    if not host:
        raise ValueError(f"a {what} address {text!r} has no host")
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"the port of {what} host {host!r} must be a number from 1 to 65535")
    return host, int(port_text)


def _connect_sentinel(target: SentinelTarget) -> redis.Redis:
    """The master's client, opened as RedBeat's get_redis opens it (``Sentinel(...)``,
    then ``master_for(service_name, db=...)``), with the reconciler's bounded timeouts.
    Nothing connects until the first command."""
    # redis.sentinel has no annotations: hence the ignores and the cast below.
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={
            "username": target.sentinel_username,
            "password": target.sentinel_password,
            "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
            "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.1), retries=1),
            "health_check_interval": 0,
        },
    )
    master = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service_name,
        redis_class=_SentinelMasterClient,
        db=target.db,
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        **{**_no_hostname_check(target.tls_options()), **target.tls_options()},
        **_client_options(),
    )
    return cast("redis.Redis", master)


class _SentinelMasterClient(redis.Redis):
    """``master_for``'s client; closing it also closes the connections to the Sentinels,
    which redis-py leaves to the Sentinel object."""

    def close(self) -> None:
        super().close()
        pool = getattr(self, "connection_pool", None)
        if isinstance(pool, SentinelConnectionPool):
            pool.sentinel_manager.close()


@dataclass(frozen=True)
class ClusterTarget:
    """What a ``redis-cluster://`` URL names: the startup nodes (RedBeat's
    ``startup_nodes``, or the host of the ``redis://`` URL it gives ``RedisCluster.from_url``)
    and the credentials every node takes."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    def url(self) -> str:
        """The URL :func:`parse_cluster_url` reads back as this target."""
        userinfo = ""
        if self.username or self.password:
            userinfo = _encoded(self.username or "")
            userinfo += f":{_encoded(self.password)}@" if self.password else "@"
        hosts = ",".join(
            f"[{host}]:{port}" if ":" in host else f"{_encoded(host)}:{port}"
            for host, port in self.nodes
        )
        return f"{CLUSTER_SCHEME}://{userinfo}{hosts}"


def parse_cluster_url(url: str) -> ClusterTarget:
    """Read :data:`CLUSTER_URL_FORM`; any problem is a UsageError showing the URL masked."""

    def invalid(problem: str) -> UsageError:
        return UsageError(
            f"invalid Redis Cluster URL {mask_url(url)!r}: {problem}; expected {CLUSTER_URL_FORM}"
        )

    rest = url.partition("://")[2]
    netloc, tail = rest[: _host_end(rest)], rest[_host_end(rest) :]
    if "@" in tail:
        raise invalid(UNENCODED)
    if tail.startswith("?") or "?" in tail:
        raise invalid("it takes no query parameters")
    if "#" in tail:
        raise invalid("a fragment ('#...') means nothing here")
    if tail not in ("", "/", "/0"):
        raise invalid("a Redis Cluster has only database 0")
    userinfo, at, host_list = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    try:
        nodes = tuple(_address(part, DEFAULT_REDIS_PORT, "node") for part in host_list.split(","))
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return ClusterTarget(
        nodes=nodes,
        username=unquote(user) if at and user else None,
        password=unquote(password) if at and colon and password else None,
    )


def has_hash_tag(prefix: str) -> bool:
    """Whether every key starting with ``prefix`` hashes to the same Redis Cluster slot:
    the prefix holds a whole, non-empty hash tag (``{...}``), Redis's first '{' and the
    first '}' after it."""
    opening = prefix.find("{")
    closing = prefix.find("}", opening + 1) if opening >= 0 else -1
    return closing > opening + 1


class _TransactionRetry(Retry):
    """Retries a cluster transaction's commands after MOVED or ASK only.

    redis-py's cluster transactions also retry a connection error, EXEC included, on a new
    connection that watches nothing: a batch could commit unfenced, or twice. Without that
    retry the error reaches the writer, which reads the batch's history record back before
    trying again, as on a single Redis. A redirect while watching is still a WatchError."""

    def update_supported_errors(self, specified_errors: Iterable[type[Exception]]) -> None:
        super().update_supported_errors(
            [error for error in specified_errors if issubclass(error, AskError)]
        )


def connect_cluster(target: ClusterTarget, url: str) -> redis.Redis:
    """A Redis Cluster client, as RedBeat's get_redis opens one (``RedisCluster`` with
    ``decode_responses``), with bounded timeouts. It learns the cluster's slots at once, so
    an unreachable cluster is a StoreUnavailable here.

    Typed as ``redis.Redis``: the store uses the commands both clients share; the few
    places that differ (SCAN, CONFIG) ask :func:`is_cluster`."""
    options = {key: value for key, value in _client_options().items() if key != "retry"}
    try:
        client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],  # type: ignore[no-untyped-call]
            username=target.username,
            password=target.password,
            retry=_TransactionRetry(
                ExponentialBackoff(cap=1.0, base=0.2), retries=2, supported_errors=(AskError,)
            ),
            # A MOVED answer (a slot migrated, a failover) re-reads the whole slot map at
            # once, so the next command and the next transaction go to the slot's owner.
            reinitialize_steps=1,
            **options,
        )
    except (redis.RedisError, RedisClusterException) as exc:
        raise unavailable(exc, url, "Redis Cluster: ") from None
    return cast("redis.Redis", client)


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def cluster_slot(client: redis.Redis, key: str) -> tuple[int, str]:
    """The slot of ``key`` and the primary that holds it (host:port)."""
    cluster = cast("RedisCluster", client)
    slot: int = cluster.keyslot(key)  # type: ignore[no-untyped-call]
    node = cluster.nodes_manager.get_node_from_slot(slot)
    return slot, f"{node.host}:{node.port}"


def check_reachable(client: redis.Redis, url: str) -> None:
    where = "Redis Cluster: " if is_cluster(client) else ""
    pool = getattr(client, "connection_pool", None)  # a cluster has a pool per node
    if isinstance(pool, SentinelConnectionPool):
        host, port = _master_address(pool, url)
        where = f"master {pool.service_name!r} at {host}:{port} (from Sentinel): "
    try:
        client.ping()
    except (redis.RedisError, RedisClusterException) as exc:
        raise unavailable(exc, url, where) from None


def _master_address(pool: SentinelConnectionPool, url: str) -> tuple[str, int]:
    """Where the Sentinels say the master is, asking each in turn as redis-py does; when
    none can say, one line saying what each answered (redis-py's MasterNotFoundError names
    the unreachable ones only, as client reprs, and says nothing of the others)."""
    sentinel: Sentinel = pool.sentinel_manager
    service = pool.service_name
    answers = []
    for node in sentinel.sentinels:
        options = node.connection_pool.connection_kwargs
        address = f"Sentinel {options.get('host')}:{options.get('port')}"
        try:
            masters = cast("dict[str, dict[str, Any]]", node.sentinel_masters())
        except redis.AuthenticationError as exc:
            reason = str(exc).rstrip(".")
            answers.append(
                f"{address} refused the Sentinel credentials (sentinel_password): {reason}"
            )
            continue
        except redis.RedisError as exc:
            answers.append(f"{address}: {(str(exc) or type(exc).__name__).rstrip('.')}")
            continue
        state = masters.get(service)
        if state is None:
            known = ", ".join(repr(name) for name in sorted(masters)) or "none"
            answers.append(f"{address} monitors no master named {service!r} (it monitors {known})")
        elif not sentinel.check_master_state(state, service):  # type: ignore[no-untyped-call]
            flags = state.get("flags") or ()  # "master,s_down", or a set of them
            flags = ",".join(sorted(flags.split(",") if isinstance(flags, str) else flags))
            answers.append(
                f"{address} reports master {service!r} at {state['ip']}:{state['port']} "
                f"as down (flags {flags or 'none'})"
            )
        else:
            return str(state["ip"]), int(state["port"])
    reasons = mask_secrets("; ".join(answers), url)
    raise StoreUnavailable(f"Redis at {mask_url(url)} is not usable: {reasons}")


def unavailable(exc: BaseException, url: str, where: str = "") -> StoreUnavailable:
    """The error for ``exc``; a refused login is explained in place of Redis's own words for
    it (NOAUTH, WRONGPASS, or redis-py's 'HELLO must be called with the client already
    authenticated'), which say neither that a password is missing nor where it goes."""
    if not isinstance(exc, redis.AuthenticationError):
        reason = mask_secrets(where + (str(exc) or type(exc).__name__), url)
        hint = _tls_hint(reason, url)
        return StoreUnavailable(f"Redis at {mask_url(url)} is not usable: {reason}{hint}")
    example = f"as in {_with_password(url)} (USER:PASSWORD@ for an ACL user)"
    if not _passwords(url):
        problem = (
            "authentication required, and the URL gives no password; put it in the URL's "
            f"user-info, {example}, e.g. from a CI secret; percent-encode any '/', '?', "
            "'#' or '%' in it"
        )
    else:
        problem = (
            "authentication failed (wrong password, or unknown or disabled user); check the "
            f"password in the URL's user-info, {example}, e.g. the CI secret it comes from"
        )
    return StoreUnavailable(f"Redis at {mask_url(url)} is not usable: {where}{problem}")


def _tls_hint(reason: str, url: str) -> str:
    """What to change in the URL when a TLS handshake failed; redis-py's words (OpenSSL's)
    do not name the parameters."""
    scheme = url.partition("://")[0].lower()
    given = {name for name, _value in parse_qsl(_query(url), keep_blank_values=True)}
    if scheme not in ("rediss", SENTINEL_SCHEME):
        return ""
    if "certificate verify failed" in reason:
        if "mismatch" in reason:
            return (
                "; the server's certificate is not for this host name (ssl_check_hostname=false "
                "skips that check)"
            )
        return (
            "; the server's certificate is not signed by a CA this client trusts (give that "
            "CA's PEM file with ssl_ca_certs)"
        )
    if "ssl_certfile" not in given and any(
        sign in reason for sign in ("certificate required", "EOF occurred in violation")
    ):
        return (
            "; if the server requires a client certificate, give it with ssl_certfile and "
            "ssl_keyfile"
        )
    return ""


def _with_password(url: str) -> str:
    """The URL as it would be with a password: 'PASSWORD' in its user-info, and no other
    password in it (one in a query parameter is dropped); nothing secret is shown."""
    scheme, _, rest = url.partition("://")
    user, _password, after = _split_userinfo(rest)
    address, question, query = after.partition("?")
    kept = [
        pair
        for pair in query.split("&")
        if pair and not unquote(pair.partition("=")[0]).lower().endswith("password")
    ]
    shown = address + ("?" + "&".join(kept) if question and kept else "")
    for secret in _passwords(url):  # none is left there; this makes sure of it
        shown = shown.replace(secret, "***")
    return f"{scheme}://{user}:PASSWORD@{shown}"
