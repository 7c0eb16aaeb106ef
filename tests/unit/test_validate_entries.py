"""Rules about one entry: task, schedule kind, cron, every, rrule, args/kwargs and options.

Entries are written with ``job()``: the name 'job' is at 3:3, the body starts on line 5,
a body key is at column 5 and the value of ``key: value`` at column ``len(key) + 7``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .cli_runner import assert_single_problem, assert_valid, job, only_problem

if TYPE_CHECKING:
    from .cli_runner import Workspace

DTSTART = 'dtstart: "2026-01-01T00:00:00+00:00"'


# --- task -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "phrase"),
    [
        pytest.param(
            job("every: 5m", task=None),
            "s.yaml:3:3",
            "missing required key 'task'",
            id="missing",
        ),
        pytest.param(
            job('task: ""\nevery: 5m', task=None),
            "s.yaml:5:11",
            "'task' must be the registered Celery task name, not empty",
            id="empty",
        ),
        pytest.param(
            job("every: 5m", task="app.tasks.a b"),
            "s.yaml:4:11",
            "'task' must not contain white space, got 'app.tasks.a b'",
            id="white-space",
        ),
        pytest.param(
            job("every: 5m", task="42"),
            "s.yaml:4:11",
            "'task' must be a string, got int 42",
            id="number",
        ),
        pytest.param(
            job("every: 5m", task="[app.tasks.a]"),
            "s.yaml:4:11",
            "'task' must be a string, got a list",
            id="list",
        ),
    ],
)
def test_task_is_required_and_a_task_name(
    workspace: Workspace, text: str, where: str, phrase: str
) -> None:
    assert_single_problem(workspace.check(text), where, phrase)


def test_task_can_come_from_defaults(workspace: Workspace) -> None:
    run = workspace.check(
        """
        version: 1
        defaults: {task: app.tasks.shared}
        schedules:
          a: {every: 5m}
        """
    )
    assert_valid(run)


# --- schedule kind ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "where", "phrase"),
    [
        pytest.param(
            "args: [1]",
            "s.yaml:3:3",
            "schedule 'job' needs exactly one of cron, every or rrule",
            id="none",
        ),
        pytest.param(
            'cron: "0 3 * * *"\nevery: 5m',
            "s.yaml:6:5",
            "schedule 'job' has cron and every; it needs exactly one of cron, every or rrule",
            id="cron-and-every",
        ),
        pytest.param(
            f"every: 5m\nrrule: {{freq: DAILY, {DTSTART}}}",
            "s.yaml:6:5",
            "schedule 'job' has every and rrule; it needs exactly one",
            id="every-and-rrule",
        ),
        pytest.param(
            f'rrule: {{freq: DAILY, {DTSTART}}}\nevery: 5m\ncron: "0 3 * * *"',
            "s.yaml:6:5",
            "schedule 'job' has cron and every and rrule; it needs exactly one",
            id="all-three",
        ),
    ],
)
def test_exactly_one_schedule_kind(
    workspace: Workspace, body: str, where: str, phrase: str
) -> None:
    assert_single_problem(workspace.check(job(body)), where, phrase)


# --- cron -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cron",
    [
        pytest.param('"0 3 * * *"', id="daily-at-3"),
        pytest.param('"*/15 9-17 * * mon-fri"', id="steps-ranges-names"),
        pytest.param('"0 0 1 1 *"', id="new-year"),
        pytest.param('"0 0 * * 0"', id="sunday-0"),
        pytest.param('"0 0 * * sun"', id="sunday-name"),
        pytest.param('"5,35 * * jan-mar *"', id="list-and-month-names"),
        pytest.param('"0 0 29 2 *"', id="leap-day"),
        pytest.param('"@yearly"', id="at-yearly"),
        pytest.param('"@annually"', id="at-annually"),
        pytest.param('"@monthly"', id="at-monthly"),
        pytest.param('"@weekly"', id="at-weekly"),
        pytest.param('"@daily"', id="at-daily"),
        pytest.param('"@midnight"', id="at-midnight"),
        pytest.param('"@hourly"', id="at-hourly"),
        pytest.param('"@DAILY"', id="at-daily-upper-case"),
        pytest.param("{minute: 0, hour: 3}", id="mapping"),
        pytest.param("{minute: '*/5', day_of_week: 'mon-fri'}", id="mapping-strings"),
        # Celery's own "both must match" semantics, asked for explicitly
        pytest.param("{minute: 0, hour: 3, day_of_month: 1, day_of_week: 1}", id="mapping-dom-dow"),
    ],
)
def test_valid_cron_is_accepted(workspace: Workspace, cron: str) -> None:
    assert_valid(workspace.check(job(f"cron: {cron}")))


CRON_AT = "s.yaml:5:11"


@pytest.mark.parametrize(
    ("cron", "phrase"),
    [
        pytest.param(
            '"0 3 * *"',
            "cron expression '0 3 * *' has 4 fields; expected 5: minute hour day-of-month "
            "month day-of-week",
            id="four-fields",
        ),
        pytest.param(
            '"0 0 3 * * *"', "cron expression '0 0 3 * * *' has 6 fields", id="six-fields-seconds"
        ),
        pytest.param('""', "cron expression '' has 0 fields", id="empty"),
        pytest.param('"61 * * * *"', "cron minute field '61' is invalid", id="minute-61"),
        pytest.param('"60 * * * *"', "cron minute field '60' is invalid", id="minute-60"),
        pytest.param('"5-70 * * * *"', "cron minute field '5-70' is invalid", id="minute-range"),
        pytest.param('"*/0 * * * *"', "cron minute field '*/0' is invalid", id="step-zero"),
        pytest.param('"0 24 * * *"', "cron hour field '24' is invalid", id="hour-24"),
        pytest.param('"0 0 0 * *"', "cron day-of-month field '0' is invalid", id="dom-0"),
        pytest.param('"0 0 32 * *"', "cron day-of-month field '32' is invalid", id="dom-32"),
        pytest.param('"0 0 * 13 *"', "cron month field '13' is invalid", id="month-13"),
        pytest.param('"0 0 * * 8"', "cron day-of-week field '8' is invalid", id="dow-8"),
        pytest.param(
            '"0 0 * * 7"',
            "cron day-of-week field '7' uses 7 for Sunday; Celery's day_of_week runs 0-6 with "
            "0 = Sunday: write 0 or sun",
            id="dow-7",
        ),
        pytest.param('"0 0 * * 1-7"', "'1-7' uses 7 for Sunday", id="dow-range-to-7"),
        pytest.param('"0 0 * * 0,7"', "'0,7' uses 7 for Sunday", id="dow-list-with-7"),
        pytest.param(
            '"0 0 ? * *"',
            "cron day-of-month field '?' uses Quartz syntax (? L W #), which Celery's crontab "
            "does not support",
            id="quartz-question-mark",
        ),
        pytest.param('"0 0 L * *"', "field 'L' uses Quartz syntax", id="quartz-last-day"),
        pytest.param('"0 0 15W * *"', "field '15W' uses Quartz syntax", id="quartz-weekday"),
        pytest.param('"0 0 * * 5L"', "field '5L' uses Quartz syntax", id="quartz-last-friday"),
        pytest.param('"0 0 * * MON#2"', "field 'MON#2' uses Quartz syntax", id="quartz-nth"),
        pytest.param(
            '"0 0 1 * 1"',
            "cron restricts both day-of-month ('1') and day-of-week ('1'): classic cron fires "
            "when EITHER matches, Celery's crontab only when BOTH match",
            id="dom-and-dow-restricted",
        ),
        pytest.param(
            '"@reboot"',
            "unknown cron macro '@reboot'; known macros: @annually, @daily, @hourly, "
            "@midnight, @monthly, @weekly, @yearly",
            id="unknown-macro",
        ),
        pytest.param('"@every 5m"', "unknown cron macro '@every 5m'", id="go-style-macro"),
        pytest.param(
            "5",
            "must be a cron string such as '0 3 * * *' or a mapping of Celery crontab fields",
            id="number",
        ),
        pytest.param(
            "[0, 3]",
            "must be a cron string such as '0 3 * * *' or a mapping",
            id="list",
        ),
    ],
)
def test_invalid_cron(workspace: Workspace, cron: str, phrase: str) -> None:
    assert_single_problem(workspace.check(job(f"cron: {cron}")), CRON_AT, phrase)


@pytest.mark.parametrize(
    ("cron", "where", "phrase"),
    [
        pytest.param(
            "{minute: 61}", "s.yaml:5:20", "cron minute value 61 is out of range 0-59", id="map-61"
        ),
        pytest.param(
            "{day_of_week: 7}",
            "s.yaml:5:25",
            "cron day-of-week value 7 is out of range 0-6",
            id="map-dow-7",
        ),
        pytest.param(
            "{minute: true}",
            "s.yaml:5:20",
            "cron minute field must be a string or an integer",
            id="map-bool",
        ),
        pytest.param(
            "{day_of_month: 'L'}", "s.yaml:5:26", "field 'L' uses Quartz syntax", id="map-quartz"
        ),
    ],
)
def test_invalid_cron_mapping_points_at_the_field(
    workspace: Workspace, cron: str, where: str, phrase: str
) -> None:
    # In the mapping form the bad field's own value is the place to fix.
    assert_single_problem(workspace.check(job(f"cron: {cron}")), where, phrase)


@pytest.mark.parametrize(
    ("cron", "phrase"),
    [
        pytest.param(
            '"0 0 30 2 *"',
            "schedule 'job' is refused by Celery: Invalid crontab: day_of_month '30' never "
            "occurs in month_of_year '2'",
            id="february-30",
        ),
        pytest.param(
            '"0 0 31 4,6,9,11 *"',
            "day_of_month '31' never occurs in month_of_year '4,6,9,11'",
            id="31st-of-short-months",
        ),
        pytest.param(
            "{day_of_month: 30, month_of_year: 2}",
            "day_of_month 30 never occurs in month_of_year 2",
            id="mapping-february-30",
        ),
    ],
)
def test_cron_that_can_never_fire(workspace: Workspace, cron: str, phrase: str) -> None:
    assert_single_problem(workspace.check(job(f"cron: {cron}")), CRON_AT, phrase)


def test_cron_mapping_error_points_at_the_bad_field(workspace: Workspace) -> None:
    run = workspace.check(job("cron:\n  minute: 0\n  hour: 25"))
    # 'hour: 25' is on line 7; the value at column 13
    assert_single_problem(run, "s.yaml:7:13", "cron hour value 25 is out of range 0-23")


def test_cron_not_a_string_names_the_field(workspace: Workspace) -> None:
    problem = only_problem(workspace.check(job("cron: 5")))
    assert problem.startswith(f"{CRON_AT}: 'cron' must be a cron string"), problem


# --- every ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "every",
    ["30s", "5m", "1h30m", "1h 30m", "2d", "1w", "1.5h", "30", "0.5", "90", '"45"', "1H"],
)
def test_valid_every_is_accepted(workspace: Workspace, every: str) -> None:
    assert_valid(workspace.check(job(f"every: {every}")))


@pytest.mark.parametrize(
    ("every", "phrase"),
    [
        pytest.param("0", "'every' must be a positive duration, got 0", id="zero"),
        pytest.param("0.0", "'every' must be a positive duration, got 0.0", id="zero-float"),
        pytest.param("-5", "'every' must be a positive duration, got -5", id="negative"),
        pytest.param("0s", "'every' must be a positive duration, got '0s'", id="zero-seconds"),
        pytest.param(".inf", "'every' must be a positive duration, got inf", id="infinite"),
        pytest.param(".nan", "'every' must be a positive duration, got nan", id="nan"),
        pytest.param(
            "abc",
            "'every' value 'abc' is not a duration; write 30s, 5m, 1h30m, 2d, 1w, or a "
            "number of seconds",
            id="abc",
        ),
        pytest.param("5x", "'every' value '5x' is not a duration", id="unknown-unit"),
        pytest.param("-5s", "'every' value '-5s' is not a duration", id="negative-text"),
        pytest.param("5 minutes", "'every' value '5 minutes' is not a duration", id="words"),
        pytest.param("30m1h", "'every' value '30m1h' is not a duration", id="units-out-of-order"),
        pytest.param('""', "'every' value '' is not a duration", id="empty-string"),
        pytest.param(
            "true",
            "'every' must be a duration (30s, 5m, 1h30m, 2d, 1w, or a number of seconds), "
            "not a boolean",
            id="boolean",
        ),
        pytest.param("[30]", "'every' must be a duration (30s, 5m,", id="list"),
        pytest.param("{seconds: 30}", "'every' must be a duration (30s, 5m,", id="mapping"),
    ],
)
def test_invalid_every(workspace: Workspace, every: str, phrase: str) -> None:
    assert_single_problem(workspace.check(job(f"every: {every}")), "s.yaml:5:12", phrase)


# --- rrule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rrule",
    [
        pytest.param(
            f"{{freq: MONTHLY, bymonthday: -1, byhour: 23, byminute: 0, {DTSTART}}}",
            id="month-end",
        ),
        pytest.param(f"{{freq: WEEKLY, byweekday: [MO, FR], byhour: 9, {DTSTART}}}", id="weekdays"),
        pytest.param(
            f"{{freq: MONTHLY, byweekday: FR, bysetpos: -1, {DTSTART}}}", id="last-friday"
        ),
        pytest.param(
            '{freq: DAILY, count: 3, dtstart: "2099-01-01T00:00:00Z"}', id="count-in-future"
        ),
        pytest.param(
            f'{{freq: HOURLY, interval: 6, until: "2099-01-01T00:00:00+00:00", {DTSTART}}}',
            id="until-in-future",
        ),
        pytest.param(f"{{freq: YEARLY, bymonth: 2, bymonthday: 29, {DTSTART}}}", id="leap-day"),
    ],
)
def test_valid_rrule_is_accepted(workspace: Workspace, rrule: str) -> None:
    assert_valid(workspace.check(job(f"rrule: {rrule}")))


@pytest.mark.parametrize(
    ("rule", "where", "phrase"),
    [
        pytest.param(
            f"freq: BIWEEKLY\n{DTSTART}",
            "s.yaml:6:13",
            "'rrule.freq' must be one of 'YEARLY', 'MONTHLY', 'WEEKLY', 'DAILY', 'HOURLY', "
            "'MINUTELY' or 'SECONDLY', got 'BIWEEKLY'",
            id="bad-freq",
        ),
        pytest.param(f"freq: daily\n{DTSTART}", "s.yaml:6:13", "got 'daily'", id="lower-case-freq"),
        pytest.param(
            "freq: DAILY\nbyhour: 3",
            "s.yaml:6:7",
            "missing required key 'rrule.dtstart'",
            id="missing-dtstart",
        ),
        pytest.param(
            'freq: DAILY\ndtstart: "2026-01-01T00:00:00"',
            "s.yaml:7:16",
            "'rrule.dtstart' needs a UTC offset, e.g. 2026-01-01T00:00:00+00:00",
            id="naive-dtstart",
        ),
        pytest.param(
            "freq: DAILY\ndtstart: 2026-01-01",
            "s.yaml:7:16",
            "'rrule.dtstart' needs a UTC offset",
            id="date-only-dtstart",
        ),
        pytest.param(
            "freq: DAILY\ndtstart: soon",
            "s.yaml:7:16",
            "'rrule.dtstart' must be an ISO 8601 date-time with offset, got the string 'soon'",
            id="unparseable-dtstart",
        ),
        pytest.param(
            f"freq: MONTHLY\n{DTSTART}\nbymonth: 13",
            "s.yaml:8:16",
            "'rrule.bymonth' value 13 is out of range (1..12)",
            id="bymonth-13",
        ),
        pytest.param(
            f"freq: MONTHLY\n{DTSTART}\nbymonth: [1, 0]",
            "s.yaml:8:16",
            "'rrule.bymonth' value 0 is out of range (1..12)",
            id="bymonth-0-in-list",
        ),
        pytest.param(
            f"freq: MONTHLY\n{DTSTART}\nbymonthday: 0",
            "s.yaml:8:19",
            "'rrule.bymonthday' value 0 is out of range (-31..31 except 0)",
            id="bymonthday-0",
        ),
        pytest.param(
            f"freq: DAILY\n{DTSTART}\nbyhour: 24",
            "s.yaml:8:15",
            "'rrule.byhour' value 24 is out of range (0..23)",
            id="byhour-24",
        ),
        pytest.param(
            f"freq: DAILY\n{DTSTART}\nbyminute: []",
            "s.yaml:8:17",
            "'rrule.byminute' must not be an empty list",
            id="byminute-empty",
        ),
        pytest.param(
            f"freq: MONTHLY\n{DTSTART}\nbyweekday: -1FR",
            "s.yaml:8:18",
            "'rrule.byweekday' '-1FR' (nth weekday) cannot be stored by RedBeat; write "
            "byweekday: FR with bysetpos: -1 instead",
            id="nth-weekday-last-friday",
        ),
        pytest.param(
            f"freq: MONTHLY\n{DTSTART}\nbyweekday: [MO, +2TU]",
            "s.yaml:8:18",
            "'+2TU' (nth weekday) cannot be stored by RedBeat; write byweekday: TU with "
            "bysetpos: +2",
            id="nth-weekday-in-list",
        ),
        pytest.param(
            f"freq: WEEKLY\n{DTSTART}\nbyweekday: monday",
            "s.yaml:8:18",
            "'rrule.byweekday' must be a weekday: one of MO, TU, WE, TH, FR, SA, SU (or 0-6, MO=0)",
            id="weekday-name",
        ),
        pytest.param(
            f"freq: DAILY\n{DTSTART}\ninterval: 0",
            "s.yaml:8:17",
            "'rrule.interval' must be greater than or equal to 1",
            id="interval-0",
        ),
        pytest.param(
            f"freq: DAILY\n{DTSTART}\ncount: 0",
            "s.yaml:8:14",
            "'rrule.count' must be greater than or equal to 1",
            id="count-0",
        ),
        pytest.param(
            'freq: DAILY\ndtstart: "2020-01-01T00:00:00+00:00"\nuntil: "2020-01-10T00:00:00+00:00"',
            "s.yaml:6:7",
            "schedule 'job' never fires after ",
            id="until-passed",
        ),
        pytest.param(
            'freq: DAILY\ndtstart: "2020-01-01T00:00:00+00:00"\ncount: 3',
            "s.yaml:6:7",
            "(its 3 occurrences from dtstart are over)",
            id="count-exhausted",
        ),
        pytest.param(
            f"freq: YEARLY\n{DTSTART}\nbymonth: 2\nbymonthday: 30",
            "s.yaml:6:7",
            "schedule 'job': rrule never fires: bymonthday [30] never occurs in bymonth [2]",
            id="february-30",
        ),
        pytest.param(
            f"freq: MONTHLY\n{DTSTART}\nbymonth: [4, 6, 9, 11]\nbymonthday: 31",
            "s.yaml:6:7",
            "bymonthday [31] never occurs in bymonth [4, 6, 9, 11]",
            id="31st-of-short-months",
        ),
        pytest.param(
            'freq: SECONDLY\ndtstart: "2015-01-01T00:00:00+00:00"',
            "s.yaml:6:7",
            "periods back; dateutil iterates from dtstart on every run, so beat would stall",
            id="costly-secondly-from-2015",
        ),
        pytest.param(
            'freq: MINUTELY\ndtstart: "2000-01-01T00:00:00+00:00"',
            "s.yaml:6:7",
            "rrule dtstart 2000-01-01T00:00:00+00:00 lies",
            id="costly-minutely-from-2000",
        ),
    ],
)
def test_invalid_rrule(workspace: Workspace, rule: str, where: str, phrase: str) -> None:
    indented = rule.replace("\n", "\n  ")
    assert_single_problem(workspace.check(job(f"rrule:\n  {indented}")), where, phrase)


def test_unquoted_timestamp_dtstart_is_accepted(workspace: Workspace) -> None:
    assert_valid(
        workspace.check(job("rrule:\n  freq: DAILY\n  dtstart: 2026-01-01T06:00:00+02:00"))
    )


def test_rrule_until_that_has_passed_says_so(workspace: Workspace) -> None:
    rule = 'freq: DAILY\n  dtstart: "2020-01-01T00:00:00+00:00"\n  until: "2020-01-10T00:00:00Z"'
    problem = only_problem(workspace.check(job(f"rrule:\n  {rule}")))
    assert problem.endswith("(its until, 2020-01-10T00:00:00+00:00, has passed)"), problem


def test_rrule_count_and_until_together(workspace: Workspace) -> None:
    run = workspace.check(
        job(
            f"""
            rrule:
              freq: DAILY
              {DTSTART}
              count: 3
              until: "2099-01-01T00:00:00+00:00"
            """
        )
    )
    problem = only_problem(run)
    assert "may have count or until, not both (RFC 5545)" in problem, problem
    # count is on line 8 and until on line 9; either is the place to fix
    assert problem.startswith(("s.yaml:8:", "s.yaml:9:")), problem


def test_rrule_count_and_until_message_names_the_field_once(workspace: Workspace) -> None:
    run = workspace.check(
        job(f'rrule: {{freq: DAILY, {DTSTART}, count: 3, until: "2099-01-01T00:00:00+00:00"}}')
    )
    problem = only_problem(run)
    assert "'rrule' 'rrule'" not in problem, problem


def test_task_with_white_space_message_names_the_field_once(workspace: Workspace) -> None:
    problem = only_problem(workspace.check(job("every: 5m", task="app.tasks.a b")))
    assert "'task' task name" not in problem, problem


# --- args, kwargs and JSON values -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "where", "phrase"),
    [
        pytest.param(
            "args: {x: 1}", "s.yaml:6:11", "'args' must be a list, got a mapping", id="args-mapping"
        ),
        pytest.param(
            "args: abc",
            "s.yaml:6:11",
            "'args' must be a list, got the string 'abc'",
            id="args-string",
        ),
        pytest.param(
            "args: 5", "s.yaml:6:11", "'args' must be a list, got int 5", id="args-number"
        ),
        pytest.param(
            "kwargs: [1]", "s.yaml:6:13", "'kwargs' must be a mapping, got a list", id="kwargs-list"
        ),
        pytest.param(
            "kwargs: x=1",
            "s.yaml:6:13",
            "'kwargs' must be a mapping, got the string 'x=1'",
            id="kwargs-string",
        ),
        pytest.param(
            "args: [2026-01-01]",
            "s.yaml:6:12",
            "'args[0]' is a YAML date, which JSON cannot hold; quote it to pass a string",
            id="yaml-date",
        ),
        pytest.param(
            "args:\n  - 1\n  - 2026-01-01T10:00:00Z",
            "s.yaml:8:9",
            "'args[1]' is a YAML date",
            id="yaml-timestamp",
        ),
        pytest.param(
            "kwargs: {x: .nan}",
            "s.yaml:6:17",
            "'kwargs.x' is not a finite number; JSON cannot hold NaN or infinity",
            id="nan",
        ),
        pytest.param("args: [.inf]", "s.yaml:6:12", "'args[0]' is not a finite number", id="inf"),
        pytest.param(
            "args: [-.inf]", "s.yaml:6:12", "'args[0]' is not a finite number", id="minus-inf"
        ),
        pytest.param(
            "kwargs: {blob: !!binary aGVsbG8=}",
            "s.yaml:6:20",
            "'kwargs.blob' is binary data, which JSON cannot hold",
            id="binary",
        ),
        pytest.param(
            "kwargs: {1: one}",
            "s.yaml:6:14",
            "key 1 in 'kwargs' is not a string: JSON would turn it into \"1\"; quote it",
            id="int-key",
        ),
        pytest.param(
            "args: [{2: two}]",
            "s.yaml:6:13",
            "key 2 in 'args[0]' is not a string",
            id="int-key-nested-in-args",
        ),
        pytest.param(
            "kwargs: {deep: {when: 2026-01-01}}",
            "s.yaml:6:27",
            "'kwargs.deep.when' is a YAML date",
            id="date-nested-in-kwargs",
        ),
        pytest.param(
            "options: {headers: {x: .nan}}",
            "s.yaml:6:28",
            "'options.headers.x' is not a finite number",
            id="nan-in-headers",
        ),
    ],
)
def test_args_kwargs_and_json_values(
    workspace: Workspace, body: str, where: str, phrase: str
) -> None:
    assert_single_problem(workspace.check(job(f"every: 5m\n{body}")), where, phrase)


def test_json_values_of_every_kind_are_accepted(workspace: Workspace) -> None:
    run = workspace.check(
        job(
            """
            every: 5m
            args: [1, -2.5, "two", true, null, [1, [2]], {a: {b: c}}, "2026-01-01"]
            kwargs: {text: "x", "1": quoted-key, nested: {list: [1, 2]}, none: null}
            options: {headers: {trace: "on"}}
            """
        )
    )
    assert_valid(run)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("args: [http://example.com/feed]", id="url-in-flow-list"),
        pytest.param("kwargs: {url: https://example.com}", id="url-in-flow-mapping"),
        pytest.param("args: [2026-01-01T06:00:00+02:00]", id="timestamp-in-flow-list"),
        pytest.param(
            "rrule: {freq: DAILY, dtstart: 2026-01-01T06:00:00+02:00}", id="dtstart-in-flow-mapping"
        ),
    ],
)
def test_colon_in_plain_scalar_inside_flow_collection_is_valid_yaml(
    workspace: Workspace, body: str
) -> None:
    """YAML 1.2 allows ':' inside a plain scalar when no space follows it, in flow style too.

    A date-time in args is then refused as a YAML date, which is fine; what must not happen
    is a YAML syntax error for a well-formed file.
    """
    run = workspace.check(job(body if body.startswith("rrule") else f"every: 5m\n{body}"))
    assert "YAML syntax error" not in run.out, run.out


@pytest.mark.parametrize(
    ("key", "json_key"),
    [pytest.param("null", "null", id="null"), pytest.param("true", "true", id="true")],
)
def test_non_string_key_message_shows_the_key_json_would_write(
    workspace: Workspace, key: str, json_key: str
) -> None:
    problem = only_problem(workspace.check(job(f"every: 5m\nkwargs: {{{key}: 1}}")))
    assert f'JSON would turn it into "{json_key}"' in problem, problem


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "where", "phrase"),
    [
        pytest.param(
            "priority: 300",
            "s.yaml:7:17",
            "'options.priority' must be less than or equal to 255",
            id="priority-300",
        ),
        pytest.param(
            "priority: -1",
            "s.yaml:7:17",
            "'options.priority' must be greater than or equal to 0",
            id="priority-negative",
        ),
        pytest.param(
            'priority: "5"',
            "s.yaml:7:17",
            "'options.priority' must be an integer, got the string '5'",
            id="priority-string",
        ),
        pytest.param(
            "priority: 2.5",
            "s.yaml:7:17",
            "'options.priority' must be an integer",
            id="priority-float",
        ),
        pytest.param(
            "expires: 0", "s.yaml:7:16", "'options.expires' must be greater than 0", id="expires-0"
        ),
        pytest.param(
            "expires: -60",
            "s.yaml:7:16",
            "'options.expires' must be greater than 0",
            id="expires-negative",
        ),
        pytest.param(
            "expires: .inf",
            "s.yaml:7:16",
            "'options.expires' must be a finite number",
            id="expires-inf",
        ),
        pytest.param(
            'expires: "60"',
            "s.yaml:7:16",
            "'options.expires' must be a number",
            id="expires-string",
        ),
        pytest.param(
            "expires: 2026-01-01T00:00:00Z",
            "s.yaml:7:16",
            "'options.expires' must be a number",
            id="expires-datetime",
        ),
        pytest.param(
            "countdown: -1",
            "s.yaml:7:18",
            "'options.countdown' must be greater than or equal to 0",
            id="countdown",
        ),
        pytest.param(
            "time_limit: 0",
            "s.yaml:7:19",
            "'options.time_limit' must be greater than 0",
            id="time-limit",
        ),
        pytest.param(
            "queue: 5", "s.yaml:7:14", "'options.queue' must be a string, got int 5", id="queue-int"
        ),
        pytest.param(
            "queue: [a, b]",
            "s.yaml:7:14",
            "'options.queue' must be a string, got a list",
            id="queue-list",
        ),
        pytest.param(
            "retry: yes",
            "s.yaml:7:14",
            "'options.retry' must be true or false, got the string 'yes'",
            id="retry-yes",
        ),
        pytest.param(
            "delivery_mode: 3",
            "s.yaml:7:22",
            "'options.delivery_mode' must be one of 1, 2, 'transient' or 'persistent', got 3",
            id="delivery-mode",
        ),
        pytest.param(
            "headers: [a]",
            "s.yaml:7:16",
            "'options.headers' must be a mapping, got a list",
            id="headers-list",
        ),
        pytest.param(
            "retry_policy: {max_retries: -1}",
            "s.yaml:7:35",
            "'options.retry_policy.max_retries' must be greater than or equal to 0",
            id="retry-policy-max-retries",
        ),
        pytest.param(
            "retry_policy: {interval_start: -1}",
            "s.yaml:7:38",
            "'options.retry_policy.interval_start' must be greater than or equal to 0",
            id="retry-policy-interval",
        ),
        pytest.param(
            "retry_policy: 3",
            "s.yaml:7:21",
            "'options.retry_policy' must be a mapping, got int 3",
            id="retry-policy-not-mapping",
        ),
    ],
)
def test_invalid_options(workspace: Workspace, option: str, where: str, phrase: str) -> None:
    text = job(f"every: 5m\noptions:\n  {option}")
    assert_single_problem(workspace.check(text), where, phrase)


def test_options_that_are_not_a_mapping(workspace: Workspace) -> None:
    run = workspace.check(job("every: 5m\noptions: [queue]"))
    assert_single_problem(run, "s.yaml:6:14", "'options' must be a mapping, got a list")


def test_every_option_with_a_valid_value_is_accepted(workspace: Workspace) -> None:
    run = workspace.check(
        job(
            """
            every: 5m
            options:
              queue: reports
              exchange: celery
              routing_key: reports.nightly
              priority: 255
              expires: 3600
              countdown: 0
              time_limit: 600
              soft_time_limit: 540.5
              serializer: json
              compression: gzip
              headers: {source: gitops}
              retry: true
              retry_policy: {max_retries: 3, interval_start: 0, interval_step: 0.2, interval_max: 1}
              ignore_result: true
              shadow: nightly
              delivery_mode: persistent
            """
        )
    )
    assert_valid(run)


@pytest.mark.parametrize(
    ("body", "where", "phrase"),
    [
        pytest.param(
            "enabled: yes",
            "s.yaml:6:14",
            "'enabled' must be true or false, got the string 'yes'",
            id="enabled",
        ),
        pytest.param(
            "run_on_create: 1",
            "s.yaml:6:20",
            "'run_on_create' must be true or false, got int 1",
            id="run-on-create",
        ),
        pytest.param(
            "description: 5",
            "s.yaml:6:18",
            "'description' must be a string, got int 5",
            id="description",
        ),
    ],
)
def test_other_entry_fields_of_the_wrong_type(
    workspace: Workspace, body: str, where: str, phrase: str
) -> None:
    assert_single_problem(workspace.check(job(f"every: 5m\n{body}")), where, phrase)


def test_every_problem_of_one_entry_is_reported(workspace: Workspace) -> None:
    run = workspace.check(
        job(
            """
            every: 0
            args: {}
            options: {priority: 300, queeu: q}
            """
        )
    )
    assert run.exit_code == 1
    assert [line.split(": ", 1)[0] for line in run.problems] == [
        "s.yaml:5:12",
        "s.yaml:6:11",
        "s.yaml:7:25",
        "s.yaml:7:30",
    ], run.out
