"""Opening the store a command works on: a configured Redis URL, or the embedded default."""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.core.defaults import DEFAULT_FOLDER
from reconciler.core.errors import UsageError, WrongKeyType
from reconciler.store.keys import DEFAULT_KEY_PREFIX, KeySpace

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import redis


@dataclass(frozen=True)
class StoreSettings:
    redis_url: str | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    embedded_folder: Path = DEFAULT_FOLDER


@dataclass(frozen=True)
class Store:
    client: redis.Redis
    keys: KeySpace
    target: str  # the URL with its password masked: the only form ever shown


@contextmanager
def open_store(settings: StoreSettings, *, notice: Callable[[str], None]) -> Iterator[Store]:
    """The store for ``settings``; Redis failures surface as one clear StoreUnavailable."""
    # Imported here: StoreSettings is declared by commands (validate) that never connect.
    import redis

    from reconciler.store.connection import (
        check_reachable,
        connect,
        is_cluster,
        unavailable,
    )
    from reconciler.store.embedded import EmbeddedRedis
    from reconciler.store.redis_urls import mask_url

    if not settings.key_prefix:
        raise UsageError("the key prefix must not be empty (RedBeat's default is 'redbeat:')")
    with ExitStack() as stack:
        url = settings.redis_url
        if url:
            label = mask_url(url)
        elif os.environ.get("CI"):
            raise UsageError(
                "no Redis URL configured (--redis-url or REDBEAT_REDIS_URL) and CI is set: "
                "refusing to plan or apply against the embedded local Redis. Is the secret missing?"
            )
        else:
            url = stack.enter_context(EmbeddedRedis(settings.embedded_folder))
            notice(
                f"Using the embedded local Redis in {settings.embedded_folder}/ (no --redis-url or "
                "REDBEAT_REDIS_URL given); its data persists there between runs."
            )
            label = f"embedded:{settings.embedded_folder}"
        client = connect(url)
        stack.callback(client.close)
        check_reachable(client, url)
        if is_cluster(client):
            notice(_cluster_mode(client, KeySpace(settings.key_prefix), label))
        try:
            yield Store(client, KeySpace(settings.key_prefix), label)
        except redis.RedisError as exc:
            raise unavailable(exc, url) from None
        except UnicodeDecodeError:
            # RedBeat reads with decode_responses=True too: beat cannot read it either.
            raise WrongKeyType(
                f"Redis holds data under the prefix {settings.key_prefix!r} that is not UTF-8 "
                "text, which RedBeat cannot read either; nothing was changed. Find it with "
                "redis-cli --scan (a key name, a hash field or a set member) and what wrote it"
            ) from None


def _cluster_mode(client: redis.Redis, keys: KeySpace, label: str) -> str:
    """Which guarantees a Redis Cluster allows under this prefix: with a hash tag, every
    key RedBeat and the reconciler use is in one slot, and each batch is one transaction as
    on a single Redis; without one, they spread over slots and no transaction can cover an
    entry, the schedule and the apply lock, so the command stops before reading."""
    from reconciler.store.connection import cluster_slot
    from reconciler.store.redis_urls import has_hash_tag

    if not has_hash_tag(keys.prefix):
        raise UsageError(
            f"Redis Cluster at {label}: the key prefix {keys.prefix!r} has no hash tag, so "
            "RedBeat's keys spread over hash slots and no transaction can cover an entry, "
            "the schedule and the apply lock; nothing was read or written. Give beat and "
            "the reconciler a prefix with one, such as '{redbeat}:' (Celery's "
            "redbeat_key_prefix, and --key-prefix or --app here), then apply the schedule "
            "files under it before starting beat with it (docs/redis.md#redis-cluster)"
        )
    slot, node = cluster_slot(client, keys.schedule)
    return (
        f"Redis Cluster: every key under {keys.prefix!r} is in hash slot {slot} (on {node}); "
        "each batch is written in one transaction, fenced by the apply lock, as on a "
        "single Redis."
    )
