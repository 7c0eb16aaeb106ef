"""Start and stop a real Redis Sentinel (``redis-server <conf> --sentinel``) on 127.0.0.1,
monitoring one :class:`~tests.support.redis_server.RedisServer` as its only master.

The same ``redis-server`` binary as the test bed's servers runs in Sentinel mode; its
configuration file is written into a temporary folder, since Sentinel rewrites it.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.redis_server import HOST, RedisServerError, find_redis_server, free_port

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from tests.support.redis_server import RedisServer

_BIND_ATTEMPTS = 5


class SentinelServer:
    """One Sentinel monitoring ``master`` as ``service_name`` (quorum 1).

    ``master_password`` is the master's ``requirepass`` (Sentinel's ``auth-pass``);
    ``password`` is the Sentinel's own ``requirepass``, what RedBeat's ``sentinel_kwargs``
    and the URL's ``sentinel_password`` carry. ``extra_config`` lines are appended to the
    configuration file (e.g. a second ``sentinel monitor``).
    """

    def __init__(
        self,
        master: RedisServer,
        *,
        service_name: str = "mymaster",
        master_password: str | None = None,
        password: str | None = None,
        extra_config: Sequence[str] = (),
        startup_timeout: float = 10.0,
    ) -> None:
        self.master = master
        self.extra_config = tuple(extra_config)
        self.service_name = service_name
        self.master_password = master_password
        self.password = password
        self.startup_timeout = startup_timeout
        self.host = HOST
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RedisServerError("the Sentinel is not started")
        return self._port

    def client(self) -> redis.Redis:
        """A client of the Sentinel itself (``decode_responses=True``); the caller closes it."""
        return _client(self.host, self.port, self.password, timeout=5.0)

    def log_text(self) -> str:
        if self._dir is None:
            return ""
        with contextlib.suppress(OSError):
            return (self._dir / "sentinel.log").read_text(errors="replace")
        return ""

    def start(self) -> SentinelServer:
        if self._proc is not None:
            raise RedisServerError("the Sentinel is already started")
        self._dir = Path(tempfile.mkdtemp(prefix="reconciler-sentinel-"))
        failures = []
        for _ in range(_BIND_ATTEMPTS):
            failure = self._try_start(free_port(self.host))
            if failure is None:
                return self
            failures.append(failure)
        self.stop()
        raise RedisServerError("the Sentinel did not start:\n" + "\n---\n".join(failures))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> SentinelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _config(self, port: int) -> str:
        assert self._dir is not None
        lines = [
            f"port {port}",
            f"bind {self.host}",
            f"dir {self._dir}",
            f"logfile {self._dir / 'sentinel.log'}",
            "sentinel resolve-hostnames no",
            f"sentinel monitor {self.service_name} {self.master.host} {self.master.port} 1",
        ]
        if self.master_password:
            lines.append(f"sentinel auth-pass {self.service_name} {self.master_password}")
        if self.password:
            lines.append(f"requirepass {self.password}")
        return "\n".join([*lines, *self.extra_config]) + "\n"

    def _try_start(self, port: int) -> str | None:
        """Start on ``port``; None once the Sentinel names the master, else why not."""
        assert self._dir is not None
        config = self._dir / "sentinel.conf"
        config.write_text(self._config(port), encoding="utf-8")
        (self._dir / "sentinel.log").unlink(missing_ok=True)
        proc = subprocess.Popen(
            [find_redis_server(), str(config), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self._dir,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"port {port}: exited with status {proc.returncode}:\n{self.log_text()}"
            if self._names_the_master(port, proc.pid):
                self._proc, self._port = proc, port
                return None
            time.sleep(0.02)
        _terminate(proc)
        return f"port {port}: did not name the master within {self.startup_timeout}s"

    def _names_the_master(self, port: int, pid: int) -> bool:
        client = _client(self.host, port, self.password, timeout=0.5)
        try:
            # The pid tells our Sentinel from whatever else won a race for the port.
            if int(client.info("server")["process_id"]) != pid:
                return False
            address = client.sentinel_get_master_addr_by_name(self.service_name)
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()
        return address is not None and (address[0], int(address[1])) == (
            self.master.host,
            self.master.port,
        )


def _client(host: str, port: int, password: str | None, *, timeout: float) -> redis.Redis:
    # No retries: a refused connection during start-up is an answer, not something to wait on.
    return redis.Redis(
        host=host,
        port=port,
        password=password,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=5.0)
            return
        except subprocess.TimeoutExpired:
            continue
