"""Start-up imports only what the command needs: `--help` loads click and the option
declarations, and `validate` (run by the pre-commit hook on every commit) loads no Redis
client, no RedBeat scheduler and no metrics server. Checked in fresh interpreters through the
real entry point (``python -X importtime -m reconciler``), never by timing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.commands.validate import RENDERERS
from reconciler.cli.main import VALIDATE_FORMATS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ("validate", "plan", "apply", "history", "drift", "export", "schema")

# Libraries and parts of the package that no --help page needs.
HELP_NEVER = (
    "celery", "kombu", "redis", "redbeat", "prometheus_client", "pydantic", "ruamel", "yaml",
    "dateutil", "tenacity", "reconciler.api", "reconciler.load", "reconciler.services",
    "reconciler.store.connection", "reconciler.store.session", "reconciler.beat",
    "reconciler.render", "reconciler.cli.settings", "reconciler.cli.commands",
)  # fmt: skip
# What validate never needs without --app: a Redis client, RedBeat's scheduler (its encoder
# and rrule are needed: the checks use RedBeat's own code), beat, the metrics server, and the
# services that talk to Redis.
VALIDATE_NEVER = (
    "redis", "redbeat.schedulers", "celery.beat", "tenacity", "prometheus_client",
    "reconciler.api", "reconciler.services", "reconciler.store.connection",
    "reconciler.store.embedded", "reconciler.store.reader", "reconciler.store.writer",
)  # fmt: skip
_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.M)


def imported_by(*args: str) -> set[str]:
    """The modules a fresh ``python -m reconciler ARGS`` imports (its -X importtime log)."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciler", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return set(_IMPORTED.findall(run.stderr))


def loaded(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        name
        for name in modules
        for prefix in forbidden
        if name == prefix or name.startswith(prefix + ".")
    )


@pytest.mark.parametrize("command", [(), *((name,) for name in COMMANDS)], ids=str)
def test_help_loads_only_click_and_the_declarations(command: tuple[str, ...]) -> None:
    modules = imported_by(*command, "--help")
    assert "click" in modules
    assert "reconciler.cli.options" in modules
    assert loaded(modules, HELP_NEVER) == []


def test_validate_loads_no_redis_client_scheduler_or_metrics() -> None:
    modules = imported_by("validate", "schedules")
    # The probe sees what validate does load: the parser, the models, Celery's and
    # RedBeat's schedule code.
    assert {"ruamel.yaml", "pydantic", "celery.schedules", "redbeat.decoder"} <= modules
    assert loaded(modules, VALIDATE_NEVER) == []


@pytest.mark.parametrize(
    ("command", "needs", "never"),
    [
        pytest.param("plan", "reconciler.services.planning", "prometheus_client", id="plan"),
        # The metrics server is for --watch only.
        pytest.param("drift", "reconciler.services.drift_check", "prometheus_client", id="drift"),
    ],
)
def test_commands_that_read_redis_load_it_and_no_more(command: str, needs: str, never: str) -> None:
    # An unreachable Redis: the command has imported what it uses when it fails to connect.
    script = (
        "import sys\n"
        "from reconciler.cli.main import main\n"
        f"code = main([{command!r}, '--redis-url', 'redis://127.0.0.1:1/0', 'schedules'])\n"
        f"print(code, sorted({{'redis', {needs!r}, {never!r}}} & set(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.stdout.splitlines()[-1] == f"1 [{needs!r}, 'redis']", run.stderr


def test_validate_formats_are_the_renderers() -> None:
    # Declared in main.py so that --help need not import the loader.
    assert list(VALIDATE_FORMATS) == sorted(RENDERERS)


def test_the_deferred_redbeat_package_is_redbeat() -> None:
    """RedBeat's encoder and rrule load without its scheduler; any other use of the package
    (as beat's -S option, code of the team's app, or the tests do) runs its __init__ then."""
    script = """
import sys
from reconciler.cli.startup import defer_redbeat_init

defer_redbeat_init()
import redbeat.decoder
import redbeat.schedules
print(sorted({"redis", "redbeat.schedulers", "celery.beat"} & set(sys.modules)))
from redbeat import RedBeatSchedulerEntry
import redbeat
import redbeat.schedulers
print(RedBeatSchedulerEntry is redbeat.schedulers.RedBeatSchedulerEntry)
from celery.utils.imports import symbol_by_name
print(symbol_by_name("redbeat.RedBeatScheduler") is redbeat.schedulers.RedBeatScheduler)
print(redbeat.decoder.RedBeatJSONEncoder is redbeat.schedulers.RedBeatJSONEncoder)
defer_redbeat_init()  # already imported: nothing changes
print(sys.modules["redbeat"] is redbeat)
try:
    redbeat.no_such_name
except AttributeError:
    print("AttributeError")
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["[]", "True", "True", "True", "True", "AttributeError"]


def test_a_command_freezes_only_what_its_first_imports_created() -> None:
    """The first command in a process freezes what importing it created (the collector
    never rescans it); a later one imports nothing new and leaves the caller's objects to
    the collector: a cycle made between two commands is still collected."""
    script = """
import contextlib, gc, io, weakref
from reconciler.cli.main import main

class Cycle:
    pass

with contextlib.redirect_stdout(io.StringIO()):
    main(["validate", "schedules"])
frozen = gc.get_freeze_count()
cycle = Cycle()
cycle.self = cycle
alive = weakref.ref(cycle)
del cycle
with contextlib.redirect_stdout(io.StringIO()):
    main(["validate", "schedules"])
gc.collect()
print(frozen > 0, gc.get_freeze_count() <= frozen, alive() is None, gc.isenabled())
"""
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True", "True", "True"]
