"""Who the history says applied: --actor, then the CI's user or $USER, then the login name,
then the uid (containers often have no $USER, and their uid no passwd entry)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from reconciler.services.apply import resolve_actor

if TYPE_CHECKING:
    from collections.abc import Callable

EVERY = {
    "RECONCILER_ACTOR": "reconciler-actor",
    "GITHUB_ACTOR": "github-actor",
    "GITLAB_USER_LOGIN": "gitlab-user",
    "USER": "shell-user",
}


def login(name: str) -> Callable[[], str]:
    return lambda: name


def no_login(error: Exception) -> Callable[[], str]:
    def fail() -> str:
        raise error

    return fail


@pytest.mark.parametrize(
    ("given", "environ", "expected"),
    [
        pytest.param("ops-bot", EVERY, "ops-bot", id="--actor-first"),
        pytest.param(None, EVERY, "reconciler-actor", id="RECONCILER_ACTOR"),
        pytest.param("", EVERY, "reconciler-actor", id="empty---actor-is-not-given"),
        pytest.param(
            None, {**EVERY, "RECONCILER_ACTOR": ""}, "github-actor", id="empty-variable-skipped"
        ),
        pytest.param(
            None, {"GITLAB_USER_LOGIN": "gitlab-user", "USER": "u"}, "gitlab-user", id="gitlab"
        ),
        pytest.param(None, {"USER": "shell-user"}, "shell-user", id="USER"),
        pytest.param(None, {}, "login-name", id="no-variables-login-name"),
    ],
)
def test_the_actor_by_precedence(given: str | None, environ: dict[str, str], expected: str) -> None:
    assert resolve_actor(given, environ, login("login-name")) == expected


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(KeyError("getpwuid(): uid not found: 1000650000"), id="before-3.13"),
        pytest.param(OSError("No username set in the environment"), id="3.13"),
    ],
)
def test_without_a_login_name_the_uid(error: Exception) -> None:
    assert resolve_actor(None, {}, no_login(error)) == f"uid {os.getuid()}"
