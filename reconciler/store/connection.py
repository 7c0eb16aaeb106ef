"""Connecting to Redis: the URL forms RedBeat accepts, bounded timeouts, masked passwords."""

from __future__ import annotations

import re
from urllib.parse import unquote

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from reconciler.errors import StoreUnavailable, UsageError

SUPPORTED_SCHEMES = ("redis", "rediss", "unix")
CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 15.0


_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|sentinel_password)=)[^&#\s]*", re.I)
_URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)


def mask_url(url: str) -> str:
    """The URL with any password replaced by '***', safe for logs, plans and history.

    Works on the text, not on a parsed URL, so that a malformed URL (a bad port, say) is
    masked too rather than crashing. The user-info ends at the last '@' before the path,
    as redis-py reads it, so a password holding '@' is masked whole; both the
    ``user:pass@host`` and ``?password=`` forms are covered.
    """
    scheme, separator, rest = url.partition("://")
    if separator:
        authority, slash, path = rest.partition("/")
        query_start = authority.find("?")
        if query_start >= 0:
            authority, path, slash = (
                authority[:query_start],
                authority[query_start:] + slash + path,
                "",
            )
        userinfo, at, host = authority.rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            authority = f"{user}:***@{host}"
        url = f"{scheme}{separator}{authority}{slash}{path}"
    return _QUERY_PASSWORD.sub(lambda m: m.group("head") + "***", url)


def mask_secrets(text: str, url: str) -> str:
    """Remove the configured URL's password from any message (redis-py errors may quote
    the URL, or parts of it), and mask every URL the message holds."""
    for secret in _passwords(url):
        text = text.replace(secret, "***")
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def _passwords(url: str) -> list[str]:
    _scheme, separator, rest = url.partition("://")
    found = []
    authority = rest.partition("/")[0].partition("?")[0] if separator else ""
    userinfo, at, _host = authority.rpartition("@")
    if at and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    found += [m.group(0)[len(m.group("head")) :] for m in _QUERY_PASSWORD.finditer(url)]
    decoded = [unquote(secret) for secret in found]
    return sorted({secret for secret in (*found, *decoded) if secret}, key=len, reverse=True)


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
