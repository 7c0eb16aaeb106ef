"""Overlays: JSON Merge Patches (RFC 7396) over the entries of the schedule files, per target.

Mappings merge key by key, other values replace, null removes a key; naming another kind of
schedule replaces the entry's; ``name: null`` removes the entry; overlays apply in order.
Problems with a value an overlay wrote point at the overlay, others at the schedule file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.core.model import CronSchedule, IntervalSchedule
from reconciler.core.problems import SourceLocation
from reconciler.load.desired_state import LoadResult, read_schedule_files

if TYPE_CHECKING:
    from reconciler.core.model import DesiredEntry

    from .cli_runner import Workspace

SCHEDULES = """
version: 1
defaults:
  options: {queue: reports, priority: 5}
schedules:
  nightly-report:
    task: app.tasks.report
    cron: "0 3 * * *"
    args: [1, 2, 3]
    kwargs: {fmt: pdf, lang: en}
  heartbeat:
    task: app.tasks.ping
    every: 30s
  month-end:
    task: app.tasks.close_books
    rrule: {freq: MONTHLY, bymonthday: -1, byhour: 23, dtstart: "2026-01-01T00:00:00+00:00"}
"""
# Line numbers of SCHEDULES as written to schedules/reports.yaml.
NIGHTLY_LINE, HEARTBEAT_LINE = 5, 10


def load(workspace: Workspace, *overlays: str, schedules: str = SCHEDULES) -> LoadResult:
    workspace.write("schedules/reports.yaml", schedules)
    return read_schedule_files([Path("schedules")], overlays=[Path(name) for name in overlays])


def entries(result: LoadResult) -> dict[str, DesiredEntry]:
    assert result.problems == [], "\n".join(str(problem) for problem in result.problems)
    return {entry.name: entry for entry in result.entries}


def overlay(workspace: Workspace, patches: str, name: str = "overlays/production.yaml") -> str:
    workspace.write(name, "version: 1\npatches:\n" + patches)
    return name


def problems(result: LoadResult) -> list[str]:
    return [str(problem) for problem in result.problems]


# --- merge semantics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "field", "expected"),
    [
        pytest.param("task: app.tasks.report_v2", "task", "app.tasks.report_v2", id="replace"),
        pytest.param(
            "options: {queue: reports-prod}",
            "options",
            {"queue": "reports-prod", "priority": 5},
            id="deep-merge-over-defaults",
        ),
        pytest.param(
            "kwargs: {lang: fr, tz: CET}",
            "kwargs",
            {"fmt": "pdf", "lang": "fr", "tz": "CET"},
            id="deep-merge-adds-keys",
        ),
        pytest.param("kwargs: {fmt: null}", "kwargs", {"lang": "en"}, id="null-removes-a-key"),
        pytest.param(
            "options: {queue: null}", "options", {"priority": 5}, id="null-removes-a-default"
        ),
        pytest.param("args: [9]", "args", [9], id="lists-are-replaced-whole"),
        pytest.param("enabled: false", "enabled", False, id="disable-in-one-target"),
    ],
)
def test_a_patch_merges_into_the_entry(
    workspace: Workspace, patch: str, field: str, expected: Any
) -> None:
    name = overlay(workspace, f"  nightly-report:\n    {patch}\n")
    found = entries(load(workspace, name))
    assert getattr(found["nightly-report"], field) == expected
    assert found["heartbeat"].options == {"queue": "reports", "priority": 5}  # not patched


def test_naming_another_kind_replaces_the_schedule(workspace: Workspace) -> None:
    name = overlay(
        workspace, "  nightly-report:\n    every: 1h\n  heartbeat:\n    cron: '*/5 * * * *'\n"
    )
    found = entries(load(workspace, name))
    assert found["nightly-report"].schedule == IntervalSchedule(3600.0)
    assert found["heartbeat"].schedule == CronSchedule(minute="*/5")
    assert found["heartbeat"].schedule_source == SourceLocation(name, 6, 11)


def test_a_patch_of_the_same_kind_merges_into_it(workspace: Workspace) -> None:
    name = overlay(workspace, "  month-end:\n    rrule: {byhour: 21}\n")
    schedule = entries(load(workspace, name))["month-end"].schedule
    assert (getattr(schedule, "byhour", None), getattr(schedule, "bymonthday", None)) == (21, -1)


def test_a_cron_mapping_merges_and_a_cron_string_is_replaced(workspace: Workspace) -> None:
    base = SCHEDULES.replace('cron: "0 3 * * *"', "cron: {minute: 0, hour: 3}")
    name = overlay(workspace, "  nightly-report:\n    cron: {hour: 4}\n")
    assert entries(load(workspace, name, schedules=base))["nightly-report"].schedule == (
        CronSchedule(minute=0, hour=4)
    )
    name = overlay(workspace, "  nightly-report:\n    cron: '30 4 * * *'\n")
    assert entries(load(workspace, name, schedules=base))["nightly-report"].schedule == (
        CronSchedule(minute="30", hour="4")
    )


def test_a_cron_mapping_over_a_cron_string_is_refused(workspace: Workspace) -> None:
    # Merged as RFC 7396 says, {hour: 3} would replace "0 3 * * *" whole: every minute.
    name = overlay(workspace, "  nightly-report:\n    cron: {hour: 4}\n")
    assert problems(load(workspace, name)) == [
        f"{name}:4:11: overlay patches 'cron' of schedule 'nightly-report' with a mapping, but "
        "the schedule file writes it as the string '0 3 * * *': a mapping would replace every "
        "field it does not name with '*'. Write the whole cron string in the overlay, or the "
        "mapping form in the schedule file"
    ]


def test_a_null_patch_removes_the_entry_from_the_target(workspace: Workspace) -> None:
    name = overlay(workspace, "  heartbeat: null\n")
    result = load(workspace, name)
    assert sorted(entries(result)) == ["month-end", "nightly-report"]
    assert sorted(entry.name for entry in load(workspace).entries) == [
        "heartbeat",
        "month-end",
        "nightly-report",
    ]


def test_overlays_apply_in_order(workspace: Workspace) -> None:
    first = overlay(
        workspace, "  nightly-report:\n    options: {queue: a, priority: 1}\n", "a.yaml"
    )
    second = overlay(workspace, "  nightly-report:\n    options: {queue: b}\n", "b.yaml")
    entry = entries(load(workspace, first, second))["nightly-report"]
    assert entry.options == {"queue": "b", "priority": 1}
    assert entry.overlay_sources == (SourceLocation("a.yaml", 3, 3), SourceLocation("b.yaml", 3, 3))
    assert entries(load(workspace, second, first))["nightly-report"].options["queue"] == "a"


def test_an_overlay_folder_applies_its_files_in_sorted_order(workspace: Workspace) -> None:
    overlay(workspace, "  nightly-report:\n    options: {queue: from-b}\n", "overlays/eu/b.yaml")
    overlay(workspace, "  nightly-report:\n    options: {queue: from-a}\n", "overlays/eu/a.yml")
    result = load(workspace, "overlays/eu")
    assert entries(result)["nightly-report"].options["queue"] == "from-b"
    assert result.overlays == ["overlays/eu/a.yml", "overlays/eu/b.yaml"]


def test_an_empty_patch_changes_nothing_but_is_recorded(workspace: Workspace) -> None:
    name = overlay(workspace, "  heartbeat: {}\n")
    entry = entries(load(workspace, name))["heartbeat"]
    assert entry == entries(load(workspace))["heartbeat"]
    assert entry.overlay_sources == (SourceLocation(name, 3, 3),)


def test_the_schedule_files_data_is_not_changed_by_patching(workspace: Workspace) -> None:
    workspace.write("schedules/reports.yaml", SCHEDULES)
    name = overlay(
        workspace, "  nightly-report:\n    options: {queue: p}\n    kwargs: {fmt: null}\n"
    )
    patched = read_schedule_files([Path("schedules")], overlays=[Path(name)])
    plain = read_schedule_files([Path("schedules")])
    assert entries(patched)["nightly-report"].options["queue"] == "p"
    assert entries(plain)["nightly-report"].options["queue"] == "reports"
    assert entries(plain)["nightly-report"].kwargs == {"fmt": "pdf", "lang": "en"}


def test_values_an_overlay_wrote_are_located_in_it(workspace: Workspace) -> None:
    name = overlay(workspace, "  nightly-report:\n    options: {queue: reports-prod}\n")
    workspace.write("schedules/reports.yaml", SCHEDULES)
    # What checks against the Celery app point at (a queue the app does not declare).
    loaded = read_schedule_files(
        [Path("schedules")], overlays=[Path(name)], entry_checks=lambda entries: []
    )
    entry = entries(loaded)["nightly-report"]
    assert entry.field_sources["options.queue"] == SourceLocation(name, 4, 22)
    assert entry.field_sources["task"] == SourceLocation("schedules/reports.yaml", 6, 11)
    assert entry.source == SourceLocation("schedules/reports.yaml", NIGHTLY_LINE, 3)


# --- problems ----------------------------------------------------------------------------


def test_a_problem_with_a_patched_value_points_at_the_overlay(workspace: Workspace) -> None:
    name = overlay(
        workspace, "  nightly-report:\n    options: {priority: 300}\n    cron: '61 * * * *'\n"
    )
    assert problems(load(workspace, name)) == [
        "overlays/production.yaml:4:25: 'options.priority' must be less than or equal to 255",
        "overlays/production.yaml:5:11: cron minute field '61' is invalid: Invalid end range: "
        "61 > 59 (valid: 0-59, '*', lists a,b, ranges a-b and steps */n)",
    ]


def test_a_problem_with_an_unpatched_value_points_at_the_schedule_file(
    workspace: Workspace,
) -> None:
    base = SCHEDULES.replace("every: 30s", "every: 0")
    name = overlay(workspace, "  heartbeat:\n    options: {queue: q}\n")
    assert problems(load(workspace, name, schedules=base)) == [
        f"schedules/reports.yaml:{HEARTBEAT_LINE + 2}:12: 'every' must be a positive duration, "
        "got 0"
    ]


def test_an_unknown_key_in_a_patch_points_at_the_overlay(workspace: Workspace) -> None:
    name = overlay(workspace, "  nightly-report:\n    options: {queeu: x}\n")
    [problem] = problems(load(workspace, name))
    assert problem.startswith(
        "overlays/production.yaml:4:15: unknown key 'queeu'; did you mean 'queue'?"
    )


def test_a_patch_for_an_undeclared_name_is_an_error(workspace: Workspace) -> None:
    name = overlay(workspace, "  heartbeat: {enabled: false}\n  nightly-reprot:\n    task: x\n")
    assert problems(load(workspace, name)) == [
        "overlays/production.yaml:4:3: overlay patches 'nightly-reprot', which no schedule "
        "file declares; did you mean 'nightly-report'?"
    ]


def test_removing_a_key_the_entry_does_not_have_is_an_error(workspace: Workspace) -> None:
    name = overlay(workspace, "  nightly-report:\n    kwargs: {fromat: null}\n")
    assert problems(load(workspace, name)) == [
        "overlays/production.yaml:4:14: overlay removes 'kwargs.fromat', which schedule "
        "'nightly-report' does not have; did you mean 'fmt'?"
    ]


def test_a_patch_after_the_entry_was_removed_is_an_error(workspace: Workspace) -> None:
    first = overlay(workspace, "  heartbeat: null\n", "a.yaml")
    second = overlay(workspace, "  heartbeat: {enabled: false}\n", "b.yaml")
    assert problems(load(workspace, first, second)) == [
        "b.yaml:3:3: overlay patches 'heartbeat', which a.yaml:3:3 removed from this target"
    ]


def test_a_patch_leaving_no_schedule_is_reported(workspace: Workspace) -> None:
    name = overlay(workspace, "  heartbeat:\n    every: null\n")
    assert problems(load(workspace, name)) == [
        f"schedules/reports.yaml:{HEARTBEAT_LINE}:3: schedule 'heartbeat' needs exactly one of "
        "cron, every or rrule"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "version: 1\nschedules:\n  heartbeat: {enabled: false}\n",
            [
                "overlays/production.yaml:1:1: overlay needs 'patches': a mapping of schedule "
                "name to the keys to change (null removes the entry); 'patches: {}' changes "
                "nothing",
                "overlays/production.yaml:2:1: unknown top-level key 'schedules' in an overlay: "
                "an overlay changes entries the schedule files declare: write them under "
                "'patches'",
            ],
            id="schedules-instead-of-patches",
        ),
        pytest.param(
            "patches: {}\n",
            ["overlays/production.yaml:1:1: overlay needs 'version: 1'"],
            id="no-version",
        ),
        pytest.param(
            "version: 2\npatches: {}\n",
            ["overlays/production.yaml:1:10: overlay needs 'version: 1', got 2"],
            id="unsupported-version",
        ),
        pytest.param(
            "version: 1\npatches: [heartbeat]\npatchs: {}\n",
            [
                "overlays/production.yaml:2:10: overlay needs 'patches': a mapping of schedule "
                "name to the keys to change (null removes the entry); 'patches: {}' changes "
                "nothing",
                "overlays/production.yaml:3:1: unknown top-level key 'patchs' in an overlay; "
                "did you mean 'patches'? (valid: version, patches)",
            ],
            id="patches-not-a-mapping",
        ),
        pytest.param(
            "version: 1\npatches:\n  heartbeat: [every, 5m]\n",
            [
                "overlays/production.yaml:3:14: patch for 'heartbeat' must be a mapping of the "
                "keys to change, or null to remove the entry from this target"
            ],
            id="patch-not-a-mapping",
        ),
        pytest.param(
            "",
            [
                "overlays/production.yaml:1:1: overlay holds nothing; expected a mapping with "
                "'version: 1' and 'patches'"
            ],
            id="empty",
        ),
        pytest.param(
            "version: 1\npatches: {a: 1\n",
            [
                "overlays/production.yaml:3:1: YAML syntax error: while parsing a flow mapping, "
                "expected ',' or '}', but got '<stream end>'"
            ],
            id="yaml-syntax",
        ),
    ],
)
def test_overlay_file_problems(workspace: Workspace, text: str, expected: list[str]) -> None:
    workspace.write("overlays/production.yaml", text)
    assert problems(load(workspace, "overlays/production.yaml")) == expected


def test_missing_and_empty_overlay_paths_are_errors(workspace: Workspace) -> None:
    (workspace.root / "overlays" / "empty").mkdir(parents=True)
    assert problems(load(workspace, "overlays/nowhere.yaml", "overlays/empty")) == [
        "overlays/empty:1:1: no overlay files (*.yaml, *.yml) found",
        "overlays/nowhere.yaml:1:1: no such file or folder",
    ]


def test_an_overlay_among_the_schedule_files_is_explained(workspace: Workspace) -> None:
    workspace.write("schedules/production.yaml", "version: 1\npatches: {heartbeat: null}\n")
    assert (
        "schedules/production.yaml:2:1: unknown top-level key 'patches': this is an overlay, "
        "not a schedule file: list it in a target's 'overlays' in reconciler.toml, outside "
        "the schedule paths" in problems(load(workspace))
    )


# --- the fingerprint that makes saved plans stale ---------------------------------------


def test_the_fingerprint_follows_the_overlays(workspace: Workspace) -> None:
    name = overlay(workspace, "  heartbeat: {enabled: false}\n")
    first = load(workspace, name).fingerprint
    assert load(workspace, name).fingerprint == first
    assert load(workspace).fingerprint != first
    overlay(workspace, "  heartbeat: {enabled: true}\n")
    assert load(workspace, name).fingerprint != first
