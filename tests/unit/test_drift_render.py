"""Drift reports as text, JSON and markdown, and as Prometheus metrics.

The text report is compared line by line; metrics are read back from the exposition format
``generate_latest`` produces, the same text a scrape returns.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.drift_findings import DriftFinding, DriftReport, Kind, Severity
from reconciler.render.drift_report import (
    DRIFT_FORMAT_VERSION,
    drift_dict,
    drift_json,
    drift_markdown,
    drift_text,
)
from reconciler.services.metrics import DriftMetrics

UTC = timezone.utc
CHECKED_AT = datetime(2024, 6, 10, 12, 0, 5, 123_456, tzinfo=UTC)

UNMANAGED = DriftFinding(
    Kind.UNMANAGED,
    Severity.INFO,
    "app-job",
    "an entry created outside the reconciler",
    "nothing to do",
)
UNMARKED = DriftFinding(
    Kind.UNMARKED,
    Severity.WARNING,
    "hourly",
    "the ownership marker is missing",
    "run 'reconciler apply' (or drift --fix)",
)
MODIFIED = DriftFinding(
    Kind.MODIFIED,
    Severity.ERROR,
    "nightly",
    "its definition in Redis differs from the schedule files",
    "run 'reconciler apply' to restore it (or drift --fix)",
    ('schedule.hour: "4" -> "3"', 'kwargs.region: "us" -> "eu"'),
)
MISSING = DriftFinding(
    Kind.MISSING,
    Severity.ERROR,
    "backup",
    "in the schedule files but not in Redis",
    "run 'reconciler apply' (or drift --fix)",
)
BEAT_DOWN = DriftFinding(
    Kind.BEAT_NOT_RUNNING,
    Severity.ERROR,
    None,
    "beat's lock key is absent",
    "start celery beat",
)
DANGLING = DriftFinding(
    Kind.DANGLING,
    Severity.WARNING,
    "ghost",
    "a member whose entry hash is gone",
    "remove the member",
)


def report(*findings: DriftFinding) -> DriftReport:
    return DriftReport(
        tuple(findings),
        CHECKED_AT,
        managed_count=4,
        unmanaged_count=1,
        duration_seconds=0.123456789,
        target="redis://redis.internal:6379/0",
        key_prefix="redbeat:",
    )


# Deliberately shuffled: the renderers sort.
SMALL = report(UNMANAGED, UNMARKED, MODIFIED, DANGLING, BEAT_DOWN, MISSING)


# --- text ---------------------------------------------------------------------------------


def test_text_lists_errors_then_warnings_then_info() -> None:
    assert drift_text(SMALL).splitlines() == [
        "error   beat-not-running: beat's lock key is absent",
        "          -> start celery beat",
        "error   missing backup: in the schedule files but not in Redis",
        "          -> run 'reconciler apply' (or drift --fix)",
        "error   modified nightly: its definition in Redis differs from the schedule files",
        '          schedule.hour: "4" -> "3"',
        '          kwargs.region: "us" -> "eu"',
        "          -> run 'reconciler apply' to restore it (or drift --fix)",
        "warning dangling ghost: a member whose entry hash is gone",
        "          -> remove the member",
        "warning unmarked hourly: the ownership marker is missing",
        "          -> run 'reconciler apply' (or drift --fix)",
        "info    unmanaged app-job: an entry created outside the reconciler",
        "          -> nothing to do",
        "",
        "Drift: 3 error(s), 2 warning(s) in redbeat:.",
    ]


def test_text_order_is_stable_whatever_order_the_findings_came_in() -> None:
    findings = list(SMALL.findings)

    assert drift_text(report(*reversed(findings))) == drift_text(SMALL)
    assert drift_text(report(*sorted(findings, key=lambda f: f.explanation))) == drift_text(SMALL)


def test_text_orders_one_kind_by_name() -> None:
    names = ["zeta", "alpha", "mid"]
    findings = [DriftFinding(Kind.MISSING, Severity.ERROR, n, "gone", "apply") for n in names]

    lines = drift_text(report(*findings)).splitlines()

    assert lines[0:6:2] == [
        "error   missing alpha: gone",
        "error   missing mid: gone",
        "error   missing zeta: gone",
    ]


def test_text_of_a_clean_check_is_the_summary() -> None:
    assert drift_text(report()) == (
        "No drift: RedBeat matches the schedule files and is healthy.\n"
    )


def test_text_of_information_only_says_no_drift() -> None:
    assert drift_text(report(UNMANAGED)).splitlines() == [
        "info    unmanaged app-job: an entry created outside the reconciler",
        "          -> nothing to do",
        "",
        "No drift: RedBeat matches the schedule files and is healthy (1 informational note).",
    ]


# --- JSON ---------------------------------------------------------------------------------


def test_json_structure() -> None:
    document = json.loads(drift_json(SMALL))

    assert document == {
        "format_version": DRIFT_FORMAT_VERSION,
        "checked_at": "2024-06-10T12:00:05+00:00",
        "target": "redis://redis.internal:6379/0",
        "key_prefix": "redbeat:",
        "drift": True,
        "summary": "Drift: 3 error(s), 2 warning(s) in redbeat:.",
        "managed_count": 4,
        "unmanaged_count": 1,
        "duration_seconds": 0.1235,
        "findings": [
            {
                "kind": "beat-not-running",
                "severity": "error",
                "name": None,
                "explanation": "beat's lock key is absent",
                "action": "start celery beat",
                "details": [],
            },
            {
                "kind": "missing",
                "severity": "error",
                "name": "backup",
                "explanation": "in the schedule files but not in Redis",
                "action": "run 'reconciler apply' (or drift --fix)",
                "details": [],
            },
            {
                "kind": "modified",
                "severity": "error",
                "name": "nightly",
                "explanation": "its definition in Redis differs from the schedule files",
                "action": "run 'reconciler apply' to restore it (or drift --fix)",
                "details": ['schedule.hour: "4" -> "3"', 'kwargs.region: "us" -> "eu"'],
            },
            {
                "kind": "dangling",
                "severity": "warning",
                "name": "ghost",
                "explanation": "a member whose entry hash is gone",
                "action": "remove the member",
                "details": [],
            },
            {
                "kind": "unmarked",
                "severity": "warning",
                "name": "hourly",
                "explanation": "the ownership marker is missing",
                "action": "run 'reconciler apply' (or drift --fix)",
                "details": [],
            },
            {
                "kind": "unmanaged",
                "severity": "info",
                "name": "app-job",
                "explanation": "an entry created outside the reconciler",
                "action": "nothing to do",
                "details": [],
            },
        ],
    }
    assert DRIFT_FORMAT_VERSION == 1


@pytest.mark.parametrize(
    ("findings", "drift"),
    [
        pytest.param((), False, id="clean"),
        pytest.param((UNMANAGED,), False, id="info-only"),
        pytest.param((UNMANAGED, DANGLING), True, id="warning"),
        pytest.param((MISSING,), True, id="error"),
    ],
)
def test_json_drift_flag_follows_alerting(findings: tuple[DriftFinding, ...], drift: bool) -> None:
    document = json.loads(drift_json(report(*findings)))

    assert document["drift"] is drift
    assert len(document["findings"]) == len(findings)


def test_json_is_the_dict_indented_with_a_final_newline() -> None:
    text = drift_json(SMALL)

    assert text.endswith("}\n")
    assert text.startswith('{\n  "format_version": 1,')
    assert json.loads(text) == drift_dict(SMALL)


# --- markdown -----------------------------------------------------------------------------


def test_markdown_table() -> None:
    assert drift_markdown(report(UNMANAGED, MISSING, BEAT_DOWN)).splitlines() == [
        "### :warning: RedBeat drift (`redbeat:`)",
        "",
        "**Drift: 2 error(s), 0 warning(s) in redbeat:.**",
        "",
        "| severity | finding | entry | what to do |",
        "| --- | --- | --- | --- |",
        "| error | beat-not-running |  | beat's lock key is absent. start celery beat |",
        "| error | missing | `backup` | in the schedule files but not in Redis. "
        "run 'reconciler apply' (or drift --fix) |",
        "| info | unmanaged | `app-job` | an entry created outside the reconciler. nothing to do |",
    ]


def test_markdown_of_a_clean_check_has_no_table() -> None:
    assert drift_markdown(report()) == (
        "### :white_check_mark: RedBeat drift (`redbeat:`)\n"
        "\n"
        "**No drift: RedBeat matches the schedule files and is healthy.**\n"
    )


def test_markdown_of_information_only_is_a_check_mark_with_the_notes() -> None:
    lines = drift_markdown(report(UNMANAGED)).splitlines()

    assert lines[0] == "### :white_check_mark: RedBeat drift (`redbeat:`)"
    assert lines[-1].startswith("| info | unmanaged | `app-job` |")


def cells(row: str) -> list[str]:
    """The cells of a GitHub-flavoured markdown table row: split at unescaped pipes (inside
    code spans too, as GFM does)."""
    assert row.startswith("| ")
    assert row.endswith(" |")
    parts, current, escaped = [], "", False
    for char in row[1:-1]:
        if char == "|" and not escaped:
            parts.append(current.strip())
            current = ""
        else:
            current += char
        escaped = char == "\\" and not escaped
    parts.append(current.strip())
    return parts


def test_markdown_escapes_pipes_in_explanations_and_actions() -> None:
    piped = DriftFinding(
        Kind.EVICTION_RISK,
        Severity.INFO,
        None,
        "could not read Redis's configuration (NOPERM no permissions to run 'config|get')",
        "check a|b with your provider",
    )

    row = drift_markdown(report(piped)).splitlines()[-1]

    assert cells(row) == [
        "info",
        "eviction-risk",
        "",
        "could not read Redis's configuration (NOPERM no permissions to run 'config\\|get'). "
        "check a\\|b with your provider",
    ]


def test_markdown_escapes_pipes_in_entry_names() -> None:
    # Entry names may contain '|' (names.py forbids only control and invisible characters),
    # and unmanaged names come straight from Redis. GFM splits cells at a bare '|' even
    # inside a code span, so the name must be escaped too.
    piped = DriftFinding(Kind.MISSING, Severity.ERROR, "reports|eu", "gone", "apply")

    row = drift_markdown(report(piped)).splitlines()[-1]

    assert len(cells(row)) == 4, row
    assert cells(row)[2] == "`reports\\|eu`"


# --- metrics ------------------------------------------------------------------------------


def scrape(metrics: DriftMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry, as a scrape would see it."""
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def findings_gauge(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[tuple[str, str], float]:
    return {
        (labels[0][1], labels[1][1]): value
        for (name, labels), value in samples.items()
        if name == "redbeat_reconciler_drift_findings"
    }


def test_record_sets_every_kind_and_severity() -> None:
    metrics = DriftMetrics()
    two_missing = DriftFinding(Kind.MISSING, Severity.ERROR, "other", "gone", "apply")

    metrics.record(report(UNMANAGED, UNMARKED, MODIFIED, MISSING, two_missing, BEAT_DOWN))

    gauge = findings_gauge(scrape(metrics))
    assert len(gauge) == len(Kind) * len(Severity)
    nonzero = {labels: value for labels, value in gauge.items() if value}
    assert nonzero == {
        ("unmanaged", "info"): 1.0,
        ("unmarked", "warning"): 1.0,
        ("modified", "error"): 1.0,
        ("missing", "error"): 2.0,
        ("beat-not-running", "error"): 1.0,
    }
    assert gauge[("orphan", "warning")] == 0.0
    assert gauge[("stale-score", "error")] == 0.0


def test_record_sets_time_duration_and_entry_counts() -> None:
    metrics = DriftMetrics()

    metrics.record(report(UNMANAGED))

    samples = scrape(metrics)
    assert samples[("redbeat_reconciler_drift_last_check_timestamp_seconds", ())] == (
        CHECKED_AT.timestamp()
    )
    assert samples[("redbeat_reconciler_drift_check_duration_seconds", ())] == 0.123456789
    assert samples[("redbeat_reconciler_entries", (("state", "managed"),))] == 4.0
    assert samples[("redbeat_reconciler_entries", (("state", "unmanaged"),))] == 1.0
    assert samples[("redbeat_reconciler_drift_check_failures_total", ())] == 0.0


def test_a_later_check_clears_what_went_away() -> None:
    metrics = DriftMetrics()
    metrics.record(report(MISSING, UNMARKED))

    metrics.record(DriftReport((), datetime(2024, 6, 10, 12, 5, tzinfo=UTC)))

    samples = scrape(metrics)
    assert set(findings_gauge(samples).values()) == {0.0}
    assert samples[("redbeat_reconciler_drift_last_check_timestamp_seconds", ())] == (
        datetime(2024, 6, 10, 12, 5, tzinfo=UTC).timestamp()
    )
    assert samples[("redbeat_reconciler_entries", (("state", "managed"),))] == 0.0


def test_record_failure_counts_failed_checks() -> None:
    metrics = DriftMetrics()
    metrics.record(report(MISSING))

    metrics.record_failure()
    metrics.record_failure()

    samples = scrape(metrics)
    assert samples[("redbeat_reconciler_drift_check_failures_total", ())] == 2.0
    # A failed check leaves the last good check's numbers in place.
    assert findings_gauge(samples)[("missing", "error")] == 1.0
    assert samples[("redbeat_reconciler_drift_last_check_timestamp_seconds", ())] == (
        CHECKED_AT.timestamp()
    )


def test_each_instance_has_its_own_registry() -> None:
    first, second = DriftMetrics(), DriftMetrics()
    first.record_failure()

    assert scrape(second)[("redbeat_reconciler_drift_check_failures_total", ())] == 0.0
