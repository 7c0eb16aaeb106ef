"""Secrets: values from environment variables, ``${env:NAME}``, in args, kwargs and options.

Everything the reconciler knows about them lives here: the template syntax, resolving,
what an entry's marker records of them, masking, and the digests saved plans carry. Other
modules ask through `Sensitive` (what one entry holds and how to show it) and `Scrubber`
(the last net for text leaving the process).

The files hold the reference and Redis holds the value: beat passes the resolved string to
the task. A reference is resolved just before definitions are encoded (plan, apply, drift),
never while validating, so pull requests need no secrets. Every value written at a path that
held a reference is *sensitive*: diffs, saved plans, history, alerts and logs show a masked
marker instead, and the paths (with their templates, which hold names, not values) are kept
in the entry's ownership marker so that even a later plan that no longer references the
variable masks what Redis still holds.

Syntax, as Terraform's: ``${env:NAME}`` is a reference, ``$${`` is a literal ``${``, and any
other ``${`` is an error, so a typo never reaches beat as literal text.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Union

from reconciler.core.definitions import parse_definition
from reconciler.core.errors import InvalidScheduleFiles
from reconciler.core.ownership import MARKER_VALUE
from reconciler.core.problems import Problem

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from reconciler.core.live import LiveEntry
    from reconciler.core.model import DesiredEntry
    from reconciler.core.problems import SourceLocation

# A path inside a definition: ("kwargs", "token"), ("args", 0), ("options", "headers", "x").
JsonPath = tuple[Union[str, int], ...]  # noqa: UP007  # evaluated at run time on 3.10 too

REFERENCE_FIELDS = ("args", "kwargs", "options")
_TOKEN = re.compile(r"\$\$\{|\$\{env:([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MASK = "(sensitive value)"


class MissingVariables(InvalidScheduleFiles):
    """References to environment variables that are not set; nothing was read or written."""

    def __init__(self, problems: Sequence[Problem], names: Iterable[str]) -> None:
        super().__init__(problems)
        shown = sorted(set(names))
        many = len(shown) != 1
        self.args = (
            f"{len(shown)} environment variable{'s' if many else ''} referenced by the "
            f"schedule files {'are' if many else 'is'} not set ({', '.join(shown)}); "
            "nothing was read from or written to Redis",
        )


@dataclass(frozen=True, slots=True)
class Template:
    """A string of args, kwargs or options as written, when it holds ``${``."""

    path: JsonPath
    text: str
    location: SourceLocation | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The environment variables it references, in order."""
        return tuple(part for part, is_name in _parts(self.text) if is_name)


def template_problem(text: str) -> str | None:
    """Why ``text`` is not a valid template, or None."""
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token == "$${":
            continue
        name = match.group(1)
        if name is None:
            return (
                "'${' starts a reference to an environment variable: write ${env:NAME}, "
                "or $${ for a literal '${'"
            )
        if not _NAME.match(name):
            return (
                f"'{token}' is not a valid reference: NAME in ${{env:NAME}} is letters, "
                "digits and underscores, not starting with a digit"
            )
    return None


def find_templates(args: object, kwargs: object, options: object) -> Iterator[tuple[JsonPath, str]]:
    """Every string holding ``${`` inside the three fields, with its definition path."""
    fields = dict(zip(REFERENCE_FIELDS, (args, kwargs, options), strict=True))
    return ((path, text) for path, text in strings_in(fields, keys=False) if "${" in text)


def keys_with_references(value: object, path: JsonPath = ()) -> Iterator[JsonPath]:
    """Mapping keys holding ``${env:``: only values are resolved, never keys."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from keys_with_references(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "${env:" in key:
                yield (*path, key)
            yield from keys_with_references(item, (*path, key))


def resolve_references(
    entries: Iterable[DesiredEntry], environ: Mapping[str, str]
) -> list[DesiredEntry]:
    """Entries as beat must receive them: references replaced by the variables' values.

    A variable that is unset or empty is an error (a GitHub secret that is not defined
    arrives as an empty string); every one is reported with the place that references it.
    """
    resolved: list[DesiredEntry] = []
    problems: list[Problem] = []
    missing_names: list[str] = []
    for entry in entries:
        if not entry.templates:
            resolved.append(entry)
            continue
        fields: dict[str, Any] = copy.deepcopy(
            {"args": entry.args, "kwargs": entry.kwargs, "options": entry.options}
        )
        sensitive: list[tuple[JsonPath, str]] = []
        values: set[str] = set()
        for template in entry.templates:
            values.update(environ.get(name, "") for name in template.names)
            for name in template.names:
                if not environ.get(name):
                    problems.append(_missing(entry, template, name))
                    missing_names.append(name)
            container: Any = fields
            for part in template.path[:-1]:
                container = container[part]
            container[template.path[-1]] = "".join(
                environ.get(part, "") if is_name else part
                for part, is_name in _parts(template.text)
            )
            if template.names:
                sensitive.append((template.path, template.text))
        resolved.append(
            replace(
                entry,
                **fields,
                templates=(),
                sensitive=tuple(sensitive),
                secret_values=frozenset(value for value in values if value),
            )
        )
    if problems:
        raise MissingVariables(sorted(set(problems)), missing_names)
    return resolved


def _missing(entry: DesiredEntry, template: Template, name: str) -> Problem:
    where = template.location or entry.source
    assert where is not None  # the loader always records where an entry came from
    return Problem(
        where,
        f"${{env:{name}}} is not set (or is empty), but schedule '{entry.name}' passes it "
        f"in {dotted(template.path)}; set it in the environment of plan, apply and drift "
        "(e.g. from a CI secret)",
        "missing-variable",
    )


def _parts(text: str) -> Iterator[tuple[str, bool]]:
    """Literal text and variable names, in order (the text was checked by the loader)."""
    position = 0
    for match in _TOKEN.finditer(text):
        yield text[position : match.start()], False
        if match.group(0) == "$${":
            yield "${", False
        elif match.group(1) is not None:
            yield match.group(1), True
        else:
            yield match.group(0), False
        position = match.end()
    yield text[position:], False


class Scrubber:
    """The values one command resolved from the environment, and text with them hidden.

    Reports are masked where they are built; this is the net for messages that could quote
    a value anyway (a Redis error quoting a command, a crash's traceback). One per command
    invocation: the CLI creates it and tells it every value the entries it loads carry.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()

    def reveal(self, values: Iterable[str]) -> None:
        self._values.update(value for value in values if value)

    def __call__(self, text: str) -> str:
        """``text`` with every revealed value replaced by '***' (longest first)."""
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, "***")
        return text


def escape(text: str) -> str:
    """A literal string as a schedule file must spell it so that it stays literal."""
    return text.replace("${", "$${")


# -- what one entry holds ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Sensitive:
    """Where one entry's definitions hold values from the environment, and those values:
    what every plan, report, saved plan and fingerprint masks through.

    ``live`` are the paths (with their templates) the marker in Redis records, ``desired``
    those the files reference now. ``values`` are the secrets themselves (the variables'
    values, and what Redis holds at the live paths), masked wherever they appear, since a
    value moved in Redis keeps no path. Two are equal when their paths are: values never
    leave the process, and a saved plan knows only the paths.
    """

    live: Mapping[JsonPath, str | None] = field(default_factory=dict)
    desired: Mapping[JsonPath, str | None] = field(default_factory=dict)
    values: frozenset[str] = frozenset()

    @classmethod
    def of(cls, entry: DesiredEntry | None, current: LiveEntry | None) -> Sensitive:
        live = sensitive_in_marker(current.marker) if current else {}
        values = entry.secret_values if entry else frozenset()
        if live and current is not None:
            values |= live_secret_values(current)
        return cls(live=live, desired=dict(entry.sensitive) if entry else {}, values=values)

    @classmethod
    def of_live(cls, current: LiveEntry) -> Sensitive:
        return cls.of(None, current)

    @classmethod
    def saved(cls, paths: Iterable[JsonPath]) -> Sensitive:
        """As a saved plan records it: the paths, neither templates nor values."""
        return cls(desired=dict.fromkeys(paths))

    @property
    def paths(self) -> tuple[JsonPath, ...]:
        return tuple(sorted(set(self.live) | set(self.desired), key=str))

    def __bool__(self) -> bool:
        return bool(self.live or self.desired)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive) and self.paths == other.paths

    def __hash__(self) -> int:
        return hash(self.paths)

    def definition(self, text: str | None) -> str | None:
        """A definition's JSON with every value from the environment masked."""
        if text is None or (not self and not self.values):
            return text
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            return _MASK  # unreadable: it may hold anything
        if not isinstance(document, dict):
            return _MASK
        return json.dumps(masked(document, (), dict.fromkeys(self.paths), self.values))

    def shown(self, path: JsonPath, old: Any, new: Any, *, changed: bool) -> tuple[str, Any, Any]:
        """A difference at ``path`` as reports may show it: the path, the old value and the
        new one. ``changed`` says the two values differ (not an addition or removal)."""
        if not self and not self.values:
            return dotted(path), old, new
        # The old value is masked wherever either side had a secret and described by the
        # template that wrote it; the new one holds secrets only where the files reference
        # them (the rest is the files' own text). Both are masked wherever a secret value
        # turns up.
        paths = set(self.live) | set(self.desired)
        shown_old = masked(old, path, {p: self.live.get(p) for p in paths}, self.values)
        shown_new = masked(new, path, dict(self.desired), self.values)
        if changed and shown_old == shown_new:
            shown_new = f"{mask_marker(self.desired.get(path))} (changed)"
        # Keys holding a secret value are masked in the path too.
        parts = (_masked_key(part, self.values) if isinstance(part, str) else part for part in path)
        return dotted(tuple(parts)), shown_old, shown_new


# -- markers -------------------------------------------------------------------------------


def entry_marker(entry: DesiredEntry) -> str:
    """The ownership marker a resolved ``entry`` must carry in Redis. One whose values came
    from the environment also lists where (with the templates, which name variables and never
    hold their values), so every later plan, drift check and export knows which live values
    must not be shown, and the SHA-256 of each such value (harmless beside the value itself,
    in the same hash), so a value someone moved to another argument in Redis is still
    recognised."""
    if not entry.sensitive:
        return MARKER_VALUE
    fields = {"args": entry.args, "kwargs": entry.kwargs, "options": entry.options}
    values = values_at(fields, [path for path, _template in entry.sensitive])
    return json.dumps(
        {
            "managed_by": "redbeat-reconciler",
            "format": 1,
            "sensitive": [[list(path), template] for path, template in entry.sensitive],
            "digests": sorted({value_digest(value) for value in values}),
        }
    )


def value_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def sensitive_in_marker(marker: str | None) -> dict[JsonPath, str]:
    """The sensitive paths a live entry's marker records, with their templates (none for a
    foreign or odd marker; malformed pairs are skipped)."""
    pairs = _marker_document(marker).get("sensitive")
    found: dict[JsonPath, str] = {}
    for item in pairs if isinstance(pairs, list) else ():
        if (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], list)
            and all(isinstance(part, (str, int)) for part in item[0])
            and isinstance(item[1], str)
        ):
            found[tuple(item[0])] = item[1]
    return found


def secret_digests_in_marker(marker: str | None) -> frozenset[str]:
    digests = _marker_document(marker).get("digests")
    if not isinstance(digests, list):
        return frozenset()
    return frozenset(item for item in digests if isinstance(item, str))


def _marker_document(marker: str | None) -> dict[str, object]:
    if marker == MARKER_VALUE:
        return {}
    return parse_definition(marker) or {}  # untrusted: any field of a hash in Redis


def public_marker(marker: str) -> str:
    """The marker without its digests, for saved plans: a plan file may travel (a CI
    artifact), and a fast hash of a secret there would let anyone test guesses of it."""
    document = _marker_document(marker)
    if "digests" not in document:
        return marker
    return json.dumps({key: value for key, value in document.items() if key != "digests"})


def live_secret_values(current: LiveEntry) -> frozenset[str]:
    """The strings of a live definition that the reconciler wrote from the environment,
    recognised by the digests its marker records wherever they are now (mapping keys too)."""
    digests = secret_digests_in_marker(current.marker)
    stored = parse_definition(current.definition_text) if digests else None
    if stored is None:
        return frozenset()
    return frozenset(value for _path, value in strings_in(stored) if value_digest(value) in digests)


# -- masking -------------------------------------------------------------------------------


def mask_marker(template: str | None) -> str:
    """What is shown in place of a sensitive value: its template, never the value."""
    return f"{_MASK} {template}" if template else _MASK


def masked(
    value: Any,
    path: JsonPath,
    sensitive: Mapping[JsonPath, str | None],
    values: frozenset[str] = frozenset(),
) -> Any:
    """``value`` (found at ``path``) with every sensitive string inside it masked: those at
    ``sensitive`` paths, and any string holding one of the secret ``values`` wherever it is
    (a value moved in Redis, e.g. an argument inserted before it, is still a secret)."""
    if not sensitive and not values:
        return value
    if path in sensitive:
        return mask_marker(sensitive[path])
    if isinstance(value, str):
        return mask_marker(None) if any(secret in value for secret in values) else value
    if isinstance(value, list):
        return [masked(item, (*path, index), sensitive, values) for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            _masked_key(key, values): masked(item, (*path, key), sensitive, values)
            for key, item in value.items()
        }
    return value


def _masked_key(key: str, values: frozenset[str]) -> str:
    return "(sensitive key)" if any(secret in key for secret in values) else key


def strings_in(document: Mapping[str, Any], *, keys: bool = True) -> Iterator[tuple[JsonPath, str]]:
    """Every string inside args, kwargs and options of a definition, with its path, in
    document order; with ``keys``, mapping keys too (at the path of their value: they are
    where a value may have been moved to)."""
    pending: list[tuple[JsonPath, Any]] = [
        ((key,), document.get(key)) for key in reversed(REFERENCE_FIELDS)
    ]
    while pending:  # no recursion: values from Redis may nest deeper than the stack
        path, value = pending.pop()
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, list):
            pending.extend(reversed([((*path, index), item) for index, item in enumerate(value)]))
        elif isinstance(value, dict):
            named = [(key, item) for key, item in value.items() if isinstance(key, str)]
            if keys:
                yield from (((*path, key), key) for key, _item in named)
            pending.extend(reversed([((*path, key), item) for key, item in named]))


def values_at(document: object, paths: Iterable[JsonPath]) -> frozenset[str]:
    """The strings ``document`` holds at ``paths`` (absent or non-string ones skipped)."""
    found = set()
    for path in paths:
        value: Any = document
        for part in path:
            if isinstance(value, dict) and isinstance(part, str):
                value = value.get(part)
            elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                value = value[part]
            else:
                value = None
        if isinstance(value, str) and value:
            found.add(value)
    return frozenset(found)


def keyed_digest(key: str, text: str | None) -> str | None:
    """A digest of ``text`` under a per-plan random key: equal texts, equal digests.

    scrypt rather than a plain hash: the key is saved beside the digest, so what protects a
    weak secret from guesses by someone holding a saved plan is the cost of each guess
    (about 30 ms and 16 MiB here, against nanoseconds for SHA-256).
    """
    if text is None:
        return None
    derived = hashlib.scrypt(text.encode(), salt=key.encode(), n=2**14, r=8, p=1, dklen=32)
    return "scrypt:" + derived.hex()


def dotted(path: JsonPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text
