"""The example schedule set shipped in schedules/ must stay valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import jsonschema
from ruamel.yaml import YAML

from reconciler.load.file_format import json_schema

if TYPE_CHECKING:
    from .cli_runner import Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "schedules"


def test_example_schedules_validate(workspace: Workspace) -> None:
    run = workspace.validate(str(EXAMPLES), "--format", "json")
    report = json.loads(run.out)
    assert run.exit_code == 0, run.out
    assert report["valid"] is True
    assert report["files"], "schedules/ holds no *.yaml or *.yml file"
    assert report["schedule_count"] > 0


def test_example_schedules_conform_to_the_json_schema() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    files = sorted([*EXAMPLES.rglob("*.yaml"), *EXAMPLES.rglob("*.yml")])
    assert files, "schedules/ holds no *.yaml or *.yml file"
    for path in files:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
        errors = [error.message for error in validator.iter_errors(data)]
        assert errors == [], f"{path.name}: {errors}"
