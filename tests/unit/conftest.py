"""Fixtures of the unit tests: no Redis, no processes, no network (the ``workspace`` of files
in a temporary folder is in tests/conftest.py).

The promise is enforced: starting a process or opening a network connection from a unit
test fails it (tests that need either belong to tests/integration/).
"""

from __future__ import annotations

import socket
import subprocess

import pytest


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a unit test started a process: {args[1] if len(args) > 1 else args}")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"a unit test opened a network connection to {address!r}")

    # connect_ex too: redis-py and the stdlib reach the network through one or the other.
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
