"""Live RedBeat entries as a version-1 schedule file (``reconciler export``).

Pure: it works on the definitions the store already read, and returns the file's text and
the entries it had to leave out, each with the reason. An entry is exported only when the
file says exactly what Redis holds: its file form is loaded back by the same code as
``validate`` (including the checks validate makes against the clock), re-encoded as apply
would write it, and compared with the stored definition by essence, as plan compares them;
finally the rendered YAML is parsed again and must give back the same values. So a
following ``plan --adopt`` finds nothing to update, and nothing is ever silently dropped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.beat.celery_objects import DEFAULT_TIMEZONE
from reconciler.beat.cron import FIELD_NAMES, CronError, parse_cron_string
from reconciler.beat.redbeat_codec import encode_definition
from reconciler.core.definitions import DEFINITION_KEYS, RRULE_BY_FIELDS, essence, parse_definition
from reconciler.core.diff import field_changes
from reconciler.core.model import CronSchedule
from reconciler.core.names import BEAT_BUILTIN, BEAT_BUILTIN_NAMES, name_problem
from reconciler.core.secrets import (
    REFERENCE_FIELDS,
    JsonPath,
    dotted,
    escape,
    masked,
    resolve_references,
    secret_digests_in_marker,
    sensitive_in_marker,
    strings_in,
    value_digest,
    values_at,
)
from reconciler.load.cross_checks import schedule_problems
from reconciler.load.entries import entries_from_document
from reconciler.load.file_format import (
    FORMAT_VERSION,
    FREQUENCIES,
    WEEKDAYS,
    ApplyAsyncOptionsSpec,
)
from reconciler.load.yaml_source import MAX_DEPTH, YamlDocument, parse_yaml_text
from reconciler.render.schedule_file import schedule_file_yaml

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from reconciler.core.live import LiveEntry
    from reconciler.core.problems import Problem

OPTION_KEYS = tuple(ApplyAsyncOptionsSpec.model_fields)
_DURATION_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_WHERE = "<export>"
_DIFFERENCES_SHOWN = 3
_MISREAD = "its values do not read back the same from YAML (a bug: please report it)"


class Unexportable(ValueError):
    """An entry a schedule file cannot express as it is stored; the message says why."""


@dataclass(frozen=True)
class LeftOut:
    name: str
    reason: str


@dataclass(frozen=True)
class ExportSource:
    """Where the entries were read, for the file's header."""

    target: str  # masked: the only form ever shown
    key_prefix: str
    unmanaged_only: bool = False


@dataclass(frozen=True)
class Export:
    text: str  # the schedule file
    names: tuple[str, ...]  # the entries it holds, sorted
    left_out: tuple[LeftOut, ...]  # sorted by name
    # Entries that are not the files' to hold (beat's built-in ones): passed over on
    # purpose, so not a failure like the left-out ones.
    skipped: tuple[LeftOut, ...] = ()

    def summary(self, source: ExportSource) -> str:
        count = len(self.names)
        text = (
            f"Exported {count} entr{'y' if count == 1 else 'ies'} from {printable(source.target)} "
            f"(key prefix {source.key_prefix!r})"
        )
        passed_over = [
            f"{len(found)} {what}"
            for found, what in ((self.left_out, "left out"), (self.skipped, "skipped"))
            if found
        ]
        if passed_over:
            return f"{text}; {', '.join(passed_over)} (listed above)."
        return f"{text}."


def export_schedule_file(
    entries: Iterable[LiveEntry],
    source: ExportSource,
    *,
    now: datetime,
    timezone_name: str = DEFAULT_TIMEZONE,
) -> Export:
    """The schedule file of ``entries`` (those with a definition; with ``unmanaged_only``,
    those the reconciler does not manage), and what could not be in it."""
    file_entries: dict[str, dict[str, Any]] = {}
    left_out: list[LeftOut] = []
    skipped: list[LeftOut] = []
    for entry in entries:
        if entry.definition_text is None or (source.unmanaged_only and entry.managed):
            continue
        if entry.name in BEAT_BUILTIN_NAMES and not entry.static:
            # A file holding it would fight beat on every start (one in :statics is the
            # team's own beat_schedule entry of that name: left out with that reason).
            skipped.append(LeftOut(entry.name, BEAT_BUILTIN))
            continue
        try:
            file_entries[entry.name] = exportable(entry, now=now, timezone_name=timezone_name)
        except Unexportable as exc:
            left_out.append(LeftOut(entry.name, str(exc)))
        except Exception as exc:  # untrusted data: one odd entry never sinks the export
            reason = f"it could not be converted ({type(exc).__name__}: {exc})"
            left_out.append(LeftOut(entry.name, f"{reason}; a bug: please report it"))
    header = file_header(source, now)
    while True:
        text = schedule_file_yaml(file_entries, header)
        refused = _yaml_problems(text, file_entries)
        if not refused:
            break
        for name, reason in refused.items():
            del file_entries[name]
            left_out.append(LeftOut(name, reason))
    return Export(
        text,
        tuple(sorted(file_entries)),
        tuple(sorted(left_out, key=lambda item: item.name)),
        tuple(skipped),
    )


def file_header(source: ExportSource, now: datetime) -> str:
    scope = (
        "entries the reconciler does not manage"
        if source.unmanaged_only
        else "every entry, managed or not"
    )
    moment = now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "\n".join(
        [
            f"Exported by redbeat-reconciler {__version__} at {moment} ({scope})",
            f"from {printable(source.target)}, key prefix {source.key_prefix!r}.",
            "Review it, then: reconciler validate; reconciler plan --adopt; "
            "reconciler apply --adopt",
        ]
    )


def printable(text: str) -> str:
    """``text`` on one line: control and invisible characters escaped."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


# -- one entry ---------------------------------------------------------------------------


def exportable(
    entry: LiveEntry, *, now: datetime, timezone_name: str = DEFAULT_TIMEZONE
) -> dict[str, Any]:
    """The entry's keys in a schedule file; Unexportable when no file can say the same."""
    refused = name_problem(entry.name)
    if refused:
        raise Unexportable(f"the schedule file format refuses its name: {refused}")
    if entry.static:
        raise Unexportable(
            "beat installs it from its own beat_schedule (it is in the :statics set); the "
            "reconciler never manages such names, keep it in beat's configuration"
        )
    stored = parse_definition(entry.definition_text)
    if stored is None:
        raise Unexportable("its definition is not a readable JSON object")
    # Values the reconciler wrote from ${env:NAME} go back as that reference, never as the
    # secret; every other '${' is escaped so it stays literal text.
    sensitive = sensitive_in_marker(entry.marker) if entry.managed else {}
    if sensitive:
        _check_secrets_in_place(entry, stored, sensitive)
    mapping = with_references(file_entry(entry.name, stored), sensitive)
    check_converts_back(
        entry.name, mapping, stored, now=now, timezone_name=timezone_name, sensitive=sensitive
    )
    return mapping


def _check_secrets_in_place(
    entry: LiveEntry, stored: Mapping[str, Any], sensitive: Mapping[JsonPath, str]
) -> None:
    """Refuse an entry whose values from the environment are no longer where the reconciler
    wrote them (recognised by the digests in its marker): the file would hold a secret in
    clear, or a reference in place of another value."""
    digests = secret_digests_in_marker(entry.marker)
    in_place = {
        path
        for path in sensitive
        if any(value_digest(value) in digests for value in values_at(dict(stored), [path]))
    }
    if in_place == set(sensitive):
        return  # other strings equal to a secret are the files' own literal text
    misplaced = sorted(
        dotted(path)
        for path, value in strings_in(stored)
        if path not in sensitive and value_digest(value) in digests
    )
    gone = sorted(dotted(path) for path in sensitive if path not in in_place)
    if misplaced or gone:
        raise Unexportable(
            f"values it received from the environment ({', '.join(sorted(sensitive.values()))}) "
            f"were moved or replaced in Redis ({', '.join(sorted(misplaced + gone))}); "
            "exporting it could write a secret into the file. Run 'reconciler apply' to "
            "restore it first"
        )


def with_references(mapping: dict[str, Any], sensitive: Mapping[JsonPath, str]) -> dict[str, Any]:
    """``mapping`` with each sensitive string replaced by its template, others escaped."""
    return {
        key: _referenced(value, (key,), sensitive) if key in REFERENCE_FIELDS else value
        for key, value in mapping.items()
    }


def _referenced(value: Any, path: JsonPath, sensitive: Mapping[JsonPath, str]) -> Any:
    if isinstance(value, str):
        return sensitive[path] if path in sensitive else escape(value)
    if isinstance(value, list):
        return [_referenced(item, (*path, index), sensitive) for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _referenced(item, (*path, key), sensitive) for key, item in value.items()}
    return value


def file_entry(name: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored definition (plain JSON) as the keys of a schedule file entry."""
    extra = [str(key) for key in stored if key not in DEFINITION_KEYS]
    if extra:
        raise Unexportable(
            f"its definition holds keys beat cannot load ({', '.join(extra)}); beat crashes on it"
        )
    if stored.get("name") != name:
        raise Unexportable(
            f"its definition names it {json.dumps(stored.get('name'), ensure_ascii=False)}, "
            "not the name in its key"
        )
    kind, when = file_schedule(stored.get("schedule"))
    result: dict[str, Any] = {"task": stored.get("task"), kind: when}
    options = stored.get("options")
    if isinstance(options, dict):
        unknown = [str(key) for key in options if key not in OPTION_KEYS]
        if unknown:
            raise Unexportable(
                f"its options hold {', '.join(repr(key) for key in unknown)}, which the schedule "
                f"file format does not accept (valid: {', '.join(OPTION_KEYS)})"
            )
    for key, empty in (("args", []), ("kwargs", {}), ("options", {})):
        value = stored.get(key)
        if value is not None and value != empty:
            result[key] = value
    enabled = stored.get("enabled", True)
    if enabled is not True:
        result["enabled"] = enabled
    # Within the file, the entry sits under 'schedules' and its name.
    if _depth(result) + 2 > MAX_DEPTH:
        raise Unexportable(
            f"its values are nested deeper than the {MAX_DEPTH} levels a schedule file may have"
        )
    return result


def _depth(value: Any) -> int:
    """How deeply lists and mappings nest in ``value`` (without recursion: values from Redis
    may nest deeper than Python's stack)."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            pending.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, level + 1) for child in item)
    return deepest


def file_schedule(schedule: Any) -> tuple[str, Any]:
    """A stored RedBeat schedule as ``("cron" | "every" | "rrule", value)``."""
    if not isinstance(schedule, dict):
        raise Unexportable("its schedule is not a RedBeat schedule object")
    kind = schedule.get("__type__")
    if kind == "crontab":
        return "cron", cron_value(schedule)
    if kind == "interval":
        return "every", every_value(schedule)
    if kind == "rrule":
        return "rrule", rrule_value(schedule)
    if kind == "solar":
        raise Unexportable(
            "solar schedules cannot be written in a schedule file (only cron, every and rrule)"
        )
    raise Unexportable(
        f"schedule type {json.dumps(kind, ensure_ascii=False)} cannot be written in a schedule "
        "file (RedBeat stores crontab, interval and rrule)"
    )


def cron_value(schedule: Mapping[str, Any]) -> str | dict[str, Any]:
    """The classic string when it is exact and means the same, else Celery's mapping form
    with the values as stored (``crontab(minute=0)`` keeps its integer)."""
    fields = {field: schedule.get(field, "*") for field in FIELD_NAMES}
    if all(
        isinstance(value, str) and value and not any(char.isspace() for char in value)
        for value in fields.values()
    ):
        text = " ".join(fields[field] for field in FIELD_NAMES)
        try:
            # parse_cron_string refuses what classic cron would read differently (both day
            # fields restricted, 7 for Sunday): those keep Celery's meaning in the mapping.
            if parse_cron_string(text) == CronSchedule(**fields):
                return text
        except CronError:
            pass
    return {field: value for field, value in fields.items() if value != "*"}


def every_value(schedule: Mapping[str, Any]) -> str | float:
    if "relative" not in schedule:
        raise Unexportable("its interval has no 'relative' flag, which RedBeat's decoder needs")
    if schedule["relative"] is True:
        raise Unexportable(
            "its interval is relative (runs aligned to the clock), which a schedule file "
            "cannot express"
        )
    every = schedule.get("every")
    if (
        isinstance(every, bool)
        or not isinstance(every, (int, float))
        or not math.isfinite(every)
        or every <= 0
    ):
        raise Unexportable(f"its interval is {json.dumps(every)}, not a positive number of seconds")
    if float(every).is_integer():
        return duration_text(int(every))
    return every


def duration_text(seconds: int) -> str:
    """Whole seconds as the file's duration text: 30 -> '30s', 5400 -> '1h30m'."""
    parts = []
    rest = seconds
    for unit, size in _DURATION_UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def rrule_value(schedule: Mapping[str, Any]) -> dict[str, Any]:
    freq = schedule.get("freq")
    if isinstance(freq, bool) or not isinstance(freq, int) or not 0 <= freq < len(FREQUENCIES):
        raise Unexportable(f"its rrule freq {json.dumps(freq)} is not a dateutil frequency (0-6)")
    if schedule.get("dtstart") is None:
        raise Unexportable(
            "its rrule has no dtstart, so RedBeat starts it whenever it loads it; a schedule "
            "file needs a fixed dtstart"
        )
    result: dict[str, Any] = {"freq": FREQUENCIES[freq], "dtstart": _moment(schedule, "dtstart")}
    if schedule.get("until") is not None:
        result["until"] = _moment(schedule, "until")
    for key in ("count", "interval"):
        value = schedule.get(key)
        if value is not None and not (key == "interval" and type(value) is int and value == 1):
            result[key] = value
    if schedule.get("wkst") is not None:
        result["wkst"] = _weekday(schedule["wkst"])
    for key in RRULE_BY_FIELDS:
        value = schedule.get(key)
        if value is None:
            continue
        if key == "byweekday":
            value = (
                [_weekday(item) for item in value] if isinstance(value, list) else _weekday(value)
            )
        result[key] = value
    return result


def _moment(schedule: Mapping[str, Any], key: str) -> str:
    """An rrule date-time as ISO 8601 with the offset RedBeat stored beside it."""
    stamp, minutes = schedule.get(key), schedule.get(f"{key}_tz", 0)
    unreadable = Unexportable(
        f"its rrule {key} ({json.dumps(stamp)}, offset {json.dumps(minutes)} minutes) is "
        "not a date-time RedBeat can read"
    )
    if not isinstance(stamp, (int, float)) or not isinstance(minutes, (int, float)):
        raise unreadable
    if isinstance(stamp, bool) or isinstance(minutes, bool):
        raise unreadable
    try:
        # As RedBeat's decoder reads it (redbeat.decoder.from_timestamp).
        zone = timezone(timedelta(minutes=minutes)) if minutes else timezone.utc
        return datetime.fromtimestamp(stamp, zone).isoformat()
    except (ValueError, OverflowError, OSError):
        raise unreadable from None


def _weekday(value: Any) -> Any:
    """A stored weekday (an integer, or dateutil's weekday as RedBeat encodes it) as MO..SU."""
    if isinstance(value, dict) and value.get("__type__") == "weekday":
        if set(value) != {"__type__", "wkday"}:
            raise Unexportable(
                f"its rrule holds the weekday {json.dumps(value)} with more than a day (an nth "
                "weekday?), which a schedule file cannot express"
            )
        value = value["wkday"]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(WEEKDAYS):
        return WEEKDAYS[value]
    return value  # left for the file format's own check to refuse, with its message


# -- the proof ---------------------------------------------------------------------------


def check_converts_back(
    name: str,
    mapping: Mapping[str, Any],
    stored: Mapping[str, Any],
    *,
    now: datetime,
    timezone_name: str = DEFAULT_TIMEZONE,
    sensitive: Mapping[JsonPath, str] | None = None,
) -> None:
    """Raise Unexportable unless ``mapping`` passes validate and encodes to ``stored``.

    Values at ``sensitive`` paths (references in ``mapping``) are left out of the
    comparison: their values live in an environment this process does not have.
    """
    document = YamlDocument(_WHERE, {"version": FORMAT_VERSION, "schedules": {name: mapping}})
    loaded = entries_from_document(document)
    if loaded.problems or len(loaded.entries) != 1:
        reasons = "; ".join(problem.message for problem in loaded.problems)
        raise Unexportable(f"the schedule file format refuses it: {reasons}")
    entry = loaded.entries[0]
    problems = list(schedule_problems(entry, now, timezone_name))
    if problems:
        reasons = "; ".join(problem.message for problem in problems)
        raise Unexportable(f"validate would refuse it: {reasons}")
    entry = resolve_references([entry], _ANY_VALUE)[0]
    wanted = json.loads(encode_definition(entry, timezone_name))
    # Both sides masked alike at the sensitive paths: their values are not compared.
    mask = dict.fromkeys(sensitive or {})
    differences = field_changes(
        essence(masked(dict(stored), (), mask)), essence(masked(wanted, (), mask))
    )
    if differences:
        shown = [item.describe() for item in differences[:_DIFFERENCES_SHOWN]]
        if len(differences) > _DIFFERENCES_SHOWN:
            shown.append(f"{len(differences) - _DIFFERENCES_SHOWN} more")
        raise Unexportable(f"it would not convert back to the same definition ({'; '.join(shown)})")


class _AnyValue(dict[str, str]):
    """An environment holding every variable, for references whose values are not
    compared (see check_converts_back)."""

    def get(self, key: str, default: object = None) -> str:
        return "\x00"


_ANY_VALUE = _AnyValue()


def _yaml_problems(text: str, entries: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Entries whose values do not read back from ``text`` as given, with the reason."""
    schedules, _problems = _read_back(text)
    if schedules is not None:
        return {
            name: _MISREAD
            for name in entries
            if _canonical(schedules.get(name)) != _canonical(entries[name])
        }
    # The whole text is refused (nesting too deep, say): find the entries that cause it.
    found = {}
    for name, mapping in entries.items():
        alone, problems = _read_back(schedule_file_yaml({name: mapping}))
        if alone is None:
            found[name] = "validate would refuse it: " + "; ".join(p.message for p in problems)
        elif _canonical(alone.get(name)) != _canonical(mapping):
            found[name] = _MISREAD
    if not found:
        raise RuntimeError("the exported YAML is refused, yet each entry alone is not")
    return found


def _read_back(text: str) -> tuple[dict[Any, Any] | None, list[Problem]]:
    """The ``schedules`` mapping as validate reads ``text``, or None and the problems."""
    document, problems = parse_yaml_text(text, _WHERE)
    if document is None or problems or not isinstance(document.data, dict):
        return None, problems
    schedules = document.data.get("schedules")
    return (schedules if isinstance(schedules, dict) else {}), []


def _canonical(value: Any) -> str:
    # Strict JSON: true, 1 and 1.0 differ; anything not JSON (a YAML date) differs too.
    return json.dumps(value, sort_keys=True, default=repr)
