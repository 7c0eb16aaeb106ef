"""From one parsed schedule file to desired entries, or to problems that point at the file."""

from __future__ import annotations

import json
import math
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from reconciler.core.model import (
    CronSchedule,
    DesiredEntry,
    IntervalSchedule,
    RRuleSchedule,
    Schedule,
)
from reconciler.core.names import name_problem
from reconciler.core.problems import Problem, SourceLocation
from reconciler.core.secrets import (
    REFERENCE_FIELDS,
    Template,
    find_templates,
    keys_with_references,
    template_problem,
)
from reconciler.load.file_format import (
    ENTRY_KEYS,
    FORMAT_VERSION,
    FREQUENCIES,
    SCHEDULE_KINDS,
    TOP_LEVEL_KEYS,
    ApplyAsyncOptionsSpec,
    CronFieldsSpec,
    EntrySpec,
    RetryPolicySpec,
    RRuleSpec,
    unknown_key_message,
    unknown_keys,
)
from reconciler.load.overlays import apply_patches

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from pydantic_core import ErrorDetails

    from reconciler.load.overlays import Patch
    from reconciler.load.yaml_source import YamlDocument, YamlPath

    Locate = Callable[[YamlPath, bool], SourceLocation]

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "datetime_type": "an ISO 8601 date-time with offset",
    "datetime_parsing": "an ISO 8601 date-time with offset",
    "datetime_from_date_parsing": "an ISO 8601 date-time with offset",
}
_KIND_VALUES = {
    "cron": "a cron string such as '0 3 * * *' or a mapping of crontab fields",
    "every": "a duration (30s, 5m, 1h30m, 2d, or seconds)",
    "rrule": "a mapping with at least freq and dtstart",
}
# Our own validators already name the field in their messages.
_SELF_NAMING_ERRORS = frozenset({"cron", "every"})


@dataclass(frozen=True)
class FileEntries:
    entries: list[DesiredEntry]
    problems: list[Problem]
    # Every name the file declares, valid entry or not, so duplicates are found either way.
    names: list[tuple[str, SourceLocation]] = field(default_factory=list)
    # False when the file does not say for certain which names it declares.
    complete: bool = True
    # Entries refused for other reasons whose schedule is valid alone, reduced to it: Celery's
    # evaluation of the schedule (checks.schedule_problems) still reports its problems.
    stand_ins: list[DesiredEntry] = field(default_factory=list)


def entries_from_document(
    document: YamlDocument,
    patches: Mapping[str, Sequence[Patch]] | None = None,
    *,
    locate_values: bool = False,
) -> FileEntries:
    """The file's entries, each with the ``patches`` of the target's overlays applied.

    ``locate_values`` records where each value checks may point at was written (the entries'
    ``field_sources``); only checks against a Celery app use them, and at 100,000 entries
    they cost about a tenth of the load's time and memory.

    Every problem independent of the others is reported: an unsupported version, a bad
    name or a key in doubt (see ``YamlDocument.unclear``) leaves the rest still checked.
    """
    problems: list[Problem] = []
    data = document.data

    def refused(path: YamlPath, message: str, code: str) -> FileEntries:
        problems.append(Problem(document.location(path), message, code))
        return FileEntries([], problems)

    if () in document.unclear:
        return FileEntries([], problems, complete=False)  # its reading problem says why
    if data is None:
        message = "file is empty; expected 'version: 1' and a 'schedules' mapping"
        return refused((), message, "empty-file")
    if not isinstance(data, dict):
        message = (
            f"file holds {_describe(data)}; expected a mapping with 'version: 1' and 'schedules'"
        )
        return refused((), message, "not-a-mapping")
    problems.extend(unknown_keys(document, (), data, TOP_LEVEL_KEYS, "top-level key"))
    if not document.in_doubt(("version",)):
        # Reported, and the file read as version 1 all the same: its other problems are
        # most likely real too, and one run should show them all.
        problems.extend(_version_problems(document, data))

    defaults = data.get("defaults")
    if defaults is not None and not isinstance(defaults, dict):
        problems.append(
            Problem(
                document.location(("defaults",)),
                f"'defaults' must be a mapping of entry keys, got {_describe(defaults)}",
                "type",
            )
        )
    defaults = defaults if isinstance(defaults, dict) else {}
    problems.extend(unknown_keys(document, ("defaults",), defaults, ENTRY_KEYS))
    defaults = {key: value for key, value in defaults.items() if key in ENTRY_KEYS}

    if document.in_doubt(("schedules",)):
        return FileEntries([], problems, complete=False)
    if "schedules" not in data:
        message = (
            "missing required key 'schedules' (a mapping of name to entry; "
            "'schedules: {}' declares none)"
        )
        return refused((), message, "missing")
    schedules = data["schedules"]
    if not isinstance(schedules, dict):
        hint = "; write 'schedules: {}' to declare none" if schedules is None else ""
        message = f"'schedules' must be a mapping of name to entry, got {_describe(schedules)}"
        return refused(("schedules",), message + hint, "type")

    names = [
        (name, document.location(("schedules", name), at_key=True))
        for name in schedules
        if isinstance(name, str)
    ]
    found = FileEntries([], problems, names)
    defaults_in_doubt = document.in_doubt(("defaults",), within=True)
    for name, raw in schedules.items():
        entry_patches = patches.get(name, ()) if patches and isinstance(name, str) else ()
        in_doubt = (
            defaults_in_doubt
            or document.in_doubt(("schedules", name), within=True)
            or any(not patch.clear for patch in entry_patches)
        )
        _add_entry(found, document, name, raw, defaults, entry_patches, in_doubt, locate_values)
    return found


def _version_problems(document: YamlDocument, data: dict[Any, Any]) -> Iterator[Problem]:
    if "version" not in data:
        yield Problem(
            document.location(()),
            f"missing required key 'version' (this reconciler reads 'version: {FORMAT_VERSION}')",
            "version",
        )
        return
    version = data["version"]
    if version != FORMAT_VERSION or isinstance(version, bool):
        yield Problem(
            document.location(("version",)),
            f"unsupported version {yaml_repr(version)}; this reconciler reads version "
            f"{FORMAT_VERSION}",
            "version",
        )


def _add_entry(
    found: FileEntries,
    document: YamlDocument,
    name: object,
    raw: object,
    defaults: dict[Any, Any],
    patches: Sequence[Patch],
    in_doubt: bool,
    locate_values: bool,
) -> None:
    """The entry added to ``found``, else its problems (and its schedule to its stand-ins
    when that is valid alone). An entry ``in_doubt`` (a key of it written twice, say) has
    its name checked and nothing else."""
    problems = found.problems
    base: YamlPath = ("schedules", name)
    name_location = document.location(base, at_key=True)
    found_before = len(problems)
    why_not = name_problem(name)
    if why_not:
        # The rest of the entry is checked all the same: renaming it fixes none of that.
        problems.append(Problem(name_location, why_not, "name"))
    if in_doubt:
        return
    if not isinstance(raw, dict):
        problems.append(
            Problem(
                document.location(base),
                f"schedule '{name}' must be a mapping with at least 'task' and one of "
                f"cron, every or rrule; got {_describe(raw)}",
                "type",
            )
        )
        return

    def locate(path: YamlPath, at_key: bool = False) -> SourceLocation:
        for patch in reversed(patches):  # the last overlay to write a value wrote it
            written = patch.written_at(path, at_key)
            if written is not None:
                return written
        return _locate_in_entry(document, base, path, at_key)

    merged = apply_patches(merge_defaults(defaults, raw), patches, problems)
    if merged is None:
        return  # removed from this target by an overlay
    kinds = [kind for kind in SCHEDULE_KINDS if kind in merged]
    for kind in kinds:
        if merged[kind] is None:
            problems.append(
                Problem(
                    locate((kind,), False),
                    f"'{kind}' must be {_KIND_VALUES[kind]}, got null",
                    "schedule-kind",
                )
            )
            del merged[kind]  # reported once here, not again by the model
    if not kinds:
        problems.append(
            Problem(
                name_location,
                f"schedule '{name}' needs exactly one of cron, every or rrule",
                "schedule-kind",
            )
        )
    elif len(kinds) > 1:
        problems.append(
            Problem(
                locate((kinds[1],), True),
                f"schedule '{name}' has {' and '.join(kinds)}; it needs exactly one of "
                "cron, every or rrule",
                "schedule-kind",
            )
        )
    try:
        spec = EntrySpec.model_validate(merged)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, locate, name_location))
        spec = None
    for json_field in ("args", "kwargs"):
        if json_field in merged:
            problems.extend(_json_problems(merged[json_field], (json_field,), locate))
    headers = merged.get("options", {})
    if isinstance(headers, dict) and "headers" in headers:
        problems.extend(_json_problems(headers["headers"], ("options", "headers"), locate))
    braces = document.holds_braces or any(patch.document.holds_braces for patch in patches)
    if braces:
        problems.extend(_reference_problems(merged, locate))
    if spec is None or len(problems) > found_before or not isinstance(name, str):
        # Reduced to its schedule, when that alone is valid (its own problems, if any, are
        # reported already); a placeholder task stands in for the rest.
        if len(kinds) == 1 and isinstance(name, str) and merged.get(kinds[0]) is not None:
            with suppress(ValidationError):
                spec = EntrySpec.model_validate({"task": "-", kinds[0]: merged[kinds[0]]})
                found.stand_ins.append(
                    DesiredEntry(
                        name=name,
                        task=spec.task,
                        schedule=_schedule_of(spec),
                        source=name_location,
                        schedule_source=locate((kinds[0],), False),
                    )
                )
        return
    args, kwargs = list(spec.args), dict(spec.kwargs)
    options = spec.options.model_dump(exclude_none=True)
    found_templates = find_templates(args, kwargs, options) if braces else ()
    found.entries.append(
        DesiredEntry(
            name=name,
            task=spec.task,
            schedule=_schedule_of(spec),
            args=args,
            kwargs=kwargs,
            options=options,
            templates=tuple(
                Template(path, text, locate(path, False)) for path, text in found_templates
            ),
            enabled=spec.enabled,
            description=spec.description,
            run_on_create=spec.run_on_create,
            source=name_location,
            schedule_source=locate((kinds[0],), False),
            field_sources=(
                _field_sources(document, base, merged, locate, patched=bool(patches))
                if locate_values
                else {}
            ),
            overlay_sources=tuple(patch.location for patch in patches),
        )
    )


def _reference_problems(merged: dict[Any, Any], locate: Locate) -> Iterator[Problem]:
    """${env:NAME} references: well formed, and in values, never in mapping keys."""
    task = merged.get("task")
    if isinstance(task, str) and "${" in task:
        yield Problem(
            locate(("task",), False),
            "'task' holds '${': references to environment variables are resolved only in "
            "args, kwargs and options, and a task name is never secret",
            "reference",
        )
    fields = [merged.get(key) for key in REFERENCE_FIELDS]
    for path, text in find_templates(*fields):
        why_not = template_problem(text)
        if why_not:
            yield Problem(locate(path, False), f"'{_label(path)}': {why_not}", "reference")
    for key, value in zip(REFERENCE_FIELDS, fields, strict=True):
        for path in keys_with_references(value, (key,)):
            yield Problem(
                locate(path, True),
                f"key '{path[-1]}' in '{_label(path[:-1])}' holds a reference: only values "
                "are resolved from the environment, never keys",
                "reference",
            )


def _field_sources(
    document: YamlDocument,
    base: YamlPath,
    merged: dict[Any, Any],
    locate: Locate,
    *,
    patched: bool = False,
) -> dict[str, SourceLocation]:
    """Where the values checks point at were written: task, args and each argument, kwargs
    and each keyword (at its key), options and its queue.

    Read straight from the entry's own positions; only a value merged from the defaults
    goes through ``locate`` (this runs for every entry of every file), and every value of
    an entry an overlay patched (the overlay may have written it).
    """
    values, keys, path = document.value_positions, document.key_positions, document.path
    found: dict[str, SourceLocation] = {}

    def put(label: str, where: YamlPath, at_key: bool = False) -> None:
        position = None if patched else (keys if at_key else values).get((*base, *where))
        found[label] = SourceLocation(path, *position) if position else locate(where, at_key)

    for key in ("task", "args", "kwargs", "options"):
        if key in merged:
            put(key, (key,))
    args, kwargs, options = (merged.get(key) for key in ("args", "kwargs", "options"))
    for index in range(len(args) if isinstance(args, list) else 0):
        put(f"args[{index}]", ("args", index))
    for key in kwargs if isinstance(kwargs, dict) else ():
        put(f"kwargs.{key}", ("kwargs", key), True)
    if isinstance(options, dict) and "queue" in options:
        put("options.queue", ("options", "queue"))
    return found


def merge_defaults(defaults: dict[Any, Any], entry: dict[Any, Any]) -> dict[Any, Any]:
    """Deep-merge ``entry`` over ``defaults``: mappings merge, everything else is replaced.

    cron, every and rrule are one logical field: an entry that names any of them takes no
    schedule from the defaults.
    """
    if any(kind in entry for kind in SCHEDULE_KINDS):
        defaults = {key: value for key, value in defaults.items() if key not in SCHEDULE_KINDS}
    return _deep_merge(defaults, entry)


def _deep_merge(under: dict[Any, Any], over: dict[Any, Any]) -> dict[Any, Any]:
    merged = dict(under)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _deep_merge(merged[key], value) if both else value
    return merged


def _schedule_of(spec: EntrySpec) -> Schedule:
    if isinstance(spec.cron, CronFieldsSpec):
        return spec.cron.schedule()
    if isinstance(spec.cron, CronSchedule):
        return spec.cron
    if spec.every is not None:
        return IntervalSchedule(seconds=spec.every)
    rrule = spec.rrule
    assert rrule is not None  # exactly one kind was checked before
    fixed = {
        "freq": FREQUENCIES.index(rrule.freq),
        "dtstart": _fixed_offset(rrule.dtstart),
        "until": _fixed_offset(rrule.until) if rrule.until else None,
    }
    return RRuleSchedule(**rrule.model_dump() | fixed)


def _fixed_offset(moment: datetime) -> datetime:
    # RedBeat keeps only the UTC offset of rrule datetimes; normalise to exactly that.
    offset = moment.utcoffset()
    assert offset is not None  # the file format requires an offset
    return moment.replace(tzinfo=timezone(offset))


def _locate_in_entry(
    document: YamlDocument, base: YamlPath, path: YamlPath, at_key: bool
) -> SourceLocation:
    """Where a key of a merged entry was written: in the entry, else in the file's defaults."""
    positions = document.key_positions if at_key else document.value_positions
    for length in range(len(path), -1, -1):
        sub = path[:length]
        bases: tuple[YamlPath, ...] = (base, ("defaults",)) if length else (base,)
        for origin in bases:
            found = positions.get((*origin, *sub)) or document.value_positions.get((*origin, *sub))
            if found:
                return SourceLocation(document.path, *found)
    return document.location(base)


def _pydantic_problems(
    error: ValidationError, locate: Locate, entry_location: SourceLocation
) -> Iterator[Problem]:
    for detail in error.errors(include_url=False):
        loc = _without_union_tags(tuple(detail["loc"]))
        kind = detail["type"]
        label = _label(loc)
        if kind == "extra_forbidden":
            model = _MODELS.get(str(loc[-2])) if len(loc) > 1 else EntrySpec
            valid = tuple(model.model_fields) if model else ()
            yield Problem(locate(loc, True), unknown_key_message(loc[-1], valid), "unknown-key")
        elif kind == "missing":
            where = locate(loc[:-1], False) if len(loc) > 1 else entry_location
            yield Problem(where, f"missing required key '{label}'", "missing")
        elif loc and loc[-1] == "[key]":
            continue  # non-string keys are reported, with their place, by _json_problems
        else:
            yield Problem(locate(loc, False), _value_message(detail, label), kind)


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic names the chosen form of a tagged union in the path ('cron', 'mapping', ...).
    return tuple(
        part
        for index, part in enumerate(loc)
        if not (index and loc[index - 1] == "cron" and part in ("string", "mapping"))
    )


def _value_message(detail: ErrorDetails, label: str) -> str:
    kind = detail["type"]
    context = detail.get("ctx") or {}
    if kind in _SELF_NAMING_ERRORS:
        return detail["msg"]
    if kind in _TYPE_WORDS:
        return f"'{label}' must be {_TYPE_WORDS[kind]}, got {_describe(detail['input'])}"
    if kind == "literal_error":
        return f"'{label}' must be one of {context.get('expected')}, got {detail['input']!r}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        return f"'{label}' {detail['msg'].lower().replace('input should be', 'must be')}"
    return f"'{label}' {detail['msg']}"


_MODELS: dict[str, type[BaseModel]] = {
    "options": ApplyAsyncOptionsSpec,
    "retry_policy": RetryPolicySpec,
    "rrule": RRuleSpec,
    "cron": CronFieldsSpec,
}


def _json_problems(value: Any, path: YamlPath, locate: Locate) -> Iterator[Problem]:
    """Everything in args, kwargs and headers must survive a JSON round trip unchanged."""
    reason = None
    if isinstance(value, float) and not math.isfinite(value):
        reason = "is not a finite number; JSON cannot hold NaN or infinity"
    elif isinstance(value, (datetime, date)):
        reason = "is a YAML date, which JSON cannot hold; quote it to pass a string"
    elif isinstance(value, bytes):
        reason = "is binary data, which JSON cannot hold"
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_problems(item, (*path, index), locate)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                as_json = next(iter(json.loads(json.dumps({key: None}))))
                yield Problem(
                    locate((*path, key), True),
                    f"key {yaml_repr(key)} in '{_label(path)}' is not a string: JSON would "
                    f'turn it into "{as_json}"; quote it',
                    "json",
                )
            yield from _json_problems(item, (*path, key), locate)
    elif not isinstance(value, (str, int, float, bool)) and value is not None:
        reason = f"is a {type(value).__name__}, which JSON cannot hold"
    if reason:
        yield Problem(locate(path, False), f"'{_label(path)}' {reason}", "json")


def _label(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def yaml_repr(value: object) -> str:
    """A scalar as YAML spells it (null, true), not as Python does (None, True)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"
