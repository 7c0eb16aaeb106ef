"""Safe YAML reading that remembers where every key and value came from.

The document is composed into ruamel's node graph and converted by hand, so that:
- no tag can construct a Python object (only the core schema's plain types are built);
- every key and value keeps its line and column, for errors that point at the file;
- aliases are expanded under a node budget, so an alias bomb fails cleanly and fast;
- duplicate keys are reported with both places instead of silently overwritten.

A duplicate key or a refused tag is reported and the rest of the document is still read,
so that every other problem of the file shows in the same run: the place whose value is in
doubt is recorded in ``YamlDocument.unclear``, and the checks leave what is under it alone.
Only the safety limits (size, alias bombs, depth, recursive aliases) stop the reading.
"""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from reconciler.core.problems import Problem, SourceLocation

if TYPE_CHECKING:
    from pathlib import Path

YamlPath = tuple[object, ...]

MAX_FILE_BYTES = 4 * 1024 * 1024
# A large real schedule file expands to a few hundred thousand nodes; a billion-laughs
# document needs far more, and is stopped here before it can eat memory or time.
MAX_EXPANDED_NODES = 500_000
MAX_DEPTH = 64
# ruamel's composers recurse once per nesting level, the C one in C: 30,000 nested '['
# overflow its stack (a segfault) before the converter's MAX_DEPTH check. Depth is bounded
# by the count of '[' and '{' plus twice the longest run of indentation and block
# indicators starting a line; a text that might nest deeper than about this is first
# measured as a flat stream of parser events (a loop) before it is composed.
_NESTING_SCAN_OPENERS = 2000
_DEEP_BLOCK_LINE = re.compile(r"^[ \t?:-]{250}", re.MULTILINE)

try:
    from ruamel.yaml.clib._ruamel_yaml import CParser as _CParser
except ImportError:  # no compiled wheel for this interpreter: the pure parser does it all
    _CParser = None
_C_PARSER_AVAILABLE = _CParser is not None

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(
    _CORE + name for name in ("str", "int", "float", "bool", "null", "timestamp", "binary")
)
_MAP_TAG = _CORE + "map"
_SEQ_TAG = _CORE + "seq"
_MERGE_TAG = _CORE + "merge"


@dataclass
class YamlDocument:
    """Plain data of one file plus the position of each value and mapping key in it."""

    path: str
    data: Any
    value_positions: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    # Whether any string holds '${' (a reference, an escape or a mistake): when none does,
    # the per-entry walks for references are skipped (about 2 % of validate's time).
    holds_braces: bool = True
    # Where the document does not say for certain what it holds (a key written twice, a
    # refused tag, a key that is not a plain scalar): reported already, checked no further.
    unclear: set[YamlPath] = field(default_factory=set)

    def in_doubt(self, path: YamlPath, *, within: bool = False) -> bool:
        """Whether the value at ``path`` is in doubt: it, or a value holding it, was not
        read for certain; ``within``: or anything it holds."""
        return any(
            path[: len(doubt)] == doubt or (within and doubt[: len(path)] == path)
            for doubt in self.unclear
        )

    def location(self, path: YamlPath, *, at_key: bool = False) -> SourceLocation:
        """Where ``path`` is written; falls back to its nearest written ancestor."""
        positions = self.key_positions if at_key else self.value_positions
        for length in range(len(path), -1, -1):
            prefix = path[:length]
            found = positions.get(prefix) or self.value_positions.get(prefix)
            if found:
                return SourceLocation(self.path, *found)
        return SourceLocation(self.path)


class _Invalid(Exception):
    """A safety limit: the document is not read any further."""

    def __init__(self, node: Node, message: str, code: str) -> None:
        super().__init__(message)
        self.node, self.message, self.code = node, message, code

    def problem(self, path: str) -> Problem:
        mark = self.node.start_mark
        return Problem(
            SourceLocation(path, mark.line + 1, mark.column + 1), self.message, self.code
        )


class _Unreadable(_Invalid):
    """One value cannot be read; the rest of the document can."""


# Stands in the path of a mapping key that is not a plain scalar (it has no name to use).
UNREADABLE_KEY = object()


def read_yaml_file(file: Path, display_path: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Read one schedule file: the document and its problems; no document when it could
    not be read at all (see ``YamlDocument.unclear`` for the parts in doubt)."""
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [
                Problem(
                    SourceLocation(display_path),
                    f"file is {size} bytes, more than the {MAX_FILE_BYTES} allowed; "
                    "split it into several files",
                    "file-too-large",
                )
            ]
        raw = file.read_bytes()
    except OSError as exc:
        return None, [Problem(SourceLocation(display_path), f"cannot read file: {exc.strerror}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            Problem(
                SourceLocation(display_path, line, column),
                f"file is not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded",
                "encoding",
            )
        ]
    return parse_yaml_text(text, display_path)


def parse_yaml_text(
    text: str, display_path: str, *, fast: bool = True
) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one document; ``fast`` tries the shortcuts first.

    First load/yaml_fast.py (PyYAML's libyaml by ruamel's 1.2 rules), which takes the files
    it reads exactly as this module would, with no problem to report. Then ruamel's C parser
    when it is installed (libyaml, from ruamel.yaml.clib): about five times faster than the
    pure one but follows YAML 1.1 and refuses some valid 1.2, such as
    ``args: [http://example.com]``. So it is
    only a shortcut: whatever it refuses is parsed again by the pure-Python 1.2 parser,
    whose verdict and messages count. Both build the same node graph, which is then
    resolved and converted by the same Python code (tests compare the two on a corpus).
    """
    if fast:
        from reconciler.load.yaml_fast import read_plain_yaml  # imports this module

        plain = read_plain_yaml(text)
        if plain is not None:
            data, values, keys, braces = plain
            return YamlDocument(display_path, data, values, keys, holds_braces=braces), []
    too_deep = _nesting_problem(text, display_path, fast=fast)
    if too_deep is not None:
        return None, [too_deep]
    yaml = YAML(typ="safe", pure=True)
    root = None
    if fast and _C_PARSER_AVAILABLE:
        fast_yaml = YAML(typ="safe")
        with suppress(YAMLError):  # refused: the pure parser decides below
            root = fast_yaml.compose(text)
            yaml = fast_yaml
    if yaml.Parser is not _CParser:
        if fast and _C_PARSER_AVAILABLE:
            # The pure parser slows down with the square of the nesting depth: measured by
            # the C parser first, up to where it stopped.
            too_deep = _nesting_problem(text, display_path, fast=True, measure=True)
            if too_deep is not None:
                return None, [too_deep]
        try:
            root = yaml.compose(text)
        except MarkedYAMLError as exc:
            return None, [_syntax_problem(exc, display_path)]
        except ReaderError as exc:
            return None, [_character_problem(exc, text, display_path)]
        except YAMLError as exc:
            problem = Problem(SourceLocation(display_path), f"YAML error: {exc}", "yaml-syntax")
            return None, [problem]
        except RecursionError:  # deeper than Python's stack, not than the C parser's
            deep = _nesting_problem(text, display_path, fast=False, measure=True)
            return None, [deep or _too_deep_problem(display_path, None)]
    document = YamlDocument(display_path, None, holds_braces=False)
    if root is None:
        return document, []
    converter = _Converter(yaml, document)
    try:
        document.data = converter.convert(root, ())
    except _Invalid as exc:
        converter.problems.append(exc.problem(display_path))
        return None, converter.problems
    except RecursionError:
        return None, [Problem(SourceLocation(display_path), "document is nested too deeply")]
    return document, converter.problems


def _nesting_problem(
    text: str, display_path: str, *, fast: bool, measure: bool = False
) -> Problem | None:
    """Where ``text`` nests too deep to be composed safely, read as events; None when it
    does not, or cannot (cheap bound, unless ``measure``), or does not parse (the parse
    reports that)."""
    openers = text.count("[") + text.count("{")
    cannot = openers <= _NESTING_SCAN_OPENERS and not _DEEP_BLOCK_LINE.search(text)
    if cannot and not measure:
        return None
    depth = 0
    try:
        for event in YAML(typ="safe", pure=not fast).parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH + 1:
                    return _too_deep_problem(display_path, event.start_mark)
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        return None
    return None


def _too_deep_problem(display_path: str, mark: Any) -> Problem:
    return Problem(
        SourceLocation(display_path, mark.line + 1, mark.column + 1)
        if mark is not None
        else SourceLocation(display_path, 1),
        f"document is nested more than {MAX_DEPTH} levels deep",
        "depth",
    )


def _character_problem(exc: ReaderError, text: str, display_path: str) -> Problem:
    """A character YAML does not allow in a file (a control character, say)."""
    at = exc.position
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    code = exc.character
    escape = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return Problem(
        SourceLocation(display_path, line, column),
        f"YAML does not allow the character U+{code:04X} in a file; write it as an escape "
        f'in a double-quoted string, e.g. "{escape}"',
        "yaml-syntax",
    )


def _syntax_problem(exc: MarkedYAMLError, display_path: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    location = (
        SourceLocation(display_path, mark.line + 1, mark.column + 1)
        if mark is not None
        else SourceLocation(display_path)
    )
    parts = [part for part in (exc.context, exc.problem) if part]
    message = "YAML syntax error: " + ", ".join(parts)
    if "'\\t'" in message:
        message += " (YAML cannot indent with tabs; use spaces)"
    return Problem(location, message, "yaml-syntax")


# Python turns no integer of more than 4,300 decimal digits (about 14,000 bits) into text
# (CVE-2020-10735); a hexadecimal one is read, and would fail later, when JSON writes it.
INT_TEXT_BITS = 14_000
_SURROGATE = re.compile("[\ud800-\udfff]")


def _shown_text(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _shown_tag(tag: object) -> str:
    text = str(tag)
    return "!!" + text[len(_CORE) :] if text.startswith(_CORE) else text


def _unconstructable(node: ScalarNode, exc: Exception, implicit: bool) -> str:
    """Why a scalar cannot be read as its tag says: a date that does not exist, an integer
    too long, text that is not base64, ``!!bool abc``..."""
    tag = _shown_tag(node.tag)
    reason = ""
    if tag == "!!int" and "digits" in str(exc):
        reason = " (more than 4,300 digits)"
    elif tag == "!!timestamp" and isinstance(exc, ValueError):
        reason = f" ({exc})"
    elif tag == "!!binary" and isinstance(exc, MarkedYAMLError):
        reason = f" ({exc.problem})"
    hint = "; write it in quotes if it is meant as a string" if implicit else ""
    return f"{_shown_text(node.value)} is not a valid {tag}{reason}{hint}"


class _Converter:
    def __init__(self, yaml: YAML, document: YamlDocument) -> None:
        self._constructor = yaml.constructor
        self._resolver = yaml.resolver
        self._document = document
        self._budget = MAX_EXPANDED_NODES
        self._active: set[int] = set()
        self.problems: list[Problem] = []

    def convert(self, node: Node, path: YamlPath) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise _Invalid(
                node,
                f"document expands to more than {MAX_EXPANDED_NODES} values "
                "(alias bomb?); schedule files must be small plain data",
                "too-large",
            )
        if len(path) > MAX_DEPTH:
            raise _Invalid(node, f"document is nested more than {MAX_DEPTH} levels deep", "depth")
        mark = node.start_mark
        self._document.value_positions.setdefault(path, (mark.line + 1, mark.column + 1))
        try:
            return self._value(node, path)
        except _Unreadable as exc:
            self._doubt(path, exc)
            return None

    def _doubt(self, path: YamlPath, unreadable: _Unreadable) -> None:
        self.problems.append(unreadable.problem(self._document.path))
        self._document.unclear.add(path)

    def _value(self, node: Node, path: YamlPath) -> Any:
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self._active:
            raise _Invalid(node, "recursive alias: a value contains itself", "recursive-alias")
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                self._require_tag(node, _SEQ_TAG)
                return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                self._require_tag(node, _MAP_TAG)
                return self._mapping(node, path)
        finally:
            self._active.discard(id(node))
        raise _Invalid(node, f"unsupported YAML node {type(node).__name__}", "yaml-node")

    def _scalar(self, node: ScalarNode) -> Any:
        self._require_tag(node, *_SCALAR_TAGS)
        if "${" in node.value:  # the value as parsed, escapes included
            self._document.holds_braces = True
        try:
            value = self._constructor.construct_object(node, deep=True)
            if type(value) is int and value.bit_length() > INT_TEXT_BITS:
                str(value)  # JSON writes it in decimal, which Python limits (4,300 digits)
        except (YAMLError, ValueError, ArithmeticError, LookupError, TypeError) as exc:
            # Plain text the resolver read as a date or number (style '' from the C parser).
            implicit = not node.style and str(node.tag) == str(
                self._resolver.resolve(ScalarNode, node.value, (True, False))
            )
            message = _unconstructable(node, exc, implicit)
            raise _Unreadable(node, message, "yaml-value") from None
        if isinstance(value, str) and not value.isascii() and _SURROGATE.search(value):
            raise _Unreadable(
                node,
                f"{_shown_text(node.value)} holds a lone surrogate (an escape such as "
                "\\ud800), which is not a character and cannot be stored as UTF-8; write a "
                "character beyond U+FFFF as one \\U escape, e.g. \\U0001F600",
                "encoding",
            )
        return value

    @staticmethod
    def _require_tag(node: Node, *allowed: str) -> None:
        if node.tag not in allowed:
            shown = _shown_tag(node.tag)
            raise _Unreadable(
                node,
                f"YAML tag '{shown}' is not allowed: schedule files hold plain data "
                "(strings, numbers, booleans, null, lists and mappings)",
                "yaml-tag",
            )

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[object, Any]:
        result: dict[object, Any] = {}
        key_nodes: dict[object, Node] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                message = "mapping keys must be plain scalars"
                self._doubt((*path, UNREADABLE_KEY), _Unreadable(key_node, message, "yaml-key"))
                continue
            key = self._key(key_node, path)
            if key in key_nodes:
                first = key_nodes[key].start_mark
                message = f"duplicate key '{key}' (first defined at line {first.line + 1})"
                self._doubt((*path, key), _Unreadable(key_node, message, "duplicate-key"))
                continue
            key_nodes[key] = key_node
            mark = key_node.start_mark
            self._document.key_positions.setdefault((*path, key), (mark.line + 1, mark.column + 1))
            empty = isinstance(value_node, ScalarNode) and value_node.value == ""
            if empty and value_node.style is None:
                # An empty value ("task:") is marked where the next token starts, often the
                # next line; the place to fix it is right after its key.
                end = key_node.end_mark
                self._document.value_positions.setdefault(
                    (*path, key), (end.line + 1, end.column + 2)
                )
            result[key] = self.convert(value_node, (*path, key))
        for merge_node in merges:
            self._merge_into(result, merge_node, path)
        return result

    def _key(self, key_node: ScalarNode, path: YamlPath) -> Any:
        """The key's value; a key with a refused tag is known by its text, its value doubted."""
        try:
            return self._scalar(key_node)
        except _Unreadable as exc:
            # Its text, with any lone surrogate as its escape: it is shown in messages.
            key = key_node.value.encode("utf-8", "backslashreplace").decode("utf-8")
            self._doubt((*path, key), exc)
            return key

    def _merge_into(self, result: dict[object, Any], merge_node: Node, path: YamlPath) -> None:
        """YAML merge keys (``<<: *defaults``): explicit keys win, earlier merges win."""
        sources = merge_node.value if isinstance(merge_node, SequenceNode) else [merge_node]
        for source in sources:
            if not isinstance(source, MappingNode):
                message = "a merge key (<<) takes a mapping or a list of them"
                self._doubt(path, _Unreadable(source, message, "merge"))
                continue
            merged = self.convert(source, path)
            for key, value in merged.items() if isinstance(merged, dict) else ():
                result.setdefault(key, value)
