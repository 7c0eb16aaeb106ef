"""``--app``: schedule files checked against the team's real Celery app, no broker needed.

Tasks must be registered, ``args``/``kwargs`` must bind to the task's signature, and
``options.queue`` must name a declared queue; each problem at the value's file:line:column.
The app is ``tests.support.checked_app`` (imported as ``celery -A`` would), or a small
project written into the working folder to prove how the app and its task modules load.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from typing import TYPE_CHECKING

import pytest

from reconciler.load.app_checks import AppChecks, declared_queues, task_signature
from reconciler.load.desired_state import read_schedule_files
from tests.support import checked_app

from .cli_runner import assert_single_problem, assert_valid

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from .cli_runner import CliRun, Workspace

APP = "tests.support.checked_app"


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("RECONCILER_APP", "GITHUB_ACTIONS", "CI", checked_app.ENV_REDIS_URL):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("REDBEAT_REDIS_URL", "REDBEAT_KEY_PREFIX", "REDBEAT_TIMEZONE"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def unique() -> Iterator[str]:
    """A fresh module-name suffix; modules with it are forgotten after the test."""
    suffix = uuid.uuid4().hex[:8]
    yield suffix
    for name in [name for name in sys.modules if suffix in name]:
        del sys.modules[name]


def entry(body: str, *, task: str = "checked.report", queue: str | None = "reports") -> str:
    """One entry 'job': ``task`` on line 4 (value at column 11), ``body`` from line 5."""
    lines = textwrap.dedent(body).strip("\n").splitlines()
    if queue is not None:
        lines.append(f"options: {{queue: {queue}}}")
    indented = "\n".join("    " + line for line in lines)
    return f"version: 1\nschedules:\n  job:\n    task: {task}\n    every: 5m\n{indented}\n"


def check(workspace: Workspace, text: str, *options: str) -> CliRun:
    return workspace.check(text, "--app", APP, *options)


# -- registration -------------------------------------------------------------------------


def test_unregistered_task_is_reported_at_the_task_with_the_closest_name(
    workspace: Workspace,
) -> None:
    run = check(workspace, entry("args: [mon]", task="checked.reprot"))
    assert_single_problem(
        run,
        "s.yaml:4:11",
        "schedule 'job': task 'checked.reprot' is not registered in the Celery app "
        "'tests.support.checked_app'; did you mean 'checked.report'?",
    )


def test_unregistered_task_without_a_close_name_has_no_suggestion(workspace: Workspace) -> None:
    run = check(workspace, entry("args: []", task="billing.tasks.invoice"))
    assert_single_problem(run, "s.yaml:4:11", "task 'billing.tasks.invoice' is not registered")
    assert "did you mean" not in run.out


def test_without_app_nothing_is_checked_against_it(workspace: Workspace) -> None:
    assert_valid(workspace.check(entry("args: [1, 2, 3]", task="checked.reprot", queue="x")))


# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "where", "reason"),
    [
        pytest.param(
            "args: [mon, csv, extra]", "s.yaml:6:22", "too many positional arguments", id="too-many"
        ),
        pytest.param(
            "kwargs: {fmt: csv}", "s.yaml:6:13", "missing a required argument: 'day'", id="missing"
        ),
        pytest.param(
            "args: []", "s.yaml:6:11", "missing a required argument: 'day'", id="missing-no-kwargs"
        ),
        pytest.param(
            "kwargs:\n  day: mon\n  colour: red",
            "s.yaml:8:7",
            "got an unexpected keyword argument 'colour'",
            id="unknown-kwarg",
        ),
        pytest.param(
            "args: [mon]\nkwargs: {day: tue}",
            "s.yaml:7:14",
            "multiple values for argument 'day'",
            id="repeated",
        ),
    ],
)
def test_arguments_that_do_not_bind_are_reported_at_the_offending_value(
    workspace: Workspace, body: str, where: str, reason: str
) -> None:
    run = check(workspace, entry(body))
    assert_single_problem(
        run,
        where,
        f"schedule 'job': task 'checked.report' takes (day, fmt='pdf'); {reason} "
        "(Celery would raise TypeError when it runs)",
    )


def test_missing_arguments_with_nothing_written_point_at_the_task(workspace: Workspace) -> None:
    run = check(workspace, entry("enabled: true"))
    assert_single_problem(run, "s.yaml:4:11", "missing a required argument: 'day'")


@pytest.mark.parametrize(
    ("task", "body"),
    [
        pytest.param("checked.report", "args: [mon]", id="required-only"),
        pytest.param("checked.report", "args: [mon, csv]", id="all-positional"),
        pytest.param("checked.report", "kwargs: {day: mon, fmt: csv}", id="all-keywords"),
        pytest.param("checked.ping", "args: []", id="no-parameters"),
        pytest.param(
            "checked.anything", "args: [1, [2], {a: 3}]\nkwargs: {x: 1, y: null}", id="star-args"
        ),
        pytest.param("checked.keywords", "kwargs: {anything: 1, goes: [2]}", id="star-kwargs"),
        pytest.param("checked.charge", "args: [42]\nkwargs: {dry_run: true}", id="bind-true"),
        pytest.param("checked.cleanup", "args: [30]\nkwargs: {dry_run: true}", id="task-class"),
        pytest.param("checked.rotate", "args: [/var/log, 5]", id="positional-only"),
        pytest.param("celery.backend_cleanup", "args: []", id="celery-builtin"),
    ],
)
def test_arguments_that_bind_pass(workspace: Workspace, task: str, body: str) -> None:
    assert_valid(check(workspace, entry(body, task=task)))


def test_bind_true_task_does_not_count_self(workspace: Workspace) -> None:
    run = check(workspace, entry("args: [42, true]", task="checked.charge"))
    assert_single_problem(
        run,
        "s.yaml:6:16",
        "task 'checked.charge' takes (account_id, *, dry_run=False); too many positional",
    )


def test_star_kwargs_task_refuses_positional_arguments(workspace: Workspace) -> None:
    run = check(workspace, entry("args: [1]", task="checked.keywords"))
    assert_single_problem(run, "s.yaml:6:12", "takes (**options); too many positional arguments")


def test_task_class_keyword_only_argument_by_position_is_refused(workspace: Workspace) -> None:
    run = check(workspace, entry("args: [30, true]", task="checked.cleanup"))
    assert_single_problem(run, "s.yaml:6:16", "takes (older_than_days, *, dry_run=False)")


def test_positional_only_parameter_given_by_keyword_is_refused(workspace: Workspace) -> None:
    run = check(workspace, entry("kwargs: {path: /tmp}", task="checked.rotate"))
    assert_single_problem(run, "s.yaml:6:14", "'path' parameter is positional only")


def test_disabled_entries_are_checked_too(workspace: Workspace) -> None:
    run = check(workspace, entry("enabled: false\nargs: [1, 2, 3]"))
    assert_single_problem(run, "s.yaml:7:18", "too many positional arguments")


# -- queues --------------------------------------------------------------------------------


def test_unknown_queue_is_reported_at_the_queue_with_the_closest_name(
    workspace: Workspace,
) -> None:
    run = check(workspace, entry("args: [mon]", queue="reprots"))
    assert_single_problem(
        run,
        "s.yaml:7:22",
        "schedule 'job': queue 'reprots' is not one of the app's task_queues; did you mean "
        "'reports'? (declared: billing, default, reports)",
    )


def test_queue_from_the_defaults_is_reported_in_the_defaults(workspace: Workspace) -> None:
    text = """
        version: 1
        defaults:
          options: {queue: nightly}
        schedules:
          job: {task: checked.ping, every: 5m}
        """
    run = workspace.check(text, "--app", APP)
    assert_single_problem(run, "s.yaml:3:20", "queue 'nightly' is not one of the app's")


def test_entry_without_a_queue_is_not_checked(workspace: Workspace) -> None:
    assert_valid(check(workspace, entry("args: [mon]", queue=None)))


def test_queue_is_not_checked_when_the_app_declares_none(workspace: Workspace, unique: str) -> None:
    module = f"team_noqueues_{unique}"
    workspace.write(
        f"{module}.py",
        """
        from tests.support.checked_app import make_checked_app

        app = make_checked_app(task_queues=None)
        """,
    )
    run = workspace.check(entry("args: [mon]", queue="anything"), "--app", module)
    assert_valid(run)


# -- everything at once ------------------------------------------------------------------------


VALID_FILE = """
    version: 1
    defaults:
      options: {queue: reports}
    schedules:
      nightly-report:
        task: checked.report
        cron: "0 3 * * *"
        args: [mon]
        kwargs: {fmt: csv}
      heartbeat:
        task: checked.ping
        every: 30s
        options: {queue: default}
      charge:
        task: checked.charge
        cron: "0 4 1 * *"
        args: [42]
        options: {queue: billing}
    """


def test_a_valid_file_passes(workspace: Workspace) -> None:
    run = workspace.check(VALID_FILE, "--app", APP)
    assert (run.exit_code, run.out, run.err) == (0, "3 schedules in 1 file are valid\n", "")


def test_app_from_the_environment(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_APP", APP)
    run = workspace.check(entry("args: []", task="checked.reprot"))
    assert_single_problem(run, "s.yaml:4:11", "did you mean 'checked.report'?")


def test_every_problem_is_listed_in_file_order_with_its_code(workspace: Workspace) -> None:
    text = """
        version: 1
        schedules:
          a: {task: checked.reprot, every: 5m}
          b: {task: checked.report, every: 5m, args: [1, 2, 3], options: {queue: nope}}
          c: {task: checked.report, every: 0}
        """
    run = workspace.check(text, "--app", APP, "--format", "json")
    assert run.exit_code == 1
    found = [(p["line"], p["column"], p["code"]) for p in run.json()["problems"]]
    assert found == [
        (3, 13, "unregistered-task"),
        (4, 53, "task-arguments"),
        (4, 74, "unknown-queue"),
        (5, 36, "every"),
    ]


def test_plan_refuses_files_the_app_refuses_before_connecting(workspace: Workspace) -> None:
    # The app's Redis (port 1) is never reached: the files fail first, as with any problem.
    workspace.write("schedules/s.yaml", entry("args: []", task="checked.reprot"))
    for command in ("plan", "apply", "drift"):
        run = workspace.run(command, "--app", APP)
        assert run.exit_code == 1, run.err
        assert "schedules/s.yaml:4:11: schedule 'job': task 'checked.reprot'" in run.err
        assert "not usable" not in run.err


# -- loading the app and its tasks ------------------------------------------------------------


def test_task_modules_load_as_a_worker_loads_them(workspace: Workspace, unique: str) -> None:
    """The app module and its task modules come from the current folder; tasks in
    ``imports`` and autodiscovered packages are registered before checking."""
    workspace.write(
        f"team_{unique}/__init__.py",
        f"""
        from celery import Celery

        app = Celery("team", set_as_current=False)
        app.conf.update(imports=["team_{unique}.jobs"])
        app.autodiscover_tasks(["team_{unique}.billing"])
        """,
    )
    workspace.write(
        f"team_{unique}/jobs.py",
        f"""
        from team_{unique} import app

        @app.task(name="team.sync", shared=False)
        def sync(source, *, full=False):
            return source
        """,
    )
    workspace.write(f"team_{unique}/billing/__init__.py", "")
    workspace.write(
        f"team_{unique}/billing/tasks.py",
        f"""
        from team_{unique} import app

        @app.task(name="team.invoice", shared=False)
        def invoice(customer_id):
            return customer_id
        """,
    )
    text = """
        version: 1
        schedules:
          sync: {task: team.sync, every: 5m, args: [crm], kwargs: {full: true}}
          invoice: {task: team.invoice, every: 1h, args: [7]}
          broken: {task: team.invoice, every: 1h, kwargs: {customer: 7}}
        """
    # 'module' alone finds its 'app', as celery -A does.
    run = workspace.check(text, "--app", f"team_{unique}")
    assert_single_problem(
        run,
        "s.yaml:5:52",
        "task 'team.invoice' takes (customer_id); got an unexpected keyword argument "
        "'customer'; did you mean 'customer_id'?",
    )


def test_what_the_app_prints_while_importing_goes_to_stderr(
    workspace: Workspace, unique: str
) -> None:
    module = f"chatty_{unique}"
    workspace.write(
        f"{module}.py",
        """
        from tests.support.checked_app import make_checked_app

        print("connecting to the database...")
        app = make_checked_app()
        """,
    )
    run = check(workspace, entry("args: [mon]"), "--app", module, "--format", "json")
    assert run.json()["valid"] is True
    assert run.err == "connecting to the database...\n"


def test_celery_attribute_is_found_for_a_module(workspace: Workspace, unique: str) -> None:
    module = f"proj_{unique}"
    workspace.write(
        f"{module}.py",
        """
        from tests.support.checked_app import make_checked_app

        celery = make_checked_app()
        """,
    )
    assert_valid(workspace.check(entry("args: [mon]"), "--app", module))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            "no_such_project.celery",
            "--app 'no_such_project.celery': no module named 'no_such_project' (searched the "
            "current directory and sys.path)",
            id="no-module",
        ),
        pytest.param(
            f"{APP}:nope",
            f"--app '{APP}:nope': module '{APP}' has no attribute 'nope'",
            id="no-attribute",
        ),
        pytest.param(
            f"{APP}:make_checked_app",
            f"--app '{APP}:make_checked_app': 'make_checked_app' in module '{APP}' is a "
            "function, not a Celery app",
            id="not-an-app",
        ),
        pytest.param(
            "tests.support.redis_server",
            "--app 'tests.support.redis_server': module 'tests.support.redis_server' has no "
            "'app' or 'celery' attribute; name the app as module:attribute",
            id="no-app-in-module",
        ),
        pytest.param(
            f"{APP}:",
            f"--app '{APP}:': expected module:attribute, e.g. proj.celery:app",
            id="empty-attribute",
        ),
    ],
)
def test_app_that_cannot_be_loaded_is_one_clear_line(
    workspace: Workspace, spec: str, message: str
) -> None:
    run = check(workspace, entry("args: [mon]"), "--app", spec)
    assert (run.exit_code, run.out, run.err) == (1, "", f"error: {message}\n")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(
            'raise RuntimeError("DATABASE_URL is not set")',
            "importing module 'team_{u}' failed: RuntimeError: DATABASE_URL is not set",
            id="raises",
        ),
        pytest.param(
            "import requests_that_is_not_installed",
            "importing module 'team_{u}' failed: ModuleNotFoundError: No module named "
            "'requests_that_is_not_installed'",
            id="missing-dependency",
        ),
        pytest.param(
            "def broken(:\n    pass",
            "importing module 'team_{u}' failed: SyntaxError: ",
            id="syntax-error",
        ),
    ],
)
def test_module_failing_to_import_is_one_clear_line_naming_it(
    workspace: Workspace, unique: str, source: str, message: str
) -> None:
    workspace.write(f"team_{unique}.py", source)
    workspace.write("s.yaml", entry("args: [mon]"))
    run = workspace.validate("s.yaml", "--app", f"team_{unique}:app")
    assert run.exit_code == 1
    assert run.out == ""
    assert run.err.startswith(f"error: --app 'team_{unique}:app': " + message.format(u=unique))
    assert len(run.err.splitlines()) == 1
    assert "Traceback" not in run.err


def test_task_module_failing_to_import_is_one_clear_line(workspace: Workspace, unique: str) -> None:
    workspace.write(
        f"team_{unique}.py",
        f"""
        from celery import Celery

        app = Celery("team", set_as_current=False)
        app.conf.imports = ["team_{unique}_tasks"]
        """,
    )
    workspace.write(f"team_{unique}_tasks.py", "raise KeyError('STRIPE_KEY')")
    run = check(workspace, entry("args: [mon]"), "--app", f"team_{unique}")
    assert (run.exit_code, run.out) == (1, "")
    assert run.err == (
        f"error: --app 'team_{unique}': importing the app's task modules failed: "
        "KeyError: 'STRIPE_KEY'\n"
    )


# -- the checks as a library ---------------------------------------------------------------


def test_checks_plug_into_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(entry("args: [1, 2, 3]"), encoding="utf-8")
    app = checked_app.make_checked_app()
    app.finalize(auto=False)
    result = read_schedule_files([path], entry_checks=AppChecks(app, "checked"))
    assert [(p.location.line, p.location.column, p.code) for p in result.problems] == [
        (6, 18, "task-arguments")
    ]


def test_declared_queues_accepts_queue_objects_and_a_mapping() -> None:
    app = checked_app.make_checked_app()
    assert declared_queues(app) == frozenset(checked_app.QUEUES)
    app.conf.task_queues = {"a": {"exchange": "a"}, "b": {}}
    assert declared_queues(app) == frozenset({"a", "b"})
    app.conf.task_queues = None
    assert declared_queues(app) is None


def test_signature_of_a_task_without_one_is_not_checked() -> None:
    class Opaque:
        run = len  # a builtin: inspect cannot always read one

    found = task_signature(Opaque())
    assert found is None or str(found) == "(obj, /)"
