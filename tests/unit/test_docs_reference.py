"""The documentation keeps up with the CLI: options, --help examples, links, quick start.

The commands the pages show are run by tests/integration/test_docs.py; this checks what
needs no server.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

import click
import pytest

from reconciler.cli.main import cli, main
from tests.support.doc_examples import (
    DOCS,
    REPO_ROOT,
    blocks,
    pages,
    pages_with_examples,
    shown,
)

if TYPE_CHECKING:
    from pathlib import Path

REFERENCE = DOCS / "cli.md"
README = REPO_ROOT / "README.md"
COMMANDS = sorted(cli.commands)


def _section(command: str) -> str:
    """The part of docs/cli.md under '## reconciler COMMAND', up to the next heading."""
    text = REFERENCE.read_text(encoding="utf-8")
    match = re.search(rf"^## reconciler {command}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"docs/cli.md has no '## reconciler {command}' section"
    return match.group(1)


def _option_names(command: click.Command) -> list[str]:
    return [
        name
        for parameter in command.params
        if isinstance(parameter, click.Option)
        for name in (*parameter.opts, *parameter.secondary_opts)
        if name.startswith("--") and name != "--help"
    ]


def test_commands_have_options_to_check() -> None:
    assert {"validate", "plan", "apply", "drift", "export", "history", "schema"} <= set(COMMANDS)
    assert "--embedded-dir" in _option_names(cli.commands["plan"])


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_in_the_command_reference(name: str) -> None:
    section = _section(name)
    missing = [
        option
        for option in _option_names(cli.commands[name])
        if not re.search(rf"`{re.escape(option)}(?![\w-])", section)
    ]
    assert missing == [], f"docs/cli.md, '## reconciler {name}', does not mention {missing}"
    if any(isinstance(parameter, click.Argument) for parameter in cli.commands[name].params):
        assert "PATH" in section


def test_the_reference_names_the_group_options() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert "--version" in text
    assert "--help" in text


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main([*argv, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_ends_with_examples_of_the_command(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _help(capsys, *([name] if name else [])).rstrip("\n").splitlines()
    assert "  Examples:" in lines, f"'reconciler {name} --help' shows no examples"
    examples = [line.strip() for line in lines[lines.index("  Examples:") + 1 :]]
    assert 1 <= len(examples) <= 2, examples
    for example in examples:
        words = shlex.split(example, comments=True)
        assert words[0] == "reconciler", example
        used = name or words[1]
        assert words[1] == used, f"an example of 'reconciler {name}' runs {example!r}"
        command = cli.commands[used]
        known = set(_option_names(command))
        unknown = [word for word in words[2:] if word.startswith("--") and word not in known]
        assert unknown == [], f"{example!r}: 'reconciler {used}' has no option {unknown}"


# -- the README's quick start ----------------------------------------------------------------


def _sh_lines(path: Path) -> list[str]:
    return [line for block in blocks(path) if block.language == "sh" for line in block.lines]


def test_quick_start_test_command_is_what_ci_runs() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ci_commands = [line for line in ci if line.startswith("python3 -m venv")]
    assert len(ci_commands) == 1, ci_commands
    assert ci_commands[0] in _sh_lines(README), (
        "README.md's quick-start command 2 is not .ci/run's test command: " + ci_commands[0]
    )
    assert ci_commands[0] in _sh_lines(DOCS / "development.md")


def test_quick_start_console_runs_the_reconciler_commands_of_command_1() -> None:
    install = [line for line in _sh_lines(README) if line.startswith("python3 -m venv")]
    main_job = next(line for line in install if ".venv/bin/pip install . " in line)
    shown_steps = [
        part.removeprefix(".venv/bin/")
        for part in main_job.split(" && ")
        if part.startswith(".venv/bin/reconciler ")
    ]
    consoles = [block for block in blocks(README) if block.language == "console"]
    assert consoles, "README.md shows no console example"
    first = consoles[0]
    assert "embedded" in first.directives, "the quick start runs with no Redis configured"
    assert [command.text for command in first.commands()] == shown_steps


# -- commands and links in the pages ---------------------------------------------------------


@pytest.mark.parametrize("page", pages(), ids=shown)
def test_commands_shown_in_shell_blocks_are_console_examples(page: Path) -> None:
    """Every reconciler command a page shows is run by test_docs.py: a shell block may
    install or set up, but a 'reconciler ...' line belongs in a console block."""
    for block in blocks(page):
        if block.language in {"sh", "bash", "shell", "text"}:
            for line in block.lines:
                assert not line.lstrip().startswith(("reconciler ", "$ ")), (
                    f"{shown(page)}:{block.line}: {line!r} is not run by the doc tests; "
                    "show it in a console block with its output"
                )


def test_the_doc_tests_run_every_page_that_shows_a_command() -> None:
    """tests/integration/test_docs.py runs the pages with console blocks, and only those
    (so it reports no skipped page); none of the others may show a command."""
    run = pages_with_examples()
    assert README in run
    assert len(run) >= 2, [shown(page) for page in run]
    for page in pages():
        if page in run:
            continue
        commands = [
            line
            for block in blocks(page)
            for line in block.lines
            if line.lstrip().startswith(("$ ", "reconciler ", ".venv/bin/reconciler "))
        ]
        assert commands == [], f"{shown(page)} shows {commands} in no console block"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    inside = {line for block in blocks(path) for line in block.lines}
    return {
        _anchor(line.lstrip("#"))
        for line in text.splitlines()
        if line.startswith("#") and line not in inside
    }


@pytest.mark.parametrize("page", pages(), ids=shown)
def test_links_between_pages_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        missing_anchor = bool(anchor) and linked.suffix == ".md"
        if not linked.exists() or (missing_anchor and anchor not in _anchors(linked)):
            broken.append(target)
    assert broken == [], f"{shown(page)} links to what does not exist: {broken}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    missing = [path.name for path in DOCS.glob("*.md") if f"(docs/{path.name}" not in readme]
    assert missing == [], f"README.md does not link to {missing}"


def test_every_test_a_page_names_exists() -> None:
    """A guarantee names the test that proves it: `tests/x.py::name`, or `::name` after one
    (the same file). A renamed or removed test would leave a promise without its proof."""
    named = 0
    for page in [README, *pages()]:
        current: Path | None = None
        for reference in re.findall(r"`((?:tests/[\w/]+\.py)?(?:::\w+)?)`", page.read_text()):
            path, _, test = reference.partition("::")
            if path:
                current = REPO_ROOT / path
                assert current.is_file(), f"{page.name} names {path}, which does not exist"
            if test:
                assert current is not None, f"{page.name}: '::{test}' follows no test file"
                source = current.read_text(encoding="utf-8")
                assert re.search(rf"^(?:async )?def {test}\(", source, re.M), (
                    f"{page.name} names {current.relative_to(REPO_ROOT)}::{test}, not defined there"
                )
                named += 1
    assert named >= 30
