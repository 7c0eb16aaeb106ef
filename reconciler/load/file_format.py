"""Version 1 of the schedule file format, as pydantic models.

These models validate each entry and are the single source of the published JSON Schema
(``reconciler schema``). Fields whose accepted forms are several (``cron`` as a string or
a mapping, ``every`` as text or seconds) are validated by one function each, so that a bad
value yields one clear message rather than one per alternative.
"""

from __future__ import annotations

import difflib
import math
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args

from annotated_types import GroupedMetadata
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.beat.cron import FIELD_NAMES, CronError, check_cron_field, parse_cron_string
from reconciler.beat.every import EXAMPLES as EVERY_EXAMPLES
from reconciler.beat.every import DurationError, parse_every
from reconciler.core.model import CronSchedule
from reconciler.core.problems import Problem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from reconciler.load.yaml_source import YamlDocument, YamlPath

FORMAT_VERSION = 1
SCHEMA_ID = "urn:redbeat-reconciler:schedule-file:v1"
SCHEDULE_KINDS = ("cron", "every", "rrule")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
Frequency = Literal["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY"]
FREQUENCIES: tuple[Frequency, ...] = get_args(Frequency)  # dateutil's order: YEARLY = 0


class _Strict(BaseModel):
    # strict: YAML 'yes' or "5" must not quietly become True or 5.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


_invalid = PydanticCustomError


def _number_check(
    *, minimum: float | None = None, above: float | None = None
) -> Callable[[Any], int | float]:
    """A JSON number kept as written (3600 stays an int), with bounds."""

    def check(value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid("number", "must be a number")
        if not math.isfinite(value):
            raise _invalid("number", "must be a finite number")
        if minimum is not None and value < minimum:
            raise _invalid("number", f"must be greater than or equal to {minimum:g}")
        if above is not None and value <= above:
            raise _invalid("number", f"must be greater than {above:g}")
        return value

    return check


NonNegativeNumber = Annotated[
    Any, AfterValidator(_number_check(minimum=0)), WithJsonSchema({"type": "number", "minimum": 0})
]
PositiveNumber = Annotated[
    Any,
    AfterValidator(_number_check(above=0)),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
]


def _cron_string(value: str) -> CronSchedule:
    try:
        return parse_cron_string(value)
    except CronError as exc:
        raise _invalid("cron", str(exc)) from None


def _cron_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "string"
    return "mapping" if isinstance(value, (dict, CronFieldsSpec)) else None


_CronField = Annotated[Any, WithJsonSchema({"type": ["integer", "string"]})]


def _every_value(value: Any) -> float:
    try:
        return parse_every(value)
    except DurationError as exc:
        raise _invalid("every", str(exc)) from None


def _weekday(value: Any) -> int:
    if isinstance(value, str) and value.upper() in WEEKDAYS:
        return WEEKDAYS.index(value.upper())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    if isinstance(value, str) and value[:1] in "+-0123456789" and value[-2:].upper() in WEEKDAYS:
        # RedBeat's JSON encoding of dateutil weekdays drops the "nth" part and cannot be
        # decoded back, so "last Friday" must be spelled with bysetpos instead.
        raise _invalid(
            "weekday",
            f"'{value}' (nth weekday) cannot be stored by RedBeat; write byweekday: "
            f"{value[-2:].upper()} with bysetpos: {value[:-2]} instead",
        )
    raise _invalid("weekday", f"must be a weekday: one of {', '.join(WEEKDAYS)} (or 0-6, MO=0)")


def _weekdays(value: Any) -> int | tuple[int, ...]:
    if isinstance(value, list):
        return tuple(_weekday(item) for item in value)
    return _weekday(value)


class _IntOrInts(GroupedMetadata):
    """dateutil's by* fields: one integer or a list of them, within bounds."""

    def __init__(self, low: int, high: int, *, zero: bool = True) -> None:
        self.low, self.high, self.zero = low, high, zero
        self.allowed = f"{low}..{high}" + ("" if zero else " except 0")

    def __iter__(self) -> Iterator[object]:
        item = {"type": "integer", "minimum": self.low, "maximum": self.high}
        yield AfterValidator(self.check)
        yield WithJsonSchema({"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]})

    def check(self, value: Any) -> int | tuple[int, ...]:
        if isinstance(value, list):
            if not value:
                raise _invalid("rrule", "must not be an empty list")
            return tuple(self.check_one(item) for item in value)
        return self.check_one(value)

    def check_one(self, item: Any) -> int:
        if isinstance(item, bool) or not isinstance(item, int):
            raise _invalid("rrule", f"must be an integer or a list of integers ({self.allowed})")
        if not self.low <= item <= self.high or (item == 0 and not self.zero):
            raise _invalid("rrule", f"value {item} is out of range ({self.allowed})")
        return item


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise _invalid(
            "datetime",
            "needs a UTC offset, e.g. 2026-01-01T00:00:00+00:00 (RedBeat stores rrule "
            "datetimes with a fixed offset)",
        )
    return value


AwareDatetime = Annotated[
    datetime,
    Field(strict=False),  # ISO 8601 text is the normal way to write it in YAML
    AfterValidator(_aware),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
_WEEKDAY_SCHEMA = {
    "oneOf": [
        {"type": "string", "enum": list(WEEKDAYS)},
        {"type": "integer", "minimum": 0, "maximum": 6},
    ]
}
Weekday = Annotated[Any, AfterValidator(_weekday), WithJsonSchema(_WEEKDAY_SCHEMA)]
Weekdays = Annotated[
    Any,
    AfterValidator(_weekdays),
    WithJsonSchema({"oneOf": [_WEEKDAY_SCHEMA, {"type": "array", "items": _WEEKDAY_SCHEMA}]}),
]


class CronFieldsSpec(_Strict):
    """Celery's crontab fields, with Celery's semantics (all day fields must match)."""

    minute: _CronField = "*"
    hour: _CronField = "*"
    day_of_month: _CronField = "*"
    month_of_year: _CronField = "*"
    day_of_week: _CronField = Field("*", description="0-6 or sun-sat, Sunday = 0")

    @field_validator(*FIELD_NAMES)
    @classmethod
    def _cron_field(cls, value: int | str, info: ValidationInfo) -> int | str:
        try:
            check_cron_field(info.field_name or "", value)
        except CronError as exc:
            raise _invalid("cron", str(exc)) from None
        return value

    def schedule(self) -> CronSchedule:
        return CronSchedule(**self.model_dump())


CronValue = Annotated[
    Union[  # noqa: UP007  # pydantic evaluates this at run time, also on Python 3.10
        Annotated[
            str,
            AfterValidator(_cron_string),
            Tag("string"),
            WithJsonSchema(
                {"type": "string", "description": "minute hour day-of-month month day-of-week"}
            ),
        ],
        Annotated[CronFieldsSpec, Tag("mapping")],
    ],
    Discriminator(
        _cron_form,
        custom_error_type="cron",
        custom_error_message="'cron' must be a cron string such as '0 3 * * *' or a mapping "
        f"of Celery crontab fields ({', '.join(FIELD_NAMES)})",
    ),
]


class RRuleSpec(_Strict):
    """An RFC 5545 recurrence rule, evaluated by dateutil inside RedBeat."""

    freq: Frequency
    dtstart: AwareDatetime = Field(
        description="First occurrence, ISO 8601 with an offset. Required: without it RedBeat "
        "would use the time of writing, and every plan would see a change."
    )
    interval: int = Field(1, ge=1)
    wkst: Weekday = None
    count: int | None = Field(None, ge=1)
    until: AwareDatetime | None = None
    bysetpos: Annotated[Any, _IntOrInts(-366, 366, zero=False)] = None
    bymonth: Annotated[Any, _IntOrInts(1, 12)] = None
    bymonthday: Annotated[Any, _IntOrInts(-31, 31, zero=False)] = None
    byyearday: Annotated[Any, _IntOrInts(-366, 366, zero=False)] = None
    byeaster: Annotated[Any, _IntOrInts(-366, 366)] = None
    byweekno: Annotated[Any, _IntOrInts(-53, 53, zero=False)] = None
    byweekday: Weekdays = None
    byhour: Annotated[Any, _IntOrInts(0, 23)] = None
    byminute: Annotated[Any, _IntOrInts(0, 59)] = None
    bysecond: Annotated[Any, _IntOrInts(0, 59)] = None

    @field_validator("until")
    @classmethod
    def _not_with_count(cls, until: datetime | None, info: ValidationInfo) -> datetime | None:
        if until is not None and info.data.get("count") is not None:
            raise _invalid(
                "rrule", "is not allowed with count: may have count or until, not both (RFC 5545)"
            )
        return until


class RetryPolicySpec(_Strict):
    """Celery's publish retry policy (how the beat process retries sending the message)."""

    max_retries: int | None = Field(None, ge=0)
    interval_start: NonNegativeNumber = None
    interval_step: NonNegativeNumber = None
    interval_max: NonNegativeNumber = None


class ApplyAsyncOptionsSpec(_Strict):
    """Options beat passes to ``apply_async`` for every run (only these are accepted)."""

    queue: str | None = None
    exchange: str | None = None
    routing_key: str | None = None
    priority: int | None = Field(None, ge=0, le=255)
    expires: PositiveNumber = Field(
        None, description="Seconds after sending when the message expires unprocessed"
    )
    countdown: NonNegativeNumber = None
    time_limit: PositiveNumber = None
    soft_time_limit: PositiveNumber = None
    serializer: str | None = None
    compression: str | None = None
    headers: dict[str, Any] | None = None
    retry: bool | None = None
    retry_policy: RetryPolicySpec | None = None
    ignore_result: bool | None = None
    shadow: str | None = None
    delivery_mode: Literal[1, 2, "transient", "persistent"] | None = None


def _task_name(value: str) -> str:
    if not value.strip():
        raise _invalid("task", "must be the registered Celery task name, not empty")
    if any(char.isspace() for char in value):
        raise _invalid("task", f"must not contain white space, got {value!r}")
    return value


_REFERENCES = (
    "Strings may hold ${env:NAME}, resolved at plan/apply time and never shown; $${ is a literal ${"
)


class EntrySpec(_Strict):
    """One periodic task. Exactly one of cron, every or rrule says when it runs."""

    task: Annotated[str, AfterValidator(_task_name)] = Field(
        description="The registered Celery task name, e.g. app.tasks.report"
    )
    cron: CronValue | None = None
    every: Annotated[
        Any,
        AfterValidator(_every_value),
        WithJsonSchema(
            {
                "oneOf": [
                    {
                        "type": "string",
                        "pattern": r"^(\d+(\.\d+)?\s*[wdhmsWDHMS]\s*)+$|^\s*\d+(\.\d+)?\s*$",
                    },
                    {"type": "number", "exclusiveMinimum": 0},
                ],
                "description": EVERY_EXAMPLES,
            }
        ),
    ] = None
    rrule: RRuleSpec | None = None
    args: list[Any] = Field(
        default_factory=list, description=f"Positional arguments (JSON). {_REFERENCES}"
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description=f"Keyword arguments (JSON). {_REFERENCES}"
    )
    options: ApplyAsyncOptionsSpec = ApplyAsyncOptionsSpec()
    enabled: bool = True
    description: str | None = Field(None, description="For people; never sent to beat")
    run_on_create: bool = Field(
        False,
        description="Run once as soon as the entry is created; by default the first run "
        "happens at the next scheduled time",
    )


ENTRY_KEYS = tuple(EntrySpec.model_fields)
TOP_LEVEL_KEYS = ("version", "defaults", "schedules")

# Keys people reach for that mean something else here; said instead of a bare "unknown key".
KEY_HINTS: dict[str, str] = {
    "timezone": "RedBeat stores no per-entry timezone; crontabs use beat's timezone",
    "tz": "RedBeat stores no per-entry timezone; crontabs use beat's timezone",
    "name": "the entry's name is its key under 'schedules'",
    "schedule": "write the schedule as one of cron, every or rrule",
    "solar": "solar schedules cannot be stored by RedBeat",
    "queue": "apply_async options go under 'options', e.g. options: {queue: ...}",
    "priority": "apply_async options go under 'options', e.g. options: {priority: ...}",
    "expires": "apply_async options go under 'options', e.g. options: {expires: ...}",
    "routing_key": "apply_async options go under 'options'",
    "relative": "interval schedules here are never relative",
    "last_run_at": "run history belongs to beat and is never written from files",
    "patches": "this is an overlay, not a schedule file: list it in a target's 'overlays' "
    "in reconciler.toml, outside the schedule paths",
}


def unknown_key_message(
    key: object,
    valid: tuple[str, ...],
    what: str = "key",
    *,
    hints: Mapping[str, str] = KEY_HINTS,
    place: str = "",
) -> str:
    hint = hints.get(key) if isinstance(key, str) else None
    if hint:
        return f"unknown {what} '{key}'{place}: {hint}"
    close = difflib.get_close_matches(str(key), valid, n=1)
    suggestion = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {what} '{key}'{place}{suggestion} (valid: {', '.join(valid)})"


def unknown_keys(
    document: YamlDocument,
    path: YamlPath,
    mapping: dict[Any, Any],
    valid: tuple[str, ...],
    what: str = "key",
    *,
    hints: Mapping[str, str] = KEY_HINTS,
    place: str = "",
) -> Iterator[Problem]:
    for key in mapping:
        if key not in valid:
            yield Problem(
                document.location((*path, key), at_key=True),
                unknown_key_message(key, valid, what, hints=hints, place=place),
                "unknown-key",
            )


class ScheduleFileSpec(_Strict):
    """A schedule file, version 1 (for the JSON Schema; loading validates entry by entry)."""

    model_config = ConfigDict(
        title="redbeat-reconciler schedule file", json_schema_extra={"$id": SCHEMA_ID}
    )

    version: Literal[1]
    defaults: dict[str, Any] | None = Field(
        None,
        description="Deep-merged under every entry of this file; an entry's own values win",
    )
    schedules: dict[str, EntrySpec]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the file format, for editors (yaml-language-server)."""
    schema = ScheduleFileSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    defaults = schema["properties"]["defaults"]
    for key in ("anyOf", "type", "default", "required"):
        defaults.pop(key, None)
    # Entries in defaults are partial: nothing is required there.
    partial = dict(schema["$defs"]["EntrySpec"])
    partial.pop("required", None)
    partial["title"] = "Defaults"
    schema["$defs"]["Defaults"] = partial
    defaults["$ref"] = "#/$defs/Defaults"
    schema["properties"]["schedules"]["propertyNames"] = {
        "minLength": 1,
        "maxLength": 200,
        "pattern": "^[^:]",
    }
    return schema
