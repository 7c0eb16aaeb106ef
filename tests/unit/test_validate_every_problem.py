"""One run shows every independent problem: a problem in one place never hides another.

A key written twice, a refused tag or an unsupported version is reported, and the rest of
the file is still checked, and still takes part in the checks across files (duplicate
names, overlays' patches, Celery's evaluation). Only what is itself in doubt (the entry
holding the duplicated key) is left unchecked, and the safety limits still stop reading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cli_runner import only_problem

if TYPE_CHECKING:
    from .cli_runner import Workspace


def test_a_duplicate_key_hides_no_duplicate_name_across_files(workspace: Workspace) -> None:
    workspace.write(
        "schedules/a.yaml",
        """
        version: 1
        schedules:
          report:
            task: app.tasks.report
            every: 5m
            task: app.tasks.other
          nightly: {task: app.tasks.a, cron: "0 3 * * *"}
          broken: {task: app.tasks.a, every: 0}
          february: {task: app.tasks.a, cron: "0 0 30 2 *"}
        """,
    )
    workspace.write(
        "schedules/b.yaml",
        """
        version: 1
        schedules:
          nightly: {task: app.tasks.b, cron: "0 4 * * *"}
        """,
    )
    run = workspace.validate("schedules")
    assert run.exit_code == 1
    assert run.problems == [
        "schedules/a.yaml:6:5: duplicate key 'task' (first defined at line 4)",
        "schedules/a.yaml:8:38: 'every' must be a positive duration, got 0",
        # found by Celery's evaluation, which runs after every file is read
        "schedules/a.yaml:9:39: schedule 'february' is refused by Celery: Invalid crontab: "
        "day_of_month '30' never occurs in month_of_year '2'",
        "schedules/b.yaml:3:3: duplicate schedule name 'nightly': already defined at "
        "schedules/a.yaml:7:3; names must be unique across all files",
    ], run.out
    assert run.summary == "4 problems in 2 files"


def test_a_name_written_twice_in_a_file_is_still_a_duplicate_across_files(
    workspace: Workspace,
) -> None:
    workspace.write(
        "a.yaml",
        """
        version: 1
        schedules:
          job: {task: t, every: 5}
          job: {task: u, every: 6}
        """,
    )
    workspace.write("b.yaml", "version: 1\nschedules:\n  job: {task: v, every: 7}\n")
    run = workspace.validate("a.yaml", "b.yaml")
    assert run.problems == [
        "a.yaml:4:3: duplicate key 'job' (first defined at line 3)",
        "b.yaml:3:3: duplicate schedule name 'job': already defined at a.yaml:3:3; names must "
        "be unique across all files",
    ], run.out


def test_a_missing_version_hides_no_invalid_every(workspace: Workspace) -> None:
    workspace.write("a.yaml", "schedules:\n  a: {task: t, every: 5 minutes}\n")
    workspace.write("b.yaml", "version: 3\nschedules:\n  b: {task: t, every: 0}\n")
    run = workspace.validate("a.yaml", "b.yaml")
    assert run.problems == [
        "a.yaml:1:1: missing required key 'version' (this reconciler reads 'version: 1')",
        "a.yaml:2:23: 'every' value '5 minutes' is not a duration; write 30s, 5m, 1h30m, 2d, "
        "1w, or a number of seconds",
        "b.yaml:1:10: unsupported version 3; this reconciler reads version 1",
        "b.yaml:3:23: 'every' must be a positive duration, got 0",
    ], run.out


def test_a_file_of_an_unsupported_version_takes_part_in_the_checks_across_files(
    workspace: Workspace,
) -> None:
    workspace.write("a.yaml", "version: 2\nschedules:\n  job: {task: t, every: 5}\n")
    workspace.write("b.yaml", "version: 1\nschedules:\n  job: {task: t, every: 5}\n")
    run = workspace.validate("a.yaml", "b.yaml")
    assert run.problems == [
        "a.yaml:1:10: unsupported version 2; this reconciler reads version 1",
        "b.yaml:3:3: duplicate schedule name 'job': already defined at a.yaml:3:3; names must "
        "be unique across all files",
    ], run.out


def test_a_bad_name_hides_no_problem_of_its_entry(workspace: Workspace) -> None:
    run = workspace.check("version: 1\nschedules:\n  ':lock': {task: t, every: 0}\n")
    assert [line.split(": ", 1)[0] for line in run.problems] == ["s.yaml:3:3", "s.yaml:3:29"]
    assert "starts with ':', reserved for RedBeat's own keys" in run.problems[0]
    assert "'every' must be a positive duration, got 0" in run.problems[1]


def test_a_refused_tag_hides_nothing_outside_its_entry(workspace: Workspace) -> None:
    workspace.write(
        "a.yaml",
        """
        version: 1
        schedules:
          tagged: {task: t, every: 5, kwargs: {x: !!python/name:os.system ''}}
          broken: {task: t, every: 0}
          !name shared : {task: t, every: 5}
          ? [not, a, name]
          : {task: t, every: 5}
          merged: {<<: 5, task: t, every: 5}
        """,
    )
    workspace.write("b.yaml", "version: 1\nschedules:\n  broken: {task: t, every: 5}\n")
    run = workspace.validate("a.yaml", "b.yaml")
    assert [line.split(": ", 1)[0] for line in run.problems] == [
        "a.yaml:3:43",
        "a.yaml:4:28",
        "a.yaml:5:3",
        "a.yaml:6:5",
        "a.yaml:8:16",
        "b.yaml:3:3",
    ], run.out
    assert "YAML tag '!!python/name:os.system' is not allowed" in run.problems[0]
    assert "'every' must be a positive duration, got 0" in run.problems[1]
    assert "YAML tag '!name' is not allowed" in run.problems[2]
    assert "mapping keys must be plain scalars" in run.problems[3]
    assert "a merge key (<<) takes a mapping or a list of them" in run.problems[4]
    assert "duplicate schedule name 'broken'" in run.problems[5]


def test_a_duplicate_key_in_defaults_leaves_the_entries_unchecked_but_named(
    workspace: Workspace,
) -> None:
    # Every entry merges the defaults: which 'every' they take is in doubt, their names not.
    workspace.write(
        "a.yaml",
        "version: 1\ndefaults: {every: 5, every: 0}\nschedules:\n  job: {task: t}\n",
    )
    workspace.write("b.yaml", "version: 1\nschedules:\n  job: {task: t, every: 5}\n")
    run = workspace.validate("a.yaml", "b.yaml")
    assert run.problems == [
        "a.yaml:2:22: duplicate key 'every' (first defined at line 2)",
        "b.yaml:3:3: duplicate schedule name 'job': already defined at a.yaml:4:3; names must "
        "be unique across all files",
    ], run.out


def test_schedules_written_twice_is_reported_alone(workspace: Workspace) -> None:
    # Which mapping holds the names is in doubt: no name is compared, no patch refused.
    workspace.write(
        "schedules/a.yaml",
        "version: 1\nschedules: {a: {task: t, every: 0}}\nschedules: {b: {task: t, every: 5}}\n",
    )
    workspace.write("overlays/o.yaml", "version: 1\npatches:\n  b: {every: 6}\n")
    workspace.write("reconciler.toml", '[targets.t]\noverlays = ["overlays/o.yaml"]\n')
    run = workspace.validate("--target", "t")
    assert run.problems == [
        "schedules/a.yaml:3:1: duplicate key 'schedules' (first defined at line 2)"
    ], run.out


def test_an_overlay_of_an_unsupported_version_still_has_its_patches_checked(
    workspace: Workspace,
) -> None:
    workspace.write("schedules/a.yaml", "version: 1\nschedules:\n  job: {task: t, every: 5}\n")
    workspace.write(
        "overlays/o.yaml",
        "patches:\n  job: {every: 0}\n  jbo: {every: 6}\n",
    )
    workspace.write("reconciler.toml", '[targets.t]\noverlays = ["overlays/o.yaml"]\n')
    run = workspace.validate("--target", "t")
    assert run.problems == [
        "overlays/o.yaml:1:1: overlay needs 'version: 1'",
        "overlays/o.yaml:2:16: 'every' must be a positive duration, got 0",
        "overlays/o.yaml:3:3: overlay patches 'jbo', which no schedule file declares; did you "
        "mean 'job'?",
    ], run.out
    assert run.summary == "3 problems in 1 overlay (target t)"


def test_a_duplicate_key_in_a_patch_leaves_only_its_entry_unchecked(
    workspace: Workspace,
) -> None:
    workspace.write(
        "schedules/a.yaml",
        "version: 1\nschedules:\n  a: {task: t, every: 5}\n  b: {task: t, every: 5}\n",
    )
    workspace.write(
        "overlays/o.yaml",
        "version: 1\npatches:\n  a: {every: 0, every: 6}\n  b: {every: 0}\n",
    )
    workspace.write("reconciler.toml", '[targets.t]\noverlays = ["overlays/o.yaml"]\n')
    run = workspace.validate("--target", "t")
    assert run.problems == [
        "overlays/o.yaml:3:17: duplicate key 'every' (first defined at line 3)",
        "overlays/o.yaml:4:14: 'every' must be a positive duration, got 0",
    ], run.out


def test_the_safety_limits_still_stop_reading_the_file_but_not_the_others(
    workspace: Workspace,
) -> None:
    workspace.write(
        "a.yaml",
        "version: 1\nschedules:\n  job: &x {task: t, every: 0, args: [*x]}\n  k: {task: t}\n",
    )
    workspace.write("b.yaml", "version: 1\nschedules:\n  job: {task: t, every: 0}\n")
    run = workspace.validate("a.yaml", "b.yaml")
    assert [line.split(": ", 1)[0] for line in run.problems] == ["a.yaml:3:8", "b.yaml:3:25"]
    assert "recursive alias" in run.problems[0]


def test_a_file_holding_only_a_refused_tag_says_only_that(workspace: Workspace) -> None:
    problem = only_problem(workspace.check("!!set {a, b}\n"))
    assert problem.startswith("s.yaml:1:1: YAML tag '!!set' is not allowed"), problem


def test_an_entry_refused_for_its_options_still_has_its_schedule_evaluated(
    workspace: Workspace,
) -> None:
    # Celery's evaluation of a schedule runs after every file is read, on valid entries;
    # one refused for another reason is evaluated on its schedule alone.
    run = workspace.check(
        """
        version: 1
        schedules:
          feb: {task: t, cron: "0 0 30 2 *", options: {queue: 5}}
          fine: {task: t, every: 5, args: [.nan]}
          both: {task: t, every: 0, cron: "* * * * *"}
        """
    )
    assert run.problems == [
        "s.yaml:3:24: schedule 'feb' is refused by Celery: Invalid crontab: day_of_month '30' "
        "never occurs in month_of_year '2'",
        "s.yaml:3:55: 'options.queue' must be a string, got int 5",
        "s.yaml:4:36: 'args[0]' is not a finite number; JSON cannot hold NaN or infinity",
        "s.yaml:5:19: schedule 'both' has cron and every; it needs exactly one of cron, every "
        "or rrule",
        "s.yaml:5:26: 'every' must be a positive duration, got 0",
    ], run.out
