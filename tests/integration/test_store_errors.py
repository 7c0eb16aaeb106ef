"""A Redis that wants a password says so, and where the password goes; never Redis's own
words for it (NOAUTH, WRONGPASS, redis-py's 'HELLO must be called with the client already
authenticated'), and never the password. Against a real redis-server with ``requirepass``
and an ACL user."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from reconciler.store import embedded
from tests.integration.plan_apply_support import cron, isolate, run_cli, write_schedules

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.integration.plan_apply_support import CliResult
    from tests.support.redis_server import RedisServer

PASSWORD = "Req-pass-nobody-may-see"
USER_PASSWORD = "acl-user-secret"
WRONG = "not-the-Right-one"
COMMANDS = [
    ("plan", "schedules"),
    ("apply", "schedules"),
    ("drift", "schedules"),
    ("history",),
    ("export",),
]
RAW_ANSWERS = ("HELLO", "NOAUTH", "WRONGPASS", "invalid username-password pair")


@pytest.fixture
def locked_server(
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RedisServer]:
    """A server of its own requiring PASSWORD, with an ACL user 'beat'. Set after start and
    removed before the stop: the test bed's start-up probe and SHUTDOWN do not log in."""
    isolate(monkeypatch, tmp_path)
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    server = redis_server_factory()
    client = server.client()
    client.acl_setuser("beat", enabled=True, passwords=[f"+{USER_PASSWORD}"], keys=["*"])
    client.execute_command("ACL", "SETUSER", "beat", "+@all")
    client.config_set("requirepass", PASSWORD)
    client.close()
    yield server
    client = server.client(password=PASSWORD)
    try:
        client.config_set("requirepass", "")
    finally:
        client.close()


def _run(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], url: str) -> CliResult:
    result = run_cli(capsys, *argv, "--redis-url", url)
    assert result.code == 1, result.out + result.err
    assert len(result.err_lines) == 1, result.err
    assert not any(answer in result.err for answer in RAW_ANSWERS), result.err
    assert not any(secret in result.out + result.err for secret in (PASSWORD, WRONG))
    return result


@pytest.mark.integration
@pytest.mark.parametrize("argv", COMMANDS, ids=[argv[0] for argv in COMMANDS])
def test_no_password_says_authentication_is_required_and_where_it_goes(
    capsys: pytest.CaptureFixture[str], locked_server: RedisServer, argv: tuple[str, ...]
) -> None:
    address = f"127.0.0.1:{locked_server.port}"
    result = _run(capsys, argv, f"redis://{address}/0")
    assert result.err == (
        f"error: Redis at redis://{address}/0 is not usable: authentication required, and "
        f"the URL gives no password; put it in the URL's user-info, as in "
        f"redis://:PASSWORD@{address}/0 (USER:PASSWORD@ for an ACL user), e.g. from a CI "
        "secret; percent-encode any '/', '?', '#' or '%' in it\n"
    )


@pytest.mark.integration
@pytest.mark.parametrize("argv", COMMANDS, ids=[argv[0] for argv in COMMANDS])
def test_a_wrong_password_says_authentication_failed(
    capsys: pytest.CaptureFixture[str], locked_server: RedisServer, argv: tuple[str, ...]
) -> None:
    address = f"127.0.0.1:{locked_server.port}"
    result = _run(capsys, argv, f"redis://:{WRONG}@{address}/0")
    assert result.err == (
        f"error: Redis at redis://:***@{address}/0 is not usable: authentication failed "
        "(wrong password, or unknown or disabled user); check the password in the URL's "
        f"user-info, as in redis://:PASSWORD@{address}/0 (USER:PASSWORD@ for an ACL user), "
        "e.g. the CI secret it comes from\n"
    )


@pytest.mark.integration
def test_an_acl_users_wrong_password_keeps_the_user_in_the_example(
    capsys: pytest.CaptureFixture[str], locked_server: RedisServer
) -> None:
    address = f"127.0.0.1:{locked_server.port}"
    result = _run(capsys, ("plan", "schedules"), f"redis://beat:{WRONG}@{address}/0")
    assert result.err.startswith(
        f"error: Redis at redis://beat:***@{address}/0 is not usable: authentication failed "
    )
    assert f"as in redis://beat:PASSWORD@{address}/0 " in result.err


@pytest.mark.integration
def test_a_wrong_password_in_the_query_is_left_out_of_the_example(
    capsys: pytest.CaptureFixture[str], locked_server: RedisServer
) -> None:
    address = f"127.0.0.1:{locked_server.port}"
    result = _run(capsys, ("plan", "schedules"), f"redis://{address}/0?password={WRONG}&db=0")
    assert result.err.startswith(
        f"error: Redis at redis://{address}/0?password=***&db=0 is not usable: "
        "authentication failed "
    )
    assert f"as in redis://:PASSWORD@{address}/0?db=0 " in result.err


@pytest.mark.integration
@pytest.mark.parametrize(
    "userinfo", [f":{PASSWORD}", f"beat:{USER_PASSWORD}"], ids=["requirepass", "acl-user"]
)
def test_the_right_password_in_the_user_info_works(
    capsys: pytest.CaptureFixture[str], locked_server: RedisServer, userinfo: str
) -> None:
    url = f"redis://{userinfo}@127.0.0.1:{locked_server.port}/0"
    result = run_cli(capsys, "plan", "schedules", "--redis-url", url)
    assert result.code == 0, result.err
    assert "+ nightly" in result.out


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("#!/bin/sh\nexit 1\n", "the embedded redis-server exited at start"),
        ("#!/bin/sh\nexec sleep 60\n", "the embedded redis-server did not start in time"),
    ],
    ids=["exits", "never-answers"],
)
def test_an_embedded_server_that_fails_to_start_is_reported_and_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str, message: str
) -> None:
    # The clean-up of a failed start once ran before the URL was known and raised a
    # ValueError that hid the message (and never stopped a server that did not answer).
    binary = tmp_path / "redis-server"
    binary.write_text(server)
    binary.chmod(0o755)
    monkeypatch.setattr(embedded, "find_redis_server", lambda: str(binary))
    monkeypatch.setattr(embedded, "START_TIMEOUT_SECONDS", 0.5)
    started = embedded.EmbeddedRedis(tmp_path / "state")
    with pytest.raises(embedded.EmbeddedRedisError, match=message):
        started.__enter__()
    assert started._process is None  # waited for, or killed and waited for
