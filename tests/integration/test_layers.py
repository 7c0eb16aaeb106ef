"""The core is pure in fact, not only in its import statements: importing every core module
in a fresh interpreter loads none of the libraries that do I/O or parse (the static side is
the import-linter contract in pyproject.toml, run by .ci/run)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import reconciler.core

pytestmark = pytest.mark.integration

HEAVY = ("redis", "celery", "kombu", "redbeat", "click", "ruamel", "pydantic", "prometheus_client")


def test_importing_the_core_loads_no_io_framework_or_parser() -> None:
    modules = [
        f"reconciler.core.{found.name}" for found in pkgutil.iter_modules(reconciler.core.__path__)
    ]
    assert "reconciler.core.diff" in modules
    assert "reconciler.core.drift_findings" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_the_check_itself_sees_a_heavy_import() -> None:
    # The same probe, fed a module that does import Redis, must report it.
    script = (
        "import json, sys\nimport reconciler.store.keys, reconciler.beat.redbeat_codec\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "redbeat" in json.loads(run.stdout)
