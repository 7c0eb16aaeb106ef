"""Property-based fuzzing of the loader: no schedule file crashes validate or plan.

Three sources of documents: structured (built from the file format, with hostile YAML
scalars: explicit tags, impossible dates, huge integers, lone surrogates, deep nesting,
anchors and aliases), mutated (valid files with bytes inserted, deleted or duplicated) and
raw (random text and bytes). Every document goes through ``reconciler validate`` in-process.
The only outcomes allowed are exit 0, or exit 1 with every problem at ``file:line:column``
within the file; a valid document must also go through what plan does before Redis
(load_schedules, then RedBeat's encoding of every definition) into strict UTF-8.

The runs are derandomized and keep no example database, so CI sees the same documents every
time. RECONCILER_FUZZ_EXAMPLES sets the number of documents in all (default 2,000, about
40 s), shared among the sources as the defaults are; e.g. ``RECONCILER_FUZZ_EXAMPLES=20000``
for a longer search.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.beat.redbeat_rules import RedBeatRules
from reconciler.load.file_format import RRuleSpec
from reconciler.services.planning import load_schedules

if TYPE_CHECKING:
    from .cli_runner import Workspace

_EXAMPLES = int(os.environ.get("RECONCILER_FUZZ_EXAMPLES", "2000"))
_FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_PROBLEM = re.compile(r"^s\.yaml:(\d+):(\d+): \S")
_SEEDS = [
    path.read_bytes() for path in sorted((Path(__file__).parents[2] / "schedules").glob("*.yaml"))
]


class _AnyVariable(dict[str, str]):
    """An environment in which every ``${env:NAME}`` is set."""

    def get(self, key: str, default: object = None) -> str:
        return "secret-value"


def _check(workspace: Workspace, data: bytes) -> None:
    """validate exits 0, or 1 with every problem placed in the file; never crashes."""
    workspace.write_bytes("s.yaml", data)
    run = workspace.validate("s.yaml")
    assert run.exit_code in (0, 1), f"exit {run.exit_code} for {data!r}\n{run.out}{run.err}"
    assert "Traceback" not in run.err, run.err
    lines = data.count(b"\n") + 1
    for problem in run.problems:
        placed = _PROBLEM.match(problem)
        assert placed, f"problem without its place for {data!r}:\n{problem}"
        assert 1 <= int(placed[1]) <= lines + 1, f"line beyond the file for {data!r}:\n{problem}"
    if run.exit_code == 1:
        assert run.problems, run.out
        return
    # What plan does before Redis: load, resolve references, encode every definition.
    loaded = load_schedules([Path("s.yaml")], environ=_AnyVariable())
    for entry in loaded.entries:
        RedBeatRules().definition(entry).encode("utf-8")


# --- structured documents, written as YAML text so that any tag or spelling can appear ---

_NAME_CHARS = st.characters(codec="utf-8", exclude_characters="\n\r")
_quoted = st.text(st.characters(), max_size=20).map(
    lambda text: json.dumps(text)  # JSON escapes are YAML escapes: lone surrogates too
)
_single_quoted = st.text(_NAME_CHARS, max_size=12).map(lambda t: "'" + t.replace("'", "''") + "'")
_plain_word = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,15}", fullmatch=True)
_date = st.builds(
    "{:04d}-{:02d}-{:02d}".format,
    st.integers(0, 9999),
    st.integers(0, 14),
    st.integers(0, 33),
)
_timestamp = st.builds(
    "{}T{:02d}:{:02d}:{:02d}{}".format,
    _date,
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["", "Z", "+00:00", "+05:30", "-23:59", "+24:00", "+99:99"]),
)
_huge_int = st.integers(1, 4_500).map(lambda digits: "9" * digits)
_number = st.one_of(
    st.integers().map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(lambda value: repr(value) if value == value else ".nan"),
    st.sampled_from([".inf", "-.inf", ".NaN", "1e400", "0x1F", "0o17", "0b101", "1_000", "1:30"]),
    _huge_int,
    st.integers(1, 4_000).map(lambda digits: "0x" + "f" * digits),
)
_tag = st.sampled_from(
    ["!!int", "!!float", "!!bool", "!!timestamp", "!!binary", "!!str", "!!null", "!!map", "!foo"]
)
_cron_text = st.sampled_from(
    ["'0 3 * * *'", "'*/15 9-17 * * mon-fri'", "'61 * * * *'", "'* * * *'", "'0 0 31 2 *'", "''"]
)
_every_text = st.sampled_from(["5m", "30s", "1h30m", "2d", "0", "-5", "5x", "1e400", "99999999w"])
_task_text = st.sampled_from(["app.tasks.job", "a.b", '"a b"', '""', '"\\ud800"', "'${env:T}'"])
_reference = st.sampled_from(["'${env:TOKEN}'", "'$${literal}'", "'${env:}'", "'${oops'"])
_scalar = st.one_of(
    _plain_word,
    _quoted,
    _single_quoted,
    _number,
    _date,
    _timestamp,
    _reference,
    st.sampled_from(["true", "false", "yes", "null", "~", "", '"\\ud800"', '"\\udfff x"']),
    st.tuples(_tag, st.one_of(_plain_word, _quoted, _number, _date, st.just(""))).map(" ".join),
)


def _flow(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Flow lists and mappings of ``values``, nested."""
    return st.recursive(
        values,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
            st.lists(st.tuples(st.one_of(_plain_word, _quoted, _number), inner), max_size=4).map(
                lambda pairs: "{" + ", ".join(f"{key}: {value}" for key, value in pairs) + "}"
            ),
        ),
        max_leaves=12,
    )


_value = _flow(_scalar)
_deep = st.builds(
    lambda depth, opener, inner: opener * depth + inner + ("]" if opener == "[" else "") * depth,
    st.integers(0, 3_000),
    st.sampled_from(["[", "{", "- ", "[a, "]),
    _scalar,
)
_rrule = st.dictionaries(
    st.sampled_from(sorted(RRuleSpec.model_fields)),
    st.one_of(
        st.sampled_from(["DAILY", "MONTHLY", "YEARLY", "SECONDLY", "MO", "-1FR"]),
        _timestamp.map(lambda text: f"'{text}'"),
        _number,
        _value,
    ),
    max_size=6,
).map(lambda fields: "{" + ", ".join(f"{key}: {value}" for key, value in fields.items()) + "}")
_entry_values = {
    "task": st.one_of(_task_text, _scalar),
    "cron": st.one_of(_cron_text, _value),
    "every": st.one_of(_every_text, _number, _scalar),
    "rrule": st.one_of(
        st.builds("{{freq: DAILY, dtstart: '{}', interval: {}}}".format, _timestamp, _number),
        _rrule,
    ),
    "enabled": _scalar,
    "args": st.one_of(_value, _deep),
    "kwargs": st.one_of(_value, _deep),
    "options": st.one_of(
        st.builds("{{queue: {}, priority: {}}}".format, _scalar, _number),
        st.builds("{{headers: {}, retry_policy: {}}}".format, _value, _value),
        _value,
    ),
    "description": _scalar,
    "run_on_create": _scalar,
    "timezone": _scalar,
}
_entry = st.one_of(
    st.builds(
        lambda task, schedule, extra: {"task": task, **schedule, **extra},
        _entry_values["task"],
        st.sampled_from(["cron", "every", "rrule"]).flatmap(
            lambda kind: _entry_values[kind].map(lambda value: {kind: value})
        ),
        st.dictionaries(st.sampled_from(sorted(_entry_values)), st.just(None), max_size=3).flatmap(
            lambda keys: st.fixed_dictionaries({key: _entry_values[key] for key in keys})
        ),
    ),
    st.just({}),
)


def _entry_text(fields: dict[str, str], block: bool) -> str:
    if block:
        return "".join(f"\n    {key}: {value}" for key, value in fields.items())
    return " {" + ", ".join(f"{key}: {value}" for key, value in fields.items()) + "}"


@st.composite
def _structured(draw: st.DrawFn) -> bytes:
    lines = []
    if draw(st.integers(0, 9)):
        lines.append(f"version: {draw(st.one_of(st.just('1'), _scalar))}")
    if draw(st.booleans()):
        lines.append(f"defaults: &defaults{_entry_text(draw(_entry), block=False)}")
    lines.append("schedules:")
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(_plain_word, _quoted, _scalar))
        fields = draw(_entry)
        text = _entry_text(fields, block=draw(st.booleans()))
        if draw(st.integers(0, 5)) == 0:
            text = " {<<: *defaults, task: a.b}" if draw(st.booleans()) else " *defaults"
        lines.append(f"  {name}:{text}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


# --- mutated valid files ---

_VALID = [
    *_SEEDS,
    b"version: 1\nschedules:\n  a: {task: app.tasks.a, every: 5m, args: [1, x], kwargs: {k: v}}\n",
    b"version: 1\nschedules:\n  r:\n    task: t.r\n    rrule: {freq: DAILY, "
    b"dtstart: '2026-01-01T00:00:00+00:00', byhour: [1, 2]}\n    options: {queue: q}\n",
]
_SIGNIFICANT = b"[]{}:,-?&*!|>'\"%@#\n\t \\"


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        end = min(len(data), at + draw(st.integers(0, 40)))
        operation = draw(st.sampled_from(["insert", "delete", "duplicate", "byte"]))
        if operation == "insert":
            inserted = draw(
                st.one_of(
                    st.sampled_from(_SIGNIFICANT).map(lambda byte: bytes([byte])),
                    st.text(max_size=4).map(lambda text: text.encode("utf-8")),
                    st.sampled_from([b"!!int ", b"!!binary ", b"!!timestamp ", b"\\ud800"]),
                    st.sampled_from([b"2026-13-45", b"0000-01-01", b"&a ", b"*a", b"<<: "]),
                )
            )
            data[at:at] = inserted
        elif operation == "delete":
            del data[at:end]
        elif operation == "duplicate":
            data[at:at] = data[at:end] * draw(st.integers(1, 50))
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=3))
    return bytes(data)


# --- raw text and bytes ---

_raw = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda text: text.encode("utf-8")),
    st.text(st.sampled_from(list("[]{}:,-?&*!|>'\"#\n abc019 ")), max_size=300).map(str.encode),
)


def _size(share: float) -> settings:
    return settings(_FUZZ, max_examples=max(1, round(_EXAMPLES * share)))


@_size(0.35)
@given(document=_structured())
def test_structured_documents_never_crash(workspace: Workspace, document: bytes) -> None:
    _check(workspace, document)


@_size(0.45)
@given(document=_mutated())
def test_mutated_files_never_crash(workspace: Workspace, document: bytes) -> None:
    _check(workspace, document)


@_size(0.20)
@given(document=_raw)
def test_raw_input_never_crashes(workspace: Workspace, document: bytes) -> None:
    _check(workspace, document)


@pytest.mark.parametrize("seed", _VALID)
def test_seeds_are_valid(workspace: Workspace, seed: bytes) -> None:
    """The mutations start from valid files, so they reach past the first check."""
    workspace.write_bytes("s.yaml", seed)
    assert workspace.validate("s.yaml").exit_code == 0
