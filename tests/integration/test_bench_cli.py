"""The benchmark of issue 11 (bench/bench_cli.py) runs end to end at a small N, so CI proves
it works. Its timings are never asserted here; what is deterministic is: the round trips of
plan, the entry keys a 1% apply writes, and that plan and drift write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_the_benchmark_runs_and_its_deterministic_goals_hold(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    run = subprocess.run(
        [sys.executable, "bench/bench_cli.py", "--n", "200", "--rounds", "1", "--out", results],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    text = results.read_text()
    assert "## N = 200" in text
    for row in (
        "`reconciler --help`",
        "`plan`, no changes",
        "`apply`, 1% changed",
        "floor:",
        "`drift`, no drift, each entry with a last run of its own",
    ):
        assert row in text
    goals = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in _goal_rows(text)}
    assert goals["round trips ≤ N/500 + 10 = 10: plan"] == "PASS"
    assert goals["round trips ≤ N/500 + 10 = 10: plan-ran"] == "PASS"
    assert goals["writes only for changed entries: entry keys written by `apply` 1% = 2"] == "PASS"
    assert goals["`plan` and `drift` write nothing"] == "PASS"


def _goal_rows(text: str) -> list[str]:
    table = text.split("| goal (issue 11) |", 1)[1]
    return [line for line in table.splitlines()[2:] if line.startswith("|")]
