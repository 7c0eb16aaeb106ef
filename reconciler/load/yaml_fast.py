"""The fast first reading of a schedule file: PyYAML's C parser, ruamel's YAML 1.2 rules.

ruamel.yaml stays the reference (yaml_source.py). This module only takes the files it can
read to exactly the same result, several times faster: libyaml composes the node graph in C,
plain scalars are tagged by ruamel's own YAML 1.2 resolver table (``yes``/``on`` are strings,
``0o17`` is octal, no sexagesimals), and one tight walk builds the data and the position of
every value and key, as ``yaml_source._Converter`` does. Anything it is not sure of makes it
decline (``None``), and the reference reading decides, with its messages:

- a parse error (libyaml follows YAML 1.1: ``[http://x]`` is refused), several documents;
- any tag written in the file (``!!str``, ``!``), a directive (``%YAML 1.1``), a NEL or
  Unicode line break (line breaks in YAML 1.1, not in 1.2), a tab character;
- anything the converter would report: a duplicate key, a key that is not a scalar, a merge
  of something other than mappings, recursive aliases, past the depth or node limits.

tests/unit/test_yaml_fast.py compares both readings on every YAML file of the repository and
on generated schedules. PyYAML's graph has no reference cycles, so it is freed as soon as the
reading returns, even with the cyclic collector paused (desired_state.py).
"""

from __future__ import annotations

import re
from sys import intern
from typing import TYPE_CHECKING, Any

import yaml  # type: ignore[import-untyped]
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.resolver import implicit_resolvers
from ruamel.yaml.util import create_timestamp
from yaml.cyaml import CParser  # type: ignore[import-untyped]
from yaml.nodes import MappingNode, ScalarNode, SequenceNode  # type: ignore[import-untyped]

from reconciler.load.yaml_source import INT_TEXT_BITS, MAX_DEPTH, MAX_EXPANDED_NODES

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciler.load.yaml_source import YamlPath

_CORE = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP, _MERGE = (_CORE + name for name in ("str", "seq", "map", "merge"))

# ruamel's implicit resolvers for YAML 1.2, by first character, in ruamel's order.
_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _versions, _tag, _regexp, _first in implicit_resolvers:
    if (1, 2) in _versions:
        for _char in _first:
            # ruamel compiles its patterns lazily, behind a proxy: compiled here once.
            _pattern = re.compile(_regexp.pattern, _regexp.flags)
            _RESOLVERS.setdefault(_char, []).append((_tag, _pattern))

# A tag ('!' where a node can start), a directive, a line break only YAML 1.1 has, or a tab
# (libyaml takes 'a: x<TAB>y', ruamel's pure parser refuses it).
_TAG_OR_DIRECTIVE = re.compile(r"(?:^|[\s\[\]{},:])!|^%", re.MULTILINE)
_NOT_SURE_CHARACTERS = "\t\x85\u2028\u2029"
# Without libyaml's own nesting limit (0.2.5 has none), the C composer recurses once per
# level and a deep enough file overflows the C stack: a file that might nest deeper than
# this (every '[' and '{', plus the longest run of indentation and block indicators that
# starts a line) is left to the reference reading, which measures it first.
_SAFE_C_DEPTH = 1000
_BLOCK_RUN = re.compile(r"^[ \t?:-]+", re.MULTILINE)


class _Decline(Exception):
    """The fast reading is not sure: the reference reading decides."""


def _construct_int(value: str) -> int:
    # ruamel's SafeConstructor.construct_yaml_int, YAML 1.2 branches.
    digits = value.replace("_", "")
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    if digits == "0":
        return 0
    if digits.startswith("0b"):
        number = sign * int(digits[2:], 2)
    elif digits.startswith("0x"):
        number = sign * int(digits[2:], 16)
    elif digits.startswith("0o"):
        number = sign * int(digits[2:], 8)
    else:
        return sign * int(digits)  # decimal: Python's own limit (4,300 digits) raises
    if number.bit_length() > INT_TEXT_BITS:
        raise _Decline  # JSON could not write it in decimal: the reference says so
    return number


def _construct_float(value: str) -> float:
    # ruamel's SafeConstructor.construct_yaml_float, YAML 1.2 branches.
    digits = value.replace("_", "").lower()
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    if digits == ".inf":
        return sign * SafeConstructor.inf_value
    if digits == ".nan":
        return SafeConstructor.nan_value
    return sign * float(digits)


def _construct_timestamp(value: str) -> Any:
    match = SafeConstructor.timestamp_regexp.match(value)
    if match is None:
        raise _Decline
    return create_timestamp(**match.groupdict())


_CONSTRUCTORS: dict[str, Callable[[str], Any]] = {
    _CORE + "null": lambda value: None,
    _CORE + "bool": lambda value: SafeConstructor.bool_values[value.lower()],
    _CORE + "int": _construct_int,
    _CORE + "float": _construct_float,
    _CORE + "timestamp": _construct_timestamp,
}


class _Parser(CParser):  # type: ignore[misc]
    """libyaml's composer; every tag it asks for is one of ruamel's YAML 1.2 tags."""

    def resolve(self, kind: type, value: str | None, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                assert value is not None
                for tag, regexp in _RESOLVERS.get(value[:1], ()):
                    if regexp.match(value):
                        return tag
            return _STR
        return _SEQ if kind is SequenceNode else _MAP

    def descend_resolver(self, current_node: object, current_index: object) -> None:
        """No path-dependent tags (PyYAML's path resolvers): nothing to track."""

    def ascend_resolver(self) -> None:
        """See descend_resolver."""


# Line numbers from 1, one int object each for every file read: the entries keep their
# positions, and a line past 256 (CPython shares only small ints) would otherwise cost an
# object per position (~10% of what a load keeps, at 10,000 generated entries).
_LINE_NUMBERS: list[int] = [1]
_SHARED_LINES = 1 << 16


def _line_numbers(text: str) -> list[int]:
    """A list long enough to give every line of ``text`` its number."""
    needed = max(text.count("\n"), text.count("\r")) + 2
    if needed > _SHARED_LINES:
        return list(range(1, needed + 1))
    if len(_LINE_NUMBERS) < needed:
        _LINE_NUMBERS.extend(range(len(_LINE_NUMBERS) + 1, needed + 1))
    return _LINE_NUMBERS


class _Converter:
    """yaml_source._Converter for PyYAML's nodes, raising _Decline where it would report."""

    def __init__(self, lines: list[int]) -> None:
        self._lines = lines  # line numbers by 0-based line, see _line_numbers
        self.value_positions: dict[YamlPath, tuple[int, int]] = {}
        self.key_positions: dict[YamlPath, tuple[int, int]] = {}
        self.holds_braces = False
        self._budget = MAX_EXPANDED_NODES
        self._active: set[int] = set()

    def convert(self, node: Any, path: YamlPath) -> Any:
        self._budget -= 1
        if self._budget < 0 or len(path) > MAX_DEPTH:
            raise _Decline
        mark = node.start_mark
        self.value_positions.setdefault(path, (self._lines[mark.line], mark.column + 1))
        kind = node.__class__
        if kind is ScalarNode:
            return self._scalar(node)
        if id(node) in self._active:
            raise _Decline  # a recursive alias
        self._active.add(id(node))
        try:
            if kind is MappingNode:
                return self._mapping(node, path)
            return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: Any) -> Any:
        value: str = node.value
        if "${" in value:
            self.holds_braces = True
        tag = node.tag
        if tag == _STR:
            # The same keys and values recur in every entry ('region', 'eu', a queue name):
            # one copy each, kept by the entries, instead of one per entry (~8% of what a
            # load keeps, at 10,000 generated entries).
            return intern(value)
        construct = _CONSTRUCTORS.get(tag)
        if construct is None:  # '<<' as a value, or '=': refused by the reference reading
            raise _Decline
        return construct(value)

    def _mapping(self, node: Any, path: YamlPath) -> dict[object, Any]:
        result: dict[object, Any] = {}
        merges: list[Any] = []
        value_positions, key_positions = self.value_positions, self.key_positions
        lines = self._lines
        for key_node, value_node in node.value:
            if key_node.__class__ is not ScalarNode:
                raise _Decline
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            key = self._scalar(key_node)
            if key in result:
                raise _Decline  # a duplicate key
            child = (*path, key)
            mark = key_node.start_mark
            key_positions.setdefault(child, (lines[mark.line], mark.column + 1))
            if value_node.__class__ is not ScalarNode:
                result[key] = self.convert(value_node, child)
                continue
            # convert() for a scalar, inlined: most values are scalars.
            self._budget -= 1
            if self._budget < 0 or len(child) > MAX_DEPTH:
                raise _Decline
            if value_node.style is None and value_node.value == "":
                mark = key_node.end_mark  # see yaml_source._Converter._mapping
                value_positions.setdefault(child, (lines[mark.line], mark.column + 2))
            else:
                mark = value_node.start_mark
                value_positions.setdefault(child, (lines[mark.line], mark.column + 1))
            result[key] = self._scalar(value_node)
        for merge_node in merges:
            sources = merge_node.value if merge_node.__class__ is SequenceNode else [merge_node]
            for source in sources:
                if source.__class__ is not MappingNode:
                    raise _Decline
                for key, value in self.convert(source, path).items():
                    result.setdefault(key, value)
        return result


def _expands_too_far(root: Any) -> bool:
    """Whether expanding the aliases would make more values than the converter allows (or
    never end): counted over the graph, each shared node once, so that an alias bomb is
    declined at once instead of expanded twice (here, then by the reference reading)."""
    try:
        return _expanded_size(root, 0, {}) > MAX_EXPANDED_NODES
    except _Decline:
        return True


def _expanded_size(node: Any, depth: int, sizes: dict[int, int]) -> int:
    if node.__class__ is ScalarNode:
        return 1
    known = sizes.get(id(node))
    if known is not None:
        return known
    if depth > MAX_DEPTH:
        raise _Decline
    sizes[id(node)] = MAX_EXPANDED_NODES + 1  # a node that holds itself never ends
    items = node.value if node.__class__ is SequenceNode else [value for _, value in node.value]
    total = 1
    for item in items:
        total += _expanded_size(item, depth + 1, sizes)
        if total > MAX_EXPANDED_NODES:
            break
    sizes[id(node)] = total
    return total


def _depth_is_safe(text: str) -> bool:
    if _LIBYAML_LIMITS_NESTING:
        return True
    openers = text.count("[") + text.count("{")
    if openers > _SAFE_C_DEPTH:
        return False
    # A block level takes at least one column, and a mapping and the sequence under it can
    # share one ('k:' then '- k:' below it): at most two levels per column, and the top.
    longest = max((len(run) for run in _BLOCK_RUN.findall(text)), default=0)
    return openers + 2 * longest + 1 <= _SAFE_C_DEPTH


def _libyaml_limits_nesting() -> bool:
    """Whether this libyaml refuses deep nesting itself (0.2.6 and later: 1,000 levels)."""
    try:
        _Parser("[" * (_SAFE_C_DEPTH + 1)).get_single_node()
    except yaml.YAMLError as exc:
        return "maximum nesting depth" in str(exc)
    return False


_LIBYAML_LIMITS_NESTING = _libyaml_limits_nesting()


def read_plain_yaml(
    text: str,
) -> tuple[Any, dict[YamlPath, tuple[int, int]], dict[YamlPath, tuple[int, int]], bool] | None:
    """The data, value positions, key positions and whether a string holds '${'; None when
    the reference reading must decide (see the module's docstring)."""
    if not _depth_is_safe(text) or any(character in text for character in _NOT_SURE_CHARACTERS):
        return None
    if ("!" in text or "%" in text) and _TAG_OR_DIRECTIVE.search(text):
        return None
    try:
        parser = _Parser(text)  # UnicodeEncodeError: a lone surrogate, which no file holds
    except UnicodeError:
        return None
    try:
        root = parser.get_single_node()
    except yaml.YAMLError:
        return None
    finally:
        parser.dispose()
    if root is not None and "&" in text and _expands_too_far(root):  # no anchor, no alias
        return None
    converter = _Converter(_line_numbers(text))
    try:
        data = None if root is None else converter.convert(root, ())
    except (_Decline, ValueError, KeyError, IndexError, TypeError):
        # ValueError and the others: a value the 1.2 table resolves but that does not convert
        # (say '_' as an int); the reference reading says what happens to it.
        return None
    return data, converter.value_positions, converter.key_positions, converter.holds_braces
