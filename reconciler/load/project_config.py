"""The project's configuration: defaults and named targets, in ``reconciler.toml`` or in
``pyproject.toml`` under ``[tool.reconciler]``.

Found by walking up from the working directory (never above a repository root), checked
against pydantic models of the file, every problem naming ``file:line:column``, and returned
as frozen values.
Which value wins over which (command line, target, file, app, environment) is decided in
precedence.py; this module only reads.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time
from functools import partial
from pathlib import Path
from typing import Annotated, NamedTuple, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from reconciler.beat.celery_objects import check_timezone
from reconciler.core.errors import InvalidConfig, UsageError
from reconciler.load.toml_source import TomlLines, parse_toml

CONFIG_FILE_NAME = "reconciler.toml"
PYPROJECT_FILE_NAME = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "reconciler")

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
        return replace(base, **{name: getattr(self, name) for name in self.set_fields()})


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
    shown = str(_from_working_directory(path))
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InvalidConfig([f"{shown}: cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise InvalidConfig([f"{shown}: the file is not UTF-8 text"]) from None
    document = parse_toml(text, shown)
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
    context = _Context(path.absolute().parent, _declared(table), shown)
    try:
        model = _File.model_validate(table, context=context)
    except ValidationError as exc:
        raise InvalidConfig(_problems(exc, text, shown, base)) from None
    targets = {name: _settings(target) for name, target in model.targets.items()}
    return ProjectConfig(path, shown, _settings(model), targets, model.default_target)


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
        problem = _no_such_target(chosen, tuple(config.targets), config.shown)
        raise UsageError(f"--target {chosen!r}: {problem}")
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


def _no_such_target(name: str, declared: tuple[str, ...], shown: str) -> str:
    if not declared:
        return f"{shown} declares no targets (add a [targets.{name}] table)"
    # 'prod' for 'production' is too short for difflib's ratio, but clearly meant.
    close = (
        difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
        or [target for target in declared if target.startswith(name)][:1]
    )
    suggestion = f"; did you mean {close[0]!r}?" if close else ""
    return f"no such target in {shown}{suggestion} (declared: {', '.join(declared)})"


def _declares_table(pyproject: Path) -> bool:
    try:
        text = pyproject.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return False  # some other tool's broken file, unless it mentions the reconciler
    if "reconciler" not in text:
        return False
    tool = parse_toml(text, str(_from_working_directory(pyproject))).get("tool")
    return isinstance(tool, dict) and "reconciler" in tool


def _from_working_directory(path: Path) -> Path:
    """``path`` relative to the working directory when inside it, else absolute."""
    absolute = Path(os.path.normpath(path.absolute()))
    cwd = Path.cwd()
    for inside, folder in ((absolute, cwd), (absolute.resolve(), cwd.resolve())):
        if inside.is_relative_to(folder):
            return inside.relative_to(folder)
    return absolute


def _dashed(name: str) -> str:
    return name.replace("_", "-")


class _Context(NamedTuple):
    """What the validators need besides the value."""

    folder: Path
    declared: tuple[str, ...]
    shown: str


_problem = partial(PydanticCustomError, "reconciler_config")


def _timezone(name: str) -> str:
    try:
        check_timezone(name)
    except UsageError as exc:
        raise _problem(f"'timezone': {exc}") from None
    return name


def _variable_name(name: str) -> str:
    if "://" in name:
        # Never echoed: it is a URL, probably with its password.
        raise _problem(
            "'redis-url-env' takes the NAME of an environment variable holding the URL, "
            f"not a URL; {_NO_URLS}"
        )
    if not _ENVIRONMENT_NAME.match(name):
        raise _problem(
            "'redis-url-env' must be the name of an environment variable (letters, digits "
            f"and _, not starting with a digit), got {name!r}"
        )
    return name


def _paths(value: object, info: ValidationInfo) -> tuple[Path, ...]:
    key = _dashed(info.field_name or "")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        example = "schedules" if key == "paths" else "overlays/production.yaml"
        raise _problem(
            f"'{key}' must be a list of files or folders, e.g. {key} = "
            f'["{example}"]; got {_describe(value)}'
        )
    if key == "paths" and not value:
        raise _problem(f"'{key}' must name at least one file or folder")
    if any(not item.strip() for item in value):
        raise _problem(f"'{key}' must not hold an empty path")
    # Relative to the file that says them, shown from the working directory.
    folder = cast("_Context", info.context).folder
    return tuple(_from_working_directory(folder / item) for item in value)


def _target_name(name: str) -> str:
    if not name.strip():
        raise _problem("a target's name must not be empty")
    return name


def _default_target(name: str, info: ValidationInfo) -> str:
    context = cast("_Context", info.context)
    if name not in context.declared:
        problem = _no_such_target(name, context.declared, context.shown)
        raise _problem(f"default-target {name!r}: {problem}")
    return name


Text = Annotated[str, Field(pattern=r"\S")]  # not blank
# One function checks a list of paths, so that a wrong one gets one message in this file's
# terms ("a list of files or folders"), not one per item or per type pydantic tried.
Paths = Annotated[tuple[Path, ...], PlainValidator(_paths)]


class _Settings(BaseModel):
    """What a target shares with the top level; keys spelled as the command line's options."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=_dashed)

    paths: Paths | None = None
    key_prefix: Text | None = None
    timezone: Annotated[Text, AfterValidator(_timezone)] | None = None
    redis_url_env: Annotated[Text, AfterValidator(_variable_name)] | None = None
    app: Text | None = None
    beat_lock_key: Text | None = None


class _Target(_Settings):
    overlays: Paths = ()


class _File(_Settings):
    default_target: Annotated[Text, AfterValidator(_default_target)] | None = None
    targets: dict[Annotated[str, AfterValidator(_target_name)], _Target] = {}


def _declared(table: object) -> tuple[str, ...]:
    """What a default-target may name: every target written as a table, valid or not."""
    targets = table.get("targets") if isinstance(table, dict) else None
    if not isinstance(targets, dict):
        return ()
    return tuple(name for name, table in targets.items() if isinstance(table, dict))


def _settings(model: _Settings) -> TargetSettings:
    chosen = model.model_fields_set & _Target.model_fields.keys()  # not the top level's own
    return TargetSettings(**{name: getattr(model, name) for name in chosen})


def _problems(error: ValidationError, text: str, shown: str, base: tuple[str, ...]) -> list[str]:
    """pydantic's errors as ``file:line:column: message``, in the order of the file."""
    lines = TomlLines(text)
    found: list[tuple[int, int, str]] = []
    for detail in error.errors(include_url=False):
        loc = tuple(str(part) for part in detail["loc"])
        if loc[-1:] == ("[key]",):  # a target's name: pydantic's marker for a key's error
            loc = loc[:-1]
        message = _message(loc, detail["type"], detail["input"], detail["msg"], base)
        line, column = lines.locate((*base, *loc))
        where = f"{shown}:{line}:{column}" if line else shown
        found.append((line, column, f"{where}: {message}"))
    return [message for _, _, message in sorted(found)]


def _message(
    loc: tuple[str, ...], kind: str, value: object, text: str, base: tuple[str, ...]
) -> str:
    if kind == "extra_forbidden":
        return _unknown(loc, base)
    if kind == "string_type":
        return f"'{loc[-1]}' must be a string, got {_describe(value)}"
    if kind == "string_pattern_mismatch":
        return f"'{loc[-1]}' must not be empty"
    if kind == "dict_type":  # the one table of tables
        return f"'targets' must be a table of targets ([targets.NAME]), got {_describe(value)}"
    if kind == "model_type" and not loc:  # [tool.reconciler] itself
        return f"[{'.'.join(base)}] must be a table, got {_describe(value)}"
    if kind == "model_type":  # a target
        name = loc[-1]
        return f"target {name!r} must be a table ([targets.{name}]), got {_describe(value)}"
    return text  # the validators above word their own


def _unknown(loc: tuple[str, ...], base: tuple[str, ...]) -> str:
    key, where = loc[-1], loc[:-1]
    if key in _URL_KEYS:
        return f"{key!r} is refused: {_NO_URLS}"
    table = ".".join((*base, *where))
    place = f" in [{table}]" if table else ""
    hint = (_TARGET_HINTS if where else _TOP_LEVEL_HINTS).get(key)
    if hint:
        return f"unknown key {key!r}{place}: {hint}"
    valid = [_dashed(name) for name in (_Target if where else _File).model_fields]
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
