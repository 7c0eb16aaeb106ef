"""A plan for one target names it, and each change says which file and overlays it came from:
in the terminal text, the pull-request markdown and the JSON."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from reconciler.core.plan import Action, Change, FieldChange, Plan
from reconciler.render.plan_text import plan_markdown, plan_text
from reconciler.services.planfile import plan_to_dict

UTC = timezone.utc
RUNS = tuple(datetime(2024, 6, day, 3, tzinfo=UTC) for day in (11, 12, 13))
OVERLAID = Change(
    "nightly-report",
    Action.UPDATE,
    definition="{}",
    field_changes=(FieldChange("options.queue", "reports", "reports-prod"),),
    next_runs=RUNS,
    source="schedules/reports.yaml:9:3",
    overlays=("overlays/production.yaml:4:3", "overlays/eu.yaml:2:3"),
    live_managed=True,
)
PLAIN = Change("heartbeat", Action.CREATE, definition="{}", next_runs=RUNS, source="s.yaml:3:3")
PRODUCTION = Plan(changes=(OVERLAID, PLAIN), unchanged=("a",), target_name="production")


def test_text_names_the_target_and_the_overlays() -> None:
    assert plan_text(PRODUCTION).splitlines() == [
        "Target: production",
        "  ~ nightly-report  (update)",
        "        from schedules/reports.yaml:9:3, overlay overlays/production.yaml:4:3, overlay "
        "overlays/eu.yaml:2:3",
        '        options.queue: "reports" -> "reports-prod"',
        "        next runs: 2024-06-11 03:00:00 UTC, 2024-06-12 03:00:00 UTC, 2024-06-13 "
        "03:00:00 UTC",
        "  + heartbeat  (create)",
        "        from s.yaml:3:3",
        "        next runs: 2024-06-11 03:00:00 UTC, 2024-06-12 03:00:00 UTC, 2024-06-13 "
        "03:00:00 UTC",
        "",
        "Plan: 1 to create, 1 to update, 0 to adopt, 0 to delete, 0 to repair, 1 unchanged.",
    ]


def test_text_without_a_target_has_no_target_line() -> None:
    plan = Plan(changes=(PLAIN,), unchanged=("a",))
    assert plan_text(plan).splitlines()[0] == "  + heartbeat  (create)"


def test_markdown_names_the_target_and_the_overlays() -> None:
    text = plan_markdown(PRODUCTION)
    assert text.startswith("### RedBeat schedule plan for target `production` (`redbeat:`)\n")
    assert (
        "from schedules/reports.yaml:9:3, overlay overlays/production.yaml:4:3, overlay "
        "overlays/eu.yaml:2:3" in text
    )
    assert plan_markdown(Plan(changes=(PLAIN,))).startswith(
        "### RedBeat schedule plan (`redbeat:`)\n"
    )


def test_json_names_the_target_and_the_overlays() -> None:
    document = json.loads(json.dumps(plan_to_dict(PRODUCTION)))
    assert document["target_name"] == "production"
    assert [change["overlays"] for change in document["changes"]] == [
        ["overlays/production.yaml:4:3", "overlays/eu.yaml:2:3"],
        [],
    ]
    assert "overlay_paths" not in document  # only saved plans carry what apply re-reads
    assert plan_to_dict(Plan())["target_name"] is None
