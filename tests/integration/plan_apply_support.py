"""Helpers for the plan/apply tests: schedule files, the CLI, Redis snapshots and MONITOR.

Everything here talks to the real test server; nothing fakes Redis. Snapshots use DUMP
(the exact serialized value) and PTTL of every key, so "nothing was written" means byte for
byte. MONITOR captures every command the server executed, including those run inside Lua
scripts and transactions, and the server itself says which of them write (COMMAND's
``write`` flag) and which keys they touch (COMMAND GETKEYS).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder

from reconciler.cli.main import main
from reconciler.store.history import HistoryRecord, read_history
from reconciler.store.keys import MARKER_FIELD, MARKER_VALUE, KeySpace

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import pytest

    from tests.support.redis_server import RedisServer

UTC = timezone.utc
PREFIX = "redbeat:"
SCHEDULE_KEY = "redbeat::schedule"
STATICS_KEY = "redbeat::statics"
BEAT_LOCK_KEY = "redbeat::lock"
MANAGED_KEY = "redbeat::reconciler:managed"
APPLY_LOCK_KEY = "redbeat::reconciler:lock"
HISTORY_KEY = "redbeat::reconciler:history"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Commands that run Lua or functions: they may write, whatever their COMMAND flags say.
_SCRIPTING = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "script"})


# -- schedule files ----------------------------------------------------------------------


def entry_yaml(name: str, fields: Mapping[str, Any]) -> str:
    """One entry of a schedule file; values are written as JSON, which YAML reads as is."""
    lines = [f"  {name}:"]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def schedule_file_text(entries: Mapping[str, Mapping[str, Any]]) -> str:
    if not entries:
        return "version: 1\nschedules: {}\n"
    return "version: 1\nschedules:\n" + "".join(
        entry_yaml(name, fields) for name, fields in entries.items()
    )


def write_schedules(
    folder: Path, entries: Mapping[str, Mapping[str, Any]], name: str = "schedules.yaml"
) -> Path:
    """Write ``entries`` (name -> entry keys) as the only schedule file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(schedule_file_text(entries), encoding="utf-8")
    return path


def cron(expression: str, **extra: Any) -> dict[str, Any]:
    return {"task": "app.tasks.job", "cron": expression, **extra}


def bulk_entries(count: int, prefix: str = "job") -> dict[str, dict[str, Any]]:
    return {
        f"{prefix}-{index:05d}": cron(f"{index % 60} {index % 24} * * *", kwargs={"n": index})
        for index in range(count)
    }


# -- the CLI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str
    seconds: float = 0.0

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    """``reconciler ARGV`` in this process (the cwd is the test's working folder)."""
    capsys.readouterr()
    started = time.monotonic()
    code = main(list(argv))
    seconds = time.monotonic() - started
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err, seconds)


CliRunner = Callable[..., CliResult]
_SETTINGS_VARIABLES = ("REDBEAT_REDIS_URL", "REDBEAT_KEY_PREFIX", "REDBEAT_TIMEZONE", "CI")


def cli_against(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    """``run("plan", "schedules", ...)``: the CLI in process against ``redis_url``."""

    def run(command: str, *argv: str) -> CliResult:
        return run_cli(capsys, command, *argv, "--redis-url", redis_url)

    return run


def isolate(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Work in ``folder`` (so shown paths are relative), with no Redis settings inherited."""
    for variable in _SETTINGS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(folder)


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment for a subprocess: no Redis settings or CI flag inherited."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REDBEAT_", "RECONCILER_")) and key not in {"CI", "NO_COLOR"}
    }
    env.update(overrides)
    return env


def start_reconciler(
    folder: Path, *argv: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``python -m reconciler ARGV`` as a running process, for a test that injects a fault
    meanwhile; its output goes to ``folder``'s ``out`` and ``err`` files (a pipe nobody reads
    meanwhile would fill up and stop it). :func:`outcome` waits and reads them."""
    with (folder / "out").open("wb") as out, (folder / "err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", *argv],
            cwd=folder,
            env=dict(env) if env is not None else clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def outcome(process: subprocess.Popen[bytes], folder: Path) -> tuple[str, str]:
    """Wait for a :func:`start_reconciler` process; its stdout and stderr."""
    process.wait(timeout=90)
    return (folder / "out").read_text(), (folder / "err").read_text()


def wait_while_running(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    """Wait until ``condition`` holds, failing if ``process`` ends first (the fault could not
    be injected) or after a minute."""
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, "the command ended before the fault could be injected"
        assert time.monotonic() < deadline
        time.sleep(0.002)


def kill_holding_its_next_batch(client: redis.Redis, process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process`` while Redis holds its next batch's writes (CLIENT PAUSE), so the
    kill lands between two batches, never inside one."""
    client.client_pause(5000, all=False)
    try:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        client.client_unpause()


def run_subprocess(
    *argv: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> CliResult:
    """``python -m reconciler ARGV`` as a real process: exit codes and stderr as users see."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    return CliResult(completed.returncode, completed.stdout, completed.stderr, seconds)


# -- Redis state -------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Every key of one database: DUMP bytes and PTTL."""

    dumps: dict[bytes, bytes]
    pttls: dict[bytes, int]

    def keys(self) -> set[str]:
        return {key.decode() for key in self.dumps}


def snapshot(server: RedisServer, db: int = 0) -> Snapshot:
    client = server.client(db=db, decode_responses=False)
    try:
        keys = sorted(client.scan_iter(count=1000))
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.dump(key)
                pipe.pttl(key)
            replies = pipe.execute()
    finally:
        client.close()
    dumps = {key: replies[2 * index] for index, key in enumerate(keys)}
    pttls = {key: int(replies[2 * index + 1]) for index, key in enumerate(keys)}
    return Snapshot(dumps, pttls)


def assert_unchanged(before: Snapshot, after: Snapshot, *, only: set[str] | None = None) -> None:
    """Same keys, same bytes; a TTL may only have run down, never been set, reset or removed."""
    wanted = {key.encode() for key in only} if only is not None else None

    def pick(mapping: dict[bytes, Any]) -> dict[bytes, Any]:
        return {k: v for k, v in mapping.items() if wanted is None or k in wanted}

    before_dumps, after_dumps = pick(before.dumps), pick(after.dumps)
    assert sorted(after_dumps) == sorted(before_dumps), "keys appeared or disappeared"
    changed = sorted(key.decode() for key in before_dumps if before_dumps[key] != after_dumps[key])
    assert changed == [], f"values changed: {changed}"
    for key, ttl in pick(before.pttls).items():
        later = after.pttls[key]
        if ttl == -1:
            assert later == -1, f"{key.decode()}: a TTL was set ({later} ms)"
        else:
            assert 0 < later <= ttl, f"{key.decode()}: TTL went from {ttl} to {later} ms"


def decode_meta(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    decoded: dict[str, Any] = json.loads(text, cls=RedBeatJSONDecoder)
    return decoded


def redbeat_meta(last_run_at: datetime | None, total_run_count: int) -> str:
    """A ``meta`` field exactly as beat writes it after a run (RedBeat's own encoder)."""
    return json.dumps(
        {"last_run_at": last_run_at, "total_run_count": total_run_count}, cls=RedBeatJSONEncoder
    )


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def next_daily(hour: int, minute: int, after: datetime) -> datetime:
    """The first HH:MM (UTC) strictly after ``after``, computed without Celery."""
    after = as_utc(after)
    candidate = after.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= after:
        candidate += timedelta(days=1)
    return candidate


def timestamp(moment: datetime) -> float:
    return float(int(as_utc(moment).timestamp()))


def is_managed(client: redis.Redis, name: str) -> bool:
    return bool(
        client.hget(PREFIX + name, MARKER_FIELD) == MARKER_VALUE
        and client.sismember(MANAGED_KEY, name)
    )


def definition_of(client: redis.Redis, name: str) -> dict[str, Any]:
    text = client.hget(PREFIX + name, "definition")
    assert text is not None, f"{name} has no definition"
    decoded: dict[str, Any] = json.loads(text)
    return decoded


def history_records(client: redis.Redis) -> list[dict[str, Any]]:
    """The raw stream records, oldest first: one per committed batch."""
    return [fields for _, fields in client.xrange(HISTORY_KEY)]


def applies_recorded(client: redis.Redis, limit: int = 1000) -> list[HistoryRecord]:
    """The applies as ``reconciler history`` reads them (batches grouped), oldest first."""
    return read_history(client, KeySpace(PREFIX), limit)[::-1]


# -- MONITOR -----------------------------------------------------------------------------


_MONITOR_LINE = re.compile(r"^(?P<time>[\d.]+) \[(?P<db>\d+) (?P<client>[^\]]*)\] (?P<args>.*)$")
_ARGUMENT = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            nxt = text[index + 1]
            if nxt == "x" and index + 3 < len(text):
                out.append(chr(int(text[index + 2 : index + 4], 16)))
                index += 4
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


@dataclass(frozen=True)
class Command:
    db: int
    client: str
    args: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.args[0].lower() if self.args else ""

    def __str__(self) -> str:
        return f"[{self.db} {self.client}] " + " ".join(self.args)[:200]


@dataclass
class Monitored:
    """The commands the server executed while the ``monitor`` block ran."""

    server: RedisServer
    commands: list[Command]

    def named(self, *names: str) -> list[Command]:
        wanted = {name.lower() for name in names}
        return [command for command in self.commands if command.name in wanted]

    def writes(self) -> list[Command]:
        """Commands that write (by the server's own COMMAND flags) or run scripts."""
        flags = _command_flags(self.server)
        return [
            command
            for command in self.commands
            if command.name in _SCRIPTING
            or "write" in flags.get(command.name, ())
            or command.name in {"flushdb", "flushall"}
        ]

    def keys_written(self) -> dict[str, list[Command]]:
        """Each key a write command touched (per COMMAND GETKEYS), with the commands."""
        client = self.server.client()
        found: dict[str, list[Command]] = {}
        try:
            for command in self.writes():
                try:
                    keys = client.command_getkeys(*command.args)
                except redis.ResponseError:
                    keys = []
                for key in keys:
                    found.setdefault(key, []).append(command)
        finally:
            client.close()
        return found


_FLAGS_CACHE: dict[int, dict[str, tuple[str, ...]]] = {}


def _command_flags(server: RedisServer) -> dict[str, tuple[str, ...]]:
    if server.port not in _FLAGS_CACHE:
        client = server.client()
        try:
            table = client.command()
        finally:
            client.close()
        _FLAGS_CACHE[server.port] = {
            name.lower(): tuple(str(flag) for flag in info.get("flags", ()))
            for name, info in table.items()
        }
    return _FLAGS_CACHE[server.port]


@contextlib.contextmanager
def monitor(server: RedisServer) -> Iterator[Monitored]:
    """Record every command the server runs inside the block (all databases, all clients).

    MONITOR is acknowledged before the block starts; at the end a unique ECHO marks the end
    of the stream, and everything up to it is read (the server buffers it meanwhile).
    """
    pool = redis.ConnectionPool(host=server.host, port=server.port, socket_timeout=30.0, protocol=2)
    connection = pool.get_connection()
    connection.send_command("MONITOR")
    assert connection.read_response() in (b"OK", "OK")
    result = Monitored(server, [])
    marker = f"monitor-end-{uuid.uuid4().hex}"
    try:
        yield result
    finally:
        probe = server.client()
        try:
            probe.echo(marker)
        finally:
            probe.close()
        while True:
            raw = connection.read_response()
            line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            match = _MONITOR_LINE.match(line)
            assert match is not None, f"unexpected MONITOR line: {line!r}"
            args = tuple(_unescape(arg) for arg in _ARGUMENT.findall(match["args"]))
            if args and args[0].lower() == "echo" and marker in args[1:]:
                break
            result.commands.append(Command(int(match["db"]), match["client"], args))
        connection.disconnect()
        pool.disconnect()


def redis_processes_using(folder: Path) -> list[str]:
    """Command lines of live redis-server processes whose arguments mention ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "redis-server" in cmdline and str(folder) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")
