"""The C parser is only a shortcut: on anything it accepts, it must agree with the pure one.

Each document is parsed twice, with ruamel's C parser first (fast=True) and with the pure
YAML 1.2 parser only (fast=False); the data and every key and value position must be the
same, and so must the problems of documents either parser refuses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.load import yaml_source
from reconciler.load.yaml_source import parse_yaml_text

REPO = Path(__file__).resolve().parents[2]

CORPUS = {
    "flow-and-block": "version: 1\nschedules:\n  a: {task: t, every: 5, args: [1, 2.5, x]}\n"
    "  b:\n    task: t\n    cron: '0 3 * * *'\n    kwargs: {k: v, n: null}\n",
    "empty-values": "version: 1\nschedules:\n  a:\n    task:\n    every:\n    args: []\n",
    "anchors-and-merge": "base: &b {task: t, every: 5}\nschedules:\n  a:\n    <<: *b\n"
    "    every: 6\n  c: *b\n",
    "scalars": "a: [yes, no, on, off, true, 0o14, 014, 0x1F, 1_000, .5, -.inf, ~, '', \"\\t\"]\n",
    "timestamps": "a: 2026-01-01\nb: 2026-01-01T06:00:00+02:00\nc: '2026-01-01'\n",
    "block-scalars": "a: |\n  line one\n  line two\nb: >-\n  folded\n  text\n",
    "comments-and-bom": "\ufeff# comment\nversion: 1 # trailing\nschedules: {} # none\n",
    "unicode": 'schedules:\n  café: {task: t, every: 5, kwargs: {name: "Zoë ☃"}}\n',
    "colon-in-flow": "args: [http://example.com/feed]\nr: {dtstart: 2026-01-01T06:00:00+02:00}\n",
    "duplicate-keys": "a: 1\nb: 2\na: 3\n",
    "syntax-error": "a: [1\nb: 2\n",
    "tabs": "a:\n\tb: 1\n",
    "python-tag": "a: !!python/object/apply:os.system [ls]\n",
    "multi-document": "a: 1\n---\nb: 2\n",
    "nested": "a:\n  - b:\n      - c: [1, {d: e}]\n",
}
CORPUS.update(
    {
        f"example-{path.name}": path.read_text(encoding="utf-8")
        for path in sorted((REPO / "schedules").glob("*.yaml"))
    }
)


@pytest.mark.parametrize("text", list(CORPUS.values()), ids=list(CORPUS))
def test_fast_and_pure_parsers_agree(text: str) -> None:
    fast_document, fast_problems = parse_yaml_text(text, "f.yaml", fast=True)
    pure_document, pure_problems = parse_yaml_text(text, "f.yaml", fast=False)

    assert fast_problems == pure_problems
    assert (fast_document is None) == (pure_document is None)
    if fast_document is not None and pure_document is not None:
        assert fast_document.data == pure_document.data
        assert fast_document.value_positions == pure_document.value_positions
        assert fast_document.key_positions == pure_document.key_positions


def test_the_c_parser_is_installed_here() -> None:
    # Without it every test above compares the pure parser with itself.
    assert yaml_source._C_PARSER_AVAILABLE
