"""Opening Redis: clients with bounded timeouts for each URL form of
:mod:`reconciler.store.redis_urls`, and errors that say what to change.

``redis://``, ``rediss://`` and ``unix://`` URLs go to redis-py as they are. A
``redis-sentinel://`` URL is opened as RedBeat's ``get_redis`` opens ``redbeat_redis_options``'
Sentinels, and a ``redis-cluster://`` URL as it opens a cluster (``RedisCluster``).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import AskError, RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from reconciler.core.errors import StoreUnavailable, UsageError
from reconciler.store.redis_urls import (
    CLUSTER_SCHEME,
    SENTINEL_SCHEME,
    SUPPORTED_SCHEMES,
    UNENCODED,
    ClusterTarget,
    SentinelTarget,
    host_end,
    mask_secrets,
    mask_url,
    parse_cluster_url,
    parse_sentinel_url,
    passwords,
    tls_settings,
    unsupported_scheme,
    url_query,
    userinfo_end,
    with_password,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 15.0
# A Sentinel answers one small command; short timeouts and a single retry each keep a dead
# Sentinel from costing more than a few seconds before the next one is asked.
SENTINEL_TIMEOUT_SECONDS = 2.0
_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


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
        raise unsupported_scheme(url, scheme)
    rest = url.partition("://")[2]
    if scheme in ("redis", "rediss") and userinfo_end(rest) > host_end(rest):
        # The user-info reaches past the first '/', '?' or '#': redis-py would cut the
        # password there and take the rest for the host, which its errors then print: a
        # piece of the password, past any masking.
        raise UsageError(f"invalid Redis URL {mask_url(url)!r}: {UNENCODED}")
    tls: dict[str, str | bool] = {}
    if scheme == "rediss":
        try:
            tls = tls_settings(parse_qsl(url_query(url), keep_blank_values=True))
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


def _no_hostname_check(tls: Mapping[str, str | bool]) -> dict[str, bool]:
    """ssl_check_hostname=False when verification is off and the URL does not say: redis-py
    6.0.0 checks host names by default even then, which Python's ssl refuses."""
    if tls.get("ssl_cert_reqs") == "none" and "ssl_check_hostname" not in tls:
        return {"ssl_check_hostname": False}
    return {}


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


def _client_options() -> dict[str, Any]:
    """Bounded timeouts and a couple of quick retries, never endless ones."""
    return {
        "decode_responses": True,  # as RedBeat's own client: the same view of the data
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": COMMAND_TIMEOUT_SECONDS,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.2), retries=2),
        "health_check_interval": 0,
    }


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
    example = f"as in {with_password(url)} (USER:PASSWORD@ for an ACL user)"
    if not passwords(url):
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
    given = {name for name, _value in parse_qsl(url_query(url), keep_blank_values=True)}
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
