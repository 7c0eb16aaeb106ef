"""The pure core as the unit tests call it: in beat's timezone, with Celery's and RedBeat's
own rules (schedules/redbeat_rules.RedBeatRules), as the services layer calls it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler import diff, drift, scheduling
from reconciler.schedules.redbeat_rules import RedBeatRules

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from reconciler.live import LiveEntry, LiveState
    from reconciler.model import DesiredEntry, Schedule
    from reconciler.plan import Plan, Repair


def compute_plan(
    desired: Sequence[DesiredEntry],
    live: LiveState,
    *,
    now: datetime,
    timezone_name: str = "UTC",
    **options: Any,
) -> Plan:
    return diff.compute_plan(desired, live, now=now, rules=RedBeatRules(timezone_name), **options)


def find_drift(
    desired: Sequence[DesiredEntry],
    inputs: drift.DriftInputs,
    *,
    now: datetime,
    timezone_name: str = "UTC",
    **options: Any,
) -> list[drift.DriftFinding]:
    return drift.find_drift(desired, inputs, now=now, rules=RedBeatRules(timezone_name), **options)


def health_repairs(
    entry: DesiredEntry, current: LiveEntry, now: datetime, timezone_name: str
) -> tuple[Repair, ...]:
    return diff.health_repairs(entry, current, now, RedBeatRules(timezone_name))


def expected_score(
    spec: Schedule, last_run_at: datetime, enabled: bool, timezone_name: str
) -> float:
    return scheduling.expected_score(spec, last_run_at, enabled, RedBeatRules(timezone_name))


def next_due(spec: Schedule, last_run_at: datetime, timezone_name: str) -> datetime | None:
    return scheduling.next_due(spec, last_run_at, RedBeatRules(timezone_name))
