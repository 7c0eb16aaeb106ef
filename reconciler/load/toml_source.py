"""TOML text: parsed, and where each key is written.

tomllib keeps no positions, so a value found wrong after parsing is placed by scanning the
text for its key. Errors of the parser itself carry their line and column.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from reconciler.core.errors import InvalidConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover  # the same parser, as a package, before Python 3.11
    import tomli as tomllib

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def parse_toml(text: str, shown: str) -> dict[str, Any]:
    try:
        document: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, where = str(exc), shown
        found = _TOML_POSITION.search(message)
        if found:
            where = f"{shown}:{found[1]}:{found[2]}"
            message = message[: found.start()]
        raise InvalidConfig([f"{where}: invalid TOML: {message}"]) from None
    return document


def _part(name: str) -> str:
    escaped = re.escape(name)
    return f"(?:{escaped}|\"{escaped}\"|'{escaped}')"


def _dotted(parts: tuple[str, ...]) -> str:
    head = r"\s*\.\s*".join(_part(part) for part in parts[:-1])
    last = f"(?P<last>{_part(parts[-1])})"
    return (head + r"\s*\.\s*" + last) if head else last


_ANY_HEADER = re.compile(r"^\s*\[")


class TomlLines:
    """Where a table or key is written: table headers, ``key =`` and dotted ``a.b =`` lines,
    and keys of one-line inline tables. Best effort: what cannot be found is placed at its
    nearest enclosing table."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def locate(self, path: tuple[str, ...]) -> tuple[int, int]:
        """Where ``path`` is written, else its nearest enclosing table; (0, 0): nowhere."""
        for length in range(len(path), 0, -1):
            position = self.find(path[:length])
            if position is not None:
                return position
        return 0, 0

    def find(self, path: tuple[str, ...]) -> tuple[int, int] | None:
        header = self._header(path)
        if header is None:
            for cut in range(len(path) - 1, -1, -1):
                section = self._section(path[:cut])
                found = self._assignment(section, path[cut:]) if section is not None else None
                if found is not None:
                    return found
            header = self._header(path, within=True)
        return (header + 1, self._lines[header].index("[") + 1) if header is not None else None

    def _header(self, path: tuple[str, ...], *, within: bool = False) -> int | None:
        """The line of ``[path]``; with ``within``, of the first ``[path.more]`` as well (a
        table only defined through its sub-tables)."""
        if not path:
            return None
        end = r"\s*(?:\]|\.)" if within else r"\s*\]"
        pattern = re.compile(r"^\s*\[\s*" + _dotted(path) + end)
        return next((n for n, line in enumerate(self._lines) if pattern.match(line)), None)

    def _section(self, path: tuple[str, ...]) -> range | None:
        start = 0
        if path:
            header = self._header(path)
            if header is None:
                return None
            start = header + 1
        end = next(
            (n for n in range(start, len(self._lines)) if _ANY_HEADER.match(self._lines[n])),
            len(self._lines),
        )
        return range(start, end)

    def _assignment(self, section: range, rest: tuple[str, ...]) -> tuple[int, int] | None:
        dotted = re.compile(r"^\s*" + _dotted(rest) + r"\s*=")
        inline = [
            re.compile(r"^\s*" + _dotted(rest[:length]) + r"\s*=\s*\{")
            for length in range(1, len(rest))
        ]
        key = re.compile(r"[{,]\s*(?P<last>" + _part(rest[-1]) + r")\s*=")
        for number in section:
            line = self._lines[number]
            match = dotted.match(line)
            if match:
                return number + 1, match.start("last") + 1
            if any(pattern.match(line) for pattern in inline):
                inner = key.search(line)
                if inner:
                    return number + 1, inner.start("last") + 1
        return None
