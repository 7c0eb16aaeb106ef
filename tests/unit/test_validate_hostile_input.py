"""Inputs that once crashed the loader (exit 3, or a segfault) are problems at their place.

Each was found by the fault campaign of issue 12 or by tests/unit/test_loader_fuzz.py. The
same loading runs before plan and apply, so what validate refuses is never written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .cli_runner import CliRun, assert_single_problem, job

if TYPE_CHECKING:
    from .cli_runner import Workspace

_DEEP_FLOW = "[" * 30_000 + "\n"
_DEEP_BLOCK = "- " * 30_000 + "a\n"
# Deep enough for Python's recursion limit in the pure parser, which reads what the C
# parser refuses (a colon inside a flow sequence).
_DEEP_PURE = "[" * 600 + "http://a" + "]" * 600 + "\n"


@pytest.mark.parametrize(
    ("text", "where", "phrase"),
    [
        pytest.param(
            job("every: 5m\nkwargs: {d: 2026-13-45}"),
            "s.yaml:6:17",
            "'2026-13-45' is not a valid !!timestamp (month must be in 1..12); write it in "
            "quotes if it is meant as a string",
            id="month-13",
        ),
        pytest.param(
            job("every: 5m\nkwargs: {d: 0000-01-01}"),
            "s.yaml:6:17",
            "'0000-01-01' is not a valid !!timestamp (year 0 is out of range)",
            id="year-0",
        ),
        pytest.param(
            job("every: 5m\nargs: [2026-02-30T00:00:00+00:00]"),
            "s.yaml:6:12",
            "'2026-02-30T00:00:00+00:00' is not a valid !!timestamp "
            "(day is out of range for month)",
            id="february-30",
        ),
        pytest.param(
            "version: !!int abc\nschedules: {}\n",
            "s.yaml:1:10",
            "'abc' is not a valid !!int",
            id="tagged-int",
        ),
        pytest.param(
            'version: !!float ""\nschedules: {}\n',
            "s.yaml:1:10",
            "'' is not a valid !!float",
            id="tagged-float",
        ),
        pytest.param(
            "version: !!bool abc\nschedules: {}\n",
            "s.yaml:1:10",
            "'abc' is not a valid !!bool",
            id="tagged-bool",
        ),
        pytest.param(
            "version: !!timestamp abc\nschedules: {}\n",
            "s.yaml:1:10",
            "'abc' is not a valid !!timestamp",
            id="tagged-timestamp",
        ),
        pytest.param(
            "version: 1\nschedules: {}\ndefaults: {args: [!!binary 'not base64 !']}\n",
            "s.yaml:3:19",
            "'not base64 !' is not a valid !!binary (failed to decode base64 data",
            id="tagged-binary",
        ),
        pytest.param(
            job("every: 5m\nargs: [" + "9" * 4_400 + "]"),
            "s.yaml:6:12",
            "is not a valid !!int (more than 4,300 digits)",
            id="int-4400-digits",
        ),
        pytest.param(
            job("every: 5m\nkwargs: {n: 0x" + "f" * 4_000 + "}"),
            "s.yaml:6:17",
            "is not a valid !!int (more than 4,300 digits)",
            id="hex-int-4800-digits",
        ),
        pytest.param(
            job(
                "rrule: {freq: DAILY, dtstart: '2026-01-01T00:00:00+00:00', "
                "interval: 100000000000000000000}"
            ),
            "s.yaml:5:12",
            "schedule 'job' never fires after",
            id="rrule-interval-1e20",
        ),
        pytest.param(_DEEP_FLOW, "s.yaml:1:66", "nested more than 64 levels deep", id="flow-30000"),
        pytest.param(
            _DEEP_BLOCK, "s.yaml:1:131", "nested more than 64 levels deep", id="block-30000"
        ),
        pytest.param(_DEEP_PURE, "s.yaml:1:66", "nested more than 64 levels deep", id="pure-600"),
        pytest.param(
            'version: 1\nschedules:\n  job:\n    task: "app.tasks.\\ud800"\n    every: 5m\n',
            "s.yaml:4:11",
            "'app.tasks.\\ud800' holds a lone surrogate",
            id="surrogate-task",
        ),
        pytest.param(
            job('every: 5m\nargs: ["\\udfff"]'),
            "s.yaml:6:12",
            "holds a lone surrogate (an escape such as \\ud800), which is not a character",
            id="surrogate-args",
        ),
        pytest.param(
            job('every: 5m\noptions: {queue: "q\\ud83d"}'),
            "s.yaml:6:22",
            "'q\\ud83d' holds a lone surrogate",
            id="surrogate-queue",
        ),
        pytest.param(
            job('every: 5m\nkwargs: {"k\\ud800": 1}'),
            "s.yaml:6:14",
            "holds a lone surrogate",
            id="surrogate-key",
        ),
        pytest.param(
            "version: 1\nschedules:\n  job: {task: 'a\x1fb', every: 5m}\n",
            "s.yaml:3:17",
            "YAML does not allow the character U+001F in a file; write it as an escape in a "
            'double-quoted string, e.g. "\\x1f"',
            id="control-character",
        ),
    ],
)
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_hostile_input_is_a_problem_at_its_place(
    workspace: Workspace, command: str, text: str, where: str, phrase: str
) -> None:
    workspace.write_bytes("s.yaml", text.encode("utf-8", "surrogatepass"))
    # plan reads the files before it connects: a closed port proves nothing was reached.
    options = ["--redis-url", "redis://127.0.0.1:9/0"] if command == "plan" else []
    run = workspace.run(command, *options, "s.yaml")
    assert "crashed" not in run.err, run.err
    if command == "plan":  # its problems go to stderr, its summary says "error: ..."
        assert run.out == ""
        assert run.err.endswith("error: 1 problem in the schedule files\n"), run.err
        run = CliRun(run.exit_code, run.err, "")
    assert_single_problem(run, where, phrase)


def test_a_problem_stays_on_its_line(workspace: Workspace) -> None:
    """Control characters and line separators in a quoted name are shown escaped: a name
    can neither split its problem over several lines nor drive the terminal."""
    workspace.write("s.yaml", 'version: 1\nschedules:\n  "a\\r\\e[31m\\u2028\\x85b":\n')
    run = workspace.validate("s.yaml")
    assert run.exit_code == 1
    assert run.problems == [
        "s.yaml:3:3: schedule name 'a\\r\\x1b[31m\\u2028\\x85b' contains the invisible or "
        "control character U+000D at position 2",
        "s.yaml:3:26: schedule 'a\\r\\x1b[31m\\u2028\\x85b' must be a mapping with at least "
        "'task' and one of cron, every or rrule; got null",
    ]
