"""The pure core of drift: ``find_drift`` and ``DriftReport``.

Live state is built by hand as ``LiveEntry`` values, the way the store reader and the
scanner would build them; ``healthy()`` gives what an apply and a run at ``last_run_at``
leave behind. ``ALIVE`` is a server where beat holds its lock and nothing can evict or lose
keys, so each case breaks exactly one thing. ``NOW`` is fixed, so expectations are exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.beat.redbeat_codec import encode_definition, encode_meta
from reconciler.cli.commands import drift as drift_command
from reconciler.cli.commands.requests import Console, DriftRequest
from reconciler.core.beat_clock import BeatTiming
from reconciler.core.drift_findings import (
    DEFAULT_OVERDUE_GRACE,
    FIXABLE,
    DriftFinding,
    DriftInputs,
    DriftReport,
    Kind,
    ScannedKey,
    ServerFacts,
    Severity,
)
from reconciler.core.live import LiveEntry, LiveState
from reconciler.core.model import CronSchedule, DesiredEntry, IntervalSchedule, RRuleSchedule
from reconciler.core.scores import PARKED, score_of
from reconciler.store.keys import MARKER_VALUE
from tests.support.core import expected_score, find_drift

if TYPE_CHECKING:
    from collections.abc import Sequence

UTC = timezone.utc
NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)  # a Monday
LAST_RUN = datetime(2024, 6, 10, 3, 0, tzinfo=UTC)  # the nightly entry's last run, today
NEXT_NIGHTLY = datetime(2024, 6, 11, 3, 0, tzinfo=UTC)
DAILY = 3  # dateutil's frequency, as RedBeat stores it
ALIVE = ServerFacts(
    beat_lock_ttl_ms=25_000, maxmemory_policy="noeviction", save="3600 1", appendonly="no"
)
APPLY = "run 'reconciler apply' (or drift --fix)"


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
    run_count: int = 7,
    timezone_name: str = "UTC",
    **overrides: Any,
) -> LiveEntry:
    """What Redis holds for ``desired`` after an apply and a run at ``last_run_at``."""
    fields: dict[str, Any] = {
        "definition_text": encode_definition(desired, timezone_name),
        "meta_text": encode_meta(last_run_at, run_count, timezone_name),
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


def inputs(
    *entries: LiveEntry,
    deleted: Sequence[str] = (),
    scanned: Sequence[ScannedKey] = (),
    dangling: Sequence[str] = (),
    server: ServerFacts = ALIVE,
) -> DriftInputs:
    live = LiveState(
        {live.name: live for live in entries},
        managed_names=frozenset(live.name for live in entries if live.indexed),
        static_names=frozenset(live.name for live in entries if live.static),
        deleted_names=frozenset(deleted),
    )
    return DriftInputs(live, tuple(scanned), tuple(dangling), server)


def meta_only(name: str, **overrides: Any) -> LiveEntry:
    """A hash holding nothing but run history, as a beat tick racing a delete leaves it."""
    return LiveEntry(name, meta_text=encode_meta(LAST_RUN, 3, "UTC"), **overrides)


def summary(findings: Sequence[DriftFinding]) -> list[tuple[str, str, str | None]]:
    return [(f.kind.value, f.severity.value, f.name) for f in findings]


NIGHTLY = entry()
NIGHTLY_AT_4 = entry(schedule=CronSchedule(minute="0", hour="4"))
PAUSED = entry("paused", enabled=False)


# --- each kind: severity, name, explanation, action -----------------------------------------


@dataclass(frozen=True)
class Expect:
    kind: Kind
    severity: Severity
    name: str | None
    says: str  # a phrase the explanation must contain
    action: str


@pytest.mark.parametrize(
    ("desired", "drift_inputs", "expected"),
    [
        pytest.param(
            [NIGHTLY],
            inputs(),
            Expect(Kind.MISSING, Severity.ERROR, "nightly", "not in Redis", APPLY),
            id="missing",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(meta_only("nightly", indexed=True, marker=MARKER_VALUE)),
            Expect(Kind.MISSING, Severity.ERROR, "nightly", "beat does not run it", APPLY),
            id="missing-with-only-meta-left",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(meta_only("nightly"), deleted=["nightly"]),
            Expect(Kind.MISSING, Severity.ERROR, "nightly", "not in Redis", APPLY),
            id="missing-tombstoned-then-put-back-in-the-files",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY_AT_4)),
            Expect(
                Kind.MODIFIED,
                Severity.ERROR,
                "nightly",
                "differs from the schedule files",
                "run 'reconciler apply' to restore it (or drift --fix)",
            ),
            id="modified",
        ),
        pytest.param(
            [],
            inputs(healthy(NIGHTLY)),
            Expect(
                Kind.UNEXPECTED,
                Severity.WARNING,
                "nightly",
                "no longer in the schedule files; beat still runs it",
                "run 'reconciler apply --prune' to delete it, or put it back in the files",
            ),
            id="unexpected",
        ),
        pytest.param(
            [],
            inputs(LiveEntry("nightly", indexed=True)),
            Expect(
                Kind.UNEXPECTED,
                Severity.WARNING,
                "nightly",
                "in the managed index, but gone",
                "run 'reconciler apply --prune' to delete it, or put it back in the files",
            ),
            id="unexpected-index-entry-without-hash",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, marker=None, indexed=False)),
            Expect(
                Kind.CONFLICT,
                Severity.ERROR,
                "nightly",
                "not managed by the reconciler, so apply refuses it",
                "run 'reconciler apply --adopt' to take it over, keeping its run history",
            ),
            id="conflict",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, score=None)),
            Expect(Kind.UNSCHEDULED, Severity.ERROR, "nightly", "it never fires", APPLY),
            id="unscheduled",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY), dangling=["ghost"]),
            Expect(
                Kind.DANGLING,
                Severity.WARNING,
                "ghost",
                "whose entry hash is gone",
                "not the reconciler's to remove: beat drops it when it comes due",
            ),
            id="dangling",
        ),
        pytest.param(
            [],
            inputs(scanned=[ScannedKey("leftover", has_definition=False, has_meta=True)]),
            Expect(
                Kind.ORPHAN,
                Severity.WARNING,
                "leftover",
                "only run history (meta) and no definition, typically left by a beat tick "
                "racing a delete",
                "not the reconciler's to remove: beat never runs it; ask whoever deleted the entry",
            ),
            id="orphan-scanned-unknown",
        ),
        pytest.param(
            [],
            inputs(meta_only("retired"), deleted=["retired"]),
            Expect(
                Kind.ORPHAN,
                Severity.WARNING,
                "retired",
                "only run history (meta) and no definition, left by a beat tick racing the "
                "reconciler's delete",
                APPLY,
            ),
            id="orphan-tombstoned-ours",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, score=NEXT_NIGHTLY.timestamp() + 86_400)),
            Expect(Kind.STALE_SCORE, Severity.ERROR, "nightly", "runs will be missed", APPLY),
            id="stale-score-too-late",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, score=PARKED)),
            Expect(Kind.STALE_SCORE, Severity.ERROR, "nightly", "parked at -1", APPLY),
            id="stale-score-parked-while-enabled",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, last_run_at=None, score=score_of(NOW) + 3600)),
            Expect(Kind.STALE_SCORE, Severity.ERROR, "nightly", "too late", APPLY),
            id="stale-score-never-run-scored-later-than-now",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, meta_text=None)),
            Expect(Kind.NO_HISTORY, Severity.WARNING, "nightly", "no run history (meta)", APPLY),
            id="no-history",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, ttl_ms=60_000)),
            Expect(Kind.EXPIRING, Severity.ERROR, "nightly", "has a TTL", APPLY),
            id="expiring",
        ),
        pytest.param(
            # The index alone is no proof of ownership: RedBeat never removes one field, so
            # a definition without the marker was written (or re-created) by someone else.
            [NIGHTLY],
            inputs(healthy(NIGHTLY, marker=None)),
            Expect(
                Kind.CONFLICT,
                Severity.ERROR,
                "nightly",
                "in the reconciler's managed index, but its hash does not carry the ownership "
                "marker",
                "run 'reconciler apply --adopt' to take it over, keeping its run history",
            ),
            id="index-only-is-a-conflict",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, marker='{"managed_by": "someone-else"}')),
            Expect(
                Kind.CONFLICT,
                Severity.ERROR,
                "nightly",
                "in the reconciler's managed index, but its hash does not carry the ownership "
                "marker",
                "run 'reconciler apply --adopt' to take it over, keeping its run history",
            ),
            id="index-and-a-foreign-marker-is-a-conflict",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, indexed=False)),
            Expect(Kind.UNMARKED, Severity.WARNING, "nightly", "managed index", APPLY),
            id="unmarked-not-indexed",
        ),
        pytest.param(
            [PAUSED],
            inputs(healthy(PAUSED, score=NEXT_NIGHTLY.timestamp())),
            Expect(
                Kind.STALE_SCORE, Severity.WARNING, "paused", "disabled but still scheduled", APPLY
            ),
            id="unparked-disabled-after-runs",
        ),
        pytest.param(
            [PAUSED],
            inputs(healthy(PAUSED, meta_text=None, score=NEXT_NIGHTLY.timestamp())),
            Expect(
                Kind.STALE_SCORE, Severity.WARNING, "paused", "disabled but still scheduled", APPLY
            ),
            id="unparked-disabled-without-history",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, last_run_at=LAST_RUN - timedelta(days=2))),
            Expect(
                Kind.OVERDUE,
                Severity.ERROR,
                "nightly",
                "last ran at 2024-06-08T03:00:00+00:00; a run was due at "
                "2024-06-09T03:00:00+00:00 and has not happened",
                "check that beat is running and can reach the broker",
            ),
            id="overdue",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY), server=ServerFacts(maxmemory_policy="noeviction")),
            Expect(
                Kind.BEAT_NOT_RUNNING,
                Severity.ERROR,
                None,
                "lock key is absent",
                "start celery beat with redbeat.RedBeatScheduler (or pass --no-beat-lock if "
                "beat runs without a lock)",
            ),
            id="beat-not-running",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY, static=True)),
            Expect(
                Kind.STATIC_OVERLAP,
                Severity.ERROR,
                "nightly",
                "also named in beat's :statics set",
                "remove it from beat_schedule or from the schedule files (and the managed index)",
            ),
            id="static-overlap",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(
                healthy(NIGHTLY),
                server=ServerFacts(beat_lock_ttl_ms=25_000, maxmemory_policy="allkeys-lru"),
            ),
            Expect(
                Kind.EVICTION_RISK,
                Severity.WARNING,
                None,
                "maxmemory-policy is allkeys-lru",
                "use maxmemory-policy noeviction (or a volatile-* policy) for beat's Redis",
            ),
            id="eviction-risk",
        ),
        pytest.param(
            [NIGHTLY],
            inputs(healthy(NIGHTLY), scanned=[ScannedKey("app-job", True, True)]),
            Expect(
                Kind.UNMANAGED,
                Severity.INFO,
                "app-job",
                "created outside the reconciler",
                "nothing to do; 'reconciler export' and 'apply --adopt' can bring it in",
            ),
            id="unmanaged",
        ),
    ],
)
def test_each_kind_of_finding(
    desired: list[DesiredEntry], drift_inputs: DriftInputs, expected: Expect
) -> None:
    findings = find_drift(desired, drift_inputs, now=NOW)

    assert len(findings) == 1, summary(findings)
    (finding,) = findings
    assert (finding.kind, finding.severity, finding.name) == (
        expected.kind,
        expected.severity,
        expected.name,
    )
    assert expected.says in finding.explanation
    assert finding.action == expected.action
    assert "\n" not in finding.explanation
    # Server-wide findings are told apart by their situation (policy vs persistence).
    assert finding.key == (expected.kind.value, expected.name or finding.explanation)


def test_modified_lists_field_level_differences_in_path_order() -> None:
    edited = entry(
        schedule=CronSchedule(minute="0", hour="4"), args=[2, "eu"], kwargs={"region": "us"}
    )

    (finding,) = find_drift([NIGHTLY], inputs(healthy(edited)), now=NOW)

    assert finding.kind is Kind.MODIFIED
    # What Redis holds -> what the files say.
    assert finding.details == (
        "args[0]: 2 -> 1",
        'kwargs.region: "us" -> "eu"',
        'schedule.hour: "4" -> "3"',
    )


def test_modified_names_an_unreadable_definition() -> None:
    (finding,) = find_drift(
        [NIGHTLY], inputs(healthy(NIGHTLY, definition_text="{not json")), now=NOW
    )

    assert (finding.kind, finding.severity) == (Kind.MODIFIED, Severity.ERROR)
    assert finding.details == ("unreadable definition",)


def test_one_changed_byte_of_the_stored_definition_is_drift_and_only_its_bytes_can_skip() -> None:
    """Drift skips parsing a definition whose bytes are exactly the files' (the shortcut);
    any one byte changed in a value is seen, while the same JSON spaced otherwise is not."""
    stored = encode_definition(NIGHTLY, "UTC")
    values = [index for index, char in enumerate(stored) if char.isdigit() or char == "e"]
    assert len(values) > 10
    for index in values:
        flipped = stored[:index] + ("7" if stored[index] != "7" else "8") + stored[index + 1 :]
        found = find_drift([NIGHTLY], inputs(healthy(NIGHTLY, definition_text=flipped)), now=NOW)
        assert [f.kind for f in found] == [Kind.MODIFIED], (index, flipped)
    respaced = json.dumps(json.loads(stored), indent=1)
    assert respaced != stored
    assert find_drift([NIGHTLY], inputs(healthy(NIGHTLY, definition_text=respaced)), now=NOW) == []


def test_a_modified_entry_gets_no_health_findings_on_top() -> None:
    # apply rewrites it anyway; a stale score on a definition about to change means nothing.
    live = healthy(NIGHTLY_AT_4, score=None, ttl_ms=5_000, indexed=False)

    assert summary(find_drift([NIGHTLY], inputs(live), now=NOW)) == [
        ("modified", "error", "nightly")
    ]


def test_health_findings_of_one_entry_come_together() -> None:
    live = healthy(NIGHTLY, meta_text=None, score=None, ttl_ms=5_000, indexed=False)

    assert summary(find_drift([NIGHTLY], inputs(live), now=NOW)) == [
        ("no-history", "warning", "nightly"),
        ("unscheduled", "error", "nightly"),
        ("expiring", "error", "nightly"),
        ("unmarked", "warning", "nightly"),
    ]


def test_a_static_name_missing_from_redis_is_both() -> None:
    live = LiveState(static_names=frozenset({"nightly"}))

    assert summary(find_drift([NIGHTLY], DriftInputs(live, server=ALIVE), now=NOW)) == [
        ("static-overlap", "error", "nightly"),
        ("missing", "error", "nightly"),
    ]


def test_a_managed_name_in_statics_is_a_static_overlap_even_when_gone_from_the_files() -> None:
    # Issue 4: "static overlap — a managed name also present in :statics". plan refuses to
    # prune such a name (a static conflict), so 'apply --prune' cannot be the advice.
    findings = find_drift([], inputs(healthy(NIGHTLY, static=True)), now=NOW)

    assert ("static-overlap", "error", "nightly") in summary(findings)


# --- dangling and orphans -----------------------------------------------------------------


def test_a_dangling_member_of_a_desired_name_is_reported_as_missing_only() -> None:
    findings = find_drift([NIGHTLY], inputs(dangling=["nightly"]), now=NOW)

    assert summary(findings) == [("missing", "error", "nightly")]


def test_every_dangling_member_is_reported() -> None:
    findings = find_drift([], inputs(dangling=["b-gone", "a-gone"]), now=NOW)

    assert summary(findings) == [
        ("dangling", "warning", "b-gone"),
        ("dangling", "warning", "a-gone"),
    ]


def test_an_orphan_both_scanned_and_tombstoned_is_reported_once_as_ours() -> None:
    findings = find_drift(
        [],
        inputs(
            meta_only("retired"),
            deleted=["retired"],
            scanned=[ScannedKey("retired", has_definition=False, has_meta=True)],
        ),
        now=NOW,
    )

    assert summary(findings) == [("orphan", "warning", "retired")]
    assert "the reconciler's delete" in findings[0].explanation
    assert findings[0].action == APPLY


def test_orphans_come_in_name_order() -> None:
    scanned = [ScannedKey(name, False, True) for name in ("zz", "aa", "mm")]

    assert [f.name for f in find_drift([], inputs(scanned=scanned), now=NOW)] == ["aa", "mm", "zz"]


@pytest.mark.parametrize(
    "tombstoned",
    [
        pytest.param(LiveEntry("retired"), id="gone-entirely"),
        pytest.param(
            LiveEntry("retired", definition_text=encode_definition(entry("retired"), "UTC")),
            id="re-created-with-a-definition",
        ),
    ],
)
def test_a_tombstone_without_a_meta_only_hash_is_no_orphan(tombstoned: LiveEntry) -> None:
    findings = find_drift([], inputs(tombstoned, deleted=["retired"]), now=NOW)

    assert Kind.ORPHAN not in {f.kind for f in findings}


@pytest.mark.parametrize(
    "scanned",
    [
        pytest.param(ScannedKey("app-job", has_definition=True, has_meta=False), id="never-run"),
        pytest.param(ScannedKey("app-job", has_definition=True, has_meta=True), id="has-run"),
    ],
)
def test_an_unmanaged_entry_is_information_never_drift(scanned: ScannedKey) -> None:
    findings = find_drift([], inputs(scanned=[scanned]), now=NOW)

    assert summary(findings) == [("unmanaged", "info", "app-job")]
    report = DriftReport(tuple(findings), NOW)
    assert report.alerting == ()


def test_a_scanned_key_with_a_desired_name_is_judged_as_that_entry() -> None:
    findings = find_drift(
        [NIGHTLY],
        inputs(healthy(NIGHTLY), scanned=[ScannedKey("nightly", True, True)]),
        now=NOW,
    )

    assert findings == []


# --- overdue ------------------------------------------------------------------------------

TWO_DAYS_AGO = LAST_RUN - timedelta(days=2)  # next run was due 2024-06-09 03:00


@pytest.mark.parametrize(
    ("now", "grace", "overdue"),
    [
        pytest.param(NEXT_NIGHTLY, DEFAULT_OVERDUE_GRACE, False, id="due-right-now"),
        pytest.param(
            NEXT_NIGHTLY + DEFAULT_OVERDUE_GRACE, DEFAULT_OVERDUE_GRACE, False, id="at-the-grace"
        ),
        pytest.param(
            NEXT_NIGHTLY + DEFAULT_OVERDUE_GRACE - timedelta(seconds=1),
            DEFAULT_OVERDUE_GRACE,
            False,
            id="just-inside-the-grace",
        ),
        pytest.param(
            NEXT_NIGHTLY + DEFAULT_OVERDUE_GRACE + timedelta(seconds=1),
            DEFAULT_OVERDUE_GRACE,
            True,
            id="just-outside-the-grace",
        ),
        pytest.param(
            NEXT_NIGHTLY + timedelta(hours=1), timedelta(hours=2), False, id="a-longer-grace"
        ),
        pytest.param(NEXT_NIGHTLY + timedelta(seconds=1), timedelta(0), True, id="no-grace-at-all"),
    ],
)
def test_overdue_allows_a_grace_after_the_due_run(
    now: datetime, grace: timedelta, overdue: bool
) -> None:
    findings = find_drift([NIGHTLY], inputs(healthy(NIGHTLY)), now=now, overdue_grace=grace)

    assert summary(findings) == ([("overdue", "error", "nightly")] if overdue else [])


def test_the_default_grace_is_five_minutes() -> None:
    assert timedelta(minutes=5) == DEFAULT_OVERDUE_GRACE


def test_overdue_names_both_times_in_beats_timezone() -> None:
    paris = "Europe/Paris"
    live = healthy(NIGHTLY, last_run_at=TWO_DAYS_AGO, timezone_name=paris)

    (finding,) = find_drift([NIGHTLY], inputs(live), now=NOW, timezone_name=paris)

    assert finding.kind is Kind.OVERDUE
    # 03:00 in Paris (CEST) is 01:00 UTC: the run after 2024-06-08T05:00+02:00 is the
    # 03:00 local run of 2024-06-09.
    assert finding.explanation == (
        "last ran at 2024-06-08T05:00:00+02:00; a run was due at 2024-06-09T03:00:00+02:00 "
        "and has not happened"
    )


def test_an_overdue_interval_entry() -> None:
    every_five = entry("poll", schedule=IntervalSchedule(seconds=300))
    live = healthy(every_five, last_run_at=NOW - timedelta(minutes=11))

    assert summary(find_drift([every_five], inputs(live), now=NOW)) == [
        ("overdue", "error", "poll")
    ]
    live = healthy(every_five, last_run_at=NOW - timedelta(minutes=9))
    assert find_drift([every_five], inputs(live), now=NOW) == []


def test_a_disabled_entry_is_never_overdue() -> None:
    live = healthy(PAUSED, last_run_at=LAST_RUN - timedelta(days=300))

    assert find_drift([PAUSED], inputs(live), now=NOW) == []


def test_an_entry_that_never_ran_is_never_overdue() -> None:
    # run_on_create: meta without a last run, scored "due now"; beat has not picked it up yet.
    live = healthy(NIGHTLY, last_run_at=None, score=score_of(NOW - timedelta(days=30)))

    assert find_drift([NIGHTLY], inputs(live), now=NOW) == []


def test_an_ended_rrule_is_never_overdue() -> None:
    once = entry(
        "once",
        schedule=RRuleSchedule(freq=DAILY, dtstart=datetime(2024, 1, 1, 9, tzinfo=UTC), count=1),
    )
    live = healthy(once, last_run_at=datetime(2024, 1, 1, 9, tzinfo=UTC))

    assert find_drift([once], inputs(live), now=NOW) == []


# --- beat lock ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "desired", "live", "reported"),
    [
        pytest.param(
            ServerFacts(beat_lock_ttl_ms=-2), [NIGHTLY], [healthy(NIGHTLY)], True, id="absent"
        ),
        pytest.param(
            ServerFacts(beat_lock_ttl_ms=-1), [NIGHTLY], [healthy(NIGHTLY)], True, id="no-ttl"
        ),
        pytest.param(
            ServerFacts(beat_lock_ttl_ms=1), [NIGHTLY], [healthy(NIGHTLY)], False, id="held"
        ),
        pytest.param(
            ServerFacts(beat_lock_checked=False, beat_lock_ttl_ms=-2),
            [NIGHTLY],
            [healthy(NIGHTLY)],
            False,
            id="no-beat-lock-option",
        ),
        pytest.param(ServerFacts(beat_lock_ttl_ms=-2), [], [], False, id="no-entries-at-all"),
        pytest.param(
            ServerFacts(beat_lock_ttl_ms=-2), [NIGHTLY], [], True, id="desired-entries-only"
        ),
        pytest.param(
            ServerFacts(beat_lock_ttl_ms=-2), [], [healthy(NIGHTLY)], True, id="managed-only"
        ),
    ],
)
def test_beat_not_running(
    server: ServerFacts, desired: list[DesiredEntry], live: list[LiveEntry], reported: bool
) -> None:
    findings = find_drift(desired, inputs(*live, server=server), now=NOW)

    beat = [f for f in findings if f.kind is Kind.BEAT_NOT_RUNNING]
    assert summary(beat) == ([("beat-not-running", "error", None)] if reported else [])


# --- eviction risk ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "save", "appendonly", "expected"),
    [
        ("allkeys-lru", "3600 1", "no", ["maxmemory-policy is allkeys-lru"]),
        ("allkeys-lfu", "3600 1", "no", ["maxmemory-policy is allkeys-lfu"]),
        ("allkeys-random", "3600 1", "yes", ["maxmemory-policy is allkeys-random"]),
        ("volatile-lru", "3600 1", "no", []),
        ("volatile-lfu", "3600 1", "no", []),
        ("volatile-random", "3600 1", "no", []),
        ("volatile-ttl", "3600 1", "no", []),
        ("noeviction", "3600 1", "no", []),
        ("noeviction", "", "no", ["persistence is off"]),
        ("noeviction", "", "yes", []),
        ("noeviction", "900 1", "no", []),
        ("noeviction", None, None, []),
        ("noeviction", "", None, []),
        (None, None, None, []),
        ("allkeys-lru", "", "no", ["maxmemory-policy is allkeys-lru", "persistence is off"]),
    ],
)
def test_eviction_risk(
    policy: str | None, save: str | None, appendonly: str | None, expected: list[str]
) -> None:
    server = ServerFacts(
        beat_lock_ttl_ms=25_000, maxmemory_policy=policy, save=save, appendonly=appendonly
    )

    findings = find_drift([NIGHTLY], inputs(healthy(NIGHTLY), server=server), now=NOW)

    assert [f.kind for f in findings] == [Kind.EVICTION_RISK] * len(expected)
    assert all(f.severity is Severity.WARNING and f.name is None for f in findings)
    for finding, phrase in zip(findings, expected, strict=True):
        assert phrase in finding.explanation


def test_config_not_permitted_is_an_informational_note_only() -> None:
    error = "NOPERM User reader has no permissions to run the 'config|get' command"
    # Whatever else came back is not trusted once CONFIG failed.
    server = ServerFacts(
        beat_lock_ttl_ms=25_000,
        maxmemory_policy="allkeys-lru",
        save="",
        appendonly="no",
        config_error=error,
    )

    findings = find_drift([NIGHTLY], inputs(healthy(NIGHTLY), server=server), now=NOW)

    assert summary(findings) == [("eviction-risk", "info", None)]
    assert findings[0].explanation == (
        f"could not read Redis's configuration ({error}); eviction policy and persistence "
        "were not checked"
    )
    assert findings[0].action == "check maxmemory-policy and persistence with your Redis provider"


def test_config_not_permitted_still_reports_beat_not_running() -> None:
    server = ServerFacts(beat_lock_ttl_ms=-2, config_error="NOPERM")

    findings = find_drift([NIGHTLY], inputs(healthy(NIGHTLY), server=server), now=NOW)

    assert summary(findings) == [
        ("beat-not-running", "error", None),
        ("eviction-risk", "info", None),
    ]


# --- what is not drift --------------------------------------------------------------------

EVERY_FIVE = entry("poll", task="app.tasks.poll", schedule=IntervalSchedule(seconds=300))
MORNINGS = entry(
    "mornings",
    schedule=RRuleSchedule(freq=DAILY, dtstart=datetime(2024, 1, 1, 9, tzinfo=UTC)),
)


def clean_state() -> DriftInputs:
    return inputs(
        healthy(NIGHTLY),
        healthy(PAUSED),
        healthy(EVERY_FIVE, last_run_at=NOW - timedelta(minutes=3)),
        healthy(MORNINGS, last_run_at=datetime(2024, 6, 10, 9, tzinfo=UTC)),
        healthy(entry("fresh"), last_run_at=None),
    )


DESIRED = [NIGHTLY, PAUSED, EVERY_FIVE, MORNINGS, entry("fresh")]


def test_a_clean_state_has_no_findings() -> None:
    assert find_drift(DESIRED, clean_state(), now=NOW) == []


def test_the_order_of_the_files_does_not_matter() -> None:
    assert find_drift(DESIRED[::-1], clean_state(), now=NOW) == []
    broken = inputs(healthy(NIGHTLY, ttl_ms=1), healthy(PAUSED, score=1.0))
    assert find_drift([NIGHTLY, PAUSED], broken, now=NOW) == find_drift(
        [PAUSED, NIGHTLY], broken, now=NOW
    )


AFTER_TONIGHT = datetime(2024, 6, 11, 3, 0, 0, 412_000, tzinfo=UTC)
SOON_AFTER = LAST_RUN + timedelta(hours=1)


@pytest.mark.parametrize(
    ("live", "now"),
    [
        pytest.param(healthy(NIGHTLY, run_count=8), SOON_AFTER, id="run-count"),
        pytest.param(healthy(NIGHTLY, run_count=0), SOON_AFTER, id="run-count-reset"),
        pytest.param(
            healthy(NIGHTLY, last_run_at=AFTER_TONIGHT),
            AFTER_TONIGHT + timedelta(hours=1),
            id="ran-again-score-moved",
        ),
        pytest.param(
            healthy(NIGHTLY, score=NEXT_NIGHTLY.timestamp() - 1),
            SOON_AFTER,
            id="score-truncated-by-beat",
        ),
        pytest.param(
            healthy(NIGHTLY, score=NEXT_NIGHTLY.timestamp() + 2),
            SOON_AFTER,
            id="score-within-tolerance",
        ),
        pytest.param(healthy(NIGHTLY, score=score_of(NOW)), SOON_AFTER, id="score-early"),
    ],
)
def test_runtime_fields_are_never_drift(live: LiveEntry, now: datetime) -> None:
    assert find_drift([NIGHTLY], inputs(live), now=now) == []


# --- the report ---------------------------------------------------------------------------


def finding(kind: Kind, severity: Severity, name: str | None = "x") -> DriftFinding:
    return DriftFinding(kind, severity, name, "explained", "act")


@pytest.mark.parametrize(
    ("findings", "key_prefix", "text"),
    [
        ((), "redbeat:", "No drift: RedBeat matches the schedule files and is healthy."),
        (
            (finding(Kind.UNMANAGED, Severity.INFO),),
            "redbeat:",
            "No drift: RedBeat matches the schedule files and is healthy (1 informational note).",
        ),
        (
            (finding(Kind.UNMANAGED, Severity.INFO), finding(Kind.EVICTION_RISK, Severity.INFO)),
            "redbeat:",
            "No drift: RedBeat matches the schedule files and is healthy (2 informational notes).",
        ),
        (
            (
                finding(Kind.MISSING, Severity.ERROR),
                finding(Kind.UNMARKED, Severity.WARNING),
                finding(Kind.DANGLING, Severity.WARNING, "y"),
                finding(Kind.UNMANAGED, Severity.INFO),
            ),
            "app:beat:",
            "Drift: 1 error(s), 2 warning(s) in app:beat:.",
        ),
        (
            (finding(Kind.UNMARKED, Severity.WARNING),),
            "",
            "Drift: 0 error(s), 1 warning(s) in RedBeat.",
        ),
    ],
)
def test_summary(findings: tuple[DriftFinding, ...], key_prefix: str, text: str) -> None:
    assert DriftReport(findings, NOW, key_prefix=key_prefix).summary() == text


def test_alerting_is_warnings_and_errors_in_their_order() -> None:
    error = finding(Kind.MISSING, Severity.ERROR)
    info = finding(Kind.UNMANAGED, Severity.INFO)
    warning = finding(Kind.UNMARKED, Severity.WARNING)

    assert DriftReport((error, info, warning), NOW).alerting == (error, warning)
    assert DriftReport((info,), NOW).alerting == ()
    assert [s.rank for s in (Severity.INFO, Severity.WARNING, Severity.ERROR)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("findings", "exit_code"),
    [
        pytest.param((), 0, id="clean"),
        pytest.param((finding(Kind.UNMANAGED, Severity.INFO),), 0, id="info-only"),
        pytest.param((finding(Kind.UNMARKED, Severity.WARNING),), 2, id="warning"),
        pytest.param((finding(Kind.MISSING, Severity.ERROR),), 2, id="error"),
    ],
)
def test_drift_exits_2_only_for_warnings_and_errors(
    monkeypatch: pytest.MonkeyPatch, findings: tuple[DriftFinding, ...], exit_code: int
) -> None:
    report = DriftReport(findings, NOW, key_prefix="redbeat:")
    # The store side is exercised by the integration tests; here only the exit decision.
    monkeypatch.setattr(drift_command, "_check", lambda *_args: report)
    printed: list[str] = []

    status = drift_command.drift(DriftRequest(), Console(printed.append, printed.append))

    assert status == exit_code
    assert printed[-1].endswith(report.summary() + "\n")


def test_every_finding_that_promises_drift_fix_has_a_fixable_kind() -> None:
    # Each kind drift can produce, in one state; the action text is what users act on.
    live = inputs(
        healthy(NIGHTLY_AT_4),  # modified
        healthy(entry("unsched"), score=None, ttl_ms=5, marker=None, meta_text=None),
        healthy(entry("late"), score=NEXT_NIGHTLY.timestamp() + 86_400),
        healthy(PAUSED, score=1.0),
        healthy(entry("gone-from-files")),
        meta_only("retired"),
        deleted=["retired"],
        scanned=[ScannedKey("leftover", False, True), ScannedKey("app-job", True, True)],
        dangling=["ghost"],
        server=ServerFacts(maxmemory_policy="allkeys-lru", save="", appendonly="no"),
    )
    desired: list[DesiredEntry] = [NIGHTLY, entry("unsched"), entry("late"), PAUSED, entry("new")]

    findings = find_drift(desired, live, now=NOW)

    promised = {f.kind for f in findings if "drift --fix" in f.action}
    assert promised, summary(findings)
    assert promised - FIXABLE == set(), [
        (f.kind.value, f.action) for f in findings if f.kind in promised - FIXABLE
    ]


def test_fixable_kinds_are_those_apply_converges() -> None:
    assert {
        Kind.MISSING,
        Kind.MODIFIED,
        Kind.UNSCHEDULED,
        Kind.STALE_SCORE,
        Kind.NO_HISTORY,
        Kind.EXPIRING,
        Kind.UNMARKED,
        Kind.ORPHAN,
    } <= FIXABLE
    # Never healed: a decision for a person, or not ours to touch.
    for kind in (
        Kind.UNEXPECTED,
        Kind.CONFLICT,
        Kind.OVERDUE,
        Kind.BEAT_NOT_RUNNING,
        Kind.STATIC_OVERLAP,
        Kind.EVICTION_RISK,
        Kind.UNMANAGED,
    ):
        assert kind not in FIXABLE


def test_meta_written_in_another_zone_than_the_check_is_a_timezone_mismatch() -> None:
    # Beat writes each run in its own Celery timezone: a check configured with another
    # zone evaluates every crontab in the wrong zone, which must be said, once.
    live = healthy(NIGHTLY, last_run_at=AFTER_TONIGHT, timezone_name="Europe/Paris")

    findings = find_drift([NIGHTLY], inputs(live), now=AFTER_TONIGHT + timedelta(hours=1))
    in_paris = find_drift(
        [NIGHTLY],
        inputs(live),
        now=AFTER_TONIGHT + timedelta(hours=1),
        timezone_name="Europe/Paris",
    )

    assert [f.kind for f in findings if f.kind is Kind.TIMEZONE_MISMATCH] == [
        Kind.TIMEZONE_MISMATCH
    ]
    assert "Europe/Paris" in findings[-1].explanation
    assert not [f for f in in_paris if f.kind is Kind.TIMEZONE_MISMATCH]


# --- beat's loop interval against the shortest schedule --------------------------------

FROM_APP = BeatTiming(300.0, None, "the Celery app 'proj'", assumed=False)
FIFTEEN_MINUTES = CronSchedule(minute="*/15")


def pickup(desired: list[DesiredEntry], timing: BeatTiming) -> list[DriftFinding]:
    live = [healthy(item) for item in desired]
    found = find_drift(desired, inputs(*live), now=NOW, beat_timing=timing)
    return [finding for finding in found if finding.kind is Kind.SLOW_PICKUP]


@pytest.mark.parametrize(
    ("schedules", "expected"),
    [
        pytest.param({"poll": IntervalSchedule(30.0)}, ("poll", 30), id="interval"),
        pytest.param({"tick": CronSchedule()}, ("tick", 60), id="every-minute-cron"),
        pytest.param(
            {"tick": CronSchedule(minute="*/2"), "poll": IntervalSchedule(90.0)},
            ("poll", 90),
            id="shortest-wins",
        ),
        pytest.param({"nightly": CronSchedule(minute="0", hour="3")}, None, id="daily"),
        pytest.param({"slow": IntervalSchedule(600.0)}, None, id="longer-than-the-loop"),
        pytest.param({"q": FIFTEEN_MINUTES}, None, id="quarter-hour"),
    ],
)
def test_a_loop_interval_longer_than_the_shortest_schedule_is_reported(
    schedules: dict[str, Any], expected: tuple[str, int] | None
) -> None:
    desired = [entry(name, schedule=spec) for name, spec in schedules.items()]

    found = pickup(desired, FROM_APP)

    if expected is None:
        assert found == []
        return
    (finding,) = found
    name, period = expected
    assert (finding.name, finding.severity) == (name, Severity.WARNING)
    assert finding.explanation.startswith(
        f"beat sleeps up to 300 s between ticks (beat_max_loop_interval, the Celery app "
        f"'proj') but '{name}' runs every {period} s"
    )
    assert finding.action == (
        f"set beat_max_loop_interval to {period} s or less in beat's Celery configuration "
        "(or start beat with --max-interval)"
    )


def test_assumed_defaults_make_it_a_note_not_an_alert() -> None:
    (finding,) = pickup([entry("poll", schedule=IntervalSchedule(30.0))], BeatTiming())

    assert finding.severity is Severity.INFO
    assert "Celery's and RedBeat's defaults" in finding.explanation


def test_a_short_loop_or_a_disabled_entry_is_no_finding() -> None:
    short = BeatTiming(5.0, None, "--beat-max-loop-interval", assumed=False)

    assert pickup([entry("tick", schedule=CronSchedule())], short) == []
    assert pickup([entry("poll", schedule=IntervalSchedule(30.0), enabled=False)], FROM_APP) == []
