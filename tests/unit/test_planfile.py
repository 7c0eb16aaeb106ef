"""Saved plans (``plan --out``) and the fingerprints that make apply refuse stale ones.

``load_plan`` must give back exactly the plan that was saved (dataclass equality over every
field), and refuse anything else with one clear ``UsageError`` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from reconciler.core.beat_clock import BeatState, BeatTiming, BeatWake
from reconciler.core.errors import ReconcilerError, UsageError
from reconciler.core.fingerprints import files_fingerprint, live_fingerprint
from reconciler.core.live import LiveEntry, LiveState
from reconciler.core.plan import (
    Action,
    Change,
    Clock,
    Conflict,
    ConflictKind,
    FieldChange,
    Plan,
    Repair,
)
from reconciler.core.secrets import Sensitive
from reconciler.render.plan_text import plan_text
from reconciler.services.planfile import PLAN_FILE_KIND, PLAN_FORMAT_VERSION, load_plan, save_plan
from reconciler.store.keys import MARKER_VALUE

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
DEFINITION = (
    '{"name": "nightly", "task": "app.tasks.report", "args": [1, "\\u00e9t\\u00e9"], '
    '"kwargs": {}, "options": {}, "schedule": {"__type__": "interval", "every": 60.0, '
    '"relative": false}, "enabled": true}'
)


def runs(zone: timezone | ZoneInfo = UTC) -> tuple[datetime, ...]:
    return tuple(datetime(2024, 6, day, 3, 0, 0, 250_000, tzinfo=zone) for day in (11, 12, 13))


# Every field of Plan and Change set to something other than its default.
FULL_PLAN = Plan(
    changes=(
        Change(
            "billing-sync",
            Action.CREATE,
            definition=DEFINITION,
            run_on_create=True,
            clock=Clock.RUN_NOW,
            next_runs=runs(),
            expected_first_run=datetime(2024, 6, 11, 3, 4, 30, tzinfo=UTC),
            warnings=("runs once at beat's next tick (run_on_create), then on schedule",),
            source="schedules/billing.yaml:3:3",
        ),
        Change(
            "nightly",
            Action.UPDATE,
            definition=DEFINITION,
            enabled=True,
            field_changes=(
                FieldChange("args[1]", "eu", "été"),
                FieldChange("kwargs.filters", None, {"ids": [1, 2], "on": True}, added=True),
                FieldChange("options.queue", "reports", None, removed=True),
            ),
            enabling=True,
            adopt=True,
            next_runs=runs(PARIS),
            warnings=("catch-up: something", "and another"),
            source="schedules/reports.yaml:1:3",
            overlays=("overlays/production.yaml:4:3", "overlays/eu.yaml:2:3"),
            live_definition='{"name": "nightly"}',
            live_managed=False,
        ),
        Change(
            "archive",
            Action.UPDATE,
            definition=DEFINITION,
            enabled=False,
            disabling=True,
            live_definition=DEFINITION,
            live_managed=True,
        ),
        Change(
            "cleanup",
            Action.REPAIR,
            repairs=tuple(Repair),
            next_runs=runs(),
            live_definition=DEFINITION,
            live_managed=True,
        ),
        Change("legacy", Action.DELETE, live_definition=DEFINITION, live_managed=True),
        # As read back from a saved plan: the values from the environment are masked.
        Change(
            "token-sync",
            Action.UPDATE,
            definition='{"name": "token-sync", "kwargs": {"token": "(sensitive value)"}}',
            live_definition='{"name": "token-sync", "kwargs": {"token": "(sensitive value)"}}',
            live_managed=True,
            marker='{"managed_by": "redbeat-reconciler", "format": 1, "sensitive": '
            '[[["kwargs", "token"], "${env:TOKEN}"]]}',
            # Only the paths are saved: a loaded plan holds no template and no secret value
            # (two Sensitive are equal when their paths are).
            sensitive=Sensitive(
                desired={("kwargs", "token"): "${env:TOKEN}"},
                values=frozenset({"not-in-the-file"}),
            ),
            masked=True,
        ),
        Change(
            "imported",
            Action.ADOPT,
            definition=DEFINITION,
            adopt=True,
            next_runs=runs(),
            live_definition=DEFINITION,
            live_managed=False,
        ),
    ),
    unchanged=("a", "b"),
    pending_prune=("gone",),
    conflicts=(
        Conflict("imported", ConflictKind.UNMANAGED, "schedules/import.yaml:2:3"),
        Conflict("beat-static", ConflictKind.STATIC),
    ),
    prune=True,
    adopt=True,
    managed_count=7,
    created_at=datetime(2024, 6, 10, 12, 0, 1, 123_456, tzinfo=UTC),
    timezone="Europe/Paris",
    key_prefix="{redbeat}:",
    target="redis://:***@redis.example:6379/2",
    live_fingerprint="sha256:" + "a" * 64,
    files_fingerprint="sha256:" + "b" * 64,
    paths=("schedules", "more/schedules.yaml"),
    target_name="production",
    overlay_paths=("overlays/production.yaml", "overlays/eu"),
    digest_key="e" * 32,
    secret_digest="scrypt:" + "c" * 64,
    notices=("beat records its runs in Europe/Paris, but this plan uses --timezone UTC",),
    beat=BeatWake(
        BeatState.ASLEEP,
        BeatTiming(60.0, 90.0, "the Celery app 'proj'", assumed=False),
        datetime(2024, 6, 10, 12, 0, 1, 123_456, tzinfo=UTC),
        "{redbeat}::lock",
        datetime(2024, 6, 10, 11, 59, 30, tzinfo=UTC),
        datetime(2024, 6, 10, 12, 0, 30, tzinfo=UTC),
    ),
)


def test_the_full_plan_sets_every_field() -> None:
    # The round trip below only proves something for fields that differ from the default.
    defaults_plan, defaults_change = Plan(), Change("x", Action.CREATE)
    for item in fields(Plan):
        assert getattr(FULL_PLAN, item.name) != getattr(defaults_plan, item.name), item.name
    for item in fields(Change):
        assert any(
            getattr(change, item.name) != getattr(defaults_change, item.name)
            for change in FULL_PLAN.changes
        ), item.name


def test_a_saved_plan_loads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"

    save_plan(FULL_PLAN, path)
    loaded = load_plan(path)

    assert loaded == FULL_PLAN
    assert loaded.changes == FULL_PLAN.changes
    assert loaded.conflicts == FULL_PLAN.conflicts


def test_a_saved_plan_keeps_instants_and_offsets(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"

    save_plan(FULL_PLAN, path)
    loaded = load_plan(path)

    for before, after in zip(FULL_PLAN.changes, loaded.changes, strict=True):
        assert [m.utcoffset() for m in after.next_runs] == [m.utcoffset() for m in before.next_runs]
    assert loaded.created_at is not None
    assert loaded.created_at.utcoffset() == FULL_PLAN.created_at.utcoffset()  # type: ignore[union-attr]


def test_a_saved_plan_renders_as_the_plan_that_was_shown(tmp_path: Path) -> None:
    # apply --plan prints the loaded plan: it must read as the plan the reviewer saw.
    path = tmp_path / "plan.json"

    save_plan(FULL_PLAN, path)

    assert plan_text(load_plan(path)) == plan_text(FULL_PLAN)


def test_a_saved_plan_is_json_with_its_kind_and_version(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"

    save_plan(FULL_PLAN, path)
    document = json.loads(path.read_text())

    assert document["kind"] == PLAN_FILE_KIND
    assert document["format_version"] == PLAN_FORMAT_VERSION
    assert document["changes"][0]["definition"] == DEFINITION
    assert document["changes"][4]["live_definition"] == DEFINITION
    assert document["paths"] == ["schedules", "more/schedules.yaml"]
    assert document["managed_count"] == 7
    assert document["target_name"] == "production"
    assert document["overlay_paths"] == ["overlays/production.yaml", "overlays/eu"]
    assert document["changes"][1]["overlays"] == [
        "overlays/production.yaml:4:3",
        "overlays/eu.yaml:2:3",
    ]


def test_an_empty_plan_round_trips(tmp_path: Path) -> None:
    plan = Plan(unchanged=("a",), created_at=datetime(2024, 6, 10, tzinfo=UTC))
    path = tmp_path / "plan.json"

    save_plan(plan, path)

    assert load_plan(path) == plan


# --- refusing what is not a plan ----------------------------------------------------------


def saved_document() -> dict[str, Any]:
    return {
        "kind": PLAN_FILE_KIND,
        "format_version": PLAN_FORMAT_VERSION,
        "created_at": "2024-06-10T12:00:00+00:00",
        "target": "",
        "key_prefix": "redbeat:",
        "timezone": "UTC",
        "prune": False,
        "adopt": False,
        "changes": [
            {
                "name": "nightly",
                "action": "update",
                "adopt": False,
                "enabled": True,
                "enabling": False,
                "disabling": False,
                "run_on_create": False,
                "field_changes": [
                    {"path": "args[0]", "old": 1, "new": 2, "added": False, "removed": False}
                ],
                "repairs": [],
                "clock": "keep",
                "next_runs": ["2024-06-11T03:00:00+00:00"],
                "warnings": [],
                "source": None,
                "definition": DEFINITION,
                "live_definition": DEFINITION,
                "live_managed": True,
            }
        ],
        "unchanged": [],
        "pending_prune": [],
        "conflicts": [],
        "live_fingerprint": "",
        "files_fingerprint": "",
        "paths": ["schedules"],
        "managed_count": 1,
    }


def test_the_reference_document_loads(tmp_path: Path) -> None:
    # The damaged cases below each break one thing in this document.
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(saved_document()))

    plan = load_plan(path)

    assert plan.changes[0].field_changes == (FieldChange("args[0]", 1, 2),)


def test_a_format_1_plan_is_made_again(tmp_path: Path) -> None:
    # Format 1 had no clock policy per change and wrote an adoption as an update: what it
    # would apply cannot be known exactly, so it is refused like any other format.
    document = saved_document()
    document["format_version"] = 1
    del document["changes"][0]["clock"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))

    with pytest.raises(UsageError, match="has plan format 1; this reconciler applies format 2"):
        load_plan(path)


def test_a_format_2_plan_writes_adopt_as_its_own_action(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"

    save_plan(FULL_PLAN, path)
    document = json.loads(path.read_text())

    assert PLAN_FORMAT_VERSION == 2
    assert [(c["name"], c["action"], c["adopt"]) for c in document["changes"] if c["adopt"]] == [
        ("nightly", "update", True),
        ("imported", "adopt", True),
    ]
    assert (document["summary"]["adopt"], document["summary"]["adopt_and_update"]) == (1, 1)


def edited(edit: Callable[[dict[str, Any]], object]) -> str:
    document = saved_document()
    edit(document)
    return json.dumps(document)


def change_edit(key: str, value: Any) -> Callable[[dict[str, Any]], object]:
    return lambda document: document["changes"][0].__setitem__(key, value)


NOT_A_PLAN = "is not a plan saved by 'reconciler plan --out'"
DAMAGED = "is a damaged plan file ("


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("", "is not a plan file (not JSON)", id="empty-file"),
        pytest.param("Plan: 1 to create", "is not a plan file (not JSON)", id="text-output"),
        pytest.param(b"\xff\xfe\x00\x01", "is not a plan file (not JSON)", id="binary"),
        pytest.param("[]", NOT_A_PLAN, id="json-list"),
        pytest.param('{"hello": "world"}', NOT_A_PLAN, id="other-json"),
        pytest.param(edited(lambda d: d.pop("kind")), NOT_A_PLAN, id="json-output-without-kind"),
        pytest.param(
            edited(lambda d: d.update(kind="terraform-plan")), NOT_A_PLAN, id="wrong-kind"
        ),
        pytest.param(
            edited(lambda d: d.update(format_version=3)),
            "has plan format 3; this reconciler applies format 2: make a new plan",
            id="newer-format",
        ),
        pytest.param(
            edited(lambda d: d.update(format_version="1")),
            "has plan format '1'; this reconciler applies format 2: make a new plan",
            id="format-as-text",
        ),
        pytest.param(
            edited(lambda d: d.pop("format_version")),
            "has plan format None; this reconciler applies format 2",
            id="no-format",
        ),
        pytest.param(edited(lambda d: d.pop("changes")), DAMAGED, id="no-changes"),
        pytest.param(edited(lambda d: d.update(changes=None)), DAMAGED, id="changes-null"),
        pytest.param(edited(lambda d: d.update(changes=[5])), DAMAGED, id="change-not-object"),
        pytest.param(edited(lambda d: d.update(paths=5)), DAMAGED, id="paths-number"),
        pytest.param(edited(lambda d: d.update(created_at="yesterday")), DAMAGED, id="bad-date"),
        pytest.param(edited(lambda d: d.update(created_at=None)), DAMAGED, id="no-date"),
        pytest.param(edited(lambda d: d.update(managed_count="x")), DAMAGED, id="bad-count"),
        pytest.param(edited(change_edit("action", "explode")), DAMAGED, id="unknown-action"),
        pytest.param(
            edited(change_edit("repairs", [{"kind": "broken"}])), DAMAGED, id="unknown-repair"
        ),
        pytest.param(edited(change_edit("repairs", ["unscheduled"])), DAMAGED, id="bad-repair"),
        pytest.param(edited(change_edit("next_runs", ["soon"])), DAMAGED, id="bad-next-run"),
        pytest.param(
            edited(lambda d: d["changes"][0].pop("enabled")), DAMAGED, id="change-field-missing"
        ),
        pytest.param(
            edited(change_edit("field_changes", [{"path": "x"}])), DAMAGED, id="bad-field-change"
        ),
        pytest.param(
            edited(lambda d: d.update(conflicts=[{"name": "x", "kind": "other"}])),
            DAMAGED,
            id="unknown-conflict",
        ),
        # Read by hand, these became a tuple of letters and True.
        pytest.param(edited(lambda d: d.update(unchanged="abc")), DAMAGED, id="names-as-text"),
        pytest.param(edited(change_edit("enabled", "false")), DAMAGED, id="flag-as-text"),
        pytest.param(edited(lambda d: d.update(timezone="Mars/Base")), DAMAGED, id="bad-zone"),
    ],
)
def test_load_plan_refuses_what_is_not_a_plan(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "plan.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    with pytest.raises(UsageError) as refused:
        load_plan(path)

    text = str(refused.value)
    assert text.startswith(str(path))
    assert message in text
    if message == DAMAGED:
        assert text.endswith("; make a new plan")
    assert "\n" not in text


def test_a_damaged_plan_names_the_damaged_key(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(edited(lambda d: d["changes"][0].pop("enabled")))

    with pytest.raises(UsageError) as refused:
        load_plan(path)

    assert str(refused.value) == (
        f"{path} is a damaged plan file (changes.0.enabled: Field required); make a new plan"
    )


def test_load_plan_names_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"

    with pytest.raises(UsageError, match=r"^cannot read plan file .*missing\.json: No such file"):
        load_plan(path)


def test_load_plan_errors_are_reconciler_errors(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text("{}")

    with pytest.raises(ReconcilerError):
        load_plan(path)


# --- fingerprints -------------------------------------------------------------------------

ENTRY = LiveEntry(
    "nightly",
    definition_text=DEFINITION,
    meta_text='{"last_run_at": null, "total_run_count": 1}',
    marker=MARKER_VALUE,
    score=1_718_000_000.0,
    indexed=True,
    ttl_ms=-1,
)


def live(entry: LiveEntry = ENTRY, **overrides: Any) -> LiveState:
    fields_: dict[str, Any] = {
        "entries": {entry.name: entry, "other": LiveEntry("other", definition_text="{}")},
        "managed_names": frozenset({"nightly"}),
        "static_names": frozenset(),
        "round_trips": 2,
    }
    fields_.update(overrides)
    return LiveState(**fields_)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(live(replace(ENTRY, definition_text=DEFINITION + " ")), id="definition"),
        pytest.param(live(replace(ENTRY, definition_text=None)), id="definition-gone"),
        pytest.param(
            live(replace(ENTRY, marker=None, indexed=False), managed_names=frozenset()),
            id="ownership-lost",
        ),
        pytest.param(live(managed_names=frozenset({"nightly", "other"})), id="index"),
        pytest.param(live(replace(ENTRY, static=True)), id="static"),
        pytest.param(
            live(replace(ENTRY, indexed=False, marker=None)), id="managed-flag-of-the-entry"
        ),
        pytest.param(
            LiveState({"nightly": ENTRY}, managed_names=frozenset({"nightly"})),
            id="entry-gone",
        ),
    ],
)
def test_the_live_fingerprint_follows_definitions_and_ownership(changed: LiveState) -> None:
    assert live_fingerprint(changed) != live_fingerprint(live())


@pytest.mark.parametrize(
    "same",
    [
        pytest.param(live(replace(ENTRY, meta_text=None)), id="meta-gone"),
        pytest.param(
            live(replace(ENTRY, meta_text='{"last_run_at": null, "total_run_count": 2}')),
            id="meta-rewritten-by-beat",
        ),
        pytest.param(live(replace(ENTRY, score=1_718_000_060.0)), id="score"),
        pytest.param(live(replace(ENTRY, score=None)), id="score-gone"),
        pytest.param(live(replace(ENTRY, ttl_ms=5000)), id="ttl"),
        pytest.param(live(round_trips=9), id="round-trips"),
        pytest.param(live(entries=dict(reversed(list(live().entries.items())))), id="entry-order"),
    ],
)
def test_the_live_fingerprint_ignores_runtime_fields(same: LiveState) -> None:
    assert live_fingerprint(same) == live_fingerprint(live())


def test_the_live_fingerprint_is_a_sha256() -> None:
    assert live_fingerprint(live()).startswith("sha256:")
    assert len(live_fingerprint(live())) == len("sha256:") + 64


def test_the_files_fingerprint_follows_content_names_and_timezone(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("a: 1\n")
    second.write_text("b: 2\n")
    files, shown = [first, second], ["a.yaml", "b.yaml"]
    base = files_fingerprint(files, shown, "UTC")

    assert files_fingerprint(files, shown, "UTC") == base
    assert files_fingerprint(files, shown, "Europe/Paris") != base
    assert files_fingerprint(files, ["a.yaml", "c.yaml"], "UTC") != base
    assert files_fingerprint([first], ["a.yaml"], "UTC") != base
    second.write_text("b: 3\n")
    assert files_fingerprint(files, shown, "UTC") != base


def test_the_files_fingerprint_follows_the_overlays(tmp_path: Path) -> None:
    schedules, overlay = tmp_path / "a.yaml", tmp_path / "production.yaml"
    schedules.write_text("a: 1\n")
    overlay.write_text("patches: {}\n")
    without = files_fingerprint([schedules], ["a.yaml"], "UTC")
    with_overlay = files_fingerprint([schedules], ["a.yaml"], "UTC", [(overlay, "production.yaml")])

    assert files_fingerprint([schedules], ["a.yaml"], "UTC", []) == without  # unchanged
    assert with_overlay != without
    assert files_fingerprint([schedules], ["a.yaml"], "UTC", [(overlay, "eu.yaml")]) != with_overlay
    overlay.write_text("patches: {a: null}\n")
    assert files_fingerprint([schedules], ["a.yaml"], "UTC", [(overlay, "production.yaml")]) != (
        with_overlay
    )


def test_a_plan_saved_before_targets_loads_without_target_and_overlays(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(saved_document()))

    loaded = load_plan(path)

    assert (loaded.target_name, loaded.overlay_paths) == (None, ())
    assert all(change.overlays == () for change in loaded.changes)
