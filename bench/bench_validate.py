"""Benchmark: how long `reconciler validate` takes for large schedule sets.

Generates N entries (a realistic mix of cron, every and rrule, with args and options) spread
over files of 500 entries, then times `read_schedule_files` (the whole validate pipeline:
discovery, YAML, format checks, Celery conversion and the never-fires check).

    .venv/bin/python bench/bench_validate.py [N ...]     (default: 1000 10000)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from reconciler.load.desired_state import read_schedule_files

ENTRIES_PER_FILE = 500
RUNS = 5


def entry_yaml(index: int) -> str:
    kind = index % 4
    if kind == 0:
        schedule = f'cron: "{index % 60} {index % 24} * * *"'
    elif kind == 1:
        schedule = f"every: {30 + index % 600}s"
    elif kind == 2:
        schedule = 'cron: "*/15 9-17 * * mon-fri"'
    else:
        schedule = (
            "rrule: {freq: MONTHLY, bymonthday: -1, byhour: 23, byminute: 0, "
            'dtstart: "2026-01-01T00:00:00+00:00"}'
        )
    return (
        f"  job-{index:06d}:\n"
        f"    task: app.tasks.job_{index % 50}\n"
        f"    {schedule}\n"
        f'    args: [{index}, "tenant-{index % 17}"]\n'
        f"    kwargs: {{region: eu, batch: {index % 100}}}\n"
        f"    options: {{queue: q{index % 5}, expires: 3600}}\n"
    )


def write_schedules(folder: Path, count: int) -> None:
    for start in range(0, count, ENTRIES_PER_FILE):
        body = "".join(entry_yaml(i) for i in range(start, min(start + ENTRIES_PER_FILE, count)))
        (folder / f"part-{start // ENTRIES_PER_FILE:04d}.yaml").write_text(
            "version: 1\nschedules:\n" + body
        )


def bench(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_schedules(folder, count)
        timings = []
        for _ in range(RUNS):
            started = time.perf_counter()
            result = read_schedule_files([folder])
            timings.append(time.perf_counter() - started)
            if not result.valid or len(result.entries) != count:
                raise SystemExit(f"benchmark input is invalid: {result.problems[:3]}")
    median = statistics.median(timings)
    print(
        f"validate {count:>6} entries: median {median:.3f} s over {RUNS} runs "
        f"(min {min(timings):.3f} s, {count / median:,.0f} entries/s)"
    )


def main() -> None:
    counts = [int(arg) for arg in sys.argv[1:]] or [1000, 10000]
    for count in counts:
        bench(count)


if __name__ == "__main__":
    main()
