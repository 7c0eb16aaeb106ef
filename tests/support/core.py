"""The pure core as the unit tests call it: in beat's timezone, with Celery's and RedBeat's
own rules (schedules/redbeat_rules.RedBeatRules), as the services layer calls it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.beat.redbeat_rules import RedBeatRules
from reconciler.core import diff, drift_findings, scores

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from reconciler.core.live import LiveEntry, LiveState
    from reconciler.core.model import DesiredEntry, Schedule
    from reconciler.core.plan import Plan, Repair


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
    inputs: drift_findings.DriftInputs,
    *,
    now: datetime,
    timezone_name: str = "UTC",
    **options: Any,
) -> list[drift_findings.DriftFinding]:
    return drift_findings.find_drift(
        desired, inputs, now=now, rules=RedBeatRules(timezone_name), **options
    )


def health_repairs(
    entry: DesiredEntry, current: LiveEntry, now: datetime, timezone_name: str
) -> tuple[Repair, ...]:
    return diff.health_repairs(entry, current, now, RedBeatRules(timezone_name))


def expected_score(
    spec: Schedule, last_run_at: datetime, enabled: bool, timezone_name: str
) -> float:
    return scores.expected_score(spec, last_run_at, enabled, RedBeatRules(timezone_name))


def next_due(spec: Schedule, last_run_at: datetime, timezone_name: str) -> datetime | None:
    return scores.next_due(spec, last_run_at, RedBeatRules(timezone_name))
