"""The pure core of plan: ``compute_plan``, ``health_repairs``, the score policy, the guard.

Live state is built by hand as ``LiveEntry`` values, the way the store reader would build
them; ``healthy()`` gives the state an apply leaves behind (our definition bytes, a meta,
the score beat itself would write, the ownership marker and index membership). Cases then
break or change one thing at a time. ``NOW`` is fixed, so every expectation is exact.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from reconciler.beat.redbeat_codec import encode_definition, encode_meta
from reconciler.core.diff import field_changes
from reconciler.core.errors import DeletionRefused
from reconciler.core.live import LiveEntry, LiveState
from reconciler.core.model import CronSchedule, DesiredEntry, IntervalSchedule, RRuleSchedule
from reconciler.core.plan import Action, Change, ConflictKind, FieldChange, Plan, Repair
from reconciler.core.problems import SourceLocation
from reconciler.core.scores import PARKED, SCORE_TOLERANCE_SECONDS, score_is_wrong, score_of
from reconciler.services.apply import DEFAULT_MAX_DELETIONS, check_deletions
from reconciler.store.keys import MARKER_VALUE
from tests.support.core import compute_plan, expected_score, health_repairs, next_due

if TYPE_CHECKING:
    from collections.abc import Callable

UTC = timezone.utc
NEW_YORK = "America/New_York"
PARIS = "Europe/Paris"
NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)  # a Monday
LAST_RUN = datetime(2024, 6, 10, 3, 0, tzinfo=UTC)  # the nightly entry's last run, today
NEXT_NIGHTLY = datetime(2024, 6, 11, 3, 0, tzinfo=UTC).timestamp()
DAILY, WEEKLY, MONTHLY = 3, 2, 1  # dateutil frequencies, as RedBeat stores them
RRULE_START = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


def entry(name: str = "nightly", **overrides: Any) -> DesiredEntry:
    """A desired entry: by default a 03:00 cron job with args, kwargs and options."""
    fields: dict[str, Any] = {
        "task": "app.tasks.report",
        "schedule": CronSchedule(minute="0", hour="3"),
        "args": [1, "eu"],
        "kwargs": {"region": "eu"},
        "options": {"queue": "reports"},
    }
    fields.update(overrides)
    return DesiredEntry(name, **fields)


def healthy(
    desired: DesiredEntry,
    *,
    last_run_at: datetime | None = LAST_RUN,
    timezone_name: str = "UTC",
    **overrides: Any,
) -> LiveEntry:
    """What Redis holds for ``desired`` after a successful apply and a run at ``last_run_at``."""
    fields: dict[str, Any] = {
        "definition_text": encode_definition(desired, timezone_name),
        "meta_text": encode_meta(last_run_at, 7, timezone_name),
        "marker": MARKER_VALUE,
        "indexed": True,
        "score": (
            expected_score(desired.schedule, last_run_at, desired.enabled, timezone_name)
            if last_run_at
            else score_of(NOW)
        ),
    }
    fields.update(overrides)
    return LiveEntry(desired.name, **fields)


def unmanaged(desired: DesiredEntry, **overrides: Any) -> LiveEntry:
    """An entry the application wrote with RedBeat itself: no marker, not in the index."""
    return healthy(desired, marker=None, indexed=False, **overrides)


def state(*entries: LiveEntry, static: tuple[str, ...] = ()) -> LiveState:
    return LiveState(
        {live.name: live for live in entries},
        managed_names=frozenset(live.name for live in entries if live.indexed),
        static_names=frozenset(static) | {live.name for live in entries if live.static},
    )


def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of a decoded definition: set the value at a dotted path."""
    *parents, last = path.split(".")

    def edit(definition: dict[str, Any]) -> None:
        target = definition
        for key in parents:
            target = target[key]
        target[last] = value

    return edit


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def edit(definition: dict[str, Any]) -> None:
        target = definition
        for key in parents:
            target = target[key]
        del target[last]

    return edit


def reverse_keys(path: str = "") -> Callable[[dict[str, Any]], None]:
    """Reverse the key order of the mapping at ``path`` ("" for the whole definition)."""

    def edit(definition: dict[str, Any]) -> None:
        if not path:
            items = list(definition.items())
            definition.clear()
            definition.update(reversed(items))
            return
        *parents, last = path.split(".")
        target = definition
        for key in parents:
            target = target[key]
        target[last] = dict(reversed(list(target[last].items())))

    return edit


def stored(
    desired: DesiredEntry,
    *edits: Callable[[dict[str, Any]], None],
    indent: int | None = None,
    timezone_name: str = "UTC",
) -> str:
    """The definition bytes of ``desired`` as another writer might have stored them."""
    definition = json.loads(encode_definition(desired, timezone_name))
    for edit in edits:
        edit(definition)
    return json.dumps(definition, indent=indent)


def outcome(plan: Plan, name: str) -> str:
    """What the plan decided for ``name``, as one word."""
    for change in plan.changes:
        if change.name == name:
            return change.action.value
    if name in plan.unchanged:
        return "unchanged"
    if name in plan.pending_prune:
        return "pending-prune"
    for conflict in plan.conflicts:
        if conflict.name == name:
            return f"conflict:{conflict.kind.value}"
    return "absent"


def only_change(plan: Plan) -> Change:
    assert len(plan.changes) == 1, plan.changes
    return plan.changes[0]


NIGHTLY = entry()
NIGHTLY_AT_4 = entry(schedule=CronSchedule(minute="0", hour="4"))

# --- what happens to each desired entry ---------------------------------------------------


@pytest.mark.parametrize(
    ("live", "adopt", "expected"),
    [
        pytest.param(state(), False, "create", id="absent"),
        pytest.param(
            state(LiveEntry("nightly", meta_text=encode_meta(LAST_RUN, 1, "UTC"))),
            False,
            "create",
            id="meta-only-orphan",
        ),
        pytest.param(state(healthy(NIGHTLY)), False, "unchanged", id="healthy"),
        pytest.param(state(healthy(NIGHTLY_AT_4)), False, "update", id="changed"),
        pytest.param(state(healthy(NIGHTLY, score=None)), False, "repair", id="unscheduled"),
        pytest.param(state(healthy(NIGHTLY, indexed=False)), False, "repair", id="marker-only"),
        pytest.param(state(unmanaged(NIGHTLY)), False, "conflict:unmanaged", id="unmanaged"),
        pytest.param(state(unmanaged(NIGHTLY)), True, "adopt", id="unmanaged-adopted"),
        pytest.param(
            state(unmanaged(NIGHTLY_AT_4)), True, "update", id="unmanaged-changed-adopted"
        ),
        pytest.param(state(unmanaged(NIGHTLY, static=True)), False, "conflict:static", id="static"),
        pytest.param(
            state(unmanaged(NIGHTLY, static=True)), True, "conflict:static", id="static-adopt"
        ),
        pytest.param(
            state(healthy(NIGHTLY, static=True)), True, "conflict:static", id="static-managed"
        ),
        pytest.param(
            state(static=("nightly",)), True, "conflict:static", id="static-name-without-hash"
        ),
    ],
)
def test_each_desired_entry_gets_one_outcome(live: LiveState, adopt: bool, expected: str) -> None:
    plan = compute_plan([NIGHTLY], live, now=NOW, adopt=adopt)

    assert outcome(plan, "nightly") == expected
    decided = (
        [c.name for c in plan.changes] + list(plan.unchanged) + [c.name for c in plan.conflicts]
    )
    assert decided == ["nightly"]


def test_create_carries_the_exact_bytes_and_what_it_read() -> None:
    desired = entry(source=SourceLocation("schedules/reports.yaml", 3, 3))

    change = only_change(compute_plan([desired], state(), now=NOW))

    assert change.action is Action.CREATE
    assert change.definition == encode_definition(desired, "UTC")
    assert change.enabled is True
    assert change.field_changes == ()
    assert change.repairs == ()
    assert change.warnings == ()
    assert change.source == "schedules/reports.yaml:3:3"
    assert change.live_definition is None
    assert change.live_managed is False


def test_create_with_run_on_create_warns_of_the_immediate_run() -> None:
    change = only_change(compute_plan([entry(run_on_create=True)], state(), now=NOW))

    assert change.run_on_create is True
    assert change.warnings == ("runs once at beat's next tick (run_on_create), then on schedule",)


def test_update_carries_new_bytes_old_bytes_and_the_difference() -> None:
    live = healthy(NIGHTLY)

    change = only_change(compute_plan([NIGHTLY_AT_4], state(live), now=NOW))

    assert change.action is Action.UPDATE
    assert change.definition == encode_definition(NIGHTLY_AT_4, "UTC")
    assert change.live_definition == live.definition_text
    assert change.live_managed is True
    assert change.adopt is False
    assert change.field_changes == (FieldChange("schedule.hour", "3", "4"),)
    assert (change.enabling, change.disabling) == (False, False)


def test_repair_keeps_the_definition_and_names_what_is_broken() -> None:
    live = healthy(NIGHTLY, meta_text=None, score=None)

    change = only_change(compute_plan([NIGHTLY], state(live), now=NOW))

    assert change.action is Action.REPAIR
    assert change.definition is None
    assert change.live_definition == live.definition_text
    assert change.repairs == (Repair.MISSING_META, Repair.UNSCHEDULED)
    assert change.field_changes == ()


# --- prune --------------------------------------------------------------------------------


def test_managed_entries_gone_from_the_files_are_pending_without_prune() -> None:
    live = state(healthy(NIGHTLY), healthy(entry("zeta")), healthy(entry("alpha")))

    plan = compute_plan([NIGHTLY], live, now=NOW)

    assert plan.changes == ()
    assert plan.unchanged == ("nightly",)
    assert plan.pending_prune == ("alpha", "zeta")
    assert plan.deletions == ()
    assert plan.managed_count == 3
    assert plan.prune is False


def test_prune_deletes_them_after_the_desired_changes_in_name_order() -> None:
    zeta, alpha = healthy(entry("zeta")), healthy(entry("alpha"))

    plan = compute_plan([entry("middle")], state(zeta, alpha), now=NOW, prune=True)

    assert [(c.name, c.action) for c in plan.changes] == [
        ("middle", Action.CREATE),
        ("alpha", Action.DELETE),
        ("zeta", Action.DELETE),
    ]
    delete_alpha = plan.changes[1]
    assert delete_alpha.live_definition == alpha.definition_text
    assert delete_alpha.live_managed is True
    assert plan.pending_prune == ()
    assert plan.deletions == ("alpha", "zeta")
    assert plan.prune is True


def test_prune_never_touches_entries_the_reconciler_does_not_manage() -> None:
    foreign = unmanaged(entry("app-made"))

    plan = compute_plan([NIGHTLY], state(healthy(NIGHTLY), foreign), now=NOW, prune=True)

    assert plan.changes == ()
    assert plan.pending_prune == ()
    assert plan.unchanged == ("nightly",)


@pytest.mark.parametrize(
    "marker",
    [
        pytest.param(None, id="no-marker"),
        pytest.param("yes", id="garbage-marker"),
        pytest.param('{"managed_by": "someone-else"}', id="foreign-marker"),
        pytest.param("[" * 5000, id="deeply-nested-marker"),
    ],
)
def test_the_index_alone_does_not_make_an_entry_the_reconcilers(marker: str | None) -> None:
    # Issue 12: an index-only foreign hash was deleted by 'apply --prune'.
    listed = healthy(entry("app-made"), marker=marker, indexed=True)

    plan = compute_plan([], state(listed), now=NOW, prune=True)
    assert plan.changes == ()
    assert plan.pending_prune == ()
    assert plan.notices == (
        "'app-made' is in the reconciler's managed index, but its hash does not carry the "
        "ownership marker: it is not the reconciler's, so it is never deleted (see drift)",
    )
    assert outcome(compute_plan([entry("app-made")], state(listed), now=NOW), "app-made") == (
        "conflict:unmanaged"
    )
    adopted = compute_plan([entry("app-made")], state(listed), now=NOW, adopt=True)
    assert only_change(adopted).action is Action.ADOPT


def test_a_meta_only_leftover_under_an_indexed_name_is_still_pruned() -> None:
    leftover = LiveEntry("gone", meta_text=encode_meta(LAST_RUN, 3, "UTC"), indexed=True)

    change = only_change(compute_plan([], state(leftover), now=NOW, prune=True))
    assert (change.name, change.action, change.live_managed) == ("gone", Action.DELETE, False)


def test_index_members_no_entry_can_have_are_named_and_skipped() -> None:
    odd = ((":schedule", "starts with ':'"), ("", "schedule name is empty"))
    live = LiveState(odd_index_names=odd)

    plan = compute_plan([], live, now=NOW, prune=True)
    assert plan.changes == ()
    assert plan.notices == (
        "the reconciler's managed index lists ':schedule', which no entry can have (starts "
        "with ':'): skipped, nothing under it is read, written or deleted",
        "the reconciler's managed index lists '', which no entry can have (schedule name is "
        "empty): skipped, nothing under it is read, written or deleted",
    )


def test_order_of_the_plan_does_not_depend_on_the_order_of_the_files() -> None:
    desired = [entry("c"), entry("a", enabled=False), entry("b", args=[2])]
    live = state(healthy(entry("b")), healthy(entry("gone")), healthy(entry("a")))

    plans = {
        compute_plan(order, live, now=NOW, prune=True)
        for order in (desired, desired[::-1], desired[1:] + desired[:1])
    }

    assert len(plans) == 1
    (plan,) = plans
    assert [(c.name, c.action.value) for c in plan.changes] == [
        ("a", "update"),
        ("b", "update"),
        ("c", "create"),
        ("gone", "delete"),
    ]


# --- conflicts and adoption ---------------------------------------------------------------


def test_an_unmanaged_entry_is_a_conflict_naming_its_source_and_adopt() -> None:
    desired = entry(source=SourceLocation("schedules/reports.yaml", 7, 3))

    plan = compute_plan([desired], state(unmanaged(NIGHTLY_AT_4)), now=NOW)

    (conflict,) = plan.conflicts
    assert (conflict.name, conflict.kind) == ("nightly", ConflictKind.UNMANAGED)
    assert conflict.source == "schedules/reports.yaml:7:3"
    assert "'nightly' (schedules/reports.yaml:7:3) exists in Redis" in conflict.message
    assert "--adopt" in conflict.message
    assert plan.changes == ()
    assert plan.unchanged == ()


def test_a_static_entry_is_always_a_conflict() -> None:
    plan = compute_plan([NIGHTLY], state(static=("nightly",)), now=NOW, adopt=True, prune=True)

    (conflict,) = plan.conflicts
    assert conflict.kind is ConflictKind.STATIC
    assert ":statics" in conflict.message
    assert plan.changes == ()


def test_adopting_an_identical_entry_is_an_adopt_without_field_changes() -> None:
    live = unmanaged(NIGHTLY)

    change = only_change(compute_plan([NIGHTLY], state(live), now=NOW, adopt=True))

    assert change.action is Action.ADOPT
    assert change.adopt is True
    assert change.field_changes == ()
    assert change.definition == encode_definition(NIGHTLY, "UTC")
    assert change.live_definition == live.definition_text
    assert change.live_managed is False


def test_adopting_a_different_entry_shows_its_field_changes() -> None:
    change = only_change(
        compute_plan([NIGHTLY_AT_4], state(unmanaged(NIGHTLY)), now=NOW, adopt=True)
    )

    assert change.action is Action.UPDATE
    assert change.adopt is True
    assert change.field_changes == (FieldChange("schedule.hour", "3", "4"),)


def test_adopt_does_not_mark_entries_already_managed() -> None:
    change = only_change(compute_plan([NIGHTLY_AT_4], state(healthy(NIGHTLY)), now=NOW, adopt=True))

    assert change.adopt is False


# --- enabling and disabling ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("was_enabled", "enabled", "enabling", "disabling"),
    [
        pytest.param(False, True, True, False, id="enable"),
        pytest.param(True, False, False, True, id="disable"),
    ],
)
def test_enabling_and_disabling_are_visible_changes(
    was_enabled: bool, enabled: bool, enabling: bool, disabling: bool
) -> None:
    live = healthy(entry(enabled=was_enabled))

    change = only_change(compute_plan([entry(enabled=enabled)], state(live), now=NOW))

    assert change.action is Action.UPDATE
    assert (change.enabling, change.disabling) == (enabling, disabling)
    assert change.enabled is enabled
    assert change.field_changes == (FieldChange("enabled", was_enabled, enabled),)


def test_a_change_to_a_disabled_entry_is_neither_enabling_nor_disabling() -> None:
    live = healthy(entry(enabled=False))

    change = only_change(compute_plan([entry(enabled=False, args=[2])], state(live), now=NOW))

    assert (change.enabling, change.disabling) == (False, False)


# --- field-level differences --------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            NIGHTLY, NIGHTLY_AT_4, (FieldChange("schedule.hour", "3", "4"),), id="schedule-hour"
        ),
        pytest.param(
            NIGHTLY,
            entry(kwargs={"region": "us"}),
            (FieldChange("kwargs.region", "eu", "us"),),
            id="kwargs-value",
        ),
        pytest.param(
            NIGHTLY, entry(args=[1, "us"]), (FieldChange("args[1]", "eu", "us"),), id="args-item"
        ),
        pytest.param(
            NIGHTLY,
            entry(kwargs={"region": "eu", "dry_run": True}),
            (FieldChange("kwargs.dry_run", None, True, added=True),),
            id="key-added",
        ),
        pytest.param(
            NIGHTLY,
            entry(options={}),
            (FieldChange("options.queue", "reports", None, removed=True),),
            id="key-removed",
        ),
        pytest.param(
            NIGHTLY,
            entry(args=[1, "eu", 3]),
            (FieldChange("args[2]", None, 3, added=True),),
            id="args-appended",
        ),
        pytest.param(
            NIGHTLY,
            entry(args=[1]),
            (FieldChange("args[1]", "eu", None, removed=True),),
            id="args-shortened",
        ),
        pytest.param(
            NIGHTLY,
            entry(task="app.tasks.other"),
            (FieldChange("task", "app.tasks.report", "app.tasks.other"),),
            id="task",
        ),
        pytest.param(
            NIGHTLY,
            entry(kwargs={"region": 1}),
            (FieldChange("kwargs.region", "eu", 1),),
            id="type-change",
        ),
        pytest.param(
            NIGHTLY,
            entry(
                schedule=CronSchedule(minute="30", hour="4", day_of_week="1-5"),
                options={"queue": "reports", "priority": 5},
            ),
            (
                FieldChange("options.priority", None, 5, added=True),
                FieldChange("schedule.day_of_week", "*", "1-5"),
                FieldChange("schedule.hour", "3", "4"),
                FieldChange("schedule.minute", "0", "30"),
            ),
            id="several-in-path-order",
        ),
        pytest.param(
            entry(schedule=IntervalSchedule(300)),
            entry(schedule=IntervalSchedule(60)),
            (FieldChange("schedule.every", 300.0, 60.0),),
            id="interval",
        ),
        pytest.param(
            entry(schedule=RRuleSchedule(freq=WEEKLY, dtstart=RRULE_START, byweekday=(0, 2))),
            entry(schedule=RRuleSchedule(freq=WEEKLY, dtstart=RRULE_START, byweekday=(0, 4))),
            (FieldChange("schedule.byweekday[1]", 2, 4),),
            id="rrule-weekday",
        ),
    ],
)
def test_updates_list_field_level_differences_with_dotted_paths(
    before: DesiredEntry, after: DesiredEntry, expected: tuple[FieldChange, ...]
) -> None:
    change = only_change(compute_plan([after], state(healthy(before)), now=NOW))

    assert change.action is Action.UPDATE
    assert change.field_changes == expected


def test_field_changes_name_nested_paths() -> None:
    old = {"kwargs": {"filters": [1, {"country": "fr"}]}}
    new = {"kwargs": {"filters": [1, {"country": "de"}]}}

    assert field_changes(old, new) == (FieldChange("kwargs.filters[1].country", "fr", "de"),)


def test_field_changes_of_equal_essences_are_empty() -> None:
    definition = json.loads(encode_definition(NIGHTLY))

    assert field_changes(definition, json.loads(encode_definition(NIGHTLY))) == ()


# --- encoding accidents are not changes ---------------------------------------------------

INTERVAL_30 = entry(schedule=IntervalSchedule(30))
MINUTE_AS_NUMBER = entry(schedule=CronSchedule(minute=0, hour=3))
LAST_DAY = entry(schedule=RRuleSchedule(freq=MONTHLY, dtstart=RRULE_START, bymonthday=-1))
LAST_DAY_LIST = entry(schedule=RRuleSchedule(freq=MONTHLY, dtstart=RRULE_START, bymonthday=(-1,)))
MON_WED = entry(schedule=RRuleSchedule(freq=WEEKLY, dtstart=RRULE_START, byweekday=(0, 2)))
MONDAYS = entry(schedule=RRuleSchedule(freq=WEEKLY, dtstart=RRULE_START, byweekday=0))
ORDERED_OPTIONS = entry(options={"queue": "reports", "priority": 5, "expires": 60})
NO_ARGUMENTS = entry(args=[], kwargs={}, options={})


def weekday(number: int) -> dict[str, Any]:
    return {"__type__": "weekday", "wkday": number}


@pytest.mark.parametrize(
    ("desired", "live_text"),
    [
        pytest.param(NO_ARGUMENTS, stored(NO_ARGUMENTS, put("args", None)), id="args-null"),
        pytest.param(NO_ARGUMENTS, stored(NO_ARGUMENTS, put("kwargs", None)), id="kwargs-null"),
        pytest.param(NO_ARGUMENTS, stored(NO_ARGUMENTS, put("options", None)), id="options-null"),
        pytest.param(NIGHTLY, stored(NIGHTLY, drop("enabled")), id="enabled-missing"),
        pytest.param(
            NIGHTLY, stored(NIGHTLY, put("schedule.minute", 0)), id="cron-minute-stored-as-number"
        ),
        pytest.param(
            MINUTE_AS_NUMBER,
            stored(MINUTE_AS_NUMBER, put("schedule.minute", "0"), put("schedule.hour", "3")),
            id="cron-minute-stored-as-string",
        ),
        pytest.param(
            NIGHTLY, stored(NIGHTLY, drop("schedule.day_of_week")), id="cron-field-missing"
        ),
        pytest.param(
            LAST_DAY,
            stored(LAST_DAY, put("schedule.bymonthday", [-1])),
            id="bymonthday-stored-as-list",
        ),
        pytest.param(
            LAST_DAY_LIST,
            stored(LAST_DAY_LIST, put("schedule.bymonthday", -1)),
            id="bymonthday-stored-as-number",
        ),
        pytest.param(
            MON_WED,
            stored(MON_WED, put("schedule.byweekday", [weekday(0), weekday(2)])),
            id="weekday-objects",
        ),
        pytest.param(
            MONDAYS, stored(MONDAYS, put("schedule.byweekday", weekday(0))), id="weekday-object"
        ),
        pytest.param(
            MONDAYS, stored(MONDAYS, put("schedule.byweekday", [0])), id="weekday-in-a-list"
        ),
        pytest.param(MON_WED, stored(MON_WED, drop("schedule.interval")), id="rrule-interval"),
        pytest.param(
            INTERVAL_30, stored(INTERVAL_30, put("schedule.every", 30)), id="interval-30-vs-30.0"
        ),
        pytest.param(
            ORDERED_OPTIONS, stored(ORDERED_OPTIONS, reverse_keys("options")), id="option-order"
        ),
        pytest.param(NIGHTLY, stored(NIGHTLY, reverse_keys()), id="key-order"),
        pytest.param(NIGHTLY, stored(NIGHTLY, indent=2), id="whitespace"),
    ],
)
def test_encoding_accidents_are_not_changes(desired: DesiredEntry, live_text: str) -> None:
    assert live_text != encode_definition(desired), "the case must differ in bytes"
    live = state(healthy(desired, definition_text=live_text))

    plan = compute_plan([desired], live, now=NOW)

    assert plan.changes == ()
    assert plan.unchanged == (desired.name,)


# --- definitions beat cannot use are always rewritten -------------------------------------

INTERVAL_300 = entry(schedule=IntervalSchedule(300))
LETTERS = entry(args=["a", "b"])


@pytest.mark.parametrize(
    ("desired", "live_text"),
    [
        pytest.param(NIGHTLY, stored(NIGHTLY, put("extra", 1)), id="unknown-key"),
        pytest.param(NIGHTLY, "{not json", id="unreadable-json"),
        pytest.param(NIGHTLY, "[1, 2]", id="json-not-an-object"),
        pytest.param(NIGHTLY, '"nightly"', id="json-string"),
        # RedBeat's decoder reads d['relative']: KeyError, and beat drops the entry's member.
        pytest.param(
            INTERVAL_300,
            stored(INTERVAL_300, drop("schedule.relative")),
            id="interval-without-relative",
        ),
        # Celery refuses to send these ("task keyword arguments must be a mapping", "task
        # args must be a list or tuple"): the entry never runs.
        pytest.param(
            NIGHTLY, stored(NIGHTLY, put("kwargs", [["region", "eu"]])), id="kwargs-as-pairs"
        ),
        pytest.param(LETTERS, stored(LETTERS, put("args", "ab")), id="args-as-string"),
        pytest.param(NIGHTLY, stored(NIGHTLY, put("kwargs", "oops")), id="kwargs-as-string"),
        pytest.param(NIGHTLY, stored(NIGHTLY, put("args", 5)), id="args-as-number"),
        pytest.param(NIGHTLY, stored(NIGHTLY, put("options", 3)), id="options-as-number"),
    ],
)
def test_definitions_beat_cannot_use_are_updates(desired: DesiredEntry, live_text: str) -> None:
    live = state(healthy(desired, definition_text=live_text))

    change = only_change(compute_plan([desired], live, now=NOW))

    assert change.action is Action.UPDATE
    assert change.definition == encode_definition(desired)
    assert change.live_definition == live_text
    assert change.field_changes


def test_an_unknown_key_is_shown_as_removed() -> None:
    live = state(healthy(NIGHTLY, definition_text=stored(NIGHTLY, put("expires_at", 60))))

    change = only_change(compute_plan([NIGHTLY], live, now=NOW))

    assert change.field_changes == (FieldChange("expires_at", 60, None, removed=True),)


def test_an_unreadable_definition_is_shown_as_rewritten() -> None:
    live = state(healthy(NIGHTLY, definition_text="{not json"))

    change = only_change(compute_plan([NIGHTLY], live, now=NOW))

    assert change.field_changes == (
        FieldChange("definition", "(not a JSON object)", "(rewritten)"),
    )
    assert (change.enabling, change.disabling) == (False, False)


# --- catch-up warning ---------------------------------------------------------------------


def test_an_update_with_a_missed_slot_warns_of_the_catch_up_run() -> None:
    # Last run 03:00; the new schedule (09:00) had a slot at 09:00, before NOW (12:00).
    live = state(healthy(NIGHTLY))

    change = only_change(compute_plan([entry(schedule=CronSchedule(0, 9))], live, now=NOW))

    assert change.warnings == (
        "catch-up: the new schedule had a run due at 2024-06-10T09:00:00+00:00 after the last "
        "run at 2024-06-10T03:00:00+00:00; beat will run it once at its next tick",
    )


def test_the_catch_up_warning_shows_times_in_beats_timezone() -> None:
    # 05:00 Paris last run (03:00 UTC); the new 09:00 Paris slot is 07:00 UTC, before NOW.
    live = state(healthy(NIGHTLY, timezone_name=PARIS))

    change = only_change(
        compute_plan([entry(schedule=CronSchedule(0, 9))], live, now=NOW, timezone_name=PARIS)
    )

    (warning,) = change.warnings
    assert "run due at 2024-06-10T09:00:00+02:00" in warning
    assert "last run at 2024-06-10T05:00:00+02:00" in warning


@pytest.mark.parametrize(
    ("live", "desired"),
    [
        pytest.param(healthy(NIGHTLY), entry(schedule=CronSchedule(0, 15)), id="next-slot-later"),
        pytest.param(healthy(NIGHTLY), entry(args=[2]), id="schedule-unchanged"),
        pytest.param(
            healthy(NIGHTLY),
            entry(schedule=CronSchedule(0, 9), enabled=False),
            id="disabled",
        ),
        pytest.param(
            healthy(entry(enabled=False)),
            entry(schedule=CronSchedule(0, 9)),
            id="enabling-restarts-the-clock",
        ),
        pytest.param(
            healthy(NIGHTLY, meta_text=None), entry(schedule=CronSchedule(0, 9)), id="no-meta"
        ),
        pytest.param(
            healthy(NIGHTLY, last_run_at=None),
            entry(schedule=CronSchedule(0, 9)),
            id="never-run",
        ),
    ],
)
def test_no_catch_up_warning_when_no_slot_was_missed(
    live: LiveEntry, desired: DesiredEntry
) -> None:
    change = only_change(compute_plan([desired], state(live), now=NOW))

    assert change.action is Action.UPDATE
    assert change.warnings == ()


# --- next runs ----------------------------------------------------------------------------


def new_york(day: int) -> datetime:
    return datetime(2024, 6, day, 3, 0, tzinfo=ZoneInfo(NEW_YORK))


NY_LAST_RUN = new_york(10)  # today's 03:00 run in New York; the next is tomorrow's


@pytest.mark.parametrize(
    ("live", "desired", "action"),
    [
        pytest.param(state(), NIGHTLY, Action.CREATE, id="create"),
        pytest.param(
            state(healthy(entry(args=[2]), timezone_name=NEW_YORK, last_run_at=NY_LAST_RUN)),
            NIGHTLY,
            Action.UPDATE,
            id="update",
        ),
        pytest.param(
            state(healthy(entry(enabled=False), timezone_name=NEW_YORK)),
            NIGHTLY,
            Action.UPDATE,
            id="enable",
        ),
        pytest.param(
            state(healthy(NIGHTLY, timezone_name=NEW_YORK, score=None, last_run_at=NY_LAST_RUN)),
            NIGHTLY,
            Action.REPAIR,
            id="repair",
        ),
    ],
)
def test_next_runs_are_three_fire_times_in_beats_timezone(
    live: LiveState, desired: DesiredEntry, action: Action
) -> None:
    # NOW is 08:00 in New York: the next 03:00 is tomorrow's.
    change = only_change(compute_plan([desired], live, now=NOW, timezone_name=NEW_YORK))

    assert change.action is action
    assert change.next_runs == (new_york(11), new_york(12), new_york(13))
    assert [str(moment.tzinfo) for moment in change.next_runs] == [NEW_YORK] * 3
    assert [moment.hour for moment in change.next_runs] == [3, 3, 3]


@pytest.mark.parametrize(
    "live",
    [
        pytest.param(state(), id="create"),
        pytest.param(state(healthy(NIGHTLY)), id="disable"),
        pytest.param(state(healthy(entry(enabled=False, args=[2]))), id="update-disabled"),
    ],
)
def test_disabled_entries_have_no_next_runs(live: LiveState) -> None:
    change = only_change(compute_plan([entry(enabled=False)], live, now=NOW))

    assert change.next_runs == ()


def test_an_ended_rrule_has_no_next_runs() -> None:
    ended = entry(schedule=RRuleSchedule(freq=DAILY, dtstart=RRULE_START, count=2))

    change = only_change(compute_plan([ended], state(), now=NOW))

    assert change.action is Action.CREATE
    assert change.next_runs == ()


# --- health repairs -----------------------------------------------------------------------

DISABLED = entry(enabled=False)
ENDED_BY_COUNT = entry(
    schedule=RRuleSchedule(freq=DAILY, dtstart=datetime(2024, 6, 1, 9, tzinfo=UTC), count=3)
)
ENDED_BY_UNTIL = entry(
    schedule=RRuleSchedule(
        freq=DAILY,
        dtstart=datetime(2024, 6, 1, 9, tzinfo=UTC),
        until=datetime(2024, 6, 3, 9, tzinfo=UTC),
    )
)
LAST_OF_THREE = datetime(2024, 6, 3, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("desired", "live", "expected"),
    [
        pytest.param(NIGHTLY, healthy(NIGHTLY), (), id="healthy"),
        pytest.param(
            NIGHTLY, healthy(NIGHTLY, meta_text=None), (Repair.MISSING_META,), id="no-meta"
        ),
        pytest.param(
            NIGHTLY,
            healthy(NIGHTLY, meta_text="{garbage"),
            (Repair.BAD_META,),  # beat's from_key raises on it: worse than no meta
            id="unreadable-meta",
        ),
        pytest.param(
            NIGHTLY,
            healthy(
                NIGHTLY,
                meta_text='{"last_run_at": null, "total_run_count": 0, "task": "evil.task"}',
            ),
            (Repair.BAD_META,),  # beat merges meta into the definition: a hijack
            id="meta-overriding-the-task",
        ),
        pytest.param(NIGHTLY, healthy(NIGHTLY, score=None), (Repair.UNSCHEDULED,), id="no-member"),
        pytest.param(
            NIGHTLY,
            healthy(NIGHTLY, score=NEXT_NIGHTLY + 3600),
            (Repair.STALE_SCORE,),
            id="late-score",
        ),
        pytest.param(
            NIGHTLY,
            healthy(NIGHTLY, score=NEXT_NIGHTLY + SCORE_TOLERANCE_SECONDS),
            (),
            id="within-tolerance",
        ),
        pytest.param(
            NIGHTLY, healthy(NIGHTLY, score=NEXT_NIGHTLY - 6 * 3600), (), id="early-score"
        ),
        pytest.param(NIGHTLY, healthy(NIGHTLY, score=NOW.timestamp() - 60), (), id="early-and-due"),
        pytest.param(
            NIGHTLY,
            healthy(
                NIGHTLY,
                meta_text=encode_meta(LAST_RUN - timedelta(days=1), 7, "UTC"),
                score=NOW.timestamp() - 60,
            ),
            (),
            id="late-but-both-due",
        ),
        pytest.param(
            NIGHTLY, healthy(NIGHTLY, score=PARKED), (Repair.STALE_SCORE,), id="enabled-parked"
        ),
        pytest.param(
            NIGHTLY,
            healthy(NIGHTLY, last_run_at=None, score=PARKED),
            (Repair.STALE_SCORE,),
            id="enabled-parked-never-run",
        ),
        pytest.param(NIGHTLY, healthy(NIGHTLY, last_run_at=None), (), id="never-run-and-due"),
        # Beat scores a never-run entry "now" (RedBeat's due_at): a far score delays its run.
        pytest.param(
            NIGHTLY,
            healthy(NIGHTLY, last_run_at=None, score=NOW.timestamp() + 30 * 86_400),
            (Repair.STALE_SCORE,),
            id="never-run-scored-late",
        ),
        pytest.param(DISABLED, healthy(DISABLED), (), id="disabled-parked"),
        pytest.param(DISABLED, healthy(DISABLED, meta_text=None), (), id="disabled-parked-no-meta"),
        pytest.param(
            DISABLED,
            healthy(DISABLED, score=NEXT_NIGHTLY),
            (Repair.UNPARKED,),
            id="disabled-scored",
        ),
        pytest.param(
            DISABLED,
            healthy(DISABLED, meta_text=None, score=NEXT_NIGHTLY),
            (Repair.UNPARKED,),
            id="disabled-scored-no-meta",
        ),
        pytest.param(NIGHTLY, healthy(NIGHTLY, ttl_ms=60_000), (Repair.EXPIRING,), id="ttl"),
        pytest.param(NIGHTLY, healthy(NIGHTLY, ttl_ms=0), (Repair.EXPIRING,), id="ttl-0"),
        pytest.param(NIGHTLY, healthy(NIGHTLY, marker=None), (Repair.UNMARKED,), id="no-marker"),
        pytest.param(
            NIGHTLY, healthy(NIGHTLY, marker="{}"), (Repair.UNMARKED,), id="foreign-marker"
        ),
        pytest.param(
            NIGHTLY, healthy(NIGHTLY, indexed=False), (Repair.UNMARKED,), id="not-indexed"
        ),
        pytest.param(
            NIGHTLY,
            healthy(NIGHTLY, meta_text=None, score=None, ttl_ms=5, marker=None),
            (Repair.MISSING_META, Repair.UNSCHEDULED, Repair.EXPIRING, Repair.UNMARKED),
            id="everything",
        ),
        pytest.param(
            ENDED_BY_COUNT,
            healthy(ENDED_BY_COUNT, last_run_at=LAST_OF_THREE),
            (),
            id="rrule-ended-by-count",
        ),
        pytest.param(
            ENDED_BY_UNTIL,
            healthy(ENDED_BY_UNTIL, last_run_at=LAST_OF_THREE),
            (),
            id="rrule-ended-by-until",
        ),
    ],
)
def test_health_repairs(
    desired: DesiredEntry, live: LiveEntry, expected: tuple[Repair, ...]
) -> None:
    assert health_repairs(desired, live, NOW, "UTC") == expected


def test_an_ended_rrule_is_parked_by_healthy() -> None:
    # The precondition of the two rrule cases above: the ended rule's score is -1.
    assert healthy(ENDED_BY_COUNT, last_run_at=LAST_OF_THREE).score == PARKED
    assert healthy(ENDED_BY_UNTIL, last_run_at=LAST_OF_THREE).score == PARKED


def test_an_ended_rrule_parked_is_unchanged_in_the_plan() -> None:
    live = state(healthy(ENDED_BY_COUNT, last_run_at=LAST_OF_THREE))

    plan = compute_plan([ENDED_BY_COUNT], live, now=NOW)

    assert plan.changes == ()
    assert plan.unchanged == ("nightly",)


# --- the score policy ---------------------------------------------------------------------

NOW_SCORE = NOW.timestamp()
LATER = NOW_SCORE + 3600


@pytest.mark.parametrize(
    ("live_score", "expected", "wrong"),
    [
        pytest.param(PARKED, PARKED, False, id="both-parked"),
        pytest.param(LATER, PARKED, True, id="should-be-parked"),
        pytest.param(0.0, PARKED, True, id="should-be-parked-zero"),
        pytest.param(NOW_SCORE - 60, PARKED, True, id="should-be-parked-due"),
        pytest.param(PARKED, LATER, True, id="wrongly-parked"),
        pytest.param(PARKED, NOW_SCORE - 60, True, id="wrongly-parked-due"),
        pytest.param(LATER, LATER, False, id="exact"),
        pytest.param(LATER - 1800, LATER, False, id="early"),
        pytest.param(LATER + SCORE_TOLERANCE_SECONDS, LATER, False, id="tolerance"),
        pytest.param(LATER + SCORE_TOLERANCE_SECONDS + 1, LATER, True, id="late"),
        pytest.param(NOW_SCORE - 10, NOW_SCORE - 100, False, id="late-both-due"),
        pytest.param(NOW_SCORE, NOW_SCORE - 100, False, id="late-due-now"),
        pytest.param(NOW_SCORE + 60, NOW_SCORE - 100, True, id="delays-a-due-run"),
        pytest.param(NOW_SCORE - 100, NOW_SCORE + 60, False, id="due-early"),
    ],
)
@pytest.mark.parametrize("zone", ["UTC", PARIS], ids=["now-utc", "now-paris"])
def test_score_is_wrong(live_score: float, expected: float, wrong: bool, zone: str) -> None:
    now = NOW.astimezone(ZoneInfo(zone))

    assert score_is_wrong(live_score, expected, now) is wrong


@pytest.mark.parametrize(
    ("spec", "enabled", "timezone_name", "expected"),
    [
        pytest.param(CronSchedule(0, 3), True, "UTC", NEXT_NIGHTLY, id="cron"),
        pytest.param(
            CronSchedule(0, 3),
            True,
            PARIS,
            datetime(2024, 6, 11, 1, tzinfo=UTC).timestamp(),
            id="cron-paris",
        ),
        pytest.param(
            CronSchedule(0, 3),
            True,
            NEW_YORK,
            datetime(2024, 6, 10, 7, tzinfo=UTC).timestamp(),
            id="cron-new-york",
        ),
        pytest.param(IntervalSchedule(300), True, "UTC", LAST_RUN.timestamp() + 300, id="interval"),
        pytest.param(CronSchedule(0, 3), False, "UTC", PARKED, id="disabled"),
        pytest.param(
            RRuleSchedule(freq=DAILY, dtstart=datetime(2024, 6, 1, 9, tzinfo=UTC), count=3),
            True,
            "UTC",
            PARKED,
            id="rrule-ended",
        ),
        pytest.param(
            RRuleSchedule(freq=DAILY, dtstart=datetime(2024, 6, 1, 9, tzinfo=UTC), count=30),
            True,
            "UTC",
            datetime(2024, 6, 10, 9, tzinfo=UTC).timestamp(),
            id="rrule",
        ),
    ],
)
def test_expected_score(
    spec: CronSchedule | IntervalSchedule | RRuleSchedule,
    enabled: bool,
    timezone_name: str,
    expected: float,
) -> None:
    assert expected_score(spec, LAST_RUN, enabled, timezone_name) == expected


def test_expected_score_is_a_whole_number_of_seconds() -> None:
    after = datetime(2024, 6, 10, 3, 0, 0, 750_000, tzinfo=UTC)

    score = expected_score(IntervalSchedule(10), after, True, "UTC")

    assert score == float(int(score))
    assert score == datetime(2024, 6, 10, 3, 0, 10, tzinfo=UTC).timestamp()


def test_next_due_of_an_exhausted_rrule_is_none() -> None:
    spec = RRuleSchedule(freq=DAILY, dtstart=datetime(2024, 6, 1, 9, tzinfo=UTC), count=3)

    assert next_due(spec, LAST_OF_THREE, "UTC") is None
    assert score_of(None) == PARKED


# --- the deletion guard -------------------------------------------------------------------


def deleting(count: int, managed: int) -> Plan:
    return Plan(
        changes=tuple(Change(f"entry-{i:03d}", Action.DELETE) for i in range(count)),
        prune=True,
        managed_count=managed,
    )


@pytest.mark.parametrize(
    ("plan", "max_deletions"),
    [
        pytest.param(deleting(0, 0), None, id="nothing-to-delete-empty-store"),
        pytest.param(deleting(0, 0), 0, id="nothing-with-zero"),
        pytest.param(deleting(3, 20), None, id="few"),
        pytest.param(deleting(DEFAULT_MAX_DELETIONS, 50), None, id="default-limit-exactly"),
        pytest.param(deleting(25, 50), 25, id="explicit-limit-exactly"),
        pytest.param(deleting(3, 3), 3, id="everything-explicitly"),
        pytest.param(deleting(3, 3), 100, id="everything-explicitly-higher"),
        pytest.param(
            Plan(changes=(Change("a", Action.CREATE),), managed_count=0), None, id="no-deletes"
        ),
    ],
)
def test_the_deletion_guard_passes(plan: Plan, max_deletions: int | None) -> None:
    check_deletions(plan, max_deletions)


@pytest.mark.parametrize(
    ("plan", "max_deletions", "message"),
    [
        pytest.param(
            deleting(DEFAULT_MAX_DELETIONS + 1, 50),
            None,
            f"the plan deletes {DEFAULT_MAX_DELETIONS + 1} entries, more than the "
            f"{DEFAULT_MAX_DELETIONS} allowed; nothing was written. If that is intended, "
            f"run again with --max-deletions {DEFAULT_MAX_DELETIONS + 1}",
            id="above-default",
        ),
        pytest.param(
            deleting(5, 50),
            4,
            "the plan deletes 5 entries, more than the 4 allowed; nothing was written. "
            "If that is intended, run again with --max-deletions 5",
            id="above-explicit",
        ),
        pytest.param(
            deleting(1, 50),
            0,
            "the plan deletes 1 entries, more than the 0 allowed; nothing was written. "
            "If that is intended, run again with --max-deletions 1",
            id="zero-allowed",
        ),
        pytest.param(
            deleting(3, 3),
            None,
            "the plan deletes every managed entry (3), the classic result of an emptied or "
            "missing schedules folder; nothing was written. If that is intended, run again "
            "with --max-deletions 3",
            id="everything",
        ),
        pytest.param(
            deleting(1, 1),
            None,
            "the plan deletes every managed entry (1)",
            id="the-only-one",
        ),
    ],
)
def test_the_deletion_guard_refuses(plan: Plan, max_deletions: int | None, message: str) -> None:
    with pytest.raises(DeletionRefused) as refused:
        check_deletions(plan, max_deletions)

    assert message in str(refused.value)


def test_an_emptied_folder_is_refused_by_the_guard() -> None:
    # The classic accident, end to end through the core: no desired entries, --prune.
    live = state(*(healthy(entry(f"job-{i}")) for i in range(4)))
    plan = compute_plan([], live, now=NOW, prune=True)

    with pytest.raises(DeletionRefused, match=r"every managed entry \(4\)"):
        check_deletions(plan, None)
    check_deletions(plan, 4)


def test_a_plan_warns_when_beat_records_runs_in_another_timezone() -> None:
    # Beat writes each last run in its own Celery timezone; a plan made with another
    # --timezone would score every crontab in the wrong zone.
    paris_meta = encode_meta(NOW - timedelta(hours=1), 3, "Europe/Paris")
    live = LiveState(
        {NIGHTLY.name: healthy(NIGHTLY, meta_text=paris_meta)}, frozenset({NIGHTLY.name})
    )

    plan = compute_plan([NIGHTLY], live, now=NOW, timezone_name="UTC")
    same_zone = compute_plan([NIGHTLY], live, now=NOW, timezone_name="Europe/Paris")

    assert len(plan.notices) == 1
    assert "beat records its runs in Europe/Paris" in plan.notices[0]
    assert "--timezone UTC" in plan.notices[0]
    assert same_zone.notices == ()
