"""Redis Cluster settings without a server: the redis-cluster:// URL, the hash-tag rule,
and an app's RedBeat cluster settings followed as RedBeat's get_redis follows them."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.errors import UsageError
from reconciler.load.celery_app import read_app_settings
from reconciler.store.redis_urls import (
    ClusterTarget,
    has_hash_tag,
    mask_url,
    parse_cluster_url,
)
from tests.support import checked_app


@pytest.mark.parametrize(
    ("url", "target"),
    [
        pytest.param(
            "redis-cluster://10.0.0.1:7000", ClusterTarget(nodes=(("10.0.0.1", 7000),)), id="one"
        ),
        pytest.param(
            "redis-cluster://a:7000,b:7001,[::1]:7002/0",
            ClusterTarget(nodes=(("a", 7000), ("b", 7001), ("::1", 7002))),
            id="many-and-db-0",
        ),
        pytest.param(
            "redis-cluster://app:s3%2Fcr%40t@a",
            ClusterTarget(nodes=(("a", 6379),), username="app", password="s3/cr@t"),
            id="credentials-and-default-port",
        ),
        pytest.param(
            "redis-cluster://:pw@a:1", ClusterTarget(nodes=(("a", 1),), password="pw"), id="pw"
        ),
    ],
)
def test_cluster_urls_name_the_startup_nodes_and_survive_a_round_trip(
    url: str, target: ClusterTarget
) -> None:
    assert parse_cluster_url(url) == target
    assert parse_cluster_url(target.url()) == target


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis-cluster://:pw@a:7000/1", "a Redis Cluster has only database 0"),
        ("redis-cluster://:pw@a:7000?ssl=true", "it takes no query parameters"),
        ("redis-cluster://:pw@a:7000,", "a node host is missing"),
        ("redis-cluster://:pw@a:port", "the port of node host 'a' must be a number"),
        ("redis-cluster://:p/w@a:7000", "must be percent-encoded"),
    ],
)
def test_bad_cluster_urls_are_one_line_with_the_password_masked(url: str, problem: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_cluster_url(url)
    message = str(raised.value)
    assert problem in message
    assert "\n" not in message
    assert "pw" not in message
    assert "p/w" not in message
    assert message.endswith(
        "expected redis-cluster://[[username]:password@]host:port[,host:port...]"
    )


def test_cluster_urls_are_masked_like_the_others() -> None:
    assert mask_url("redis-cluster://app:s3cret@a:7000,b:7001") == (
        "redis-cluster://app:***@a:7000,b:7001"
    )


@pytest.mark.parametrize(
    ("prefix", "tagged"),
    [
        ("{redbeat}:", True),
        ("app:{redbeat}:", True),
        ("{a}", True),
        ("redbeat:", False),
        ("{}redbeat:", False),  # an empty tag: Redis hashes the whole key
        ("{redbeat:", False),  # no '}': the rest of each key decides
        ("}{redbeat}:", True),  # the first '{' and the first '}' after it
        ("redbeat}:{", False),
    ],
)
def test_a_prefix_pins_one_slot_only_with_a_whole_non_empty_hash_tag(
    prefix: str, tagged: bool
) -> None:
    assert has_hash_tag(prefix) is tagged


def _settings(**conf: Any) -> Any:
    return read_app_settings(checked_app.make_checked_app(**conf), "checked")


@pytest.mark.parametrize(
    ("conf", "url"),
    [
        pytest.param(
            {
                "redbeat_redis_url": "redis://:pw@10.0.0.1:7000/0",
                "redbeat_redis_options": {"cluster": True},
            },
            "redis-cluster://:pw@10.0.0.1:7000",
            id="cluster-option-url-host-is-the-startup-node",
        ),
        pytest.param(
            {
                "redbeat_redis_url": "redis://10.0.0.1:7000",
                "redbeat_redis_options": {
                    "cluster": True,
                    "password": "opt",
                    "username": "app",
                    "socket_timeout": 3,
                },
            },
            "redis-cluster://app:opt@10.0.0.1:7000",
            id="cluster-option-credentials-from-options",
        ),
        pytest.param(
            {
                "redbeat_redis_url": "redis-cluster://ignored:1",
                "redbeat_redis_options": {
                    "startup_nodes": [{"host": "a", "port": "7000"}, {"host": "b", "port": 7001}],
                    "password": "pw",
                },
            },
            "redis-cluster://:pw@a:7000,b:7001",
            id="redis-cluster-url-with-startup-nodes",
        ),
        pytest.param(
            {"redbeat_redis_url": "redis-cluster://h:7000"},
            "redis-cluster://localhost:30001",
            id="redis-cluster-url-defaults-as-redbeat",
        ),
        pytest.param(
            {
                "redbeat_redis_url": "redis://b:7000/0",
                "broker_transport_options": {"cluster": True},
            },
            "redis-cluster://b:7000",
            id="cluster-from-broker-transport-options",
        ),
    ],
)
def test_the_apps_cluster_settings_become_a_cluster_url(conf: dict[str, Any], url: str) -> None:
    found = _settings(**conf)
    assert found.unsupported_connection is None
    assert found.redis_url == url


@pytest.mark.parametrize(
    ("conf", "phrase"),
    [
        pytest.param(
            {
                "redbeat_redis_url": "rediss://h:7000",
                "redbeat_redis_options": {"cluster": True},
            },
            "a rediss:// URL with 'cluster' is not supported yet",
            id="tls",
        ),
        pytest.param(
            {
                "redbeat_redis_url": "redis://h:7000",
                "redbeat_redis_options": {"cluster": True, "read_from_replicas": True},
            },
            "redbeat_redis_options (read_from_replicas) cannot be passed",
            id="other-option",
        ),
        pytest.param(
            {
                "redbeat_redis_url": "redis-cluster://h",
                "redbeat_redis_options": {"startup_nodes": [("a", 1)]},
            },
            "'startup_nodes' must be a list of",
            id="startup-nodes-shape",
        ),
    ],
)
def test_cluster_settings_the_reconciler_cannot_follow_are_named(
    conf: dict[str, Any], phrase: str
) -> None:
    found = _settings(**conf)
    assert found.unsupported_connection is not None
    assert phrase in found.unsupported_connection


def test_a_cluster_transaction_is_retried_after_a_redirect_only() -> None:
    """redis-py's TransactionStrategy copies the client's Retry and adds the connection
    errors to it; a lost EXEC must reach the writer (which reads the batch's history record
    back) instead of being sent again on a connection that watches nothing."""
    from copy import copy

    from redis.backoff import NoBackoff
    from redis.cluster import RedisCluster
    from redis.exceptions import AskError, MovedError
    from redis.exceptions import ConnectionError as RedisConnectionError

    from reconciler.store.connection import _TransactionRetry

    retry = copy(_TransactionRetry(NoBackoff(), retries=2, supported_errors=(AskError,)))
    retry.update_supported_errors([*RedisCluster.ERRORS_ALLOW_RETRY, AskError, MovedError])
    calls: list[int] = []

    def lost() -> None:
        calls.append(1)
        raise RedisConnectionError("gone")

    with pytest.raises(RedisConnectionError):
        retry.call_with_retry(lost, lambda _error: None)
    assert len(calls) == 1

    def moved() -> None:
        calls.append(1)
        raise MovedError("10856 127.0.0.1:7001")

    with pytest.raises(MovedError):
        retry.call_with_retry(moved, lambda _error: None)
    assert len(calls) == 1 + 3  # the first try and two retries
