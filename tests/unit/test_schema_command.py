"""``reconciler schema``: a JSON Schema that editors can use, agreeing with ``validate``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from reconciler.load.file_format import SCHEMA_ID

from .cli_runner import assert_valid

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from .cli_runner import Workspace

REPO_ROOT = Path(__file__).resolve().parents[2]

SAMPLE = """
    version: 1
    defaults:
      options: {queue: reports}
    schedules:
      nightly-report:
        task: app.tasks.report
        cron: "0 3 * * *"
        args: [1, "two"]
        kwargs: {fmt: pdf}
        options: {queue: reports, expires: 3600, retry_policy: {max_retries: 3}}
        enabled: true
        description: Sends the nightly report
        run_on_create: false
      heartbeat: {task: app.tasks.ping, every: 30s}
      every-seconds: {task: app.tasks.ping, every: 45}
      celery-crontab: {task: app.tasks.ping, cron: {minute: 0, hour: "*/2"}}
      month-end:
        task: app.tasks.close_books
        rrule:
          freq: MONTHLY
          bymonthday: -1
          byhour: 23
          byminute: 0
          dtstart: "2026-01-01T00:00:00+00:00"
    """


def _schema(workspace: Workspace) -> dict[str, Any]:
    run = workspace.run("schema")
    assert run.exit_code == 0, run.err
    schema: dict[str, Any] = json.loads(run.out)
    return schema


def _yaml_data(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(textwrap.dedent(text))


def _schema_errors(schema: dict[str, Any], text: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in _with_sub_errors(validator.iter_errors(_yaml_data(text)))
    ]


def _with_sub_errors(
    errors: Iterable[jsonschema.ValidationError],
) -> Iterator[jsonschema.ValidationError]:
    """Each error and, for anyOf/oneOf, the errors of every alternative it tried."""
    for error in errors:
        yield error
        yield from _with_sub_errors(error.context or [])


def test_schema_prints_a_valid_draft_2020_12_json_schema(workspace: Workspace) -> None:
    schema = _schema(workspace)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    jsonschema.Draft202012Validator.check_schema(schema)
    assert workspace.run("schema").err == ""


def test_committed_schema_file_matches_the_command(workspace: Workspace) -> None:
    committed = REPO_ROOT / "schema" / "schedule-file.v1.json"
    assert json.loads(committed.read_text(encoding="utf-8")) == _schema(workspace), (
        "schema/schedule-file.v1.json is stale: regenerate it with `reconciler schema`"
    )


def test_sample_file_conforms_to_the_schema_and_validates(workspace: Workspace) -> None:
    assert _schema_errors(_schema(workspace), SAMPLE) == []
    run = workspace.check(SAMPLE)
    assert_valid(run)
    assert run.summary == "5 schedules in 1 file are valid"


@pytest.mark.parametrize(
    ("text", "error_at"),
    [
        pytest.param("version: 1\nschedules: {}\nschedlues: {}\n", "", id="top-level"),
        pytest.param(
            "version: 1\ndefaults: {optons: {}}\nschedules: {}\n", "defaults", id="defaults"
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, every: 5, descripton: x}\n",
            "schedules/a",
            id="entry",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, every: 5, options: {queeu: q}}\n",
            "schedules/a/options",
            id="options",
        ),
        pytest.param(
            "version: 1\nschedules:\n"
            "  a: {task: t, every: 5, options: {retry_policy: {max_retris: 3}}}\n",
            "schedules/a/options/retry_policy",
            id="retry-policy",
        ),
        pytest.param(
            "version: 1\nschedules:\n"
            "  a: {task: t, rrule: {freq: DAILY, dtstart: '2026-01-01T00:00:00Z', bysecnd: 1}}\n",
            "schedules/a/rrule",
            id="rrule",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, cron: {minute: 0, huor: 3}}\n",
            "schedules/a/cron",
            id="cron-mapping",
        ),
    ],
)
def test_unknown_key_does_not_conform_to_the_schema(
    workspace: Workspace, text: str, error_at: str
) -> None:
    errors = _schema_errors(_schema(workspace), text)
    assert errors, "the schema accepted an unknown key"
    assert any(
        error.startswith(f"{error_at}: ") and "was unexpected" in error for error in errors
    ), errors
    assert workspace.check(text).exit_code == 1


@pytest.mark.parametrize(
    ("text", "error_at"),
    [
        pytest.param("schedules: {}\n", "", id="missing-version"),
        pytest.param("version: 2\nschedules: {}\n", "version", id="version-2"),
        pytest.param("version: 1\nschedules:\n  a: {every: 5}\n", "schedules/a", id="no-task"),
        pytest.param(
            "version: 1\nschedules:\n  ':lock': {task: t, every: 5}\n", "schedules", id="colon-name"
        ),
        pytest.param(
            "version: 1\nschedules:\n  '': {task: t, every: 5}\n", "schedules", id="empty-name"
        ),
        pytest.param(
            "version: 1\nschedules:\n  " + "x" * 201 + ": {task: t, every: 5}\n",
            "schedules",
            id="long-name",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, every: 5, options: {priority: 300}}\n",
            "schedules/a/options/priority",
            id="priority-300",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, every: 5, options: {expires: 0}}\n",
            "schedules/a/options/expires",
            id="expires-0",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, every: 5, options: {queue: 5}}\n",
            "schedules/a/options/queue",
            id="queue-5",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, every: 5x}\n",
            "schedules/a/every",
            id="every-5x",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, every: -5}\n",
            "schedules/a/every",
            id="every-neg",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, rrule: {freq: BIWEEKLY, "
            "dtstart: '2026-01-01T00:00:00Z'}}\n",
            "schedules/a/rrule/freq",
            id="rrule-freq",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, rrule: {freq: DAILY}}\n",
            "schedules/a/rrule",
            id="rrule-no-dtstart",
        ),
        pytest.param(
            "version: 1\nschedules:\n  a: {task: t, every: 5, args: {x: 1}}\n",
            "schedules/a/args",
            id="args-mapping",
        ),
    ],
)
def test_other_invalid_files_do_not_conform_to_the_schema(
    workspace: Workspace, text: str, error_at: str
) -> None:
    errors = _schema_errors(_schema(workspace), text)
    assert any(error.startswith(f"{error_at}: ") for error in errors), errors
    assert workspace.check(text).exit_code == 1
