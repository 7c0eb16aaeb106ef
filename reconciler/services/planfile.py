"""Plans as JSON: the machine-readable output, and saved plans (``plan --out``).

A saved plan is the JSON output plus what apply needs to execute it exactly: the definition
bytes to write, what each entry looked like when planned, and the fingerprints that let
apply refuse it once the files or the live state have moved on.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from secrets import token_hex
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from reconciler import __version__
from reconciler.core.beat_clock import BeatState, BeatTiming, BeatWake
from reconciler.core.errors import UsageError
from reconciler.core.ownership import MARKER_VALUE, public_marker
from reconciler.core.plan import (
    REPAIR_TEXT,
    Action,
    Change,
    Clock,
    Conflict,
    ConflictKind,
    FieldChange,
    Plan,
    Repair,
)
from reconciler.core.secret_refs import keyed_digest, masked_definition

if TYPE_CHECKING:
    from pathlib import Path

# 2: adopting an entry without field changes is action "adopt" (in 1: "update", adopt
# true, no field changes); plans of format 1 are still read, as format 2.
# 2: adopt is its own action, and every change carries its clock policy. Saved plans live
# from a pull request to its merge: one made by another format is simply made again.
PLAN_FORMAT_VERSION = 2
PLAN_FILE_KIND = "redbeat-reconciler-plan"


def plan_to_dict(plan: Plan, *, for_apply: bool = False) -> dict[str, Any]:
    secret = any(change.sensitive_paths for change in plan.changes)
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
            {
                "name": conflict.name,
                "kind": conflict.kind.value,
                "source": conflict.source,
                "message": conflict.message,
            }
            for conflict in plan.conflicts
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
        "field_changes": [
            {
                "path": item.path,
                "old": item.old,
                "new": item.new,
                "added": item.added,
                "removed": item.removed,
            }
            for item in change.field_changes
        ],
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
        if change.sensitive_paths:
            # Values from the environment never reach the file: the bytes are masked and
            # apply re-resolves them, proving by digest that they are the ones planned.
            mask = dict.fromkeys(change.sensitive_paths)
            document["sensitive_paths"] = [list(path) for path in change.sensitive_paths]
            values = change.secret_values
            document["definition"] = masked_definition(change.definition, mask, values)
            document["live_definition"] = masked_definition(change.live_definition, mask, values)
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


def _beat_from_dict(item: dict[str, Any] | None) -> BeatWake | None:
    if item is None:
        return None
    timing = BeatTiming(
        float(item["max_loop_interval"]),
        item["lock_timeout_setting"],
        item["settings_from"],
        bool(item["settings_assumed"]),
    )
    return BeatWake(
        BeatState(item["state"]),
        timing,
        datetime.fromisoformat(item["observed_at"]),
        item["lock_key"],
        _moment(item["last_tick"]),
        _moment(item["wakes_at"]),
    )


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


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
        document = json.loads(path.read_text())
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
        return _plan_from_dict(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path} is a damaged plan file ({exc!r}); make a new plan") from None


def _plan_from_dict(document: dict[str, Any]) -> Plan:
    zone = ZoneInfo(document["timezone"])
    return Plan(
        changes=tuple(_change_from_dict(item, zone) for item in document["changes"]),
        unchanged=tuple(document["unchanged"]),
        pending_prune=tuple(document["pending_prune"]),
        conflicts=tuple(
            Conflict(item["name"], ConflictKind(item["kind"]), item.get("source"))
            for item in document["conflicts"]
        ),
        prune=bool(document["prune"]),
        adopt=bool(document["adopt"]),
        managed_count=int(document["managed_count"]),
        created_at=datetime.fromisoformat(document["created_at"]),
        timezone=document["timezone"],
        key_prefix=document["key_prefix"],
        target=document["target"],
        live_fingerprint=document["live_fingerprint"],
        files_fingerprint=document["files_fingerprint"],
        paths=tuple(document["paths"]),
        target_name=document.get("target_name"),
        overlay_paths=tuple(document.get("overlay_paths", ())),
        digest_key=document.get("digest_key", ""),
        secret_digest=document.get("secret_digest") or "",
        notices=tuple(document.get("notices", ())),
        beat=_beat_from_dict(document.get("beat")),
    )


def _change_from_dict(item: dict[str, Any], zone: ZoneInfo) -> Change:
    return Change(
        name=item["name"],
        action=Action(item["action"]),
        definition=item.get("definition"),
        enabled=bool(item["enabled"]),
        field_changes=tuple(
            FieldChange(
                change["path"],
                change["old"],
                change["new"],
                added=bool(change["added"]),
                removed=bool(change["removed"]),
            )
            for change in item["field_changes"]
        ),
        enabling=bool(item["enabling"]),
        disabling=bool(item["disabling"]),
        adopt=bool(item["adopt"]),
        run_on_create=bool(item["run_on_create"]),
        repairs=tuple(Repair(repair["kind"]) for repair in item["repairs"]),
        clock=Clock(item["clock"]),
        next_runs=tuple(
            _in_zone(datetime.fromisoformat(moment), zone) for moment in item["next_runs"]
        ),
        expected_first_run=_moment(item.get("expected_first_run")),
        warnings=tuple(item["warnings"]),
        source=item.get("source"),
        overlays=tuple(item.get("overlays", ())),
        live_definition=item.get("live_definition"),
        live_managed=bool(item.get("live_managed")),
        marker=item.get("marker", MARKER_VALUE),
        sensitive_paths=tuple(tuple(path) for path in item.get("sensitive_paths", ())),
        masked=bool(item.get("sensitive_paths")),
    )
