"""Connecting to Redis: the URL forms RedBeat accepts, bounded timeouts, masked passwords."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from reconciler.errors import StoreUnavailable, UsageError

SUPPORTED_SCHEMES = ("redis", "rediss", "unix")
CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 15.0


def mask_url(url: str) -> str:
    """The URL with any password replaced by '***', safe for logs, plans and history."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def mask_secrets(text: str, url: str) -> str:
    """Remove the URL's password from any message (redis-py errors may quote the URL)."""
    password = urlsplit(url).password
    if password:
        text = text.replace(password, "***")
    return re.sub(r"(://[^:/@\s]*:)[^@\s]+@", r"\1***@", text)


def connect(url: str) -> redis.Redis:
    """A client with bounded timeouts and a couple of quick retries, never endless ones."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SUPPORTED_SCHEMES:
        raise UsageError(
            f"unsupported Redis URL {mask_url(url)!r}: expected redis://, rediss:// or "
            "unix:// (Sentinel and Cluster are not supported yet)"
        )
    try:
        return redis.Redis.from_url(
            url,
            decode_responses=True,  # as RedBeat's own client: the same view of the data
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=COMMAND_TIMEOUT_SECONDS,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.2), retries=2),
            health_check_interval=0,
        )
    except ValueError as exc:
        reason = mask_secrets(str(exc), url)
        raise UsageError(f"invalid Redis URL {mask_url(url)!r}: {reason}") from None


def check_reachable(client: redis.Redis, url: str) -> None:
    try:
        client.ping()
    except redis.RedisError as exc:
        raise unavailable(exc, url) from None


def unavailable(exc: BaseException, url: str) -> StoreUnavailable:
    reason = mask_secrets(str(exc) or type(exc).__name__, url)
    return StoreUnavailable(f"Redis at {mask_url(url)} is not usable: {reason}")
