"""The project's configuration: defaults and named targets, in ``reconciler.toml`` or in
``pyproject.toml`` under ``[tool.reconciler]``.

Found by walking up from the working directory (never above a repository root), read and
checked key by key, every problem naming ``file:line``, and returned as frozen values.
Which value wins over which (command line, target, file, app, environment) is decided in
precedence.py; this module only reads.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from reconciler.beat.celery_objects import check_timezone
from reconciler.core.errors import InvalidConfig, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover  # the same parser, as a package, before Python 3.11
    import tomli as tomllib

CONFIG_FILE_NAME = "reconciler.toml"
PYPROJECT_FILE_NAME = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "reconciler")

# Spelled as the command line spells its options. A target takes the same settings (not the
# two keys that choose targets), plus its overlays.
SETTING_KEYS = ("paths", "key-prefix", "timezone", "redis-url-env", "app", "beat-lock-key")
TOP_LEVEL_KEYS = (*SETTING_KEYS, "default-target", "targets")
TARGET_KEYS = (*SETTING_KEYS, "overlays")

_NO_URLS = (
    "a Redis URL carries its password and this file is committed: put the URL in an "
    "environment variable and name the variable with redis-url-env, e.g. "
    'redis-url-env = "PRODUCTION_REDIS_URL"'
)
_URL_KEYS = ("redis-url", "redis_url", "url")
_TOP_LEVEL_HINTS = {
    "overlays": "overlays belong to a target, e.g. [targets.production] overlays = [...]",
    "tool": "in reconciler.toml the keys are top-level; [tool.reconciler] is for pyproject.toml",
}
_TARGET_HINTS = {
    "default-target": "default-target is a top-level key",
    "targets": "targets do not nest",
}
_ENVIRONMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class TargetSettings:
    """One layer of settings: the file's top level, or one target. None: not set there."""

    paths: tuple[Path, ...] | None = None
    key_prefix: str | None = None
    timezone: str | None = None
    redis_url_env: str | None = None  # the NAME of the variable holding the URL
    app: str | None = None
    beat_lock_key: str | None = None
    overlays: tuple[Path, ...] = ()

    def set_fields(self) -> frozenset[str]:
        return frozenset(item.name for item in fields(self) if getattr(self, item.name))

    def over(self, base: TargetSettings) -> TargetSettings:
        """These settings where they are set, ``base``'s elsewhere."""
        chosen = self.set_fields()
        return TargetSettings(
            **{
                item.name: getattr(self if item.name in chosen else base, item.name)
                for item in fields(self)
            }
        )


@dataclass(frozen=True)
class ProjectConfig:
    path: Path
    shown: str  # as messages show it: relative to the working directory when inside it
    top: TargetSettings = TargetSettings()
    targets: dict[str, TargetSettings] = field(default_factory=dict)
    default_target: str | None = None


@dataclass(frozen=True)
class Selection:
    """What the configuration gives a command: one target over the top level, or the top
    level alone."""

    config: ProjectConfig
    target: str | None
    settings: TargetSettings
    from_target: frozenset[str] = frozenset()  # the fields the target itself sets

    def origin(self, field_name: str) -> str:
        """Who set ``field_name``, for messages: "target 'production'" or the file."""
        if self.target is not None and field_name in self.from_target:
            return f"target {self.target!r}"
        return self.config.shown


def load_project(explicit: Path | None, start: Path | None = None) -> ProjectConfig | None:
    """The configuration named by --config, else the one found from ``start`` (the working
    directory) upwards; None when there is none."""
    path = find_config(explicit, start if start is not None else Path.cwd())
    return read_config(path) if path is not None else None


def find_config(explicit: Path | None, start: Path) -> Path | None:
    """In each folder from ``start`` up, ``reconciler.toml`` wins over a ``pyproject.toml``
    with a ``[tool.reconciler]`` table; the search stops at the first folder holding one,
    and at a folder holding ``.git`` (a repository's configuration is its own)."""
    if explicit is not None:
        if not explicit.is_file():
            raise UsageError(f"--config {explicit}: no such file")
        return explicit
    for folder in (start, *start.absolute().parents):
        candidate = folder / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
        pyproject = folder / PYPROJECT_FILE_NAME
        if pyproject.is_file() and _declares_table(pyproject):
            return pyproject
        if (folder / ".git").exists():
            return None
    return None


def read_config(path: Path) -> ProjectConfig:
    shown = _shown(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InvalidConfig([f"{shown}: cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise InvalidConfig([f"{shown}: the file is not UTF-8 text"]) from None
    document = _parse(text, shown)
    base: tuple[str, ...] = ()
    table: object = document
    if path.name == PYPROJECT_FILE_NAME:
        base = PYPROJECT_TABLE
        tool = document.get("tool")
        table = tool.get("reconciler") if isinstance(tool, dict) else None
        if table is None:
            raise InvalidConfig(
                [f"{shown}: no [tool.reconciler] table; the reconciler's settings go there"]
            )
    reader = _Reader(path, shown, text, base)
    config = reader.project(table)
    if reader.problems:
        raise InvalidConfig(reader.problems)
    return config


def select_target(config: ProjectConfig | None, name: str | None) -> Selection | None:
    """``--target NAME``, else the file's default-target, else the top level alone."""
    if config is None:
        if name:
            raise UsageError(
                f"--target {name!r}: no {CONFIG_FILE_NAME} (or {PYPROJECT_FILE_NAME} with a "
                "[tool.reconciler] table) was found here or in a parent folder up to the "
                "repository root; pass --config PATH"
            )
        return None
    chosen = name or config.default_target
    if chosen is None:
        return Selection(config, None, config.top)
    if chosen not in config.targets:
        raise UsageError(f"--target {chosen!r}: {_no_such_target(chosen, config)}")
    target = config.targets[chosen]
    return Selection(config, chosen, target.over(config.top), target.set_fields())


def configurations_to_validate(
    config: ProjectConfig | None, name: str | None
) -> list[Selection | None]:
    """What ``validate`` checks: the chosen target; or, when none is named, every target,
    and the top level alone as well unless a default-target means it is never deployed
    on its own. A pull request must catch a typo in any target's overlay."""
    if name is not None or config is None or not config.targets:
        return [select_target(config, name)]
    chosen: list[Selection | None] = [select_target(config, target) for target in config.targets]
    if config.default_target is None:
        chosen.insert(0, Selection(config, None, config.top))
    return chosen


def _no_such_target(name: str, config: ProjectConfig) -> str:
    declared = list(config.targets)
    if not declared:
        return f"{config.shown} declares no targets (add a [targets.{name}] table)"
    # 'prod' for 'production' is too short for difflib's ratio, but clearly meant.
    close = (
        difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
        or [target for target in declared if target.startswith(name)][:1]
    )
    suggestion = f"; did you mean {close[0]!r}?" if close else ""
    return f"no such target in {config.shown}{suggestion} (declared: {', '.join(declared)})"


def _declares_table(pyproject: Path) -> bool:
    try:
        text = pyproject.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return False  # some other tool's broken file, unless it mentions the reconciler
    if "reconciler" not in text:
        return False
    tool = _parse(text, _shown(pyproject)).get("tool")
    return isinstance(tool, dict) and "reconciler" in tool


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _parse(text: str, shown: str) -> dict[str, Any]:
    try:
        document: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        if found:
            where = f"{shown}:{found[1]}:{found[2]}"
            message = message[: found.start()]
        else:
            where = shown
        raise InvalidConfig([f"{where}: invalid TOML: {message}"]) from None
    return document


def _shown(path: Path) -> str:
    return str(_from_working_directory(path))


def _from_working_directory(path: Path) -> Path:
    """``path`` relative to the working directory when inside it, else absolute."""
    absolute = Path(os.path.normpath(path.absolute()))
    cwd = Path.cwd()
    try:
        return absolute.relative_to(cwd)
    except ValueError:
        pass
    try:
        return absolute.resolve().relative_to(cwd.resolve())
    except ValueError:
        return absolute


class _Reader:
    """Checks one configuration table, collecting every problem at its line."""

    def __init__(self, path: Path, shown: str, text: str, base: tuple[str, ...]) -> None:
        self._found: list[tuple[int, int, str]] = []
        self._path = path
        self._shown = shown
        self._lines = _TomlLines(text)
        self._base = base
        self._folder = path.absolute().parent

    def project(self, table: object) -> ProjectConfig:
        path = self._path
        if not isinstance(table, dict):
            self.problem((), f"[{'.'.join(self._base)}] must be a table, got {_describe(table)}")
            return ProjectConfig(path, self._shown)
        top = self.settings(table, (), TOP_LEVEL_KEYS, _TOP_LEVEL_HINTS)
        targets: dict[str, TargetSettings] = {}
        raw_targets = table.get("targets", {})
        if not isinstance(raw_targets, dict):
            self.problem(
                ("targets",),
                f"'targets' must be a table of targets ([targets.NAME]), got "
                f"{_describe(raw_targets)}",
            )
            raw_targets = {}
        for name, raw in raw_targets.items():
            where = ("targets", name)
            if not name.strip():
                self.problem(where, "a target's name must not be empty")
            elif not isinstance(raw, dict):
                self.problem(
                    where,
                    f"target {name!r} must be a table ([targets.{name}]), got {_describe(raw)}",
                )
            else:
                targets[name] = self.settings(raw, where, TARGET_KEYS, _TARGET_HINTS)
        default = table.get("default-target")
        if default is not None:
            default = self.string(default, ("default-target",))
            if default is not None and default not in targets:
                shown = ProjectConfig(path, self._shown, targets=targets)
                self.problem(
                    ("default-target",),
                    f"default-target {default!r}: " + _no_such_target(default, shown),
                )
                default = None
        return ProjectConfig(path, self._shown, top, targets, default)

    def settings(
        self,
        table: dict[str, Any],
        where: tuple[str, ...],
        valid: tuple[str, ...],
        hints: dict[str, str],
    ) -> TargetSettings:
        for key in table:
            if key not in valid:
                self.problem((*where, key), self._unknown(key, where, valid, hints))
        values: dict[str, Any] = {}
        for key in valid:
            if key not in table or key in ("default-target", "targets"):
                continue
            value, at = table[key], (*where, key)
            attribute = key.replace("-", "_")
            if key in ("paths", "overlays"):
                values[attribute] = self.paths(value, at, required=key == "paths")
            elif key == "redis-url-env":
                values[attribute] = self.variable_name(value, at)
            else:
                text = self.string(value, at)
                if text is not None and key == "timezone":
                    text = self.timezone(text, at)
                values[attribute] = text
        return TargetSettings(**{k: v for k, v in values.items() if v is not None})

    def paths(self, value: object, where: tuple[str, ...], *, required: bool) -> tuple[Path, ...]:
        key = where[-1]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(
                where,
                f"'{key}' must be a list of files or folders, e.g. {key} = "
                f'["{"schedules" if key == "paths" else "overlays/production.yaml"}"]; '
                f"got {_describe(value)}",
            )
            return ()
        if required and not value:
            self.problem(where, f"'{key}' must name at least one file or folder")
        if any(not item.strip() for item in value):
            self.problem(where, f"'{key}' must not hold an empty path")
            return ()
        # Relative to the file that says them, shown from the working directory.
        return tuple(_from_working_directory(self._folder / item) for item in value)

    def string(self, value: object, where: tuple[str, ...]) -> str | None:
        if not isinstance(value, str):
            self.problem(where, f"'{where[-1]}' must be a string, got {_describe(value)}")
            return None
        if not value.strip():
            self.problem(where, f"'{where[-1]}' must not be empty")
            return None
        return value

    def timezone(self, value: str, where: tuple[str, ...]) -> str | None:
        try:
            check_timezone(value)
        except UsageError as exc:
            self.problem(where, f"'timezone': {exc}")
            return None
        return value

    def variable_name(self, value: object, where: tuple[str, ...]) -> str | None:
        if isinstance(value, str) and "://" in value:
            # Never echoed: it is a URL, probably with its password.
            self.problem(
                where,
                "'redis-url-env' takes the NAME of an environment variable holding the URL, "
                f"not a URL; {_NO_URLS}",
            )
            return None
        name = self.string(value, where)
        if name is not None and not _ENVIRONMENT_NAME.match(name):
            self.problem(
                where,
                f"'redis-url-env' must be the name of an environment variable (letters, "
                f"digits and _, not starting with a digit), got {name!r}",
            )
            return None
        return name

    @property
    def problems(self) -> list[str]:
        return [text for _, _, text in sorted(self._found)]

    def problem(self, where: tuple[str, ...], message: str) -> None:
        full = (*self._base, *where)
        for length in range(len(full), 0, -1):
            position = self._lines.find(full[:length])
            if position is not None:
                line, column = position
                self._found.append((line, column, f"{self._shown}:{line}:{column}: {message}"))
                return
        self._found.append((0, 0, f"{self._shown}: {message}"))

    def _unknown(
        self, key: str, where: tuple[str, ...], valid: tuple[str, ...], hints: dict[str, str]
    ) -> str:
        if key in _URL_KEYS:
            return f"{key!r} is refused: {_NO_URLS}"
        table = ".".join((*self._base, *where))
        place = f" in [{table}]" if table else ""
        hint = hints.get(key)
        if hint:
            return f"unknown key {key!r}{place}: {hint}"
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key {key!r}{place}{suggestion} (valid: {', '.join(valid)})"


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (datetime, date, time)):
        return "a date or time"
    return f"the number {value!r}"


def _part(name: str) -> str:
    escaped = re.escape(name)
    return f"(?:{escaped}|\"{escaped}\"|'{escaped}')"


def _dotted(parts: tuple[str, ...]) -> str:
    head = r"\s*\.\s*".join(_part(part) for part in parts[:-1])
    last = f"(?P<last>{_part(parts[-1])})"
    return (head + r"\s*\.\s*" + last) if head else last


_ANY_HEADER = re.compile(r"^\s*\[")


class _TomlLines:
    """Where a table or key is written. tomllib keeps no positions, so the text is scanned:
    table headers, ``key =`` and dotted ``a.b =`` lines, and keys of one-line inline tables.
    Best effort: None when not found, and the caller falls back to the enclosing table."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def find(self, path: tuple[str, ...]) -> tuple[int, int] | None:
        header = self._header(path)
        if header is not None:
            return header + 1, self._lines[header].index("[") + 1
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
