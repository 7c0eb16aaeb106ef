"""The floor for bench_cli.py: the least any tool must do to compare N entries.

Parses the schedule files with PyYAML's C loader (garbage collection paused), then reads
every entry's hash (HGETALL) and its score in the schedule sorted set (ZMSCORE), 500 entries
per pipelined round trip. Prints the two parts' seconds as JSON.

    .venv/bin/python bench/floor_read.py FOLDER REDIS_URL [KEY_PREFIX]
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import redis
import yaml

BATCH = 500


def main() -> None:
    folder, url = Path(sys.argv[1]), sys.argv[2]
    prefix = sys.argv[3] if len(sys.argv) > 3 else "redbeat:"
    gc.disable()
    started = time.perf_counter()
    names: list[str] = []
    for path in sorted(folder.glob("*.yaml")):
        with path.open("rb") as stream:
            names.extend(yaml.load(stream, Loader=yaml.CSafeLoader)["schedules"])
    parsed = time.perf_counter()
    client = redis.Redis.from_url(url)
    keys = [prefix + name for name in names]
    found = scored = 0
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.hgetall(key)
        pipe.zmscore(prefix + ":schedule", batch)
        *hashes, scores = pipe.execute()
        found += sum(1 for fields in hashes if fields)
        scored += sum(1 for score in scores if score is not None)
    read = time.perf_counter()
    print(json.dumps({"entries": len(names), "found": found, "scored": scored,
                      "parse": parsed - started,
                      "read": read - parsed}))  # fmt: skip


if __name__ == "__main__":
    main()
