"""``${env:NAME}`` references: syntax checked offline, resolved at plan time, never shown.

The secret values used here are distinctive strings; every output a user or a machine can
see (plan text, markdown, JSON, saved plan, drift findings, alerts) is searched for them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.beat.redbeat_codec import encode_definition, encode_meta
from reconciler.core.drift_findings import DriftInputs, DriftReport, Kind
from reconciler.core.fingerprints import live_fingerprint
from reconciler.core.live import LiveEntry, LiveState
from reconciler.core.ownership import MARKER_VALUE
from reconciler.core.plan import Action, Repair
from reconciler.core.secrets import (
    MissingVariables,
    Scrubber,
    entry_marker,
    resolve_references,
    sensitive_in_marker,
    template_problem,
    value_digest,
)
from reconciler.load.desired_state import read_schedule_files
from reconciler.render.drift_report import drift_json, drift_text
from reconciler.render.plan_text import plan_markdown, plan_text
from reconciler.services.alerts import AlertState, next_alert, payload
from reconciler.services.export import Unexportable, exportable
from reconciler.services.planfile import load_plan, plan_to_dict, save_plan
from tests.support.core import compute_plan, find_drift

from .cli_runner import assert_single_problem, assert_valid, job

if TYPE_CHECKING:
    from pathlib import Path

    from reconciler.core.model import DesiredEntry
    from reconciler.core.plan import Plan

    from .cli_runner import Workspace

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
OLD_SECRET = "old-S3CRET-value-111"
NEW_SECRET = "new-S3CRET-value-222"
SECRETS = (OLD_SECRET, NEW_SECRET)

BILLING = """\
version: 1
schedules:
  billing-sync:
    task: app.tasks.sync
    every: 5m
    args: ["${env:BILLING_TOKEN}", "plain"]
    kwargs:
      auth: {header: "Bearer ${env:BILLING_TOKEN}"}
      literal: "costs $${env:NOT_A_REFERENCE}"
    options: {queue: billing}
"""


def load(workspace: Workspace, text: str = BILLING) -> list[DesiredEntry]:
    workspace.write("schedules/billing.yaml", text)
    loaded = read_schedule_files([workspace.root / "schedules"], now=NOW)
    assert not loaded.problems, loaded.problems
    return loaded.entries


def resolved(workspace: Workspace, secret: str, text: str = BILLING) -> DesiredEntry:
    [entry] = resolve_references(load(workspace, text), {"BILLING_TOKEN": secret})
    return entry


def live_of(entry: DesiredEntry, *, marker: str | None = None) -> LiveState:
    """Redis as an apply of ``entry`` leaves it (one run ago, scored as beat would)."""
    definition = encode_definition(entry)
    found = LiveEntry(
        entry.name,
        definition_text=definition,
        meta_text=encode_meta(NOW, 3, "UTC"),
        marker=entry_marker(entry) if marker is None else marker,
        score=NOW.timestamp() + 300,
        indexed=True,
    )
    return LiveState({entry.name: found}, managed_names=frozenset({entry.name}))


def every_output(plan: Plan, tmp_path: Path) -> str:
    saved = tmp_path / "plan.json"
    save_plan(plan, saved)
    return "\n".join(
        [
            plan_text(plan),
            plan_markdown(plan),
            json.dumps(plan_to_dict(plan)),
            saved.read_text(),
        ]
    )


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked into:\n{text}"


# --- syntax -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("${env:TOKEN}", None),
        ("Bearer ${env:TOKEN} and ${env:_OTHER2}", None),
        ("a literal $${env:TOKEN} and $${x}", None),
        ("$5 and {braces} and $ {x}", None),
        ("${TOKEN}", "write ${env:NAME}, or $${ for a literal '${'"),
        ("${env:TOKEN", "write ${env:NAME}, or $${ for a literal '${'"),
        ("${env:}", "'${env:}' is not a valid reference"),
        ("${env:1ABC}", "'${env:1ABC}' is not a valid reference"),
        ("${env:A-B}", "'${env:A-B}' is not a valid reference"),
    ],
)
def test_template_syntax(text: str, problem: str | None) -> None:
    found = template_problem(text)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_validate_points_at_a_malformed_reference(workspace: Workspace) -> None:
    run = workspace.check(job('every: 5m\nkwargs: {token: "${BILLING_TOKEN}"}'))
    assert_single_problem(run, "s.yaml:6:21", "'kwargs.token': '${' starts a reference")


def test_validate_refuses_a_reference_in_a_key(workspace: Workspace) -> None:
    run = workspace.check(job('every: 5m\nkwargs: {"${env:KEY}": 1}'))
    assert_single_problem(run, "s.yaml:6:14", "only values are resolved from the environment")


def test_validate_needs_no_variable(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BILLING_TOKEN", raising=False)
    workspace.write("schedules/billing.yaml", BILLING)
    assert_valid(workspace.validate())


def test_a_reference_where_a_number_is_needed_is_a_type_error(workspace: Workspace) -> None:
    run = workspace.check(job('every: 5m\noptions: {priority: "${env:PRIORITY}"}'))
    assert_single_problem(run, "s.yaml:6:25", "'options.priority' must be an integer")


# --- resolving --------------------------------------------------------------------------


def test_references_resolve_where_they_are_written(workspace: Workspace) -> None:
    [loaded] = load(workspace)
    assert loaded.args[0] == "${env:BILLING_TOKEN}"  # as written until resolved
    with pytest.raises(ValueError, match="unresolved"):
        encode_definition(loaded)

    entry = resolved(workspace, NEW_SECRET)

    assert entry.args == [NEW_SECRET, "plain"]
    assert entry.kwargs == {
        "auth": {"header": f"Bearer {NEW_SECRET}"},
        "literal": "costs ${env:NOT_A_REFERENCE}",
    }
    assert entry.templates == ()
    assert dict(entry.sensitive) == {
        ("args", 0): "${env:BILLING_TOKEN}",
        ("kwargs", "auth", "header"): "Bearer ${env:BILLING_TOKEN}",
    }
    definition = json.loads(encode_definition(entry))
    assert definition["args"][0] == NEW_SECRET
    # The loaded entry was not changed in place.
    assert loaded.args[0] == "${env:BILLING_TOKEN}"


def test_an_escape_alone_needs_no_environment(workspace: Workspace) -> None:
    text = job('every: 5m\nargs: ["$${env:X} stays"]')
    [entry] = resolve_references(load(workspace, text), {})
    assert entry.args == ["${env:X} stays"]
    assert entry.sensitive == ()


@pytest.mark.parametrize("environ", [{}, {"BILLING_TOKEN": ""}], ids=["unset", "empty"])
def test_a_missing_variable_is_reported_at_each_reference(
    workspace: Workspace, environ: dict[str, str]
) -> None:
    entries = load(workspace)
    with pytest.raises(MissingVariables) as caught:
        resolve_references(entries, environ)

    problems = [str(problem) for problem in caught.value.problems]
    assert problems == [
        "schedules/billing.yaml:6:12: ${env:BILLING_TOKEN} is not set (or is empty), but "
        "schedule 'billing-sync' passes it in args[0]; set it in the environment of plan, "
        "apply and drift (e.g. from a CI secret)",
        "schedules/billing.yaml:8:22: ${env:BILLING_TOKEN} is not set (or is empty), but "
        "schedule 'billing-sync' passes it in kwargs.auth.header; set it in the environment "
        "of plan, apply and drift (e.g. from a CI secret)",
    ]
    assert str(caught.value) == (
        "1 environment variable referenced by the schedule files is not set "
        "(BILLING_TOKEN); nothing was read from or written to Redis"
    )


# --- never shown ------------------------------------------------------------------------


def test_a_created_entry_records_where_its_secrets_are(
    workspace: Workspace, tmp_path: Path
) -> None:
    entry = resolved(workspace, NEW_SECRET)
    plan = compute_plan([entry], LiveState(), now=NOW)

    [change] = plan.changes
    assert change.action is Action.CREATE
    assert change.definition is not None
    assert NEW_SECRET in change.definition  # for Redis, and only there
    assert sensitive_in_marker(change.marker) == dict(entry.sensitive)
    assert_no_secret(every_output(plan, tmp_path))


def test_a_changed_secret_is_an_update_shown_masked(workspace: Workspace, tmp_path: Path) -> None:
    before = resolved(workspace, OLD_SECRET)
    after = resolved(workspace, NEW_SECRET)

    plan = compute_plan([after], live_of(before), now=NOW)

    [change] = plan.changes
    assert change.action is Action.UPDATE
    assert [item.describe() for item in change.field_changes] == [
        'args[0]: "(sensitive value) ${env:BILLING_TOKEN}" -> '
        '"(sensitive value) ${env:BILLING_TOKEN} (changed)"',
        'kwargs.auth.header: "(sensitive value) Bearer ${env:BILLING_TOKEN}" -> '
        '"(sensitive value) Bearer ${env:BILLING_TOKEN} (changed)"',
    ]
    assert_no_secret(every_output(plan, tmp_path))


def test_the_same_secret_is_no_change(workspace: Workspace) -> None:
    entry = resolved(workspace, OLD_SECRET)
    plan = compute_plan([entry], live_of(entry), now=NOW)
    assert plan.changes == ()
    assert plan.unchanged == ("billing-sync",)


def test_a_secret_no_longer_referenced_is_still_masked(
    workspace: Workspace, tmp_path: Path
) -> None:
    before = resolved(workspace, OLD_SECRET)
    plain = BILLING.replace('"${env:BILLING_TOKEN}", ', '"public", ')
    after = resolved(workspace, NEW_SECRET, plain)

    plan = compute_plan([after], live_of(before), now=NOW)

    [change] = plan.changes
    [first] = [item for item in change.field_changes if item.path == "args[0]"]
    assert first.describe() == 'args[0]: "(sensitive value) ${env:BILLING_TOKEN}" -> "public"'
    assert_no_secret(every_output(plan, tmp_path))


def test_a_whole_mapping_added_or_removed_is_masked_inside(
    workspace: Workspace, tmp_path: Path
) -> None:
    before = resolved(workspace, OLD_SECRET)
    after = replace(before, kwargs={})

    plan = compute_plan([after], live_of(before), now=NOW)

    described = [item.describe() for item in plan.changes[0].field_changes]
    assert (
        'kwargs.auth: {"header": "(sensitive value) Bearer ${env:BILLING_TOKEN}"}' in (described[0])
    )
    assert_no_secret(every_output(plan, tmp_path))


def test_a_marker_without_the_sensitive_paths_is_repaired(workspace: Workspace) -> None:
    entry = resolved(workspace, OLD_SECRET)
    plan = compute_plan([entry], live_of(entry, marker=MARKER_VALUE), now=NOW)

    [change] = plan.changes
    assert change.repairs == (Repair.UNMARKED,)
    assert sensitive_in_marker(change.marker) == dict(entry.sensitive)


def test_a_pruned_entry_with_secrets_is_masked_in_the_saved_plan(
    workspace: Workspace, tmp_path: Path
) -> None:
    before = resolved(workspace, OLD_SECRET)
    plan = compute_plan([], live_of(before), now=NOW, prune=True)

    [change] = plan.changes
    assert change.action is Action.DELETE
    assert_no_secret(every_output(plan, tmp_path))


def test_a_saved_plan_holds_digests_not_values(workspace: Workspace, tmp_path: Path) -> None:
    before = resolved(workspace, OLD_SECRET)
    after = resolved(workspace, NEW_SECRET)
    plan = replace(compute_plan([after], live_of(before), now=NOW), digest_key="k" * 32)
    path = tmp_path / "plan.json"

    save_plan(plan, path)
    document: dict[str, Any] = json.loads(path.read_text())
    loaded = load_plan(path)

    [saved] = document["changes"]
    assert document["secret_digest"].startswith("scrypt:")
    assert json.loads(saved["definition"])["args"] == ["(sensitive value)", "plain"]
    assert loaded.secret_digest == document["secret_digest"]
    assert loaded.changes[0].masked
    assert loaded.changes[0].sensitive.paths == (
        ("args", 0),
        ("kwargs", "auth", "header"),
    )
    assert_no_secret(path.read_text())


def test_drift_findings_and_alerts_mask_secrets(workspace: Workspace) -> None:
    before = resolved(workspace, OLD_SECRET)
    after = resolved(workspace, NEW_SECRET)

    findings = find_drift([after], DriftInputs(live_of(before)), now=NOW)

    [finding] = [item for item in findings if item.name == "billing-sync"]
    assert finding.kind is Kind.MODIFIED
    assert any("(sensitive value)" in detail for detail in finding.details)
    report = DriftReport(tuple(findings), checked_at=NOW, key_prefix="redbeat:")
    alert = next_alert(report, AlertState(), NOW, None)
    assert alert is not None
    assert_no_secret(json.dumps(payload(alert)))
    assert_no_secret(drift_text(report) + drift_json(report))


def test_export_writes_the_reference_back_and_escapes_literals(workspace: Workspace) -> None:
    entry = resolved(workspace, OLD_SECRET)
    found = live_of(entry).entries["billing-sync"]

    mapping = exportable(found, now=NOW)

    assert mapping["args"] == ["${env:BILLING_TOKEN}", "plain"]
    assert mapping["kwargs"] == {
        "auth": {"header": "Bearer ${env:BILLING_TOKEN}"},
        "literal": "costs $${env:NOT_A_REFERENCE}",
    }
    assert_no_secret(json.dumps(mapping))


def test_export_of_an_unmanaged_entry_keeps_its_literal_text(workspace: Workspace) -> None:
    entry = resolved(workspace, OLD_SECRET)
    found = replace(live_of(entry).entries["billing-sync"], marker=None, indexed=False)

    mapping = exportable(found, now=NOW)

    # Not written by the reconciler: its values are literal, so '${' is escaped.
    assert mapping["kwargs"]["literal"] == "costs $${env:NOT_A_REFERENCE}"
    assert mapping["args"][0] == OLD_SECRET


# --- values that moved, messages that quote them -----------------------------------------


def shifted(entry: DesiredEntry) -> LiveState:
    """Redis after someone inserted an argument before the secret (marker unchanged)."""
    live = live_of(entry)
    found = live.entries[entry.name]
    definition = json.loads(found.definition_text or "")
    definition["args"] = ["dry-run", *definition["args"]]
    moved = replace(found, definition_text=json.dumps(definition))
    return replace(live, entries={entry.name: moved})


def test_a_secret_moved_in_redis_is_masked_by_its_value(
    workspace: Workspace, tmp_path: Path
) -> None:
    before = resolved(workspace, OLD_SECRET)
    after = resolved(workspace, NEW_SECRET)

    plan = compute_plan([after], shifted(before), now=NOW)
    findings = find_drift([after], DriftInputs(shifted(before)), now=NOW)

    described = [item.describe() for item in plan.changes[0].field_changes]
    assert 'args[1]: "(sensitive value)" -> "plain"' in described, described
    assert_no_secret(every_output(plan, tmp_path))
    assert_no_secret(json.dumps([finding.as_dict() for finding in findings]))


def test_export_refuses_an_entry_whose_secret_moved(workspace: Workspace) -> None:
    entry = resolved(workspace, OLD_SECRET)
    found = shifted(entry).entries["billing-sync"]

    with pytest.raises(Unexportable) as caught:
        exportable(found, now=NOW)

    assert "were moved or replaced in Redis (args[0], args[1])" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_a_reference_in_the_task_name_is_refused(workspace: Workspace) -> None:
    run = workspace.check(job("every: 5m", task="app.tasks.${env:TASK}"))
    assert_single_problem(run, "s.yaml:4:11", "'task' holds '${'")


def test_printed_text_is_scrubbed_of_every_resolved_value(workspace: Workspace) -> None:
    entry = resolved(workspace, "scrub-ME-7f3a")
    message = 'Command # 1 (HSET redbeat:x definition {"args": ["scrub-ME-7f3a"]}) failed'
    scrub = Scrubber()
    assert scrub(message) == message  # nothing revealed to this command: nothing hidden
    scrub.reveal(entry.secret_values)
    assert scrub(message) == 'Command # 1 (HSET redbeat:x definition {"args": ["***"]}) failed'


def test_a_saved_plan_holds_no_fast_hash_of_a_secret(workspace: Workspace, tmp_path: Path) -> None:
    before = resolved(workspace, OLD_SECRET)
    after = resolved(workspace, NEW_SECRET)
    path = tmp_path / "plan.json"

    save_plan(compute_plan([after], live_of(before), now=NOW), path)

    text = path.read_text()
    for secret in (*SECRETS, f"Bearer {OLD_SECRET}", f"Bearer {NEW_SECRET}"):
        assert value_digest(secret) not in text
    assert "digests" not in json.loads(text)["changes"][0]["marker"]


def test_the_live_fingerprint_does_not_depend_on_secret_values(workspace: Workspace) -> None:
    before = resolved(workspace, OLD_SECRET)
    moved = shifted(before)
    found = moved.entries["billing-sync"]
    # The same entry with the secrets already replaced by the mask, marker unchanged.
    definition = json.loads(found.definition_text or "")
    definition["args"][1] = "(sensitive value)"
    definition["kwargs"]["auth"]["header"] = "(sensitive value)"
    blanked = replace(found, definition_text=json.dumps(definition))

    assert live_fingerprint(moved) == live_fingerprint(
        replace(moved, entries={"billing-sync": blanked})
    )


def test_a_secret_moved_into_a_mapping_key_is_masked(workspace: Workspace, tmp_path: Path) -> None:
    before = resolved(workspace, OLD_SECRET)
    after = resolved(workspace, NEW_SECRET)
    live = live_of(before)
    found = live.entries["billing-sync"]
    definition = json.loads(found.definition_text or "")
    definition["kwargs"][OLD_SECRET] = 1
    moved = replace(found, definition_text=json.dumps(definition))

    plan = compute_plan([after], replace(live, entries={"billing-sync": moved}), now=NOW)

    assert any(item.path == "kwargs.(sensitive key)" for item in plan.changes[0].field_changes)
    assert_no_secret(every_output(plan, tmp_path))


def test_export_accepts_a_literal_equal_to_a_secret(workspace: Workspace) -> None:
    text = job('every: 5m\nargs: ["${env:TENANT}", "acme"]')
    [entry] = resolve_references(load(workspace, text), {"TENANT": "acme"})

    mapping = exportable(live_of(entry).entries["job"], now=NOW)

    assert mapping["args"] == ["${env:TENANT}", "acme"]
