"""``.pre-commit-hooks.yaml``: other repositories run ``reconciler validate`` as a pre-commit
hook. Its manifest is checked by pre-commit's own validator, and its ``files`` pattern
against the paths it must (and must not) trigger on. Running the hook (its entry, and
``pre-commit try-repo`` end to end) starts processes: tests/integration/test_pre_commit_hook.py.
"""

from __future__ import annotations

import re

import pytest
from pre_commit import clientlib

from tests.support.pre_commit_hook import HOOK_ID, MANIFEST, hook


def test_manifest_has_what_pre_commit_requires() -> None:
    found = hook()
    for key in ("id", "name", "entry", "language"):
        assert isinstance(found.get(key), str), f"{key} missing"
    assert found["entry"] == "reconciler validate"
    assert found["language"] == "python"
    # Validation is across files (unique names, an emptied folder): the whole folder is
    # checked whatever was staged.
    assert found["pass_filenames"] is False


def test_manifest_passes_pre_commits_own_validator() -> None:
    [loaded] = clientlib.load_manifest(str(MANIFEST))
    assert loaded["id"] == HOOK_ID
    assert loaded["args"] == []


@pytest.mark.parametrize(
    ("path", "triggers"),
    [
        ("schedules/reports.yaml", True),
        ("schedules/ops.yml", True),
        ("schedules/team/billing.yaml", True),
        ("schedules/README.md", False),
        ("schedules/reports.yaml.bak", False),
        ("config/schedules/x.yaml", False),
        ("docker-compose.yaml", False),
    ],
)
def test_files_pattern(path: str, triggers: bool) -> None:
    # pre-commit matches `files` with re.search on the repository-relative path.
    assert bool(re.search(hook()["files"], path)) is triggers
