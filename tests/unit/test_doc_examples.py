"""The reader of the documentation's examples (tests/support/doc_examples.py) itself."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import pytest

from tests.support.doc_examples import blocks, matches, normalise

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("expected", "actual", "result"),
    [
        (["a", "b"], ["a", "b"], True),
        (["a"], ["a", "b"], False),
        (["a", "b"], ["a"], False),
        (["a", "...", "z"], ["a", "z"], True),
        (["a", "...", "z"], ["a", "b", "c", "z"], True),
        (["...", "z"], ["a", "b"], False),
        (["...", "b", "...", "b"], ["b", "x", "b"], True),
        (["..."], [], True),
        (["next runs: <datetime> UTC"], ["next runs: 2026-12-02 04:25:51 UTC"], True),
        (["<datetime>  alice"], ["2026-12-02T04:31:31+00:00  alice"], True),
        (["at <datetime>"], ["at 2026-12-02T04:36:27Z"], True),
        (["<datetime> UTC"], ["tomorrow UTC"], False),
        (["port <number>/0"], ["port 6379/0"], True),
        (["rev <hash>"], ["rev 3f1c9a0be5d2"], True),
        (["v<version>"], ["v0.1.0.dev0"], True),
        (["<date> <time>"], ["2026-01-31 23:00"], True),
        # Only the listed placeholders and a whole '...' line are special.
        (["(valid: queue, ...)"], ["(valid: queue, exchange)"], False),
        (["default <prefix>:lock"], ["default <prefix>:lock"], True),
        (["a.b*c"], ["a.b*c"], True),
        (["a.b*c"], ["aXbbc"], False),
    ],
)
def test_matches(expected: list[str], actual: list[str], result: bool) -> None:
    assert matches(expected, actual) is result


def test_normalise_drops_trailing_white_space_and_empty_lines() -> None:
    assert normalise("a  \n\nb\t\n\n\n") == ["a", "", "b"]


def test_blocks_commands_files_and_directives(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        textwrap.dedent(
            """\
            # A page

            ```yaml file=schedules/extra.yaml
            version: 1
            ```

            - in a list:

              <!-- doc-test: embedded -->
              ```console
              $ reconciler validate \\
                  schedules/
              7 schedules in 2 files are valid

              $ echo $?
              0
              ```

            ````text
            ```console
            $ not a block of its own
            ```
            ````
            """
        ),
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(block.language, block.line) for block in found] == [
        ("yaml", 3),
        ("console", 10),
        ("text", 19),
    ]
    assert found[0].file == "schedules/extra.yaml"
    assert found[0].text == "version: 1\n"
    console = found[1]
    assert console.directives == frozenset({"embedded"})
    commands = console.commands()
    assert [(command.line, command.text) for command in commands] == [
        (11, "reconciler validate \\\n    schedules/"),
        (15, "echo $?"),
    ]
    assert commands[0].expected == ("7 schedules in 2 files are valid", "")
    assert commands[1].expected == ("0",)
    assert found[2].lines == ("```console", "$ not a block of its own", "```")


def test_a_console_block_starts_with_a_command(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```console\noutput first\n$ reconciler validate\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="starts with a '\\$ ' command"):
        blocks(page)[0].commands()


def test_unknown_directives_are_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- doc-test: embeded -->\n```console\n$ true\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown doc-test directive"):
        blocks(page)
