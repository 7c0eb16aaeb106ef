"""Drift alerts: de-duplication (``next_alert``), the webhook payload and Slack's text.
Delivery, against a real HTTP server, is in tests/integration/test_alert_delivery.py.

``Watcher`` plays the watch loop's part: it keeps the ``AlertState`` the way ``watch`` does
(updated only once an alert went out), so each test reads as a sequence of checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from reconciler import __version__
from reconciler.core.drift_findings import DriftFinding, DriftReport, Kind, Severity
from reconciler.services.alerts import Alert, AlertState, next_alert, payload, slack_text

UTC = timezone.utc
T0 = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

MISSING = DriftFinding(
    Kind.MISSING,
    Severity.ERROR,
    "nightly",
    "in the schedule files but not in Redis",
    "run 'reconciler apply' (or drift --fix)",
)
UNMARKED = DriftFinding(
    Kind.UNMARKED,
    Severity.WARNING,
    "hourly",
    "the ownership marker or the managed index entry is missing",
    "run 'reconciler apply' (or drift --fix)",
)
BEAT_DOWN = DriftFinding(
    Kind.BEAT_NOT_RUNNING, Severity.ERROR, None, "beat's lock key is absent", "start beat"
)
UNMANAGED = DriftFinding(
    Kind.UNMANAGED, Severity.INFO, "app-job", "created outside the reconciler", "nothing to do"
)
MODIFIED = DriftFinding(
    Kind.MODIFIED,
    Severity.ERROR,
    "nightly",
    "its definition in Redis differs from the schedule files",
    "run 'reconciler apply' to restore it (or drift --fix)",
    ('schedule.hour: "4" -> "3"',),
)


def report(*findings: DriftFinding, at: datetime = T0) -> DriftReport:
    return DriftReport(
        tuple(findings),
        at,
        managed_count=3,
        unmanaged_count=1,
        duration_seconds=0.25,
        target="redis://:***@redis.internal:6379/0",
        key_prefix="redbeat:",
    )


@dataclass
class Watcher:
    remind_every: timedelta | None = HOUR
    state: AlertState = field(default_factory=AlertState)

    def check(self, *findings: DriftFinding, at: datetime) -> str | None:
        """One check: the status of the alert sent, or None when nothing is sent."""
        alert = next_alert(report(*findings, at=at), self.state, at, self.remind_every)
        if alert is None:
            return None
        self.state = AlertState(alert.keys, at)
        return alert.status


# --- de-duplication -----------------------------------------------------------------------


def test_the_life_of_an_alert() -> None:
    watcher = Watcher()

    assert watcher.check(MISSING, at=T0) == "firing"
    assert watcher.check(MISSING, at=T0 + timedelta(minutes=1)) is None
    assert watcher.check(MISSING, UNMARKED, at=T0 + timedelta(minutes=2)) == "firing"
    assert watcher.check(UNMARKED, at=T0 + timedelta(minutes=3)) == "firing"
    assert watcher.check(at=T0 + timedelta(minutes=4)) == "resolved"
    assert watcher.check(at=T0 + timedelta(minutes=5)) is None
    assert watcher.check(at=T0 + 5 * HOUR) is None
    assert watcher.check(UNMARKED, at=T0 + 6 * HOUR) == "firing"


def test_the_first_alert_carries_the_report_and_the_keys() -> None:
    drifted = report(MISSING, BEAT_DOWN, UNMANAGED)

    alert = next_alert(drifted, AlertState(), T0, HOUR)

    assert alert == Alert(
        "firing",
        drifted,
        frozenset({("missing", "nightly"), ("beat-not-running", BEAT_DOWN.explanation)}),
    )


def test_a_resolved_alert_has_no_keys() -> None:
    state = AlertState(frozenset({MISSING.key}), T0)

    alert = next_alert(report(), state, T0 + HOUR, HOUR)

    assert alert is not None
    assert (alert.status, alert.keys) == ("resolved", frozenset())


def test_the_same_set_in_another_order_is_not_a_change() -> None:
    watcher = Watcher()
    assert watcher.check(MISSING, UNMARKED, at=T0) == "firing"

    assert watcher.check(UNMARKED, MISSING, at=T0 + timedelta(minutes=1)) is None


def test_new_details_on_the_same_entry_are_the_same_problem() -> None:
    watcher = Watcher()
    assert watcher.check(MODIFIED, at=T0) == "firing"

    edited_again = DriftFinding(
        Kind.MODIFIED, Severity.ERROR, "nightly", "differs", "apply", ('schedule.hour: "5" -> "3"',)
    )
    assert watcher.check(edited_again, at=T0 + timedelta(minutes=1)) is None


def test_the_same_kind_on_another_entry_is_a_change() -> None:
    watcher = Watcher()
    assert watcher.check(MISSING, at=T0) == "firing"

    other = DriftFinding(Kind.MISSING, Severity.ERROR, "weekly", "gone", "apply")
    assert watcher.check(other, at=T0 + timedelta(minutes=1)) == "firing"


@pytest.mark.parametrize(
    ("elapsed", "status"),
    [
        (timedelta(minutes=59, seconds=59), None),
        (HOUR, "reminder"),
        (3 * HOUR, "reminder"),
    ],
)
def test_a_reminder_once_the_interval_has_passed(elapsed: timedelta, status: str | None) -> None:
    watcher = Watcher(remind_every=HOUR)
    assert watcher.check(MISSING, at=T0) == "firing"

    assert watcher.check(MISSING, at=T0 + elapsed) == status


def test_reminders_repeat_from_the_last_one_sent() -> None:
    watcher = Watcher(remind_every=HOUR)
    assert watcher.check(MISSING, at=T0) == "firing"
    assert watcher.check(MISSING, at=T0 + HOUR) == "reminder"

    assert watcher.check(MISSING, at=T0 + 1.5 * HOUR) is None
    assert watcher.check(MISSING, at=T0 + 2 * HOUR) == "reminder"


def test_a_reminder_carries_the_current_report() -> None:
    state = AlertState(frozenset({MISSING.key}), T0)
    later = report(MISSING, at=T0 + HOUR)

    alert = next_alert(later, state, T0 + HOUR, HOUR)

    assert alert == Alert("reminder", later, frozenset({MISSING.key}))


def test_no_reminders_without_an_interval() -> None:
    watcher = Watcher(remind_every=None)
    assert watcher.check(MISSING, at=T0) == "firing"

    assert watcher.check(MISSING, at=T0 + 1000 * HOUR) is None


def test_no_reminder_for_a_clean_state() -> None:
    watcher = Watcher(remind_every=HOUR)

    assert watcher.check(at=T0) is None
    assert watcher.check(at=T0 + 10 * HOUR) is None


def test_informational_findings_never_alert() -> None:
    watcher = Watcher(remind_every=HOUR)
    note = DriftFinding(Kind.EVICTION_RISK, Severity.INFO, None, "CONFIG refused", "ask")

    assert watcher.check(UNMANAGED, at=T0) is None
    assert watcher.check(UNMANAGED, note, at=T0 + 10 * HOUR) is None
    assert watcher.check(MISSING, UNMANAGED, at=T0 + 11 * HOUR) == "firing"
    # An informational note appearing or going away is no change either.
    assert watcher.check(MISSING, at=T0 + 11 * HOUR + timedelta(minutes=1)) is None
    assert watcher.check(UNMANAGED, at=T0 + 11 * HOUR + timedelta(minutes=2)) == "resolved"


def test_an_undelivered_alert_is_tried_again_at_the_next_check() -> None:
    state = AlertState()  # watch keeps the old state when delivery failed
    for minute in range(3):
        alert = next_alert(report(MISSING), state, T0 + timedelta(minutes=minute), HOUR)
        assert alert is not None
        assert alert.status == "firing"


# --- payload and Slack text ---------------------------------------------------------------


def test_payload() -> None:
    drifted = report(MODIFIED, UNMANAGED, BEAT_DOWN)
    alert = next_alert(drifted, AlertState(), T0, HOUR)
    assert alert is not None

    body = payload(alert)

    assert set(body) == {
        "status",
        "text",
        "summary",
        "target",
        "key_prefix",
        "checked_at",
        "findings",
        "tool",
    }
    assert body["status"] == "firing"
    assert body["text"] == slack_text(alert)
    assert body["summary"] == "Drift: 2 error(s), 0 warning(s) in redbeat:."
    assert body["target"] == "redis://:***@redis.internal:6379/0"
    assert body["key_prefix"] == "redbeat:"
    assert body["checked_at"] == "2024-06-10T12:00:00+00:00"
    assert body["tool"] == f"redbeat-reconciler {__version__}"
    # Every finding, informational ones included, as the report holds them.
    assert body["findings"] == [
        {
            "kind": "modified",
            "severity": "error",
            "name": "nightly",
            "explanation": "its definition in Redis differs from the schedule files",
            "action": "run 'reconciler apply' to restore it (or drift --fix)",
            "details": ['schedule.hour: "4" -> "3"'],
        },
        {
            "kind": "unmanaged",
            "severity": "info",
            "name": "app-job",
            "explanation": "created outside the reconciler",
            "action": "nothing to do",
            "details": [],
        },
        {
            "kind": "beat-not-running",
            "severity": "error",
            "name": None,
            "explanation": "beat's lock key is absent",
            "action": "start beat",
            "details": [],
        },
    ]
    assert json.loads(json.dumps(body)) == body


def test_a_resolved_payload() -> None:
    alert = next_alert(report(UNMANAGED), AlertState(frozenset({MISSING.key}), T0), T0, HOUR)
    assert alert is not None

    body = payload(alert)

    assert body["status"] == "resolved"
    assert body["summary"] == (
        "No drift: RedBeat matches the schedule files and is healthy (1 informational note)."
    )
    assert body["text"] == (
        ":white_check_mark: RedBeat drift resolved: No drift: RedBeat matches the schedule "
        "files and is healthy (1 informational note)."
    )


def test_slack_text_lists_what_alerts() -> None:
    alert = Alert("firing", report(MISSING, UNMANAGED, UNMARKED, BEAT_DOWN))

    assert slack_text(alert).splitlines() == [
        ":rotating_light: RedBeat drift firing: Drift: 2 error(s), 1 warning(s) in redbeat:.",
        "• *error* missing: `nightly` in the schedule files but not in Redis",
        "• warning unmarked: `hourly` the ownership marker or the managed index entry is missing",
        "• *error* beat-not-running: beat's lock key is absent",
    ]


def test_a_reminder_rings_a_bell() -> None:
    alert = Alert("reminder", report(MISSING))

    assert slack_text(alert).startswith(":bell: RedBeat drift reminder: Drift: 1 error(s)")


@pytest.mark.parametrize("count", [60, 3_000, 20_000])
def test_slack_text_stays_short_for_many_findings(count: int) -> None:
    findings = [
        DriftFinding(
            Kind.MISSING,
            Severity.ERROR,
            f"tenant-{index:05d}-nightly-report",
            "in the schedule files but not in Redis (never applied, evicted, deleted or "
            "cleared by someone): beat does not run it",
            "run 'reconciler apply' (or drift --fix)",
        )
        for index in range(count)
    ]

    text = slack_text(Alert("firing", report(*findings)))

    assert len(text) <= 3000
    lines = text.splitlines()
    assert lines[0] == (
        f":rotating_light: RedBeat drift firing: Drift: {count} error(s), 0 warning(s) in redbeat:."
    )
    assert lines[-1] == "… (more in the JSON findings)"
    # Whole lines only: the cut never splits a finding.
    assert all(line.endswith("beat does not run it") for line in lines[1:-1])
    assert len(lines) > 10


def test_slack_text_is_not_cut_when_it_fits() -> None:
    text = slack_text(Alert("firing", report(MISSING, UNMARKED)))

    assert "more in the JSON" not in text
    assert len(text.splitlines()) == 3
