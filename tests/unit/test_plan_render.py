"""How a plan reads: the terminal text (line by line), markdown for pull requests, JSON.

Plans are built by hand so every line is known in advance; the order of ``changes`` is the
order ``compute_plan`` produces (desired entries by name, then deletions).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from reconciler.core.plan import Action, Change, Conflict, ConflictKind, FieldChange, Plan, Repair
from reconciler.render.plan_text import GITHUB_COMMENT_LIMIT, plan_markdown, plan_text
from reconciler.services.planfile import PLAN_FORMAT_VERSION, plan_to_dict

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CATCH_UP = (
    "catch-up: the new schedule had a run due at 2024-06-10T09:00:00+00:00 after the last run "
    "at 2024-06-10T03:00:00+00:00; beat will run it once at its next tick"
)


def daily(zone: timezone | ZoneInfo = UTC, hour: int = 3) -> tuple[datetime, ...]:
    return tuple(datetime(2024, 6, day, hour, tzinfo=zone) for day in (11, 12, 13))


PRUNING = Plan(
    changes=(
        Change(
            "billing-sync",
            Action.CREATE,
            definition="{}",
            next_runs=daily(),
            source="schedules/billing.yaml:3:3",
        ),
        Change(
            "nightly-report",
            Action.UPDATE,
            definition="{}",
            field_changes=(
                FieldChange("args[1]", "eu", "us"),
                FieldChange("kwargs.dry_run", None, True, added=True),
                FieldChange("kwargs.region", "eu", "us"),
                FieldChange("options.queue", "reports", None, removed=True),
                FieldChange("schedule.hour", "3", "4"),
            ),
            next_runs=daily(hour=4),
            warnings=(CATCH_UP,),
            source="schedules/reports.yaml:1:3",
            live_managed=True,
        ),
        Change(
            "cleanup",
            Action.REPAIR,
            repairs=(Repair.UNSCHEDULED, Repair.MISSING_META),
            next_runs=daily(),
            live_managed=True,
        ),
        Change("legacy-export", Action.DELETE, live_managed=True),
    ),
    unchanged=("a", "b"),
    conflicts=(Conflict("imported", ConflictKind.UNMANAGED, "schedules/import.yaml:2:3"),),
    prune=True,
    managed_count=5,
)

PRUNING_TEXT = [
    "  + billing-sync  (create)",
    "        from schedules/billing.yaml:3:3",
    "        next runs: 2024-06-11 03:00:00 UTC, 2024-06-12 03:00:00 UTC, 2024-06-13 03:00:00 UTC",
    "  ~ nightly-report  (update)",
    "        from schedules/reports.yaml:1:3",
    '        args[1]: "eu" -> "us"',
    "        kwargs.dry_run: (none) -> true",
    '        kwargs.region: "eu" -> "us"',
    '        options.queue: "reports" -> (none)',
    '        schedule.hour: "3" -> "4"',
    "        next runs: 2024-06-11 04:00:00 UTC, 2024-06-12 04:00:00 UTC, 2024-06-13 04:00:00 UTC",
    f"        warning: {CATCH_UP}",
    "  ! cleanup  (repair)",
    "        repair: not in the schedule sorted set, so it never fires",
    "        repair: no run history (meta), so beat would run it at once",
    "        next runs: 2024-06-11 03:00:00 UTC, 2024-06-12 03:00:00 UTC, 2024-06-13 03:00:00 UTC",
    "  - legacy-export  (delete)",
    "error: 'imported' (schedules/import.yaml:2:3) exists in Redis but is not managed by the "
    "reconciler (created by the application or by hand); use --adopt to take it over, keeping "
    "its run history",
    "",
    "Plan blocked: 1 conflict must be resolved before anything can be applied. Also planned: "
    "1 to create, 1 to update, 0 to adopt, 1 to delete, 1 to repair, 2 unchanged.",
]

KEEPING = Plan(
    changes=(
        Change(
            "archive",
            Action.UPDATE,
            enabled=False,
            disabling=True,
            field_changes=(FieldChange("enabled", True, False),),
        ),
        Change(
            "heartbeat",
            Action.UPDATE,
            enabling=True,
            field_changes=(FieldChange("enabled", False, True),),
            next_runs=daily(PARIS),
        ),
        Change("imported", Action.ADOPT, adopt=True, next_runs=daily(PARIS)),
        Change(
            "legacy",
            Action.UPDATE,
            adopt=True,
            field_changes=(FieldChange("args[0]", 1, 2),),
            next_runs=daily(PARIS),
        ),
        Change("once", Action.CREATE, next_runs=()),
        Change("parked", Action.CREATE, enabled=False),
    ),
    unchanged=("x", "y", "z"),
    pending_prune=("old-a", "old-b"),
    conflicts=(Conflict("beat-static", ConflictKind.STATIC),),
    timezone="Europe/Paris",
)

PARIS_RUNS = (
    "        next runs: 2024-06-11 03:00:00 CEST, 2024-06-12 03:00:00 CEST, "
    "2024-06-13 03:00:00 CEST"
)
KEEPING_TEXT = [
    "  ~ archive  (disable)",
    "        enabled: true -> false",
    "        disabled: beat will not run it",
    "  ~ heartbeat  (enable)",
    "        enabled: false -> true",
    PARIS_RUNS,
    "  = imported  (adopt)",
    PARIS_RUNS,
    "  ~ legacy  (adopt and update)",
    "        args[0]: 1 -> 2",
    PARIS_RUNS,
    "  + once  (create)",
    "        next runs: none (the schedule has ended)",
    "  + parked  (create)",
    "        disabled: beat will not run it",
    "",
    "Managed entries no longer in the files (would delete with --prune): old-a, old-b",
    "error: 'beat-static' is a static entry of beat's own beat_schedule config (named in the "
    ":statics set); beat deletes or rewrites it on every start. Remove it from beat_schedule or "
    "from the schedule files",
    "",
    "Plan blocked: 1 conflict must be resolved before anything can be applied. Also planned: "
    "2 to create, 3 to update, 1 to adopt, 0 to delete, 0 to repair, 3 unchanged "
    "(1 update also adopts).",
]

EMPTY = Plan(unchanged=("a", "b", "c", "d", "e"))
KEEPING_UNBLOCKED = replace(KEEPING, conflicts=())


# --- text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "lines"),
    [
        pytest.param(PRUNING, PRUNING_TEXT, id="create-update-repair-delete-conflict"),
        pytest.param(KEEPING, KEEPING_TEXT, id="enable-disable-adopt-pending-static"),
        pytest.param(
            EMPTY, ["No changes. RedBeat matches the schedule files (5 unchanged)."], id="empty"
        ),
        pytest.param(
            Plan(pending_prune=("gone",), unchanged=("a",)),
            [
                "Managed entries no longer in the files (would delete with --prune): gone",
                "",
                "No changes to apply (1 unchanged); 1 managed entry is no longer in the files "
                "(apply with --prune to delete).",
            ],
            id="only-pending",
        ),
    ],
)
def test_plan_text_line_by_line(plan: Plan, lines: list[str]) -> None:
    text = plan_text(plan)

    assert text.endswith("\n")
    assert text.splitlines() == lines


def test_the_summary_line_counts_every_action() -> None:
    plan = Plan(
        changes=(
            Change("a", Action.CREATE),
            Change("b", Action.CREATE),
            Change("c", Action.UPDATE),
            Change("d", Action.REPAIR),
            Change("j", Action.ADOPT, adopt=True),
            Change("k", Action.ADOPT, adopt=True),
            Change("l", Action.DELETE),
        ),
        unchanged=("e", "f", "g", "h", "i"),
    )

    assert plan.summary() == (
        "Plan: 2 to create, 1 to update, 2 to adopt, 1 to delete, 1 to repair, 5 unchanged."
    )
    assert plan_text(plan).splitlines()[-1] == plan.summary()


BLOCKED = Plan(
    unchanged=("a", "b", "c", "d", "e"),
    conflicts=(
        Conflict("imported", ConflictKind.UNMANAGED, "schedules/import.yaml:2:3"),
        Conflict("beat-static", ConflictKind.STATIC),
    ),
)
BLOCKED_SUMMARY = (
    "Plan blocked: 2 conflicts must be resolved before anything can be applied. "
    "Nothing else to change (5 unchanged)."
)


def test_a_plan_blocked_by_conflicts_never_says_it_matches() -> None:
    lines = plan_text(BLOCKED).splitlines()

    assert lines[0].startswith("error: 'imported' (schedules/import.yaml:2:3) exists in Redis")
    assert lines[1].startswith("error: 'beat-static' is a static entry")
    assert lines[2:] == ["", BLOCKED_SUMMARY]
    markdown = plan_markdown(BLOCKED)
    assert markdown.splitlines()[2] == f"**{BLOCKED_SUMMARY}**"
    summary = plan_to_dict(BLOCKED)["summary"]
    assert (summary["text"], summary["blocked"], summary["conflicts"]) == (
        BLOCKED_SUMMARY,
        True,
        2,
    )
    for text in (plan_text(BLOCKED), markdown, json.dumps(plan_to_dict(BLOCKED))):
        assert "matches" not in text
        assert "No changes" not in text


@pytest.mark.parametrize(
    ("plan", "summary"),
    [
        pytest.param(
            replace(BLOCKED, conflicts=BLOCKED.conflicts[:1], pending_prune=("gone",)),
            "Plan blocked: 1 conflict must be resolved before anything can be applied. "
            "Nothing else to change (5 unchanged).",
            id="one-conflict-pending-prune",
        ),
        pytest.param(
            replace(BLOCKED, changes=(Change("new", Action.CREATE),)),
            "Plan blocked: 2 conflicts must be resolved before anything can be applied. "
            "Also planned: 1 to create, 0 to update, 0 to adopt, 0 to delete, 0 to repair, "
            "5 unchanged.",
            id="with-changes",
        ),
    ],
)
def test_a_blocked_summary_counts_conflicts_and_what_else_is_planned(
    plan: Plan, summary: str
) -> None:
    assert plan.summary() == summary
    assert plan_text(plan).splitlines()[-1] == summary


def test_json_of_an_unblocked_plan_says_so() -> None:
    assert KEEPING_UNBLOCKED.summary() == (
        "Plan: 2 to create, 3 to update, 1 to adopt, 0 to delete, 0 to repair, 3 unchanged "
        "(1 update also adopts)."
    )
    assert plan_to_dict(KEEPING_UNBLOCKED)["summary"]["blocked"] is False
    assert plan_to_dict(EMPTY)["summary"]["blocked"] is False


def test_an_empty_plan_says_no_changes_and_nothing_else() -> None:
    assert plan_text(EMPTY) == "No changes. RedBeat matches the schedule files (5 unchanged).\n"


@pytest.mark.parametrize("plan", [PRUNING, KEEPING, EMPTY], ids=["pruning", "keeping", "empty"])
def test_no_ansi_codes_unless_asked(plan: Plan) -> None:
    plain = plan_text(plan)
    coloured = plan_text(plan, colour=True)

    assert "\x1b" not in plain
    assert "\x1b[" in coloured
    assert ANSI.sub("", coloured) == plain


def test_colours_mark_actions_warnings_errors_and_the_summary() -> None:
    lines = plan_text(PRUNING, colour=True).splitlines()

    assert lines[0] == "\x1b[32m  + billing-sync  (create)\x1b[0m"
    assert lines[3] == "\x1b[33m  ~ nightly-report  (update)\x1b[0m"
    assert lines[11] == f"        \x1b[33mwarning: {CATCH_UP}\x1b[0m"
    assert lines[12] == "\x1b[36m  ! cleanup  (repair)\x1b[0m"
    assert lines[16] == "\x1b[31m  - legacy-export  (delete)\x1b[0m"
    assert lines[17].startswith("\x1b[31merror: 'imported'")
    assert lines[-1] == (
        "\x1b[1mPlan blocked: 1 conflict must be resolved before anything can be applied. "
        "Also planned: 1 to create, 1 to update, 0 to adopt, 1 to delete, 1 to repair, "
        "2 unchanged.\x1b[0m"
    )


# --- markdown -----------------------------------------------------------------------------


def test_markdown_of_a_small_plan() -> None:
    text = plan_markdown(PRUNING)
    lines = text.splitlines()

    assert lines[:4] == [
        "### RedBeat schedule plan (`redbeat:`)",
        "",
        "**Plan blocked: 1 conflict must be resolved before anything can be applied. Also "
        "planned: 1 to create, 1 to update, 0 to adopt, 1 to delete, 1 to repair, 2 unchanged.**",
        "",
    ]
    assert lines[4].startswith("> :x: 'imported' (schedules/import.yaml:2:3) exists in Redis")
    table = lines[lines.index("| | entry | change | next run |") :][:6]
    assert table == [
        "| | entry | change | next run |",
        "| --- | --- | --- | --- |",
        "| + | `billing-sync` | create | 2024-06-11 03:00:00 UTC |",
        "| ~ | `nightly-report` | update | 2024-06-11 04:00:00 UTC |",
        "| ! | `cleanup` | repair | 2024-06-11 03:00:00 UTC |",
        "| - | `legacy-export` | delete | never again |",
    ]
    assert text.count("<details>") == 4
    assert "<details><summary><code>nightly-report</code>: update</summary>" in text
    assert '\nschedule.hour: "3" -> "4"\n' in text
    assert "Truncated" not in text
    assert "\x1b" not in text


def test_markdown_shows_pending_prunes_disabled_and_adopted_entries() -> None:
    text = plan_markdown(KEEPING)

    assert (
        "Managed entries no longer in the files, kept until applied with `--prune`: "
        "`old-a`, `old-b`"
    ) in text
    assert "| ~ | `archive` | disable | disabled |" in text
    assert "| = | `imported` | adopt | 2024-06-11 03:00:00 CEST |" in text
    assert "| ~ | `legacy` | adopt and update | 2024-06-11 03:00:00 CEST |" in text
    assert "<details><summary><code>imported</code>: adopt</summary>" in text
    assert "| + | `once` | create | none |" in text
    assert "> :x: 'beat-static' is a static entry" in text


def test_markdown_of_an_empty_plan_has_no_table() -> None:
    assert plan_markdown(EMPTY) == (
        "### RedBeat schedule plan (`redbeat:`)\n\n"
        "**No changes. RedBeat matches the schedule files (5 unchanged).**\n"
    )


def many_changes(count: int) -> Plan:
    start = datetime(2024, 6, 11, 3, tzinfo=UTC)
    return Plan(
        changes=tuple(
            Change(
                f"customer-{number:05d}-nightly-report",
                Action.UPDATE,
                field_changes=(
                    FieldChange("kwargs.customer", number, number + 1),
                    FieldChange("schedule.hour", "3", "4"),
                ),
                next_runs=tuple(start + timedelta(days=day) for day in range(3)),
                warnings=(CATCH_UP,),
            )
            for number in range(count)
        ),
        unchanged=("kept",),
    )


def shown_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ~ |")]


@pytest.mark.parametrize("count", [300, 5000])
def test_markdown_of_thousands_of_changes_is_truncated_honestly(count: int) -> None:
    plan = many_changes(count)

    text = plan_markdown(plan)

    assert len(text) <= GITHUB_COMMENT_LIMIT
    rows = shown_rows(text)
    hidden = count - len(rows)
    assert 0 < len(rows) < count
    assert (
        f"_Truncated to fit a GitHub comment: {hidden} of {count} changes are not shown. "
        "Run `reconciler plan` or see the job log for the full plan._"
    ) in text
    assert text.count("<details>") == len(rows)
    # What is shown is the beginning of the plan, in order, and the summary counts it all.
    assert rows[0].startswith("| ~ | `customer-00000-nightly-report` |")
    assert rows[-1].startswith(f"| ~ | `customer-{len(rows) - 1:05d}-nightly-report` |")
    assert f"**Plan: 0 to create, {count} to update," in text


def test_markdown_that_fits_is_not_truncated() -> None:
    text = plan_markdown(many_changes(20))

    assert len(shown_rows(text)) == 20
    assert "Truncated" not in text


@pytest.mark.parametrize("limit", [2_000, 10_000, 30_000])
def test_markdown_respects_any_limit(limit: int) -> None:
    text = plan_markdown(many_changes(500), limit=limit)

    assert len(text) <= limit
    assert f"{500 - len(shown_rows(text))} of 500 changes are not shown" in text


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(
            Plan(
                pending_prune=tuple(f"customer-{n:05d}-nightly-report" for n in range(5000)),
                unchanged=("kept",),
            ),
            id="thousands-pending-prunes",
        ),
        pytest.param(
            Plan(
                conflicts=tuple(
                    Conflict(f"customer-{n:05d}", ConflictKind.UNMANAGED, f"schedules/c.yaml:{n}:3")
                    for n in range(2000)
                )
            ),
            id="thousands-conflicts",
        ),
    ],
)
def test_markdown_stays_under_the_limit_whatever_the_plan_holds(plan: Plan) -> None:
    text = plan_markdown(plan)

    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert "Truncated" in text or "truncated" in text


# --- JSON ---------------------------------------------------------------------------------


def test_json_has_a_format_version_changes_and_a_summary() -> None:
    document = json.loads(json.dumps(plan_to_dict(PRUNING)))

    assert document["format_version"] == PLAN_FORMAT_VERSION == 2
    assert [(c["name"], c["action"]) for c in document["changes"]] == [
        ("billing-sync", "create"),
        ("nightly-report", "update"),
        ("cleanup", "repair"),
        ("legacy-export", "delete"),
    ]
    assert document["changes"][0]["next_runs"] == [
        "2024-06-11T03:00:00+00:00",
        "2024-06-12T03:00:00+00:00",
        "2024-06-13T03:00:00+00:00",
    ]
    assert document["changes"][3]["next_runs"] == []
    assert document["summary"] == {
        "create": 1,
        "update": 1,
        "delete": 1,
        "repair": 1,
        "adopt": 0,
        "adopt_and_update": 0,
        "unchanged": 2,
        "pending_prune": 0,
        "conflicts": 1,
        "blocked": True,
        "text": "Plan blocked: 1 conflict must be resolved before anything can be applied. "
        "Also planned: 1 to create, 1 to update, 0 to adopt, 1 to delete, 1 to repair, "
        "2 unchanged.",
    }


def test_json_next_runs_are_iso_8601_with_the_offset_of_beats_zone() -> None:
    document = plan_to_dict(KEEPING)

    runs = document["changes"][1]["next_runs"]
    assert runs[0] == "2024-06-11T03:00:00+02:00"
    assert [datetime.fromisoformat(run) for run in runs] == list(daily(PARIS))


def test_json_details_of_a_change() -> None:
    document = plan_to_dict(PRUNING)

    update = document["changes"][1]
    assert update["field_changes"][1] == {
        "path": "kwargs.dry_run",
        "old": None,
        "new": True,
        "added": True,
        "removed": False,
    }
    assert update["warnings"] == [CATCH_UP]
    assert update["source"] == "schedules/reports.yaml:1:3"
    repair = document["changes"][2]
    assert [item["kind"] for item in repair["repairs"]] == ["unscheduled", "missing-meta"]
    assert document["conflicts"][0]["kind"] == "unmanaged"
    assert document["conflicts"][0]["message"].startswith("'imported' (schedules/import.yaml")


def test_json_for_people_leaves_out_what_only_apply_needs() -> None:
    document = plan_to_dict(PRUNING)

    assert "kind" not in document
    assert "definition" not in document["changes"][0]
    assert "live_definition" not in document["changes"][1]


def test_json_counts_adoptions_and_pending_prunes() -> None:
    document = plan_to_dict(KEEPING)
    summary = document["summary"]

    assert (summary["adopt"], summary["adopt_and_update"]) == (1, 1)
    assert (summary["update"], summary["pending_prune"], summary["create"]) == (3, 2, 2)
    assert summary["text"].endswith("3 unchanged (1 update also adopts).")
    # The counts are those of the actions: each change is counted once.
    actions = [change["action"] for change in document["changes"]]
    assert sum(summary[action] for action in set(actions)) == len(actions)
    assert [(c["name"], c["action"], c["adopt"]) for c in document["changes"][2:4]] == [
        ("imported", "adopt", True),
        ("legacy", "update", True),
    ]


def test_json_of_an_empty_plan() -> None:
    document = plan_to_dict(EMPTY)

    assert document["changes"] == []
    assert document["summary"]["text"] == (
        "No changes. RedBeat matches the schedule files (5 unchanged)."
    )
