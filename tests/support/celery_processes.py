"""Run real ``celery beat`` (RedBeat scheduler) and ``celery worker`` subprocesses.

Both load :mod:`tests.support.celery_app` against a :class:`RedisServer`; see that module
for the configuration. Every process runs in its own session (process group) and is always
stopped with SIGTERM, then SIGKILL for the whole group, so none outlives a failing test.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from tests.support.celery_app import (
    DEFAULT_KEY_PREFIX,
    DEFAULT_TIMEZONE,
    ENV_KEY_PREFIX,
    ENV_REDIS_URL,
    ENV_TIMEZONE,
    RUNS_KEY,
    close_app,
    make_app,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import redis

    from tests.support.redis_server import RedisServer

T = TypeVar("T")

#: Repository root: the subprocesses' cwd and first PYTHONPATH entry (computed, not assumed).
REPO_ROOT = Path(__file__).resolve().parents[2]
APP_MODULE = "tests.support.celery_app"
SCHEDULER = "redbeat.RedBeatScheduler"

DEFAULT_STARTUP_TIMEOUT = 20.0
DEFAULT_STOP_TIMEOUT = 10.0

# Processes still running at interpreter exit (pytest aborted before finalisers ran).
_LIVE: set[CeleryProcess] = set()


class CeleryProcessError(RuntimeError):
    """A beat/worker subprocess failed to start, become ready or stop."""


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Raises ``TimeoutError`` after ``timeout`` seconds; ``message`` (or its result, if
    callable, so expensive diagnostics are only built on failure) is added to the error.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = message() if callable(message) else message
            raise TimeoutError(
                f"condition not met within {timeout:.1f}s" + (f": {detail}" if detail else "")
            )
        time.sleep(interval)


def recorded_runs(
    client: redis.Redis,
    *,
    task: str | None = None,
    label: Any = None,
    key: str = RUNS_KEY,
) -> list[dict[str, Any]]:
    """Runs recorded by the test tasks, oldest first, optionally filtered by task/label.

    Each record is ``{task, label, args, kwargs, at, task_id, hostname}`` (``at`` is the
    worker's ``time.time()`` when the task ran).
    """
    runs = [json.loads(raw) for raw in client.lrange(key, 0, -1)]
    if task is not None:
        runs = [run for run in runs if run["task"] == task]
    if label is not None:
        runs = [run for run in runs if run["label"] == label]
    return runs


def wait_for_runs(
    client: redis.Redis,
    count: int,
    *,
    timeout: float = 10.0,
    task: str | None = None,
    label: Any = None,
    processes: Sequence[CeleryProcess] = (),
) -> list[dict[str, Any]]:
    """Wait until at least ``count`` matching runs are recorded; return them all.

    ``processes`` only enrich the timeout error with their logs.
    """

    def enough() -> list[dict[str, Any]]:
        runs = recorded_runs(client, task=task, label=label)
        return runs if len(runs) >= count else []

    def describe() -> str:
        runs = recorded_runs(client, task=task, label=label)
        logs = "".join(f"\n\n--- {p.kind} log ---\n{p.log_text()}" for p in processes)
        return f"expected >= {count} runs, got {len(runs)}: {runs}{logs}"

    return wait_for(enough, timeout=timeout, interval=0.05, message=describe)


class CeleryProcess:
    """One celery subprocess (beat or worker) with its log file.

    ``log_text()`` keeps working after ``stop()`` (the final log is kept in memory).
    ``app_module`` replaces the test bed's app for ``celery -A`` (its folder must then be
    on the ``PYTHONPATH`` given in ``env``).
    """

    def __init__(
        self,
        kind: str,
        server: RedisServer,
        celery_args: Sequence[str],
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        timezone: str = DEFAULT_TIMEZONE,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        app_module: str = APP_MODULE,
    ) -> None:
        self.kind = kind
        self.server = server
        self.key_prefix = key_prefix
        self.timezone = timezone
        self._own_dir = log_dir is None
        self.dir = (
            Path(tempfile.mkdtemp(prefix=f"reconciler-{kind}-")) if log_dir is None else log_dir
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / f"{kind}-{uuid.uuid4().hex[:8]}.log"
        self.argv = [sys.executable, "-m", "celery", "-A", app_module, *celery_args]
        self.env = self._build_env(env)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._final_log: str | None = None

    # -- state ----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def is_ready(self) -> bool:
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> CeleryProcess:
        if self._proc is not None:
            raise CeleryProcessError(f"{self.kind} already started")
        self._log_file = self.log_path.open("ab")
        # Own session => own process group, so stop() can signal every descendant at once.
        self._proc = subprocess.Popen(
            self.argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _LIVE.add(self)
        return self

    def wait_ready(self, timeout: float = DEFAULT_STARTUP_TIMEOUT) -> CeleryProcess:
        """Block until :meth:`is_ready`; raise with the process log if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise CeleryProcessError(
                    f"{self.kind} exited (status {self.returncode}) before it was ready:\n"
                    + self.log_text()
                )
            if self.is_ready():
                return self
            if time.monotonic() >= deadline:
                raise CeleryProcessError(
                    f"{self.kind} not ready within {timeout:.1f}s:\n" + self.log_text()
                )
            time.sleep(0.1)

    def send_signal(self, sig: int) -> None:
        """Signal the main process only (e.g. SIGTERM to test graceful shutdown)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the whole process group now (simulates a crash: no lock release)."""
        self._killpg(signal.SIGKILL)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=DEFAULT_STOP_TIMEOUT)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL it; return the exit status."""
        proc = self._proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                self._killpg(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._killpg(signal.SIGKILL)
                    proc.wait(timeout=DEFAULT_STOP_TIMEOUT)
        finally:
            # Anything left in the group (e.g. a pool child) goes too.
            self._killpg(signal.SIGKILL)
            _LIVE.discard(self)
            self._close()
        return proc.returncode

    def __enter__(self) -> CeleryProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid} running={self.is_running()}>"

    # -- internals ------------------------------------------------------------------

    def _build_env(self, extra: dict[str, str] | None) -> dict[str, str]:
        # Drop CELERY_* from the caller's environment: the app must be configured only by us.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
        env.update(
            {
                ENV_REDIS_URL: self.server.url,
                ENV_KEY_PREFIX: self.key_prefix,
                ENV_TIMEZONE: self.timezone,
                # Log lines reach the file as they happen, for readiness checks and debugging.
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
                ),
            }
        )
        env.update(extra or {})
        return env

    def _killpg(self, sig: int) -> None:
        if self._proc is None:
            return
        # The group id is the leader's pid (start_new_session); gone group => nothing to do.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def _close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._final_log = self.log_text()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class BeatProcess(CeleryProcess):
    """``celery beat -S redbeat.RedBeatScheduler``; ready once it holds RedBeat's lock."""

    def __init__(
        self, server: RedisServer, *, extra_args: Sequence[str] = (), **kwargs: Any
    ) -> None:
        self.schedule_dir = Path(tempfile.mkdtemp(prefix="reconciler-beat-state-"))
        super().__init__(
            "beat",
            server,
            [
                "beat",
                "-S",
                SCHEDULER,
                "--max-interval",
                "1",
                "-l",
                "INFO",
                # RedBeat keeps no local state, but celery still wants a schedule path:
                # keep it out of the repository.
                "-s",
                str(self.schedule_dir / "celerybeat-schedule"),
                *extra_args,
            ],
            **kwargs,
        )

    @property
    def lock_key(self) -> str:
        return self.key_prefix + ":lock"

    def is_ready(self) -> bool:
        # The lock key alone could be a previous (killed) beat's lock still within its TTL;
        # the log line proves this process acquired it.
        if "beat: Acquired lock" not in self.log_text():
            return False
        client = self.server.client()
        try:
            return bool(client.exists(self.lock_key))
        finally:
            client.close()

    def _close(self) -> None:
        super()._close()
        shutil.rmtree(self.schedule_dir, ignore_errors=True)


class WorkerProcess(CeleryProcess):
    """``celery worker --pool=solo``; ready once it answers a remote-control ping."""

    def __init__(
        self,
        server: RedisServer,
        *,
        hostname: str | None = None,
        extra_args: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        # Unique node name, so the ping reaches this worker and no other one.
        self.hostname = hostname or f"worker-{uuid.uuid4().hex[:8]}@testbed"
        super().__init__(
            "worker",
            server,
            [
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
                "-n",
                self.hostname,
                *extra_args,
            ],
            **kwargs,
        )

    def is_ready(self) -> bool:
        # A pong proves the worker consumes from this broker, not merely that it logged.
        app = make_app(self.server.url, key_prefix=self.key_prefix, timezone=self.timezone)
        try:
            replies = app.control.ping(destination=[self.hostname], timeout=0.5)
        finally:
            close_app(app)
        return any(self.hostname in reply for reply in replies or [])


def start_beat(
    server: RedisServer,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    timezone: str = DEFAULT_TIMEZONE,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    wait: bool = True,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
) -> BeatProcess:
    """Start a beat; with ``wait``, return once it holds the lock. The caller must stop() it."""
    beat = BeatProcess(
        server,
        extra_args=extra_args,
        key_prefix=key_prefix,
        timezone=timezone,
        env=env,
        log_dir=log_dir,
    )
    return _started(beat, wait, startup_timeout)


def start_worker(
    server: RedisServer,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    timezone: str = DEFAULT_TIMEZONE,
    hostname: str | None = None,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    wait: bool = True,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
) -> WorkerProcess:
    """Start a worker; with ``wait``, return once it answers ping. The caller must stop() it."""
    worker = WorkerProcess(
        server,
        hostname=hostname,
        extra_args=extra_args,
        key_prefix=key_prefix,
        timezone=timezone,
        env=env,
        log_dir=log_dir,
    )
    return _started(worker, wait, startup_timeout)


@contextlib.contextmanager
def running_beat(
    server: RedisServer,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    timezone: str = DEFAULT_TIMEZONE,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    wait: bool = True,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
) -> Iterator[BeatProcess]:
    """Run a beat for the duration of the block; it is stopped even if the block fails."""
    beat = start_beat(
        server,
        key_prefix=key_prefix,
        timezone=timezone,
        extra_args=extra_args,
        env=env,
        log_dir=log_dir,
        wait=wait,
        startup_timeout=startup_timeout,
    )
    try:
        yield beat
    finally:
        beat.stop()


@contextlib.contextmanager
def running_worker(
    server: RedisServer,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    timezone: str = DEFAULT_TIMEZONE,
    hostname: str | None = None,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    wait: bool = True,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
) -> Iterator[WorkerProcess]:
    """Run a worker for the duration of the block; it is stopped even if the block fails."""
    worker = start_worker(
        server,
        key_prefix=key_prefix,
        timezone=timezone,
        hostname=hostname,
        extra_args=extra_args,
        env=env,
        log_dir=log_dir,
        wait=wait,
        startup_timeout=startup_timeout,
    )
    try:
        yield worker
    finally:
        worker.stop()


_P = TypeVar("_P", bound=CeleryProcess)


def _started(process: _P, wait: bool, timeout: float) -> _P:
    process.start()
    if wait:
        try:
            process.wait_ready(timeout)
        except BaseException:
            process.stop()
            raise
    return process


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_LIVE):
        with contextlib.suppress(Exception):
            process.stop(timeout=2.0)
