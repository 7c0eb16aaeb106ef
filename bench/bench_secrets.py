"""Benchmark: rotating a secret that N entries reference, through the command line.

For each N, starts a throw-away redis-server, writes N entries whose first argument is
``${env:BENCH_TOKEN}``, applies them, changes the variable, then measures:
  - plan-out:   ``plan --out`` of the rotation (N updates, masked, one scrypt digest);
  - apply-plan: ``apply --plan`` of it (resolve again, re-read, digest, write);
  - plan-2:     the no-change plan afterwards.

    .venv/bin/python bench/bench_secrets.py [N ...]     (default: 200 2000)
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from reconciler.cli.main import main

sys.path.insert(0, str(Path(__file__).parent))
from bench_plan_apply import start_server


def timed(*argv: str) -> float:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    if code != 0:
        raise SystemExit(f"reconciler {' '.join(argv)} exited {code}")
    return time.perf_counter() - started


def bench(count: int) -> None:
    home = Path.cwd()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        server, port = start_server(root)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            (root / "schedules").mkdir()
            lines = ["version: 1", "schedules:"] + [
                f'  job-{index}: {{task: app.sync, every: 5m, args: ["${{env:BENCH_TOKEN}}"]}}'
                for index in range(count)
            ]
            (root / "schedules" / "jobs.yaml").write_text("\n".join(lines) + "\n")
            os.chdir(root)
            os.environ["BENCH_TOKEN"] = "first-value"
            timed("apply", "--auto-approve", "--redis-url", url)
            os.environ["BENCH_TOKEN"] = "second-value"
            plan_out = timed("plan", "--out", "rotate.json", "--redis-url", url)
            apply_plan = timed(
                "apply", "--plan", "rotate.json", "--auto-approve", "--redis-url", url
            )
            plan_again = timed("plan", "--redis-url", url)
        finally:
            os.chdir(home)
            server.terminate()
            server.wait()
    print(
        f"N={count:>6}  plan-out {plan_out:6.2f}s  apply-plan {apply_plan:6.2f}s  "
        f"plan-2 {plan_again:6.2f}s"
    )


def main_bench() -> None:
    for count in [int(arg) for arg in sys.argv[1:]] or [200, 2000]:
        bench(count)


if __name__ == "__main__":
    main_bench()
