"""Redis URLs refused before any socket is opened: a scheme that is not Redis's, and a
password whose '/', '?' or '#' would cut it in two (redis-py would print the rest as the
host)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from reconciler.core.errors import UsageError
from reconciler.store.connection import connect
from reconciler.store.redis_urls import UNENCODED, mask_url

if TYPE_CHECKING:
    from .cli_runner import Workspace


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(
            "http://127.0.0.1:6379/0",
            "unsupported Redis URL 'http://127.0.0.1:6379/0': the scheme 'http://' is not one "
            "of redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://, as in "
            "redis://HOST:6379/0",
            id="http",
        ),
        pytest.param(
            "HTTPS://:pw@example.com/0",
            "unsupported Redis URL 'HTTPS://:***@example.com/0': the scheme 'https://' is not "
            "one of redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://, as in "
            "redis://HOST:6379/0",
            id="https-with-password",
        ),
        pytest.param(
            "127.0.0.1:6379",
            "unsupported Redis URL '127.0.0.1:6379': it has no scheme; expected redis://, "
            "rediss://, unix://, redis-sentinel:// or redis-cluster://, as in redis://HOST:6379/0",
            id="no-scheme",
        ),
    ],
)
def test_an_unknown_scheme_lists_the_supported_ones_without_cluster_talk(
    url: str, message: str
) -> None:
    with pytest.raises(UsageError) as raised:
        connect(url)
    assert str(raised.value) == message
    assert "Cluster" not in str(raised.value)


def test_tls_to_a_cluster_is_refused_by_name() -> None:
    with pytest.raises(UsageError) as raised:
        connect("rediss-cluster://:pw@h:7000")
    assert str(raised.value) == (
        "unsupported Redis URL 'rediss-cluster://:***@h:7000': TLS to a Redis Cluster is not "
        "supported yet; expected redis-cluster://[[username]:password@]host:port[,host:port...]"
    )


@pytest.mark.parametrize(
    "url",
    ["redis://:ab/cd@127.0.0.1:1/0", "rediss://u:ab?cd@127.0.0.1:1/0", "redis://:ab#cd@h/0"],
)
def test_an_unencoded_password_is_refused_without_showing_a_piece_of_it(url: str) -> None:
    with pytest.raises(UsageError) as raised:
        connect(url)
    message = str(raised.value)
    assert message.endswith(UNENCODED)
    assert "ab" not in message
    assert "cd" not in message


@pytest.mark.parametrize(
    "url",
    [
        "redis://:ab%2Fcd@127.0.0.1:1/0",
        "redis://127.0.0.1:1/0?password=ab/c@d",
        "unix:///run/redis@6379.sock",
    ],
)
def test_encoded_passwords_query_passwords_and_socket_paths_pass(url: str) -> None:
    connect(url).close()


def test_the_cli_prints_the_unsupported_scheme_on_one_line(workspace: Workspace) -> None:
    workspace.write("schedules/a.yaml", "version: 1\nschedules: {}\n")
    run = workspace.run("plan", "--redis-url", "http://127.0.0.1:6379/0")
    assert (run.exit_code, run.out) == (1, "")
    assert run.err == (
        "error: unsupported Redis URL 'http://127.0.0.1:6379/0': the scheme 'http://' is not "
        "one of redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://, as in "
        "redis://HOST:6379/0\n"
    )


# Every character RFC 3986 reserves, and the others a password generator may give.
RESERVED = ":/?#[]@!$&'()*+,;=% "


@pytest.mark.parametrize("char", list(RESERVED), ids=[f"{ord(c):02x}" for c in RESERVED])
@pytest.mark.parametrize("scheme", ["redis", "rediss", "redis-sentinel", "unix", "http"])
def test_no_unencoded_character_lets_a_piece_of_the_password_through(
    char: str, scheme: str
) -> None:
    password = f"Pa{char}ss=Word1LEAK"
    for url in (
        f"{scheme}://rw:{password}@127.0.0.1:1/0",
        f"{scheme}://:{password}@127.0.0.1:1/0?ssl=true",
        f"{scheme}://rw:p@ss:w/rd?#%&+ {char}LEAK@127.0.0.1:1/0",
    ):
        for shown in (mask_url(url), _refusal(url)):
            assert "LEAK" not in shown, (url, shown)
            assert "Word1" not in shown, (url, shown)


def _refusal(url: str) -> str:
    """What connect() says against ``url``: nothing, or a usage error (no other failure)."""
    try:
        connect(url).close()
    except UsageError as exc:
        return str(exc)
    return ""


def test_a_url_that_cannot_be_parsed_entirely_is_masked_up_to_its_last_at() -> None:
    assert mask_url("redis://rw:Pa?ss=Word1LEAK@h:6379/0") == "redis://***@h:6379/0"
    assert mask_url("redis://special:p@ss:w/rd?#%&+ LEAK@h:1/0") == "redis://***@h:1/0"
    # Parsed entirely: the user stays, the password goes.
    assert mask_url("redis://rw:s3cret@h:6379/0") == "redis://rw:***@h:6379/0"
    assert mask_url("redis://h/0?password=ab/c@d") == "redis://h/0?password=***"
    assert mask_url("unix:///run/redis@6379.sock") == "unix:///run/redis@6379.sock"
    assert mask_url("rw:s3cret@h:6379") == "***@h:6379"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "redis://127.0.0.1:1/0?foo=bar",
            "the query parameter 'foo' is not one a redis:// connection takes",
        ),
        (
            "redis://127.0.0.1:1/0?ssl_cert_reqs=none",
            "the query parameter 'ssl_cert_reqs' is not one a redis:// connection takes; TLS "
            "settings need a rediss:// URL",
        ),
        ("redis://127.0.0.1:1/0?client_name=a@b", UNENCODED),
    ],
    ids=["unknown", "tls-on-plain", "at-after-the-host"],
)
def test_query_parameters_no_connection_takes_are_refused_before_any_command(
    url: str, reason: str
) -> None:
    with pytest.raises(UsageError) as raised:
        connect(url)
    assert str(raised.value).endswith(f": {reason}")
