"""Rules about the file's shape: version, top-level keys, defaults, unknown keys at every level."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from reconciler.core.model import CronSchedule, IntervalSchedule
from reconciler.load.desired_state import read_schedule_files

from .cli_runner import assert_single_problem, assert_valid, job, only_problem

if TYPE_CHECKING:
    from reconciler.core.model import DesiredEntry

    from .cli_runner import Workspace


def test_minimal_file_is_valid(workspace: Workspace) -> None:
    run = workspace.check("version: 1\nschedules: {}\n")
    assert_valid(run)
    assert run.summary == "0 schedules in 1 file are valid"


@pytest.mark.parametrize(
    ("text", "where", "phrase"),
    [
        pytest.param(
            "schedules: {}\n",
            "s.yaml:1:1",
            "missing required key 'version' (this reconciler reads 'version: 1')",
            id="missing",
        ),
        pytest.param(
            "version: 2\nschedules: {}\n",
            "s.yaml:1:10",
            "unsupported version 2; this reconciler reads version 1",
            id="future-version",
        ),
        pytest.param(
            "version: 0\nschedules: {}\n",
            "s.yaml:1:10",
            "unsupported version 0",
            id="zero",
        ),
        pytest.param(
            'version: "1"\nschedules: {}\n',
            "s.yaml:1:10",
            "unsupported version '1'",
            id="quoted-string",
        ),
        pytest.param(
            "version: v1\nschedules: {}\n",
            "s.yaml:1:10",
            "unsupported version 'v1'",
            id="v1",
        ),
        pytest.param(
            "version: true\nschedules: {}\n",
            "s.yaml:1:10",
            "unsupported version",
            id="boolean",
        ),
        pytest.param(
            "version: [1]\nschedules: {}\n",
            "s.yaml:1:10",
            "unsupported version [1]",
            id="list",
        ),
    ],
)
def test_missing_or_unsupported_version(
    workspace: Workspace, text: str, where: str, phrase: str
) -> None:
    assert_single_problem(workspace.check(text), where, phrase)


def test_unsupported_version_is_reported_beside_the_problems_of_the_rest(
    workspace: Workspace,
) -> None:
    run = workspace.check(
        """
        version: 2
        schedules:
          job: {task: app.tasks.job, every: -1, cron: nonsense}
        """
    )
    assert run.exit_code == 1
    assert run.problems == [
        "s.yaml:1:10: unsupported version 2; this reconciler reads version 1",
        "s.yaml:3:30: schedule 'job' has cron and every; it needs exactly one of cron, every "
        "or rrule",
        "s.yaml:3:37: 'every' must be a positive duration, got -1",
        "s.yaml:3:47: cron expression 'nonsense' has 1 field; expected 5: minute hour "
        "day-of-month month day-of-week (e.g. '0 3 * * *')",
    ]


def test_missing_version_is_reported_beside_an_invalid_every(workspace: Workspace) -> None:
    run = workspace.check("schedules:\n  job: {task: app.tasks.job, every: 5 minutes}\n")
    assert run.exit_code == 1
    assert [line.split(": ", 1)[0] for line in run.problems] == ["s.yaml:1:1", "s.yaml:2:37"]
    assert "missing required key 'version'" in run.problems[0]
    assert "every" in run.problems[1]


@pytest.mark.parametrize(
    ("text", "where", "phrase"),
    [
        pytest.param(
            """
            version: 1
            schedules: {}
            schedlues: {}
            """,
            "s.yaml:3:1",
            "unknown top-level key 'schedlues'; did you mean 'schedules'? "
            "(valid: version, defaults, schedules)",
            id="top-level-typo",
        ),
        pytest.param(
            """
            version: 1
            schedules: {}
            defualts: {}
            """,
            "s.yaml:3:1",
            "unknown top-level key 'defualts'; did you mean 'defaults'?",
            id="top-level-typo-defaults",
        ),
        pytest.param(
            """
            version: 1
            schedules: {}
            owner: team-a
            """,
            "s.yaml:3:1",
            "unknown top-level key 'owner' (valid: version, defaults, schedules)",
            id="top-level-unrelated",
        ),
        pytest.param(
            """
            version: 1
            defaults:
              optons: {queue: reports}
            schedules: {}
            """,
            "s.yaml:3:3",
            "unknown key 'optons'; did you mean 'options'?",
            id="defaults",
        ),
        pytest.param(
            """
            version: 1
            defaults:
              options:
                queeu: reports
            schedules:
              a: {task: app.tasks.a, every: 5m}
              b: {task: app.tasks.b, every: 5m}
            """,
            "s.yaml:4:5",
            "unknown key 'queeu'; did you mean 'queue'?",
            id="defaults-options-once-for-all-entries",
        ),
        pytest.param(
            job("every: 5m\ndescripton: nightly"),
            "s.yaml:6:5",
            "unknown key 'descripton'; did you mean 'description'? (valid: task, cron, every, "
            "rrule, args, kwargs, options, enabled, description, run_on_create)",
            id="entry",
        ),
        pytest.param(
            job("every: 5m\nenabeld: false"),
            "s.yaml:6:5",
            "unknown key 'enabeld'; did you mean 'enabled'?",
            id="entry-enabled",
        ),
        pytest.param(
            job("every: 5m\noptions:\n  queeu: reports"),
            "s.yaml:7:7",
            "unknown key 'queeu'; did you mean 'queue'? (valid: queue, exchange, routing_key, "
            "priority, expires",
            id="options",
        ),
        pytest.param(
            job("every: 5m\noptions:\n  retry_policy:\n    max_retris: 3"),
            "s.yaml:8:9",
            "unknown key 'max_retris'; did you mean 'max_retries'? (valid: max_retries, "
            "interval_start, interval_step, interval_max)",
            id="retry-policy",
        ),
        pytest.param(
            job(
                """
                rrule:
                  freq: DAILY
                  dtstart: "2026-01-01T00:00:00+00:00"
                  bymonthdya: 1
                """
            ),
            "s.yaml:8:7",
            "unknown key 'bymonthdya'; did you mean 'bymonthday'? (valid: freq, dtstart,",
            id="rrule",
        ),
        pytest.param(
            job("cron:\n  minute: 0\n  huor: 3"),
            "s.yaml:7:7",
            "unknown key 'huor'; did you mean 'hour'?",
            id="cron-mapping",
        ),
        pytest.param(
            job("every: 5m\ntimezone: Europe/Paris"),
            "s.yaml:6:5",
            "unknown key 'timezone': RedBeat stores no per-entry timezone; "
            "crontabs use beat's timezone",
            id="entry-timezone-hint",
        ),
        pytest.param(
            job("every: 5m\nqueue: reports"),
            "s.yaml:6:5",
            "unknown key 'queue': apply_async options go under 'options'",
            id="entry-queue-hint",
        ),
        pytest.param(
            job("every: 5m\nname: other"),
            "s.yaml:6:5",
            "unknown key 'name': the entry's name is its key under 'schedules'",
            id="entry-name-hint",
        ),
        pytest.param(
            job("every: 5m\nschedule: 5m"),
            "s.yaml:6:5",
            "unknown key 'schedule': write the schedule as one of cron, every or rrule",
            id="entry-schedule-hint",
        ),
    ],
)
def test_unknown_keys_at_every_level(
    workspace: Workspace, text: str, where: str, phrase: str
) -> None:
    assert_single_problem(workspace.check(text), where, phrase)


@pytest.mark.parametrize(
    ("text", "where", "phrase"),
    [
        pytest.param(
            "version: 1\n",
            "s.yaml:1:1",
            "missing required key 'schedules' (a mapping of name to entry; "
            "'schedules: {}' declares none)",
            id="missing",
        ),
        pytest.param(
            "version: 1\nschedules: [a, b]\n",
            "s.yaml:2:12",
            "'schedules' must be a mapping of name to entry, got a list",
            id="list",
        ),
        pytest.param(
            "version: 1\nschedules: nightly\n",
            "s.yaml:2:12",
            "'schedules' must be a mapping of name to entry, got the string 'nightly'",
            id="string",
        ),
        pytest.param(
            "version: 1\ndefaults: [queue]\nschedules: {}\n",
            "s.yaml:2:11",
            "'defaults' must be a mapping of entry keys, got a list",
            id="defaults-list",
        ),
        pytest.param(
            "version: 1\nschedules:\n  job: app.tasks.job\n",
            "s.yaml:3:8",
            "schedule 'job' must be a mapping with at least 'task' and one of cron, every or "
            "rrule; got the string 'app.tasks.job'",
            id="entry-string",
        ),
        pytest.param(
            "version: 1\nschedules:\n  job: [app.tasks.job]\n",
            "s.yaml:3:8",
            "schedule 'job' must be a mapping",
            id="entry-list",
        ),
    ],
)
def test_sections_of_the_wrong_type(
    workspace: Workspace, text: str, where: str, phrase: str
) -> None:
    assert_single_problem(workspace.check(text), where, phrase)


# A key with nothing after it holds null. YAML parsers place that empty value at the next
# token, which may be the next line or the next entry; the error belongs on the key's line.


def test_null_schedules_is_reported_on_its_own_line(workspace: Workspace) -> None:
    run = workspace.check("version: 1\nschedules:\n")
    problem = only_problem(run)
    assert problem.startswith("s.yaml:2:"), (
        f"expected on line 2 (the file has no line 3):\n{problem}"
    )
    assert (
        "'schedules' must be a mapping of name to entry, got null; "
        "write 'schedules: {}' to declare none"
    ) in problem


def test_null_entry_is_reported_on_its_own_line(workspace: Workspace) -> None:
    run = workspace.check(
        """
        version: 1
        schedules:
          empty:
          other: {task: app.tasks.other, every: 5m}
        """
    )
    problem = only_problem(run)
    assert problem.startswith("s.yaml:3:"), f"expected on line 3, where 'empty:' is:\n{problem}"
    assert "schedule 'empty' must be a mapping" in problem


def test_null_task_is_reported_on_its_own_line(workspace: Workspace) -> None:
    run = workspace.check(job("task:\nevery: 5m", task=None))
    problem = only_problem(run)
    assert problem.startswith("s.yaml:5:"), f"expected on line 5, where 'task:' is:\n{problem}"
    assert "'task' must be a string, got null" in problem


def test_null_every_is_reported_on_its_own_line(workspace: Workspace) -> None:
    run = workspace.check(job("every:\nargs: [1]"))
    assert run.exit_code == 1
    every_problems = [line for line in run.problems if "'every' must be" in line]
    assert every_problems, run.out
    assert every_problems[0].startswith("s.yaml:5:"), (
        f"expected on line 5, where 'every:' is:\n{run.out}"
    )


def _load(workspace: Workspace, text: str) -> dict[str, DesiredEntry]:
    workspace.write("s.yaml", text)
    result = read_schedule_files([workspace.root / "s.yaml"])
    assert result.problems == []
    return {entry.name: entry for entry in result.entries}


def test_defaults_apply_to_every_entry(workspace: Workspace) -> None:
    entries = _load(
        workspace,
        """
        version: 1
        defaults:
          options: {queue: reports, expires: 3600}
          kwargs: {fmt: pdf}
          enabled: false
        schedules:
          a: {task: app.tasks.a, every: 5m}
          b: {task: app.tasks.b, cron: "0 3 * * *", kwargs: {lang: en}}
        """,
    )
    assert entries["a"].options == {"queue": "reports", "expires": 3600}
    assert entries["a"].kwargs == {"fmt": "pdf"}
    assert entries["a"].enabled is False
    # mappings are deep-merged: the entry's kwargs are added to the defaults'
    assert entries["b"].kwargs == {"fmt": "pdf", "lang": "en"}
    assert entries["b"].options == {"queue": "reports", "expires": 3600}


def test_entry_values_win_over_defaults(workspace: Workspace) -> None:
    entries = _load(
        workspace,
        """
        version: 1
        defaults:
          options: {queue: reports, priority: 300}
          args: [1, 2]
          kwargs: {fmt: pdf}
          cron: "0 3 * * *"
        schedules:
          a:
            task: app.tasks.a
            options: {queue: fast, priority: 5}
            args: [9]
            kwargs: {fmt: csv}
            every: 5m
        """,
    )
    entry = entries["a"]
    assert entry.options == {"queue": "fast", "priority": 5}
    assert entry.args == [9]  # lists are replaced, not concatenated
    assert entry.kwargs == {"fmt": "csv"}
    # an entry naming its own schedule kind takes none from the defaults
    assert entry.schedule == IntervalSchedule(seconds=300.0)


def test_schedule_from_defaults_is_used_when_the_entry_has_none(workspace: Workspace) -> None:
    entries = _load(
        workspace,
        """
        version: 1
        defaults:
          task: app.tasks.shared
          cron: "0 3 * * *"
        schedules:
          a: {args: [1]}
          b: {every: 5m}
        """,
    )
    assert entries["a"].task == "app.tasks.shared"
    assert entries["a"].schedule == CronSchedule(minute="0", hour="3")
    assert entries["b"].schedule == IntervalSchedule(seconds=300.0)


def test_null_queue_in_an_entry_removes_the_default_queue(workspace: Workspace) -> None:
    entries = _load(
        workspace,
        """
        version: 1
        defaults:
          options: {queue: reports, expires: 60}
        schedules:
          a: {task: app.tasks.a, every: 5m, options: {queue: null}}
          b: {task: app.tasks.b, every: 5m}
        """,
    )
    assert entries["a"].options == {"expires": 60}
    assert entries["b"].options == {"queue": "reports", "expires": 60}


@pytest.mark.parametrize(
    ("defaults", "where", "phrase"),
    [
        pytest.param(
            "options:\n    priority: 300\n  every: 5m",
            "s.yaml:4:15",
            "'options.priority' must be less than or equal to 255",
            id="options-priority",
        ),
        pytest.param(
            "options:\n    queue: 5\n  every: 5m",
            "s.yaml:4:12",
            "'options.queue' must be a string, got int 5",
            id="options-queue",
        ),
        pytest.param(
            "every: 0",
            "s.yaml:3:10",
            "'every' must be a positive duration, got 0",
            id="every",
        ),
        pytest.param(
            'cron: "61 * * * *"',
            "s.yaml:3:9",
            "cron minute field '61' is invalid",
            id="cron",
        ),
        pytest.param(
            "args: {a: 1}\n  every: 5m",
            "s.yaml:3:9",
            "'args' must be a list, got a mapping",
            id="args",
        ),
        pytest.param(
            "kwargs: {when: 2026-01-01}\n  every: 5m",
            "s.yaml:3:18",
            "'kwargs.when' is a YAML date",
            id="kwargs-date",
        ),
    ],
)
def test_bad_value_from_defaults_points_at_the_defaults_line(
    workspace: Workspace, defaults: str, where: str, phrase: str
) -> None:
    run = workspace.check(
        "version: 1\ndefaults:\n  "
        + defaults
        + "\nschedules:\n  a: {task: app.tasks.a}\n  b: {task: app.tasks.b}\n"
    )
    # reported once, at the defaults, although both entries inherit it
    problem = only_problem(run)
    assert problem.startswith(f"{where}: "), problem
    assert phrase in problem, problem


def test_bad_value_in_defaults_is_fine_when_every_entry_overrides_it(
    workspace: Workspace,
) -> None:
    run = workspace.check(
        """
        version: 1
        defaults:
          options: {priority: 300}
        schedules:
          a: {task: app.tasks.a, every: 5m, options: {priority: 1}}
        """
    )
    assert_valid(run)


def test_bad_default_option_points_at_the_defaults_when_the_entry_has_other_options(
    workspace: Workspace,
) -> None:
    run = workspace.check(
        """
        version: 1
        defaults:
          options:
            priority: 300
        schedules:
          a: {task: app.tasks.a, every: 5m, options: {queue: fast}}
        """
    )
    assert_single_problem(
        run, "s.yaml:4:15", "'options.priority' must be less than or equal to 255"
    )
