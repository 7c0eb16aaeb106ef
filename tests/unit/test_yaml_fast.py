"""The fast reading (PyYAML's C parser, load/yaml_fast.py) is only a shortcut.

On every text it takes, it must give what the reference reading (ruamel.yaml's pure YAML 1.2
parser, ``parse_yaml_text(fast=False)``) gives: no problem, the same data with the same types
and key order, the same position of every value and key, the same ``holds_braces``. Whatever
it is not sure of it declines, and the reference reading decides. The corpus: every YAML
file of the repository, every ```yaml block of the docs, every string of the test suite that
could be YAML, the other parser test's corpus, hand-written edge cases and generated schedules.
"""

from __future__ import annotations

import ast
import gc
import importlib.util
import math
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from reconciler.load import desired_state, yaml_fast
from reconciler.load.desired_state import read_schedule_files
from reconciler.load.yaml_fast import read_plain_yaml
from reconciler.load.yaml_source import parse_yaml_text, read_yaml_file
from tests.unit.test_yaml_parsers_agree import CORPUS as PARSERS_CORPUS

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_validate", REPO / "bench/bench_validate.py")
assert _spec is not None
assert _spec.loader is not None
bench_validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_validate)

EDGE_CASES = {
    "yaml-1.1-words": "a: [yes, no, on, off, y, n, Yes, NO, On, OFF, true, False, TRUE]\n",
    "numbers": "a: [0o17, 017, 0x1F, 0b101, 1_000, -0, +12, 1:30, 190:20:30, 1e3, 1.5e-3, "
    "+.5, -1., .inf, -.Inf, .NaN, 0., 1_0.5, 0o8, 08, 1__2]\n",
    "nulls": "a: [~, null, Null, NULL, nul, '']\nb:\nc: ~\n",
    "timestamps": "a: 2026-01-01\nb: 2026-1-1 06:00:00\nc: 2026-01-01t06:00:00.5Z\n"
    "d: 2026-01-01 06:00:00 -5\ne: 2026-13-45\n",
    "empty-values": "a:\nb: {c: , d: }\ne: [ , ]\nf:\n  g:\n  h: ''\n",
    "keys-of-many-types": "1: a\ntrue: b\n~: c\n1.5: d\n2026-01-01: e\n'1': f\n",
    "equal-keys-of-other-types": "1: a\ntrue: b\n",
    "merge-lists": "x: &x {a: 1, b: 2}\ny: &y {b: 3, c: 4}\nz:\n  <<: [*x, *y]\n  c: 5\n",
    "merge-as-value": "a: <<\n",
    "value-key": "a: =\n",
    "merge-of-scalar": "x: &x 1\nz:\n  <<: *x\n",
    "alias-reused": "a: &a {b: [1, 2]}\nc: [*a, *a]\nd: *a\n",
    "recursive-alias": "a: &a [*a]\n",
    "explicit-keys": "? a\n: 1\n? [b, c]\n: 2\n",
    "compact-sequences": "- - - a\n    - b\n  - c\n- d: e\n  f: g\n",
    "block-scalars": "a: |+\n  keep\n\nb: >-\n  fold\n  ed\nc: |2\n    indented\nd: >\n\n  x\n",
    "multi-line-plain": "a: one\n  two\n\n  three\nb: 'single\n  quoted'\n",
    "escapes": "a: \"\\t\\u00e9\\x41\\U0001F600\\\\\"\nb: 'it''s'\n",
    "braces": "a: ${env:X}\nb: '$${x}'\n${k}: v\nc: [x${y}]\n",
    "no-braces": "a: $ {x}\nb: '{x}'\n",
    "crlf": "a: 1\r\nb:\r\n  - x\r\n  - y\r\nc: |\r\n  l1\r\n  l2\r\n",
    "unicode-columns": "é: {ü: ☃, 😀: [a, b]}\nx: '😀😀'\ny: z\n",
    "tabs-in-values": "a: 'x\ty'\nb: x\ty\n",
    "document-markers": "---\na: 1\n...\n",
    "comment-only": "# nothing\n",
    "empty": "",
    "scalar-document": "just a string\n",
    "explicit-tags": "a: !!str 1\nb: !!int '2'\nc: ! 3\nd: !custom x\n",
    "directive": "%YAML 1.1\n---\na: yes\n",
    "nel-line-break": "a: x\x85y\n",
    "duplicate-keys": "a: 1\na: 2\n",
    "duplicate-nan-keys": ".nan: 1\n.nan: 2\n",
    "flow-colon": "a: [http://example.com]\n",
    "anchor-redefined": "a: &x 1\nb: &x 2\nc: *x\n",
    "undefined-alias": "a: *nothing\n",
    "two-documents": "a: 1\n---\nb: 2\n",
    "deep-block": "".join(" " * i + "k:\n" for i in range(70)) + " " * 70 + "k: 1\n",
    "deep-flow": "a: " + "[" * 70 + "]" * 70 + "\n",
    "exclamation-in-text": "a: hello!\nb: 'wow !'\nc: x!y\n",
    "long-hex-int": "a: 0x" + "f" * 4_000 + "\n",
    "long-decimal-int": "a: " + "9" * 5_000 + "\n",
    "lone-surrogate": "a: '\ud800'\n",
}


def _test_strings() -> dict[str, str]:
    """Every string constant of the test suite that could be a YAML document."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if ":" in text and "\n" in text and text not in found.values():
                    found[f"{path.relative_to(REPO)}:{node.lineno}"] = text
    return found


def _doc_blocks() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted([*(REPO / "docs").rglob("*.md"), REPO / "README.md"]):
        text = path.read_text(encoding="utf-8")
        for index, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", text, re.DOTALL)):
            found[f"{path.relative_to(REPO)}#{index}"] = block
    return found


def _generated(count: int, *, crlf: bool = False) -> str:
    text = "version: 1\nschedules:\n" + "".join(bench_validate.entry_yaml(i) for i in range(count))
    return text.replace("\n", "\r\n") if crlf else text


YAML_FILES = {
    str(path.relative_to(REPO)): path.read_text(encoding="utf-8-sig")
    for folder in ("tests", "docs", "schedules")
    for pattern in ("*.yaml", "*.yml")
    for path in sorted((REPO / folder).rglob(pattern))
}
GENERATED = {
    "generated-500": _generated(500),
    "generated-500-crlf": _generated(500, crlf=True),
    "generated-with-defaults-and-anchors": "version: 1\ndefaults: &d {options: {queue: q}}\n"
    "schedules:\n  a: &a {task: t, every: 5m, <<: *d}\n  b: {<<: *a, args: [1]}\n",
}
CORPUS = {
    **{f"file:{name}": text for name, text in YAML_FILES.items()},
    **{f"docs:{name}": text for name, text in _doc_blocks().items()},
    **{f"parsers:{name}": text for name, text in PARSERS_CORPUS.items()},
    **{f"edge:{name}": text for name, text in EDGE_CASES.items()},
    **GENERATED,
    **{f"test-string:{name}": text for name, text in _test_strings().items()},
}


def _same(fast: Any, reference: Any) -> bool:
    """Equal, with the same types (1, 1.0 and True differ) and the same key order."""
    if type(fast) is not type(reference):
        return False
    if isinstance(fast, float) and math.isnan(fast):
        return math.isnan(reference)
    if isinstance(fast, dict):
        pairs = zip(fast.items(), reference.items(), strict=False)
        return len(fast) == len(reference) and all(
            _same(key, other_key) and _same(value, other_value)
            for (key, value), (other_key, other_value) in pairs
        )
    if isinstance(fast, list):
        pairs = zip(fast, reference, strict=False)
        return len(fast) == len(reference) and all(_same(a, b) for a, b in pairs)
    return bool(fast == reference)


@pytest.mark.parametrize("text", list(CORPUS.values()), ids=list(CORPUS))
def test_the_fast_reading_gives_what_the_reference_gives(text: str) -> None:
    fast = read_plain_yaml(text)
    if fast is None:
        return  # declined: the reference reading is the one used
    data, value_positions, key_positions, holds_braces = fast
    document, problems = parse_yaml_text(text, "f.yaml", fast=False)

    assert problems == []
    assert document is not None
    assert _same(data, document.data)
    assert value_positions == document.value_positions
    assert key_positions == document.key_positions
    assert holds_braces == document.holds_braces


@pytest.mark.parametrize(
    "name",
    [*GENERATED, *(f"file:{name}" for name in YAML_FILES if name.startswith("schedules/"))],
)
def test_ordinary_schedule_files_take_the_fast_reading(name: str) -> None:
    assert read_plain_yaml(CORPUS[name]) is not None


def test_much_of_the_corpus_takes_the_fast_reading() -> None:
    # Else the comparison above would prove little (many strings of the tests are not YAML).
    taken = sum(read_plain_yaml(text) is not None for text in CORPUS.values())
    assert taken > len(CORPUS) / 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("yes", "yes"),
        ("off", "off"),
        ("True", True),
        ("0o17", 15),
        ("017", 17),
        ("0x1F", 31),
        ("-0b101", -5),
        ("1_000", 1000),
        ("1:30", "1:30"),
        ("1e3", 1000.0),
        ("-.inf", -math.inf),
        ("~", None),
        ("", None),
        ("'1'", "1"),
    ],
)
def test_plain_scalars_follow_yaml_1_2(value: str, expected: object) -> None:
    fast = read_plain_yaml(f"a: {value}\n")

    assert fast is not None
    assert _same(fast[0]["a"], expected)


@pytest.mark.parametrize(
    "name",
    [
        "explicit-tags",
        "directive",
        "nel-line-break",
        "duplicate-keys",
        "equal-keys-of-other-types",
        "recursive-alias",
        "two-documents",
        "merge-as-value",
        "value-key",
        "merge-of-scalar",
        "deep-block",
        "deep-flow",
    ],
)
def test_what_it_is_not_sure_of_goes_to_the_reference(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = EDGE_CASES[name]
    read = parse_yaml_text(text, "f.yaml")
    monkeypatch.setattr(yaml_fast, "read_plain_yaml", lambda text: None)

    assert read_plain_yaml(text) is None
    assert read == parse_yaml_text(text, "f.yaml")


@pytest.mark.parametrize("name", ["long-hex-int", "long-decimal-int", "lone-surrogate"])
def test_values_the_reference_refuses_are_declined(name: str) -> None:
    # JSON cannot write an int of more than 4,300 decimal digits; no file holds a surrogate.
    assert read_plain_yaml(EDGE_CASES[name]) is None


def test_deep_nesting_never_reaches_a_c_stack_overflow() -> None:
    # 30,000 nested '[' overflow a recursive C composer (a segfault, not an exception).
    assert read_plain_yaml("[" * 30_000 + "]" * 30_000) is None


def test_without_libyaml_s_own_limit_deep_text_is_not_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(yaml_fast, "_LIBYAML_LIMITS_NESTING", False)

    def parser(text: str) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(yaml_fast, "_Parser", parser)

    assert read_plain_yaml("a: " + "[" * 1001 + "]" * 1001) is None
    assert read_plain_yaml("".join(" " * i + "k:\n" for i in range(1001))) is None
    assert read_plain_yaml("".join("  " * i + "k:\n" + "  " * i + "- " for i in range(300))) is None


def _entries_and_where(folder: Path) -> tuple[object, ...]:
    result = read_schedule_files([folder])
    where = [
        tuple(getattr(entry, field.name) for field in fields(entry)) for entry in result.entries
    ]
    return result.files, result.problems, result.entries, where


def test_the_loader_records_the_same_entries_and_places_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench_validate.write_schedules(tmp_path, 1_200)
    (tmp_path / "more.yaml").write_text(
        GENERATED["generated-with-defaults-and-anchors"], encoding="utf-8"
    )
    (tmp_path / "broken.yaml").write_text(
        "version: 1\nschedules:\n  x: {task: t, every: 5m}\n  x: {task: u, cron: '61 * * * *'}\n"
        "  y: {task: t, every: 0, args: 1, kwargs: {a: yes}}\n",
        encoding="utf-8",
    )
    fast = _entries_and_where(tmp_path)
    monkeypatch.setattr(yaml_fast, "read_plain_yaml", lambda text: None)
    reference = _entries_and_where(tmp_path)

    assert fast == reference
    assert len(fast[2]) == 1_202  # type: ignore[arg-type]
    assert len(fast[1]) >= 3  # type: ignore[arg-type]


def test_a_fast_reading_leaves_no_reference_cycles(tmp_path: Path) -> None:
    # The collector is paused while loading: a graph with cycles would stay until the end.
    path = tmp_path / "s.yaml"
    path.write_text(_generated(500), encoding="utf-8")
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        document, _ = read_yaml_file(path, "s.yaml")
        left = gc.collect()
    finally:
        if collecting:
            gc.enable()

    assert document is not None
    assert left == 0


def _garbage_left_by_a_load(folder: Path) -> int:
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()  # so the load leaves it off, and what it left is counted here
    try:
        result = read_schedule_files([folder])
        return gc.collect()
    finally:
        assert result.valid
        if collecting:
            gc.enable()


def test_the_load_frees_cyclic_garbage_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench_validate.write_schedules(tmp_path, 4_000)
    checked = desired_state.schedule_problems

    def leaving_a_cycle(*args: Any) -> Any:  # as Celery's crontab parsers do
        cycle: list[object] = []
        cycle.append(cycle)
        return checked(*args)

    monkeypatch.setattr(desired_state, "schedule_problems", leaving_a_cycle)
    as_it_goes = _garbage_left_by_a_load(tmp_path)
    monkeypatch.setattr(desired_state, "YOUNG_COLLECTION_EVERY", 10**9)
    at_the_end = _garbage_left_by_a_load(tmp_path)

    assert at_the_end >= 4_000
    assert as_it_goes < at_the_end / 3


def test_repeated_strings_are_kept_once() -> None:
    fast = read_plain_yaml("a: {region: eu}\nb: {region: eu}\n")

    assert fast is not None
    first, second = fast[0]["a"], fast[0]["b"]
    assert next(iter(first)) is next(iter(second))
    assert first["region"] is second["region"]


def test_an_alias_bomb_is_declined_before_it_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    bomb = "\n".join([*levels, ""])

    def converter(lines: list[int]) -> None:
        raise AssertionError("expanded")

    monkeypatch.setattr(yaml_fast, "_Converter", converter)

    assert read_plain_yaml(bomb) is None


def test_line_numbers_are_shared_between_files() -> None:
    # CPython shares ints up to 256 only; entries keep their positions.
    text = "\n" * 300 + "a: 1\n"
    first, second = read_plain_yaml(text), read_plain_yaml(text)

    assert first is not None
    assert second is not None
    assert first[2][("a",)] == (301, 1)
    assert first[2][("a",)][0] is second[2][("a",)][0]
    assert read_plain_yaml("\n" * (yaml_fast._SHARED_LINES + 5) + "a: 1\n") is not None
