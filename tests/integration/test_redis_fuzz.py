"""Property-based fuzzing of what Redis holds: no corrupted RedBeat data crashes the read
commands, and none of them writes.

Each example starts from a store the reconciler applied (managed entries, one that left the
files, a foreign entry written as RedBeat writes it, beat's lock, history), restored byte for
byte with RESTORE, then corrupts it: keys of the wrong type (under entry names, at
``:schedule``, the managed index, the history stream...), ``definition``/``meta``/marker fields
that are not JSON, JSON of the wrong shape, huge or deeply nested JSON, non-UTF-8 bytes, lone
surrogates, odd scores, garbage markers, and odd members of the managed index (``:schedule``,
``:lock``, empty, very long). plan, drift, export and history then run in-process against it.
The only outcomes allowed are data, findings or a clean one-line error: exit 0, 1 or 2, never
3 (a crash) and never a traceback; and the store is the same, DUMP for DUMP, afterwards.

The runs are derandomized and keep no example database, so CI sees the same stores every
time. RECONCILER_FUZZ_EXAMPLES scales the number of stores: a quarter of it (default 2,000,
as for the loader's fuzz test, so 500 stores, about 40 s); e.g.
``RECONCILER_FUZZ_EXAMPLES=20000`` for a longer search.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import redis
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from reconciler.store.keys import MARKER_FIELD, MARKER_VALUE
from tests.integration.plan_apply_support import (
    PREFIX,
    assert_unchanged,
    cron,
    isolate,
    run_cli,
    snapshot,
    write_schedules,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

_EXAMPLES = max(1, int(os.environ.get("RECONCILER_FUZZ_EXAMPLES", "2000")) // 4)
_FUZZ = settings(
    max_examples=_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

DESIRED = {
    "alpha": cron("0 3 * * *", kwargs={"n": 1}),
    "beta": {"task": "app.tasks.job", "every": "5m"},
    "gamma": cron("*/15 * * * *", enabled=False),
}
APPLIED = {**DESIRED, "delta": cron("30 4 * * *")}  # delta then leaves the files
FOREIGN_DEFINITION = {
    "name": "foreign",
    "task": "app.tasks.other",
    "args": [],
    "kwargs": {},
    "options": {},
    "enabled": True,
    "schedule": {"__type__": "interval", "every": 60.0, "relative": False},
}
FOREIGN_META = '{"last_run_at": null, "total_run_count": 0}'
ENTRY_NAMES = ["alpha", "beta", "gamma", "delta", "foreign", "absent"]
OWN_KEYS = [
    ":schedule",
    ":statics",
    ":lock",
    ":reconciler:managed",
    ":reconciler:deleted",
    ":reconciler:history",
]
COMMANDS = [
    ("plan", "schedules", "--detailed-exitcode"),
    ("plan", "schedules", "--prune", "--format", "json"),
    ("drift", "schedules"),
    ("drift", "schedules", "--format", "json"),
    ("export", "--output", "exported.yaml"),
    ("export", "--unmanaged"),
    ("history",),
]

# -- values -------------------------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and Infinity too: json.dumps writes them, json.loads reads them
    st.text(max_size=8),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u202e"]),  # lone surrogates...
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_HOSTILE_TEXT = [
    "",
    "not json",
    "{",
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    '"\\ud800"',
    '{"name": "\\udfff", "task": "\\ud800"}',
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "9" * 5000,
    "[" + ",".join(["1"] * 200_000) + "]",
    json.dumps({"last_run_at": {"__type__": "datetime", "year": 99999}, "total_run_count": 1}),
    json.dumps({"last_run_at": {"__type__": "datetime"}, "total_run_count": "x"}),
    json.dumps({"last_run_at": None, "total_run_count": -1, "schedule": 1}),
    json.dumps({"managed_by": "redbeat-reconciler", "format": 1, "sensitive": [[["args"], 1]]}),
    json.dumps({"managed_by": "redbeat-reconciler", "format": 1, "digests": "x"}),
    json.dumps({"managed_by": "someone-else"}),
    MARKER_VALUE,
]


def _mutated(base: dict[str, Any]) -> st.SearchStrategy[str]:
    """``base`` with one key set to any JSON value, or removed, or one added."""
    keys = [*base, "schedule.__type__", "schedule.every", "extra"]

    def build(key: str, value: Any, remove: bool) -> str:
        document = json.loads(json.dumps(base))
        target = document
        if key.startswith("schedule.") and isinstance(document.get("schedule"), dict):
            target, key = document["schedule"], key.removeprefix("schedule.")
        if remove:
            target.pop(key, None)
        else:
            target[key] = value
        return json.dumps(document)

    return st.builds(build, st.sampled_from(keys), _json, st.booleans())


_field_value = st.one_of(
    st.sampled_from(_HOSTILE_TEXT).map(str.encode),
    _json.map(lambda value: json.dumps(value).encode()),
    _mutated(FOREIGN_DEFINITION).map(str.encode),
    _mutated({"last_run_at": None, "total_run_count": 3}).map(str.encode),
    st.binary(max_size=24),
    st.text(max_size=12).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\xff\xfe", b"\xc3", b'{"a": "\xed\xa0\x80"}']),
)
_member = st.one_of(
    st.sampled_from(
        [":schedule", ":lock", ":statics", ":reconciler:managed", ":reconciler:history", ""]
    ).map(str.encode),
    st.sampled_from(ENTRY_NAMES).map(str.encode),
    st.just(b"x" * 5000),
    st.just(b":" + b"y" * 300),
    st.binary(max_size=12),
    st.text(max_size=8).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
_score = st.one_of(
    st.sampled_from([float("inf"), float("-inf"), -1.0, 0.0, -1e300, 1e300, 2.0**63, 1e18]),
    st.floats(allow_nan=False),
)


def _key_name(name: str) -> bytes:
    return (PREFIX + name).encode()


_any_key = st.sampled_from([_key_name(name) for name in ENTRY_NAMES + OWN_KEYS])
_entry_key = st.sampled_from([_key_name(name) for name in ENTRY_NAMES])

# -- corruptions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Corruption:
    """One write to the store: ``op`` on ``key`` (a field, a member or an entry's value)."""

    op: str
    key: bytes
    item: bytes = b""
    value: bytes = b""
    score: float = 0.0

    def __call__(self, client: redis.Redis) -> None:
        key, item, value = self.key, self.item, self.value
        if self.op.startswith("replace-"):
            client.delete(key)
        if self.op in ("replace-hash", "hset"):
            client.hset(key, item, value)
        elif self.op == "replace-string":
            client.set(key, value)
        elif self.op == "replace-list":
            client.rpush(key, value)
        elif self.op in ("replace-set", "sadd"):
            client.sadd(key, item)
        elif self.op in ("replace-zset", "zadd"):
            client.zadd(key, {item: self.score})
        elif self.op in ("replace-stream", "xadd"):
            client.xadd(key, {item or b"f": value})
        elif self.op == "hdel":
            client.hdel(key, item)
        elif self.op == "pexpire":
            client.pexpire(key, 10**9)

    def __repr__(self) -> str:
        def cut(data: bytes) -> str:
            return repr(data) if len(data) <= 60 else f"{data[:50]!r}...({len(data)} bytes)"

        return f"{self.op}({self.key!r}, {cut(self.item)}, {cut(self.value)}, {self.score!r})"


def _key_name(name: str) -> bytes:
    return (PREFIX + name).encode()


_any_key = st.sampled_from([_key_name(name) for name in ENTRY_NAMES + OWN_KEYS])
_entry_key = st.sampled_from([_key_name(name) for name in ENTRY_NAMES])
_FIELDS = st.sampled_from([b"definition", b"meta", MARKER_FIELD.encode(), b"other"])
_REPLACEMENTS = ["string", "list", "set", "zset", "stream", "hash"]
_corruption = st.one_of(
    st.builds(
        Corruption,
        st.sampled_from([f"replace-{kind}" for kind in _REPLACEMENTS]),
        _any_key,
        _FIELDS,
        _field_value,
    ),
    st.builds(Corruption, st.just("hset"), _entry_key, _FIELDS, _field_value),
    st.builds(Corruption, st.just("hset"), _entry_key, _FIELDS, _field_value),
    st.builds(Corruption, st.just("hdel"), _entry_key, _FIELDS),
    st.builds(Corruption, st.just("sadd"), st.just(_key_name(":reconciler:managed")), _member),
    st.builds(Corruption, st.just("sadd"), st.just(_key_name(":statics")), _member),
    st.builds(
        Corruption,
        st.just("zadd"),
        st.just(_key_name(":reconciler:deleted")),
        _member,
        score=_score,
    ),
    st.builds(
        Corruption,
        st.just("zadd"),
        st.just(_key_name(":schedule")),
        st.one_of(_entry_key, _member.map(lambda member: PREFIX.encode() + member)),
        score=_score,
    ),
    st.builds(
        Corruption,
        st.just("xadd"),
        st.just(_key_name(":reconciler:history")),
        st.sampled_from([b"at", b"counts", b"names", b"command", b"x"]),
        _field_value,
    ),
    st.builds(Corruption, st.just("pexpire"), _entry_key),
)


class Dumps(dict[bytes, bytes]):
    def __repr__(self) -> str:
        return f"<DUMPs of {len(self)} keys>"


@pytest.fixture
def base_store(
    redis_server: RedisServer,
    redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Dumps:
    """DUMPs of every key of a store the reconciler applied, with a foreign entry and
    beat's lock beside; the files then hold DESIRED only."""
    isolate(monkeypatch, tmp_path)
    write_schedules(tmp_path / "schedules", APPLIED)
    applied = run_cli(capsys, "apply", "schedules", "--redis-url", redis_url)
    assert applied.code == 0, applied.err
    write_schedules(tmp_path / "schedules", DESIRED)
    redis_client.hset(
        PREFIX + "foreign",
        mapping={"definition": json.dumps(FOREIGN_DEFINITION), "meta": FOREIGN_META},
    )
    redis_client.zadd(PREFIX + ":schedule", {PREFIX + "foreign": 1.0})
    redis_client.set(PREFIX + ":lock", "beat-token")
    raw = redis_server.client(decode_responses=False)
    try:
        return Dumps({key: raw.dump(key) for key in raw.scan_iter()})
    finally:
        raw.close()


def _restore(client: redis.Redis, dumps: Dumps) -> None:
    client.flushdb()
    for key, value in dumps.items():
        client.restore(key, 0, value)
    # A live beat: the lock has a TTL (RESTORE with 0 keeps none).
    client.pexpire(_key_name(":lock"), 10**9)


def _surrogate_definition(name: str) -> bytes:
    return json.dumps({**FOREIGN_DEFINITION, "name": name, "task": "app.\ud800"}).encode()


# The crashes this test found, and the advice it caught (issue 12), always tried first.
@pytest.mark.integration
@_FUZZ
@given(corruptions=st.lists(_corruption, min_size=1, max_size=4))
@example(corruptions=[Corruption("hset", _key_name("alpha"), MARKER_FIELD.encode(), b"[" * 5000)])
@example(
    corruptions=[
        Corruption("hset", _key_name("alpha"), b"definition", _surrogate_definition("alpha"))
    ]
)
@example(
    corruptions=[
        Corruption("hset", _key_name("foreign"), b"definition", _surrogate_definition("foreign"))
    ]
)
@example(corruptions=[Corruption("sadd", _key_name(":reconciler:managed"), b":schedule")])
@example(corruptions=[Corruption("sadd", _key_name(":reconciler:managed"), b":lock")])
@example(corruptions=[Corruption("sadd", _key_name(":reconciler:managed"), b"foreign")])
@example(corruptions=[Corruption("replace-list", _key_name("alpha"), b"", b"x")])
def test_corrupted_redis_data_never_crashes_a_read_command(
    corruptions: list[Corruption],
    base_store: Dumps,
    redis_server: RedisServer,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = redis_server.client(decode_responses=False)
    try:
        _restore(raw, base_store)
        for corruption in corruptions:
            with contextlib.suppress(redis.ResponseError):  # e.g. HSET on a list
                corruption(raw)
    finally:
        raw.close()
    before = snapshot(redis_server)
    for argv in COMMANDS:
        run = run_cli(capsys, *argv, "--redis-url", redis_url)
        shown = f"{' '.join(argv)} after {corruptions}:\n{run.err[-3000:]}"
        event(f"{argv[0]} exit {run.code}")  # shown by --hypothesis-show-statistics
        assert run.code in (0, 1, 2), f"exit {run.code}: {shown}"
        assert "Traceback" not in run.out + run.err, shown
        errors = [line for line in run.err_lines if line.startswith("error:")]
        assert len(errors) <= 1, shown
        assert run.code != 1 or errors or argv[0] == "export", shown
        for line in errors:
            assert "remove or rename" not in line or ":reconciler:" in line, shown
    assert_unchanged(before, snapshot(redis_server))
