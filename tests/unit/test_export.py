"""export's pure conversion: stored RedBeat definitions to schedule file entries, and back.

The stored side is built the way RedBeat's ``save()`` builds it (Celery's and RedBeat's own
schedule objects through ``RedBeatJSONEncoder``), or as raw JSON for what only hand-written
or foreign code stores. Every exported entry must load through validate's code and
re-encode to a definition with the same essence; everything else is left out with a reason.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from celery.schedules import crontab, schedule
from dateutil.rrule import FR, MO, TU
from redbeat.decoder import RedBeatJSONEncoder
from redbeat.schedules import rrule

import reconciler.services.export as export_module
from reconciler import __version__
from reconciler.beat.celery_objects import schedule_app
from reconciler.beat.redbeat_codec import encode_definition
from reconciler.core.definitions import essence
from reconciler.core.diff import field_changes
from reconciler.core.live import LiveEntry
from reconciler.core.ownership import MARKER_VALUE
from reconciler.load.desired_state import read_schedule_files
from reconciler.services.export import (
    ExportSource,
    LeftOut,
    Unexportable,
    duration_text,
    export_schedule_file,
    exportable,
)

if TYPE_CHECKING:
    from pathlib import Path

UTC = timezone.utc
PLUS_2 = timezone(timedelta(hours=2))
INDIA = timezone(timedelta(hours=5, minutes=30))
NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
SOURCE = ExportSource("redis://:***@redis.internal:6379/0", "redbeat:")


def saved(
    name: str,
    schedule_object: Any,
    *,
    task: str = "app.tasks.job",
    args: Any = None,
    kwargs: Any = None,
    options: Any = None,
    enabled: bool = True,
) -> str:
    """The definition RedBeatSchedulerEntry(...).save() writes (the same dict, encoder)."""
    definition = {
        "name": name,
        "task": task,
        "args": args,
        "kwargs": kwargs,
        "options": options,
        "schedule": schedule_object,
        "enabled": enabled,
    }
    return json.dumps(definition, cls=RedBeatJSONEncoder)


def raw(name: str, schedule_json: Any, **fields: Any) -> str:
    """A definition written as JSON by hand, as foreign tools do."""
    definition = {"name": name, "task": "app.tasks.job", "args": [], "kwargs": {}}
    definition.update({"options": {}, "schedule": schedule_json, "enabled": True})
    definition.update(fields)
    return json.dumps(definition)


def redbeat_rrule(freq: str, **fields: Any) -> Any:
    return rrule(freq, app=schedule_app(), **fields)


def live(name: str, definition: str | None, **state: Any) -> LiveEntry:
    return LiveEntry(name, definition_text=definition, **state)


def export_one(name: str, definition: str) -> dict[str, Any]:
    return exportable(live(name, definition), now=NOW)


CONVERTED = [
    pytest.param(
        saved("j", crontab(minute=0)),
        {"task": "app.tasks.job", "cron": {"minute": 0}},
        id="crontab-int-stays-int",
    ),
    pytest.param(
        saved("j", crontab(minute="0", hour="3")),
        {"task": "app.tasks.job", "cron": "0 3 * * *"},
        id="crontab-strings-as-classic-cron",
    ),
    pytest.param(
        saved("j", crontab(minute="*/15", hour="9-17", day_of_week="mon-fri")),
        {"task": "app.tasks.job", "cron": "*/15 9-17 * * mon-fri"},
        id="crontab-names-steps",
    ),
    pytest.param(
        saved("j", crontab(minute="0", hour="0", day_of_month="13", day_of_week="5")),
        {
            "task": "app.tasks.job",
            "cron": {"minute": "0", "hour": "0", "day_of_month": "13", "day_of_week": "5"},
        },
        id="crontab-both-day-fields-keep-celery-meaning",
    ),
    pytest.param(
        saved("j", crontab(minute=0, hour=0, day_of_month=13, day_of_week=5)),
        {
            "task": "app.tasks.job",
            "cron": {"minute": 0, "hour": 0, "day_of_month": 13, "day_of_week": 5},
        },
        id="crontab-both-day-fields-ints",
    ),
    pytest.param(
        saved("j", crontab(minute="0", hour="3", month_of_year="1,7")),
        {"task": "app.tasks.job", "cron": "0 3 * 1,7 *"},
        id="crontab-month",
    ),
    pytest.param(
        saved("j", schedule(run_every=30)),
        {"task": "app.tasks.job", "every": "30s"},
        id="interval-seconds",
    ),
    pytest.param(
        saved("j", schedule(run_every=5400)),
        {"task": "app.tasks.job", "every": "1h30m"},
        id="interval-hours-minutes",
    ),
    pytest.param(
        saved("j", schedule(run_every=timedelta(days=2))),
        {"task": "app.tasks.job", "every": "2d"},
        id="interval-days",
    ),
    pytest.param(
        saved("j", schedule(run_every=90061)),
        {"task": "app.tasks.job", "every": "1d1h1m1s"},
        id="interval-every-unit",
    ),
    pytest.param(
        saved("j", schedule(run_every=2.5)),
        {"task": "app.tasks.job", "every": 2.5},
        id="interval-fraction-as-seconds",
    ),
    pytest.param(
        raw("j", {"__type__": "interval", "every": 300, "relative": False}),
        {"task": "app.tasks.job", "every": "5m"},
        id="interval-integer-json",
    ),
    pytest.param(
        saved(
            "j",
            redbeat_rrule(
                "MONTHLY",
                dtstart=datetime(2026, 1, 1, tzinfo=UTC),
                bymonthday=-1,
                byhour=23,
                byminute=0,
            ),
        ),
        {
            "task": "app.tasks.job",
            "rrule": {
                "freq": "MONTHLY",
                "dtstart": "2026-01-01T00:00:00+00:00",
                "bymonthday": -1,
                "byhour": 23,
                "byminute": 0,
            },
        },
        id="rrule-month-end",
    ),
    pytest.param(
        saved(
            "j",
            redbeat_rrule(
                "WEEKLY",
                dtstart=datetime(2026, 1, 5, 9, tzinfo=PLUS_2),
                until=datetime(2030, 1, 1, tzinfo=INDIA),
                interval=2,
                wkst=TU,
                byweekday=[MO, FR],
                byhour=[9, 17],
            ),
        ),
        {
            "task": "app.tasks.job",
            "rrule": {
                "freq": "WEEKLY",
                "dtstart": "2026-01-05T09:00:00+02:00",
                "until": "2030-01-01T00:00:00+05:30",
                "interval": 2,
                "wkst": "TU",
                "byweekday": ["MO", "FR"],
                "byhour": [9, 17],
            },
        },
        id="rrule-weekday-objects-offsets-until",
    ),
    pytest.param(
        saved(
            "j",
            redbeat_rrule(
                "YEARLY",
                dtstart=datetime(2026, 1, 1, tzinfo=UTC),
                count=20,
                bymonth=[3, 9],
                byweekday=[0, 1, 2, 3, 4],
                bysetpos=-1,
            ),
        ),
        {
            "task": "app.tasks.job",
            "rrule": {
                "freq": "YEARLY",
                "dtstart": "2026-01-01T00:00:00+00:00",
                "count": 20,
                "bysetpos": -1,
                "bymonth": [3, 9],
                "byweekday": ["MO", "TU", "WE", "TH", "FR"],
            },
        },
        id="rrule-weekday-ints-count-bysetpos",
    ),
    pytest.param(
        saved(
            "j",
            crontab(minute="0", hour="3"),
            args=[1, "yes", None, 2.5, {"nested": ["12:30"]}],
            kwargs={"on": True, "région": "eu"},
            options={
                "queue": "reports",
                "expires": 3600,
                "priority": 3,
                "headers": {"trace": {"id": "abc"}},
                "retry_policy": {"max_retries": 3, "interval_start": 0},
            },
            enabled=False,
        ),
        {
            "task": "app.tasks.job",
            "cron": "0 3 * * *",
            "args": [1, "yes", None, 2.5, {"nested": ["12:30"]}],
            "kwargs": {"on": True, "région": "eu"},
            "options": {
                "queue": "reports",
                "expires": 3600,
                "priority": 3,
                "headers": {"trace": {"id": "abc"}},
                "retry_policy": {"max_retries": 3, "interval_start": 0},
            },
            "enabled": False,
        },
        id="args-kwargs-options-disabled",
    ),
    pytest.param(
        saved("j", schedule(run_every=60), args=[], kwargs={}, options={}),
        {"task": "app.tasks.job", "every": "1m"},
        id="empty-args-kwargs-options-omitted",
    ),
]


@pytest.mark.parametrize(("definition", "expected"), CONVERTED)
def test_stored_definitions_convert_to_file_entries(
    definition: str, expected: dict[str, Any]
) -> None:
    assert export_one("j", definition) == expected


@pytest.mark.parametrize(("definition", "expected"), CONVERTED)
def test_the_exported_file_validates_and_encodes_back_to_the_same_essence(
    definition: str, expected: dict[str, Any], tmp_path: Path
) -> None:
    result = export_schedule_file([live("j", definition)], SOURCE, now=NOW)
    path = tmp_path / "exported.yaml"
    path.write_text(result.text, encoding="utf-8")

    loaded = read_schedule_files([path], now=NOW)

    assert loaded.problems == []
    assert result.names == ("j",)
    assert result.left_out == ()
    [entry] = loaded.entries
    wanted = json.loads(encode_definition(entry))
    assert field_changes(essence(json.loads(definition)), essence(wanted)) == ()


def test_crontab_and_interval_bytes_are_kept_exactly(tmp_path: Path) -> None:
    # What application code wrote with RedBeat's API is re-encoded byte for byte, so an
    # adopting apply rewrites the same bytes.
    definitions = {
        "hourly": saved("hourly", crontab(minute=0)),
        "nightly": saved("nightly", crontab(minute="0", hour="3"), args=[1]),
        "ping": saved("ping", schedule(run_every=30), kwargs={"x": [1, 2]}),
    }
    result = export_schedule_file(
        [live(name, text) for name, text in definitions.items()], SOURCE, now=NOW
    )
    path = tmp_path / "exported.yaml"
    path.write_text(result.text, encoding="utf-8")

    loaded = read_schedule_files([path], now=NOW)

    assert {entry.name: encode_definition(entry) for entry in loaded.entries} == {
        name: text.replace('"args": null', '"args": []')
        .replace('"kwargs": null', '"kwargs": {}')
        .replace('"options": null', '"options": {}')
        for name, text in definitions.items()
    }


UNEXPORTABLE = [
    pytest.param(
        "sun",
        raw("sun", {"__type__": "solar", "event": "sunrise", "lat": 48.8, "lon": 2.3}),
        "solar schedules cannot be written in a schedule file",
        id="solar",
    ),
    pytest.param(
        "odd",
        raw("odd", {"__type__": "lunar"}),
        'schedule type "lunar" cannot be written',
        id="unknown-schedule-type",
    ),
    pytest.param(
        "odd", raw("odd", "0 3 * * *"), "not a RedBeat schedule object", id="schedule-not-object"
    ),
    pytest.param(
        "rel",
        saved("rel", schedule(run_every=60, relative=True)),
        "its interval is relative",
        id="relative-interval",
    ),
    pytest.param(
        "rel",
        raw("rel", {"__type__": "interval", "every": 60}),
        "no 'relative' flag",
        id="interval-without-relative",
    ),
    pytest.param(
        "tiny",
        raw("tiny", {"__type__": "interval", "every": 1.0000001, "relative": False}),
        "would not convert back to the same definition (schedule.every: 1.0000001 -> 1.0)",
        id="interval-below-a-microsecond",
    ),
    pytest.param(
        "decade",
        saved("decade", schedule(run_every=timedelta(days=4000))),
        "longer than 10 years",
        id="interval-too-long",
    ),
    pytest.param(
        "odd",
        raw("odd", {"__type__": "interval", "every": "often", "relative": False}),
        'its interval is "often", not a positive number of seconds',
        id="interval-not-number",
    ),
    pytest.param(
        "opts",
        saved("opts", schedule(run_every=60), options={"queue": "q", "link": "x"}),
        "its options hold 'link', which the schedule file format does not accept",
        id="unknown-option",
    ),
    pytest.param(
        "prio",
        saved("prio", schedule(run_every=60), options={"priority": 300}),
        "the schedule file format refuses it: 'options.priority' must be less than or equal",
        id="option-out-of-range",
    ),
    pytest.param(
        "extra",
        raw("extra", {"__type__": "interval", "every": 5, "relative": False}, owner="me"),
        "its definition holds keys beat cannot load (owner)",
        id="extra-definition-key",
    ),
    pytest.param(
        "renamed",
        saved("other-name", schedule(run_every=60)),
        'its definition names it "other-name", not the name in its key',
        id="name-mismatch",
    ),
    pytest.param(
        "two\nlines",
        saved("two\nlines", schedule(run_every=60)),
        "refuses its name: schedule name 'two\\nlines' contains the invisible or control "
        "character U+000A",
        id="name-with-newline",
    ),
    pytest.param(
        ":colon",
        saved(":colon", schedule(run_every=60)),
        "refuses its name: schedule name ':colon' starts with ':'",
        id="name-starting-with-colon",
    ),
    pytest.param(
        "x" * 201,
        saved("x" * 201, schedule(run_every=60)),
        "201 characters long; the limit is 200",
        id="name-too-long",
    ),
    pytest.param("broken", "{not json", "not a readable JSON object", id="unreadable-json"),
    pytest.param("broken", "[1, 2]", "not a readable JSON object", id="json-not-object"),
    pytest.param(
        "nan",
        saved("nan", schedule(run_every=60), args=[float("nan")]),
        "'args[0]' is not a finite number",
        id="non-json-number",
    ),
    pytest.param(
        "words",
        saved("words", schedule(run_every=60), args="not a list"),
        "'args' must be a list",
        id="args-not-a-list",
    ),
    pytest.param(
        "spaced",
        saved("spaced", schedule(run_every=60), task="app tasks"),
        "'task' must not contain white space",
        id="task-with-space",
    ),
    pytest.param(
        "ended",
        saved(
            "ended",
            redbeat_rrule(
                "DAILY",
                dtstart=datetime(2026, 1, 1, tzinfo=UTC),
                until=datetime(2026, 2, 1, tzinfo=UTC),
            ),
        ),
        "validate would refuse it: schedule 'ended' never fires after 2026-06-15T12:00:00+00:00 "
        "(its until, 2026-02-01T00:00:00+00:00, has passed)",
        id="rrule-ended",
    ),
    pytest.param(
        "feb30",
        raw(
            "feb30",
            {
                "__type__": "crontab",
                "minute": "0",
                "hour": "0",
                "day_of_week": "*",
                "day_of_month": "30",
                "month_of_year": "2",
            },
        ),
        "validate would refuse it: schedule 'feb30' is refused by Celery",
        id="cron-never-fires",
    ),
    pytest.param(
        "nodate",
        raw("nodate", {"__type__": "rrule", "freq": 3, "interval": 1}),
        "its rrule has no dtstart",
        id="rrule-without-dtstart",
    ),
    pytest.param(
        "freq",
        raw("freq", {"__type__": "rrule", "freq": 9, "dtstart": 1767225600, "dtstart_tz": 0}),
        "its rrule freq 9 is not a dateutil frequency",
        id="rrule-unknown-freq",
    ),
    pytest.param(
        "nth",
        raw(
            "nth",
            {
                "__type__": "rrule",
                "freq": 1,
                "dtstart": 1767225600,
                "dtstart_tz": 0,
                "byweekday": [{"__type__": "weekday", "wkday": 4, "n": -1}],
            },
        ),
        "more than a day (an nth weekday?)",
        id="rrule-nth-weekday",
    ),
    pytest.param(
        "frac",
        saved("frac", redbeat_rrule("DAILY", dtstart=datetime(2026, 1, 1, tzinfo=UTC))).replace(
            '"dtstart": 1767225600,', '"dtstart": 1767225600.5,'
        ),
        "would not convert back to the same definition (schedule.dtstart: 1767225600.5 -> "
        "1767225600)",
        id="rrule-fractional-dtstart",
    ),
    pytest.param(
        "offset",
        raw("offset", {"__type__": "rrule", "freq": 3, "dtstart": 1767225600, "dtstart_tz": 9999}),
        "its rrule dtstart (1767225600, offset 9999 minutes) is not a date-time RedBeat can read",
        id="rrule-impossible-offset",
    ),
    pytest.param(
        "flag",
        raw("flag", {"__type__": "interval", "every": 5, "relative": False}, enabled="no"),
        "'enabled' must be true or false",
        id="enabled-not-boolean",
    ),
]


@pytest.mark.parametrize(("name", "definition", "reason"), UNEXPORTABLE)
def test_what_a_file_cannot_express_is_left_out_with_the_reason(
    name: str, definition: str, reason: str
) -> None:
    with pytest.raises(Unexportable) as caught:
        export_one(name, definition)

    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_rule_missing_keys_redbeat_writes_is_left_out_rather_than_updated() -> None:
    # RedBeat writes every rrule key, null or not; the essence (as plan compares) keeps a
    # missing one apart from null, so adopting this entry would plan an update.
    definition = raw("short", {"__type__": "rrule", "freq": 3, "dtstart": 1767225600})

    with pytest.raises(Unexportable, match=r"schedule\.byeaster: \(none\) -> null"):
        export_one("short", definition)


def test_static_entries_are_left_out() -> None:
    entry = live("beat-own", saved("beat-own", schedule(run_every=60)), static=True)

    with pytest.raises(Unexportable, match=r"beat installs it from its own beat_schedule"):
        exportable(entry, now=NOW)


def test_export_keeps_the_rest_and_lists_what_it_left_out() -> None:
    entries = [
        live("sun", raw("sun", {"__type__": "solar", "event": "noon", "lat": 0, "lon": 0})),
        live("b-ping", saved("b-ping", schedule(run_every=30))),
        live("a-report", saved("a-report", crontab(minute="0", hour="3"))),
        live("orphan", None, meta_text='{"last_run_at": null}'),
        live("rel", saved("rel", schedule(run_every=60, relative=True))),
    ]

    result = export_schedule_file(entries, SOURCE, now=NOW)

    assert result.names == ("a-report", "b-ping")
    assert [item.name for item in result.left_out] == ["rel", "sun"]
    assert result.text.index("a-report:") < result.text.index("b-ping:")
    assert "orphan" not in result.text
    assert result.summary(SOURCE) == (
        "Exported 2 entries from redis://:***@redis.internal:6379/0 (key prefix 'redbeat:'); "
        "2 left out (listed above)."
    )


def test_beats_built_in_entry_is_skipped_not_left_out() -> None:
    # Exactly what celery.beat's install_default_entries has RedBeat save.
    cleanup = saved(
        "celery.backend_cleanup",
        crontab("0", "4", "*"),
        task="celery.backend_cleanup",
        kwargs={},
        options={"expires": 12 * 3600},
    )
    entries = [
        live("celery.backend_cleanup", cleanup),
        live("a-report", saved("a-report", crontab(minute="0", hour="3"))),
    ]

    result = export_schedule_file(entries, SOURCE, now=NOW)

    assert result.names == ("a-report",)
    assert "celery.backend_cleanup" not in result.text
    assert result.left_out == ()
    assert result.skipped == (
        LeftOut(
            "celery.backend_cleanup",
            "Celery beat's own built-in entry (beat rewrites it on every start)",
        ),
    )
    assert result.summary(SOURCE) == (
        "Exported 1 entry from redis://:***@redis.internal:6379/0 (key prefix 'redbeat:'); "
        "1 skipped (listed above)."
    )


def test_a_beat_schedule_entry_of_that_name_is_left_out_as_static() -> None:
    # Named in beat_schedule, beat installs the team's own entry instead of its default.
    entry = live(
        "celery.backend_cleanup",
        saved("celery.backend_cleanup", crontab("0", "5", "*"), task="celery.backend_cleanup"),
        static=True,
    )

    result = export_schedule_file([entry], SOURCE, now=NOW)

    assert result.skipped == ()
    assert [item.name for item in result.left_out] == ["celery.backend_cleanup"]
    assert "beat installs it from its own beat_schedule" in result.left_out[0].reason


def test_unmanaged_only_skips_managed_entries() -> None:
    # Ownership is the reconciler's marker on the hash: the managed index alone, or a field
    # of that name holding something else, is someone else's entry.
    definition = saved("x", schedule(run_every=30))
    entries = [
        live("indexed", definition.replace('"x"', '"indexed"'), indexed=True),
        live("marked", definition.replace('"x"', '"marked"'), marker=MARKER_VALUE),
        live("odd-marker", definition.replace('"x"', '"odd-marker"'), marker="{}"),
        live("foreign", definition.replace('"x"', '"foreign"')),
    ]
    everything = export_schedule_file(entries, SOURCE, now=NOW)
    unmanaged = export_schedule_file(
        entries, ExportSource(SOURCE.target, SOURCE.key_prefix, unmanaged_only=True), now=NOW
    )

    assert everything.names == ("foreign", "indexed", "marked", "odd-marker")
    assert unmanaged.names == ("foreign", "indexed", "odd-marker")
    assert unmanaged.left_out == ()
    assert "entries the reconciler does not manage" in unmanaged.text.splitlines()[0]


def test_the_file_is_block_style_with_a_header_and_sorted_names() -> None:
    entries = [
        live("zeta", saved("zeta", schedule(run_every=30), args=[1, 2])),
        live("alpha", saved("alpha", crontab(minute=0))),
    ]

    text = export_schedule_file(entries, SOURCE, now=NOW).text

    assert text == (
        f"# Exported by redbeat-reconciler {__version__} at 2026-06-15T12:00:00Z (every entry, "
        "managed or not)\n"
        "# from redis://:***@redis.internal:6379/0, key prefix 'redbeat:'.\n"
        "# Review it, then: reconciler validate; reconciler plan --adopt; reconciler apply "
        "--adopt\n"
        "version: 1\n"
        "schedules:\n"
        "  alpha:\n"
        "    task: app.tasks.job\n"
        "    cron:\n"
        "      minute: 0\n"
        "  zeta:\n"
        "    task: app.tasks.job\n"
        "    every: 30s\n"
        "    args:\n"
        "      - 1\n"
        "      - 2\n"
    )


def test_an_empty_export_is_a_valid_file(tmp_path: Path) -> None:
    result = export_schedule_file([], SOURCE, now=NOW)
    path = tmp_path / "exported.yaml"
    path.write_text(result.text, encoding="utf-8")

    assert result.text.endswith("version: 1\nschedules: {}\n")
    assert read_schedule_files([path], now=NOW).problems == []


def test_header_shows_odd_targets_and_prefixes_on_their_lines() -> None:
    source = ExportSource("embedded:.reconciler\nX", "app\n:")

    text = export_schedule_file([], source, now=NOW).text

    assert text.splitlines()[3:] == ["version: 1", "schedules: {}"]
    assert "embedded:.reconciler\\nX" in text
    assert "'app\\n:'" in text


TRICKY_STRINGS = [
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "~",
    "null",
    "true",
    "12:30",
    "1:20:30",
    "0123",
    "1e3",
    "0x1f",
    ".inf",
    "2026-01-01",
    "2026-01-01T00:00:00+00:00",
    "",
    " padded ",
    "a: b",
    "- item",
    "#hash",
    "line\nbreak",
    "tab\there",
    "\x1b[0m",
    "next\x85line",
    "sep\u2028arator",
    "nbsp\u00a0",
    "zero\u200bwidth",
    "\ufeffbom",
    "é ☃ 𝄞",
    "'quoted'",
    '"double"',
    "back\\slash",
    "x" * 5000,
]


def test_strings_read_back_exactly_as_validate_reads_them(tmp_path: Path) -> None:
    definition = saved(
        "tricky",
        schedule(run_every=60),
        args=TRICKY_STRINGS,
        kwargs={value: value for value in TRICKY_STRINGS},
        options={"headers": {value: [value] for value in TRICKY_STRINGS}},
    )

    result = export_schedule_file([live("tricky", definition)], SOURCE, now=NOW)
    path = tmp_path / "exported.yaml"
    path.write_text(result.text, encoding="utf-8")
    loaded = read_schedule_files([path], now=NOW)

    assert result.left_out == ()
    assert loaded.problems == []
    [entry] = loaded.entries
    assert entry.args == TRICKY_STRINGS
    assert list(entry.kwargs) == TRICKY_STRINGS
    for value in ("yes", "No", "on", "OFF", "y", "12:30", "1:20:30"):
        # Quoted, so that YAML 1.1 readers do not take them for booleans or numbers.
        assert f"- '{value}'\n" in result.text
    assert "- next\x85line" not in result.text


def test_values_that_would_not_read_back_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last safety net: the rendered text is parsed again. Simulate a renderer that
    # garbles one entry, and the entry is left out instead of exported wrong.
    render = export_module.schedule_file_yaml

    def garbling(entries: Any, header: str = "") -> str:
        return render(entries, header).replace("garble-me", "garbled")

    monkeypatch.setattr(export_module, "schedule_file_yaml", garbling)
    entries = [
        live("fine", saved("fine", schedule(run_every=30))),
        live("mangled", saved("mangled", schedule(run_every=30), args=["garble-me"])),
    ]

    result = export_schedule_file(entries, SOURCE, now=NOW)

    assert result.names == ("fine",)
    assert [(item.name, item.reason) for item in result.left_out] == [
        ("mangled", "its values do not read back the same from YAML (a bug: please report it)")
    ]
    assert "mangled" not in result.text


@pytest.mark.parametrize("levels", [61, 62, 900])
def test_values_nested_deeper_than_validate_reads_are_left_out(levels: int) -> None:
    deep: Any = "bottom"
    for _ in range(levels):
        deep = [deep]
    entries = [
        live("fine", saved("fine", schedule(run_every=30))),
        live("deep", saved("deep", schedule(run_every=30), args=deep)),
    ]

    result = export_schedule_file(entries, SOURCE, now=NOW)

    if levels <= 61:  # schedules > name > args: 64 levels in all
        assert result.names == ("deep", "fine")
        assert result.left_out == ()
    else:
        assert result.names == ("fine",)
        assert [(item.name, item.reason) for item in result.left_out] == [
            ("deep", "its values are nested deeper than the 64 levels a schedule file may have")
        ]


def test_a_file_validate_refuses_leaves_out_the_entries_that_cause_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Should the rendered text ever be refused as a whole, each entry is tried alone.
    monkeypatch.setattr(export_module, "MAX_DEPTH", 1000)
    deep: Any = "bottom"
    for _ in range(70):
        deep = [deep]
    entries = [
        live("fine", saved("fine", schedule(run_every=30))),
        live("deep", saved("deep", schedule(run_every=30), args=deep)),
    ]

    result = export_schedule_file(entries, SOURCE, now=NOW)

    assert result.names == ("fine",)
    assert [(item.name, item.reason) for item in result.left_out] == [
        ("deep", "validate would refuse it: document is nested more than 64 levels deep")
    ]


def test_an_unexpected_failure_leaves_out_one_entry_not_the_export(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(name: str, stored: Any) -> Any:
        if name == "odd":
            raise KeyError("boom")
        return convert(name, stored)

    convert = export_module.file_entry
    monkeypatch.setattr(export_module, "file_entry", failing)
    entries = [
        live("fine", saved("fine", schedule(run_every=30))),
        live("odd", saved("odd", schedule(run_every=30))),
    ]

    result = export_schedule_file(entries, SOURCE, now=NOW)

    assert result.names == ("fine",)
    assert [(item.name, item.reason) for item in result.left_out] == [
        ("odd", "it could not be converted (KeyError: 'boom'); a bug: please report it")
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1s"),
        (59, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400, "1h30m"),
        (86_400, "1d"),
        (172_800, "2d"),
        (604_800, "7d"),
        (90_061, "1d1h1m1s"),
    ],
)
def test_duration_text(seconds: int, text: str) -> None:
    assert duration_text(seconds) == text
