"""The pre-commit hook run as pre-commit runs it: its entry (the hook's environment first on
PATH, the repository root as working directory, no file names), and ``pre-commit try-repo``
end to end, installing this package into a fresh hook environment from the package index
(about 10 s with pip's cache warm). Both start processes (git, pip, the CLI), hence this tier.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pre_commit_hook import (
    BROKEN_AT,
    HOOK_ID,
    REPO_ROOT,
    break_a_schedule,
    hook,
    user_repository,
)

pytestmark = pytest.mark.integration


def run_entry(root: Path) -> subprocess.CompletedProcess[str]:
    """The hook's entry as pre-commit runs it: its environment's bin first on PATH."""
    found = hook()
    bin_dir = Path(sys.executable).parent
    assert shutil.which("reconciler", path=str(bin_dir)), f"no reconciler script in {bin_dir}"
    argv = [*shlex.split(found["entry"]), *found.get("args", [])]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        argv, cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_entry_passes_valid_schedule_files(tmp_path: Path) -> None:
    root = user_repository(tmp_path)
    # A broken YAML file outside schedules/ is not the hook's business.
    (root / "docker-compose.yaml").write_text("services: [\n", encoding="utf-8")
    run = run_entry(root)
    assert (run.returncode, run.stdout) == (0, "7 schedules in 2 files are valid\n"), run.stderr


def test_entry_fails_on_an_invalid_file_and_points_at_it(tmp_path: Path) -> None:
    root = user_repository(tmp_path)
    break_a_schedule(root)
    run = run_entry(root)
    assert run.returncode == 1
    assert run.stdout.splitlines()[0].startswith(BROKEN_AT), run.stdout
    assert run.stdout.splitlines()[-1] == "1 problem in 1 file"


def test_entry_fails_on_an_emptied_folder(tmp_path: Path) -> None:
    (tmp_path / "schedules").mkdir()
    run = run_entry(tmp_path)
    assert run.returncode == 1
    assert run.stdout.startswith("schedules:1:1: no schedule files (*.yaml, *.yml) found"), (
        run.stdout
    )


def _git(root: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *argv],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _hook_source(root: Path) -> Path:
    """This project as a hook repository: what building it needs, in one commit."""
    root.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(REPO_ROOT / name, root / name)
    shutil.copytree(
        REPO_ROOT / "reconciler", root / "reconciler", ignore=shutil.ignore_patterns("__pycache__")
    )
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "hook source")
    return root


def test_pre_commit_try_repo_runs_the_hook(tmp_path: Path) -> None:
    source = _hook_source(tmp_path / "hook-source")
    user = user_repository(tmp_path / "user")
    _git(user, "init", "-q")
    _git(user, "add", ".")
    _git(user, "commit", "-q", "-m", "schedules")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pre_commit", "try-repo", str(source), HOOK_ID, "--all-files"],
            cwd=user,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    passed = try_repo()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"validate RedBeat schedule files\.+Passed", passed.stdout), passed.stdout

    break_a_schedule(user)
    _git(user, "add", ".")
    failed = try_repo()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(r"validate RedBeat schedule files\.+Failed", failed.stdout), failed.stdout
    assert BROKEN_AT in failed.stdout
