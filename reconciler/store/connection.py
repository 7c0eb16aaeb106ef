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


_USERINFO_PASSWORD = re.compile(r"(?P<head>://[^:/@\s]*:)[^@\s]*@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|sentinel_password)=)[^&#\s]*", re.I)


def mask_url(url: str) -> str:
    """The URL with any password replaced by '***', safe for logs, plans and history.

    Works on the text, not on a parsed URL, so that a malformed URL (a bad port, say) is
    masked too rather than crashing, and both ``user:pass@host`` and ``?password=`` forms
    (redis-py accepts both) are covered.
    """
    masked = _USERINFO_PASSWORD.sub(lambda m: m.group("head") + "***@", url)
    return _QUERY_PASSWORD.sub(lambda m: m.group("head") + "***", masked)


def mask_secrets(text: str, url: str) -> str:
    """Remove the URL's passwords from any message (redis-py errors may quote the URL)."""
    for secret in _passwords(url):
        text = text.replace(secret, "***")
    return mask_url(text)


def _passwords(url: str) -> list[str]:
    found = [m.group(0)[len(m.group("head")) : -1] for m in _USERINFO_PASSWORD.finditer(url)]
    found += [m.group(0)[len(m.group("head")) :] for m in _QUERY_PASSWORD.finditer(url)]
    decoded = [unquote(secret) for secret in found]
    return [secret for secret in {*found, *decoded} if secret]


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
