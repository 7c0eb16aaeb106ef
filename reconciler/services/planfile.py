"""Plans as JSON: the machine-readable output, and saved plans (``plan --out``).

A saved plan is the JSON output plus what apply needs to execute it exactly: the definition
bytes to write, what each entry looked like when planned, and the fingerprints that let
apply refuse it once the files or the live state have moved on.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import asdict
from datetime import datetime, timezone
from secrets import token_hex
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from reconciler import __version__
from reconciler.core.beat_clock import BeatState, BeatTiming, BeatWake
from reconciler.core.errors import UsageError
from reconciler.core.ownership import MARKER_VALUE
from reconciler.core.plan import (
    REPAIR_TEXT,
    Action,
    Change,
    Clock,
    Conflict,
    FieldChange,
    Plan,
    Repair,
)
from reconciler.core.secrets import JsonPath, Sensitive, keyed_digest, public_marker

if TYPE_CHECKING:
    from pathlib import Path

# 2: adopt is its own action, and every change carries its clock policy. Saved plans live
# from a pull request to its merge: one made by another format is simply made again.
PLAN_FORMAT_VERSION = 2
PLAN_FILE_KIND = "redbeat-reconciler-plan"


def plan_to_dict(plan: Plan, *, for_apply: bool = False) -> dict[str, Any]:
    secret = any(change.sensitive for change in plan.changes)
    digest_key = plan.digest_key or (token_hex(16) if secret else "")
    document: dict[str, Any] = {
        "format_version": PLAN_FORMAT_VERSION,
        "tool_version": __version__,
        "created_at": plan.created_at.isoformat() if plan.created_at else None,
        "target": plan.target,
        "target_name": plan.target_name,
        "key_prefix": plan.key_prefix,
        "timezone": plan.timezone,
        "prune": plan.prune,
        "adopt": plan.adopt,
        "changes": [_change_to_dict(change, for_apply, digest_key) for change in plan.changes],
        "unchanged": list(plan.unchanged),
        "pending_prune": list(plan.pending_prune),
        "notices": list(plan.notices),
        "beat": _beat_to_dict(plan.beat),
        "conflicts": [
            {**asdict(conflict), "message": conflict.message} for conflict in plan.conflicts
        ],
        "summary": {
            "create": plan.count(Action.CREATE),
            "update": plan.count(Action.UPDATE),
            "delete": plan.count(Action.DELETE),
            "repair": plan.count(Action.REPAIR),
            "adopt": plan.count(Action.ADOPT),
            "adopt_and_update": plan.updates_adopting,
            "unchanged": len(plan.unchanged),
            "pending_prune": len(plan.pending_prune),
            "conflicts": len(plan.conflicts),
            "blocked": bool(plan.conflicts),  # nothing can be applied until they are resolved
            "text": plan.summary(),
        },
        "live_fingerprint": plan.live_fingerprint,
        "files_fingerprint": plan.files_fingerprint,
    }
    if for_apply:
        document["kind"] = PLAN_FILE_KIND
        document["paths"] = list(plan.paths)
        document["overlay_paths"] = list(plan.overlay_paths)
        document["managed_count"] = plan.managed_count
        document["digest_key"] = digest_key
        if secret:
            # One digest of every masked byte: apply --plan resolves the values again and
            # must find exactly these (per change, scrypt's cost would add up to minutes).
            document["secret_digest"] = plan.secret_digest or keyed_digest(
                digest_key, plan.secret_material()
            )
    return document


def _change_to_dict(change: Change, for_apply: bool, digest_key: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": change.name,
        "action": change.action.value,
        "adopt": change.adopt,
        "enabled": change.enabled,
        "enabling": change.enabling,
        "disabling": change.disabling,
        "run_on_create": change.run_on_create,
        "field_changes": [asdict(item) for item in change.field_changes],
        "repairs": [{"kind": item.value, "text": REPAIR_TEXT[item]} for item in change.repairs],
        "clock": change.clock.value,
        "next_runs": [moment.isoformat() for moment in change.next_runs],
        "expected_first_run": _utc(change.expected_first_run),
        "warnings": list(change.warnings),
        "source": change.source,
        "overlays": list(change.overlays),
    }
    if for_apply:
        document["definition"] = change.definition
        document["live_definition"] = change.live_definition
        document["live_managed"] = change.live_managed
        document["marker"] = public_marker(change.marker)
        if change.sensitive:
            # Values from the environment never reach the file: the bytes are masked and
            # apply re-resolves them, proving by digest that they are the ones planned.
            document["sensitive_paths"] = [list(path) for path in change.sensitive.paths]
            document["definition"] = change.sensitive.definition(change.definition)
            document["live_definition"] = change.sensitive.definition(change.live_definition)
    return document


def _utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _beat_to_dict(beat: BeatWake | None) -> dict[str, Any] | None:
    """When beat next looks at the schedule, and what that estimate rests on."""
    if beat is None:
        return None
    return {
        "state": beat.state.value,
        "lock_key": beat.lock_key,
        "observed_at": _utc(beat.observed_at),
        "last_tick": _utc(beat.last_tick),
        "wakes_at": _utc(beat.wakes_at),
        "max_loop_interval": beat.timing.max_loop_interval,
        "lock_timeout": beat.timing.lock_timeout,
        "lock_timeout_setting": beat.timing.lock_timeout_setting,
        "settings_from": beat.timing.source,
        "settings_assumed": beat.timing.assumed,
        "message": beat.describe(),
    }


def _in_zone(moment: datetime, zone: ZoneInfo) -> datetime:
    """Beat's zone again (CEST, not a bare +02:00) where the offset says it was shown in it."""
    named = moment.astimezone(zone)
    return named if named.utcoffset() == moment.utcoffset() else moment


def save_plan(plan: Plan, path: Path) -> None:
    try:
        path.write_text(json.dumps(plan_to_dict(plan, for_apply=True), indent=2) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write the plan to {path}: {exc.strerror}") from None


def load_plan(path: Path) -> Plan:
    try:
        text = path.read_text()
        document = json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read plan file {path}: {exc.strerror}") from None
    except ValueError:
        raise UsageError(f"{path} is not a plan file (not JSON)") from None
    if not isinstance(document, dict) or document.get("kind") != PLAN_FILE_KIND:
        raise UsageError(f"{path} is not a plan saved by 'reconciler plan --out'")
    if document.get("format_version") != PLAN_FORMAT_VERSION:
        raise UsageError(
            f"{path} has plan format {document.get('format_version')!r}; this reconciler "
            f"applies format {PLAN_FORMAT_VERSION}: make a new plan"
        )
    try:
        saved = _SavedPlan.model_validate_json(text)
    except ValidationError as exc:
        problem = _damage(exc)
        raise UsageError(f"{path} is a damaged plan file ({problem}); make a new plan") from None
    return saved.plan()


def _moment(text: object) -> datetime:
    # Python's own parser for what isoformat() wrote: the same offset and tzinfo come back.
    if isinstance(text, str):
        with suppress(ValueError):
            return datetime.fromisoformat(text)
    problem = f"expected a date and time as isoformat() writes it, got {text!r}"
    raise PydanticCustomError("datetime_isoformat", problem)


Moment = Annotated[datetime, PlainValidator(_moment)]


class _Saved(BaseModel):
    """A part of a saved plan, as read back. Its keys are the names of the fields of Plan,
    Change and their parts, so each model becomes its dataclass by name; what only people
    read (the summary, texts, messages) is ignored. Strict: plan_to_dict wrote the file,
    and anything it would not have written is damage, not a value to coerce."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class _FieldChange(_Saved):
    path: str
    old: Any
    new: Any
    added: bool
    removed: bool


class _Repair(_Saved):
    kind: Repair


class _Change(_Saved):
    name: str
    action: Action
    definition: str | None = None
    enabled: bool
    field_changes: tuple[_FieldChange, ...]
    enabling: bool
    disabling: bool
    adopt: bool
    run_on_create: bool
    repairs: tuple[_Repair, ...]
    clock: Clock
    next_runs: tuple[Moment, ...]
    expected_first_run: Moment | None = None
    warnings: tuple[str, ...]
    source: str | None = None
    overlays: tuple[str, ...] = ()
    live_definition: str | None = None
    live_managed: bool = False
    marker: str = MARKER_VALUE
    sensitive_paths: tuple[JsonPath, ...] = ()

    def change(self, zone: ZoneInfo) -> Change:
        fields = dict(self)
        paths = fields.pop("sensitive_paths")
        return Change(
            **{
                **fields,
                "field_changes": tuple(FieldChange(**dict(item)) for item in self.field_changes),
                "repairs": tuple(item.kind for item in self.repairs),
                "next_runs": tuple(_in_zone(moment, zone) for moment in self.next_runs),
                "sensitive": Sensitive.saved(paths),
                "masked": bool(paths),
            }
        )


class _Beat(_Saved):
    state: BeatState
    lock_key: str | None
    observed_at: Moment
    last_tick: Moment | None
    wakes_at: Moment | None
    max_loop_interval: float
    lock_timeout_setting: float | None
    settings_from: str
    settings_assumed: bool

    def wake(self) -> BeatWake:
        timing = BeatTiming(
            self.max_loop_interval,
            self.lock_timeout_setting,
            self.settings_from,
            self.settings_assumed,
        )
        return BeatWake(
            self.state, timing, self.observed_at, self.lock_key, self.last_tick, self.wakes_at
        )


class _SavedPlan(_Saved):
    changes: tuple[_Change, ...]
    unchanged: tuple[str, ...]
    pending_prune: tuple[str, ...]
    conflicts: tuple[Conflict, ...]  # written as the dataclass is: pydantic builds it as it is
    prune: bool
    adopt: bool
    managed_count: int
    created_at: Moment
    timezone: ZoneInfo
    key_prefix: str
    target: str
    live_fingerprint: str
    files_fingerprint: str
    paths: tuple[str, ...]
    target_name: str | None = None
    overlay_paths: tuple[str, ...] = ()
    digest_key: str = ""
    secret_digest: str = ""
    notices: tuple[str, ...] = ()
    beat: _Beat | None = None

    def plan(self) -> Plan:
        return Plan(
            **{
                **dict(self),
                "changes": tuple(change.change(self.timezone) for change in self.changes),
                "timezone": self.timezone.key,
                "beat": self.beat.wake() if self.beat else None,
            }
        )


def _damage(error: ValidationError) -> str:
    """The first problem pydantic found, on one line."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "the document"
    more = error.error_count() - 1
    return f"{where}: {first['msg']}" + (f", and {more} more" if more else "")
