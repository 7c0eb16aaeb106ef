"""The Redis URL forms the reconciler reads, and the masking of their passwords.

``redis://``, ``rediss://`` and ``unix://`` URLs are redis-py's. A ``redis-sentinel://`` URL
(see :data:`SENTINEL_URL_FORM`) is this project's own form: it carries in one string what
RedBeat takes from ``redbeat_redis_options`` (``sentinels``, ``service_name``,
``password``…). A ``redis-cluster://`` URL (see :data:`CLUSTER_URL_FORM`) names a Redis
Cluster's startup nodes. Text only: opening them is :mod:`reconciler.store.connection`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from reconciler.core.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

SENTINEL_SCHEME = "redis-sentinel"
CLUSTER_SCHEME = "redis-cluster"
SUPPORTED_SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME, CLUSTER_SCHEME)
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
    end = userinfo_end(rest)
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


def userinfo_end(rest: str) -> int:
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
    end = userinfo_end(rest)
    user, colon, password = rest[: max(end, 0)].partition(":")
    return user, password if colon else None, rest[end + 1 :]


def mask_secrets(text: str, url: str) -> str:
    """Remove the configured URL's password from any message (redis-py errors may quote
    the URL, or parts of it), and mask every URL the message holds."""
    for secret in passwords(url):
        text = text.replace(secret, "***")
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def passwords(url: str) -> list[str]:
    _scheme, separator, rest = url.partition("://")
    found = [_split_userinfo(rest)[1] or ""] if separator else []
    found += [match["value"] for match in _QUERY_PARAMETER.finditer(url) if _names_password(match)]
    decoded = [unquote(secret) for secret in found]
    return sorted({secret for secret in (*found, *decoded) if secret}, key=len, reverse=True)


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


def url_query(url: str) -> str:
    return url.partition("?")[2].partition("#")[0]


def host_end(rest: str) -> int:
    """Where the host list of ``rest`` (the URL after '://') ends, as redis-py splits URLs:
    at the first '/', '?' or '#'."""
    return min((index for index in map(rest.find, "/?#") if index >= 0), default=len(rest))


def unsupported_scheme(url: str, scheme: str) -> UsageError:
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
        """The URL :func:`parse_sentinel_url` reads back as this target."""
        query = [("service_name", self.service_name)]
        query += [("sentinel_username", self.sentinel_username)] if self.sentinel_username else []
        query += [("sentinel_password", self.sentinel_password)] if self.sentinel_password else []
        query += [("ssl", "true")] if self.ssl else []
        parameters = "&".join(f"{name}={_encoded(value)}" for name, value in query)
        for name, value in self.tls_options().items():
            # A path keeps its '/' readable; it is no secret.
            text = str(value).lower() if isinstance(value, bool) else quote(value, safe="/")
            parameters += f"&{name}={text}"
        netloc = _netloc(self.username, self.password, self.sentinels)
        return f"{SENTINEL_SCHEME}://{netloc}/{self.db}?{parameters}"


def _encoded(text: str) -> str:
    return quote(text, safe="")


def _netloc(username: str | None, password: str | None, hosts: Iterable[tuple[str, int]]) -> str:
    """User-info and host list, each part percent-encoded, so any password survives the trip."""
    userinfo = ""
    if username or password:
        userinfo = _encoded(username or "")
        userinfo += f":{_encoded(password)}@" if password else "@"
    return userinfo + ",".join(
        f"[{host}]:{port}" if ":" in host else f"{_encoded(host)}:{port}" for host, port in hosts
    )


@dataclass(frozen=True)
class _HostsURL:
    """A URL whose host list may name several hosts, split as redis-py splits its own URLs
    (the host list ends at the first '/', '?' or '#'), with percent-decoding but no
    '+'-to-space, so '+' in a password stays a '+'."""

    username: str | None
    password: str | None
    host_list: str
    path: str
    query: str


def _split_hosts_url(url: str, invalid: Callable[[str], UsageError]) -> _HostsURL:
    rest = url.partition("://")[2]
    netloc, tail = rest[: host_end(rest)], rest[host_end(rest) :]
    if "@" in tail:
        raise invalid(UNENCODED)
    if "#" in tail:
        raise invalid("a fragment ('#...') means nothing here")
    path, question, query = tail.partition("?")
    userinfo, at, host_list = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return _HostsURL(
        username=unquote(user) if at and user else None,
        password=unquote(password) if at and colon and password else None,
        host_list=host_list,
        path=path,
        query=question + query,
    )


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Read :data:`SENTINEL_URL_FORM`; any problem is a UsageError showing the URL masked."""

    def invalid(problem: str) -> UsageError:
        return UsageError(
            f"invalid Redis Sentinel URL {mask_url(url)!r}: {problem}; expected {SENTINEL_URL_FORM}"
        )

    parts = _split_hosts_url(url, invalid)
    try:
        sentinels = tuple(_sentinel_address(part) for part in parts.host_list.split(","))
    except ValueError as exc:
        raise invalid(str(exc)) from None
    db_text = parts.path[1:]
    query = parts.query[1:]
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
        username=parts.username,
        password=parts.password,
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
        return f"{CLUSTER_SCHEME}://{_netloc(self.username, self.password, self.nodes)}"


def parse_cluster_url(url: str) -> ClusterTarget:
    """Read :data:`CLUSTER_URL_FORM`; any problem is a UsageError showing the URL masked."""

    def invalid(problem: str) -> UsageError:
        return UsageError(
            f"invalid Redis Cluster URL {mask_url(url)!r}: {problem}; expected {CLUSTER_URL_FORM}"
        )

    parts = _split_hosts_url(url, invalid)
    if parts.query:
        raise invalid("it takes no query parameters")
    if parts.path not in ("", "/", "/0"):
        raise invalid("a Redis Cluster has only database 0")
    try:
        nodes = tuple(
            _address(part, DEFAULT_REDIS_PORT, "node") for part in parts.host_list.split(",")
        )
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return ClusterTarget(nodes=nodes, username=parts.username, password=parts.password)


def has_hash_tag(prefix: str) -> bool:
    """Whether every key starting with ``prefix`` hashes to the same Redis Cluster slot:
    the prefix holds a whole, non-empty hash tag (``{...}``), Redis's first '{' and the
    first '}' after it."""
    opening = prefix.find("{")
    closing = prefix.find("}", opening + 1) if opening >= 0 else -1
    return closing > opening + 1


def with_password(url: str) -> str:
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
    for secret in passwords(url):  # none is left there; this makes sure of it
        shown = shown.replace(secret, "***")
    return f"{scheme}://{user}:PASSWORD@{shown}"
