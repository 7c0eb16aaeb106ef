"""The examples in README.md and docs/*.md, read as the doc tests run them.

The convention (documented in docs/development.md):

- A fenced block whose info string is ``console`` holds commands, each on a line starting
  with ``$ `` (a line ending in `` \\`` continues on the next one), each followed by the
  output it prints, stdout and stderr together, as a terminal shows them.
- In the output, ``...`` alone on a line stands for any number of lines (none included),
  and these placeholders stand for text that changes from run to run:
  ``<datetime>``, ``<date>``, ``<time>``, ``<hash>``, ``<number>``, ``<version>``.
- A fenced block whose info string carries ``file=PATH`` (e.g. ```` ```yaml
  file=overlays/production.yaml ````) is written to PATH before the next command runs.
- ``<!-- doc-test: embedded -->`` on the line before a console block runs it with no
  Redis URL configured, so the commands start the embedded Redis, as on a fresh machine.

Any other block (``sh``, ``yaml``, ``python``, ``text``...) is illustration only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"

PLACEHOLDERS = {
    "<datetime>": r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)?",
    "<date>": r"\d{4}-\d{2}-\d{2}",
    "<time>": r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?",
    "<hash>": r"[0-9a-f]{7,64}",
    "<number>": r"-?\d+(?:\.\d+)?",
    "<version>": r"\d+(?:\.\d+)+(?:[.+-]?[0-9A-Za-z]+)*",
}
ANY_LINES = "..."
DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<words>[\w\s-]+?)\s*-->\s*$")
DIRECTIVES = frozenset({"embedded"})
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def pages() -> list[Path]:
    """README.md, then every docs/*.md page."""
    return [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def pages_with_examples() -> list[Path]:
    """The pages that show commands (a ``console`` block): the ones the doc tests run."""
    return [page for page in pages() if any(block.language == "console" for block in blocks(page))]


def shown(path: Path) -> str:
    """``path`` as the test reports show it: relative to the repository."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


@dataclass(frozen=True)
class Command:
    line: int  # where the '$ ' line is, 1-based
    text: str  # without the '$ ', continuation lines joined by newlines
    expected: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    """One fenced block: its info string, where it starts, and its lines (dedented)."""

    info: str
    line: int
    lines: tuple[str, ...]
    directives: frozenset[str] = frozenset()

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def file(self) -> str | None:
        """The PATH of a ``file=PATH`` block."""
        for word in self.info.split()[1:]:
            if word.startswith("file="):
                return word.removeprefix("file=")
        return None

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)

    def commands(self) -> list[Command]:
        """The commands of a console block, each with the output shown after it."""
        found: list[Command] = []
        index = 0
        while index < len(self.lines):
            line = self.lines[index]
            if not line.startswith("$ "):
                raise ValueError(
                    f"line {self.line + 1 + index}: a console block starts with a '$ ' command"
                )
            start = self.line + 1 + index
            parts = [line[2:]]
            while parts[-1].endswith("\\") and index + 1 < len(self.lines):
                index += 1
                parts.append(self.lines[index])
            index += 1
            expected: list[str] = []
            while index < len(self.lines) and not self.lines[index].startswith("$ "):
                expected.append(self.lines[index])
                index += 1
            found.append(Command(start, "\n".join(parts), tuple(expected)))
        return found


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        directives = _directives(lines[index - 1] if index else "", path, index)
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if closing and closing["fence"].startswith(fence) and not closing["info"].strip():
                break
            text = lines[index]
            # Inside a list item, the fence's indentation is not part of the content.
            body.append(text[min(indent, len(text) - len(text.lstrip(" "))) :])
            index += 1
        found.append(Block(opening["info"].strip(), start + 1, tuple(body), directives))
        index += 1
    return found


def _directives(previous: str, path: Path, index: int) -> frozenset[str]:
    match = DIRECTIVE.match(previous)
    if match is None:
        return frozenset()
    words = frozenset(match["words"].split())
    unknown = words - DIRECTIVES
    if unknown:
        raise ValueError(f"{shown(path)}:{index}: unknown doc-test directive {sorted(unknown)}")
    return words


def pattern_of(expected_line: str) -> re.Pattern[str]:
    """One expected line as a regular expression: literal text, placeholders as patterns."""
    names = "|".join(re.escape(name) for name in PLACEHOLDERS)
    parts = re.split(f"({names})", expected_line)
    regex = "".join(PLACEHOLDERS.get(part, re.escape(part)) for part in parts)
    return re.compile(regex)


def normalise(text: str) -> list[str]:
    """Lines without trailing white space, and without trailing empty lines."""
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``expected``, with placeholders and ``...`` lines."""
    reachable = {0}  # how many actual lines the expected lines so far can stand for
    for line in expected:
        if not reachable:
            return False
        if line == ANY_LINES:
            reachable = set(range(min(reachable), len(actual) + 1))
            continue
        pattern = pattern_of(line)
        reachable = {
            done + 1
            for done in reachable
            if done < len(actual) and pattern.fullmatch(actual[done]) is not None
        }
    return len(actual) in reachable
