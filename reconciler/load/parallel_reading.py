"""Reading many schedule files on every core the process may use.

Parsing and checking a file depends on that file (and the overlays' patches) alone, and is
most of what a plan of many entries costs: at 100,000 entries, read in one process, about
10 s of a 19 s plan (bench/RESULTS.md). Past ``PARALLEL_MIN_BYTES`` of files, they are cut into
one run of consecutive files per core; this process reads the first run itself while forked
workers read the others, and their entries and problems come back pickled, in file order.
The result is the same as reading the files one after another
(tests/integration/test_parallel_reading.py compares both).

Only where ``fork`` is the platform's way to start a process (Linux): a forked worker starts
with everything already imported and the patches already read, where a spawned one would
import the whole package again and be sent the patches.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import pairwise
from typing import TYPE_CHECKING

from reconciler.load.entries import FileEntries, entries_from_document
from reconciler.load.yaml_source import read_yaml_file

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from reconciler.core.problems import Problem
    from reconciler.load.discovery import ScheduleFile
    from reconciler.load.overlays import Patch

    # A file's reading problems, and its entries (None when it could not be read at all).
    FileReading = tuple[list[Problem], FileEntries | None]

# Below this many bytes of files (about 5,000 entries), starting workers and sending their
# results back costs about what they save.
PARALLEL_MIN_BYTES = 1_000_000

# What the workers read, set before they are forked (and inherited by them): the files, the
# overlays' patches, and whether values are located.
_JOB: tuple[Sequence[ScheduleFile], Mapping[str, Sequence[Patch]], bool] | None = None


def read_files(
    files: Sequence[ScheduleFile],
    patches: Mapping[str, Sequence[Patch]],
    *,
    locate_values: bool,
    workers: int | None = None,
) -> Iterator[FileReading]:
    """Each file's reading, in the order of ``files``; ``workers`` (processes, this one
    included) is by default one per core once the files are large enough."""
    count = _worker_count(files) if workers is None else workers
    if count < 2:
        for schedule_file in files:
            yield _read_one(schedule_file, patches, locate_values)
        return
    global _JOB  # inherited by the forked workers, and only by them
    _JOB = (files, patches, locate_values)
    # One run of consecutive files per process, (start, stop) of each.
    runs = list(pairwise(len(files) * part // count for part in range(count + 1)))
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(count - 1, mp_context=context) as pool:
            later = [(pool.submit(_read_run, start, stop), start, stop) for start, stop in runs[1:]]
            yield from _read_run(*runs[0])
            for future, start, stop in later:
                try:
                    readings = future.result()
                except BrokenProcessPool:
                    # A worker died (killed, out of memory): its files are read here instead.
                    readings = _read_run(start, stop)
                yield from readings
    finally:
        _JOB = None


def _worker_count(files: Sequence[ScheduleFile]) -> int:
    if sys.platform != "linux" or len(files) < 2:
        return 1
    cores = len(os.sched_getaffinity(0))
    if cores < 2 or sum(_size(schedule_file) for schedule_file in files) < PARALLEL_MIN_BYTES:
        return 1
    return min(cores, len(files))


def _size(schedule_file: ScheduleFile) -> int:
    try:
        return schedule_file.path.stat().st_size
    except OSError:
        return 0  # reported when read


def _read_run(start: int, stop: int) -> list[FileReading]:
    assert _JOB is not None
    files, patches, locate_values = _JOB
    readings = []
    for schedule_file in files[start:stop]:
        readings.append(_read_one(schedule_file, patches, locate_values))
        # The collector is paused while files are read (desired_state.py), in the workers
        # too: the few cycles a reading leaves go with the youngest generation.
        gc.collect(0)
    return readings


def _read_one(
    schedule_file: ScheduleFile, patches: Mapping[str, Sequence[Patch]], locate_values: bool
) -> FileReading:
    document, problems = read_yaml_file(schedule_file.path, schedule_file.display_path)
    if document is None:
        return problems, None
    return problems, entries_from_document(document, patches, locate_values=locate_values)
