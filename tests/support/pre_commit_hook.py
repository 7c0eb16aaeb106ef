"""The pre-commit hook as other repositories see it: its manifest entry and a user's
repository holding the example schedules (shared by the unit and integration tests)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / ".pre-commit-hooks.yaml"
HOOK_ID = "reconciler-validate"
BROKEN_CRON = ('cron: "*/15 9-17 * * mon-fri"', 'cron: "61 * * * *"')
BROKEN_AT = "schedules/maintenance.yaml:18:11: cron minute field '61' is invalid"


def hook() -> dict[str, Any]:
    hooks = YAML(typ="safe").load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(hooks, list)
    [found] = [entry for entry in hooks if entry["id"] == HOOK_ID]
    assert isinstance(found, dict)
    return found


def user_repository(root: Path) -> Path:
    """A repository using the hook: the example schedules, in schedules/."""
    shutil.copytree(REPO_ROOT / "schedules", root / "schedules")
    return root


def break_a_schedule(root: Path) -> None:
    path = root / "schedules" / "maintenance.yaml"
    text = path.read_text(encoding="utf-8")
    assert BROKEN_CRON[0] in text
    path.write_text(text.replace(*BROKEN_CRON), encoding="utf-8")
