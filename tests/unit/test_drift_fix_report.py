"""The report of ``drift --fix``, in every format: what the check found before the fix,
entry by entry what the fix wrote, and what is left (the check after it). The summary never
says "No drift" alone when a fix just wrote something."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from reconciler.core.drift_findings import DriftFix, DriftReport, FixedEntry
from reconciler.core.plan import Action, Repair
from reconciler.render.drift_report import drift_dict, drift_json, drift_markdown, drift_text
from tests.unit.test_drift_render import (
    BEAT_DOWN,
    DANGLING,
    MISSING,
    MODIFIED,
    UNMANAGED,
    UNMARKED,
    report,
)

FIX = DriftFix(
    found=(UNMANAGED, UNMARKED, MODIFIED, MISSING),  # shuffled: the renderers sort
    written=(
        FixedEntry("backup", Action.CREATE),
        FixedEntry("nightly", Action.UPDATE),
        FixedEntry("hourly", Action.REPAIR, (Repair.UNMARKED,)),
        FixedEntry("nightly", Action.REPAIR, rechecked=True),
    ),
)
FIXED_CLEAN = replace(report(UNMANAGED), fix=FIX)
FIXED_SUMMARY = (
    "No drift: RedBeat matches the schedule files and is healthy (1 informational note). "
    "Fixed by drift --fix: 1 created, 1 updated, 0 adopted, 0 deleted, 1 repaired. "
    "The re-check after the writes repaired 1 more."
)


def test_text_says_what_was_found_what_was_fixed_and_what_is_left() -> None:
    assert drift_text(FIXED_CLEAN).splitlines() == [
        "Found before the fix:",
        "  error   missing backup",
        "  error   modified nightly",
        "  warning unmarked hourly",
        "  info    unmanaged app-job",
        "Fixed by drift --fix:",
        "  created   backup",
        "  updated   nightly",
        "  repaired  hourly (unmarked)",
        "  repaired  nightly (re-check after the writes: a racing beat tick)",
        "Left after the fix:",
        "info    unmanaged app-job: an entry created outside the reconciler",
        "          -> nothing to do",
        "",
        FIXED_SUMMARY,
    ]


def test_text_when_the_fix_left_nothing() -> None:
    lines = drift_text(replace(report(), fix=FIX)).splitlines()

    assert lines[-4:] == [
        "Left after the fix:",
        "  nothing",
        "",
        "No drift: RedBeat matches the schedule files and is healthy. Fixed by drift --fix: "
        "1 created, 1 updated, 0 adopted, 0 deleted, 1 repaired. The re-check after the "
        "writes repaired 1 more.",
    ]


def test_markdown_for_a_job_summary_has_the_three_parts() -> None:
    assert drift_markdown(replace(report(UNMANAGED, DANGLING), fix=FIX)).splitlines() == [
        "### :warning: RedBeat drift (`redbeat:`)",
        "",
        "**Drift: 0 error(s), 1 warning(s) in redbeat:. Fixed by drift --fix: 1 created, "
        "1 updated, 0 adopted, 0 deleted, 1 repaired. The re-check after the writes repaired "
        "1 more.**",
        "",
        "#### Found before the fix",
        "",
        "| severity | finding | entry |",
        "| --- | --- | --- |",
        "| error | missing | `backup` |",
        "| error | modified | `nightly` |",
        "| warning | unmarked | `hourly` |",
        "| info | unmanaged | `app-job` |",
        "",
        "#### Fixed by drift --fix",
        "",
        "| action | entry |",
        "| --- | --- |",
        "| created | `backup` |",
        "| updated | `nightly` |",
        "| repaired (unmarked) | `hourly` |",
        "| repaired (re-check after the writes: a racing beat tick) | `nightly` |",
        "",
        "#### Left after the fix",
        "",
        "| severity | finding | entry | what to do |",
        "| --- | --- | --- | --- |",
        "| warning | dangling | `ghost` | a member whose entry hash is gone. remove the member |",
        "| info | unmanaged | `app-job` | an entry created outside the reconciler. nothing to do |",
    ]


def test_markdown_when_the_fix_left_nothing() -> None:
    lines = drift_markdown(replace(report(), fix=FIX)).splitlines()

    assert lines[0] == "### :white_check_mark: RedBeat drift (`redbeat:`)"
    assert lines[-3:] == ["#### Left after the fix", "", "Nothing."]


def test_json_keeps_findings_as_what_is_left_and_adds_the_fix() -> None:
    document = json.loads(drift_json(FIXED_CLEAN))

    assert document["summary"] == FIXED_SUMMARY
    assert document["drift"] is False
    assert [finding["name"] for finding in document["findings"]] == ["app-job"]
    assert document["fix"] == {
        "summary": "Fixed by drift --fix: 1 created, 1 updated, 0 adopted, 0 deleted, "
        "1 repaired. The re-check after the writes repaired 1 more.",
        "counts": {"create": 1, "update": 1, "adopt": 0, "delete": 0, "repair": 1},
        "written": [
            {"name": "backup", "action": "create", "repairs": [], "rechecked": False},
            {"name": "nightly", "action": "update", "repairs": [], "rechecked": False},
            {"name": "hourly", "action": "repair", "repairs": ["unmarked"], "rechecked": False},
            {"name": "nightly", "action": "repair", "repairs": [], "rechecked": True},
        ],
        "found": [finding.as_dict() for finding in (MISSING, MODIFIED, UNMARKED, UNMANAGED)],
    }


def test_json_without_fix_has_no_fix_key() -> None:
    assert "fix" not in drift_dict(report(MISSING))


@pytest.mark.parametrize(
    ("fixed", "summary"),
    [
        pytest.param(
            replace(report(BEAT_DOWN), fix=DriftFix((BEAT_DOWN,))),
            "Drift: 1 error(s), 0 warning(s) in redbeat:. Nothing for drift --fix to repair.",
            id="drift-the-fix-cannot-repair",
        ),
        pytest.param(
            replace(report(UNMANAGED), fix=DriftFix((UNMANAGED,))),
            "No drift: RedBeat matches the schedule files and is healthy (1 informational note).",
            id="nothing-to-fix",
        ),
    ],
)
def test_a_fix_that_wrote_nothing_reports_as_the_check(fixed: DriftReport, summary: str) -> None:
    assert fixed.summary() == summary
    unfixed = replace(fixed, fix=None)
    assert drift_text(fixed) == drift_text(unfixed).replace(unfixed.summary(), summary)
    assert "Found before the fix" not in drift_text(fixed) + drift_markdown(fixed)
    assert json.loads(drift_json(fixed))["fix"]["written"] == []
