"""Files read by forked workers give exactly what reading them one after another gives:
the same entries (with where each was written), the same problems in the same order, the
same names, with overlays and with files that cannot be read. Forks processes: hence the
integration tier."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import pytest

from reconciler.load import parallel_reading
from reconciler.load.desired_state import read_schedule_files
from reconciler.load.discovery import discover_schedule_files
from reconciler.load.overlays import read_overlays
from reconciler.load.parallel_reading import read_files

if TYPE_CHECKING:
    from pathlib import Path

    from reconciler.load.desired_state import LoadResult

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform != "linux", reason="files are read in parallel on Linux"),
]

ENTRY = """\
  job-{n:03d}:
    task: app.tasks.job
    cron: "{minute} 3 * * *"
    args: [{n}, "${{env:HOME}}"]
    kwargs: {{size: {n}}}
"""
BROKEN = {
    "part-03.yaml": "version: 1\nschedules:\n  bad-one:\n    task: app.tasks.job\n    every: 0s\n",
    "part-05.yaml": "version: 1\nschedules: [not, a, mapping\n",  # cannot be read
    "part-07.yaml": "version: 2\nschedules:\n  job-700:\n    task: x\n    cron: '61 * * * *'\n",
}
OVERLAY = "version: 1\npatches:\n  job-001:\n    options: {queue: overlay-queue}\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    schedules = tmp_path / "schedules"
    schedules.mkdir()
    for part in range(10):
        entries = "".join(ENTRY.format(n=part * 10 + index, minute=index) for index in range(10))
        (schedules / f"part-{part:02d}.yaml").write_text(f"version: 1\nschedules:\n{entries}")
    for name, text in BROKEN.items():
        (schedules / name).write_text(text)
    (tmp_path / "overlay.yaml").write_text(OVERLAY)
    return schedules


@pytest.mark.parametrize("workers", [2, 3, 10])
def test_workers_read_exactly_what_one_process_reads(folder: Path, workers: int) -> None:
    files, problems = discover_schedule_files([folder])
    assert problems == []
    patches = read_overlays([folder.parent / "overlay.yaml"]).patches
    one = list(read_files(files, patches, locate_values=True, workers=1))
    many = list(read_files(files, patches, locate_values=True, workers=workers))
    assert len(one) == len(files) == 10
    assert many == one  # problems and FileEntries (entries compare without their sources)
    for (_, alone), (_, forked) in zip(one, many, strict=True):
        if alone is None:
            assert forked is None
            continue
        assert forked is not None
        assert [_sources(entry) for entry in forked.entries] == [
            _sources(entry) for entry in alone.entries
        ]
    assert sum(found is None for _, found in one) == 1
    # 7 files of 10 valid entries; the 3 broken ones hold none.
    assert sum(len(found.entries) for _, found in many if found) == 70


def test_a_load_past_the_threshold_is_the_load_of_one_process(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overlay = [folder.parent / "overlay.yaml"]
    monkeypatch.setattr(parallel_reading, "PARALLEL_MIN_BYTES", sys.maxsize)
    alone = read_schedule_files([folder], overlays=overlay)
    monkeypatch.setattr(parallel_reading, "PARALLEL_MIN_BYTES", 0)
    forked = read_schedule_files([folder], overlays=overlay)
    assert _comparable(forked) == _comparable(alone)
    assert any("every" in problem.message for problem in alone.problems)
    assert next(e for e in alone.entries if e.name == "job-001").options == {
        "queue": "overlay-queue"
    }


def test_the_files_of_a_worker_that_died_are_read_by_the_process_itself(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, _ = discover_schedule_files([folder])
    one = list(read_files(files, {}, locate_values=False, workers=1))
    monkeypatch.setattr(parallel_reading, "_read_run", _dies_in_a_worker)
    assert list(read_files(files, {}, locate_values=False, workers=3)) == one


PARENT = os.getpid()
_READ_RUN = parallel_reading._read_run


def _dies_in_a_worker(start: int, stop: int) -> object:
    if os.getpid() != PARENT:
        os._exit(9)  # as a worker the kernel killed for memory
    return _READ_RUN(start, stop)


def _sources(entry: object) -> tuple[object, ...]:
    return tuple(
        getattr(entry, name)
        for name in ("source", "schedule_source", "field_sources", "overlay_sources")
    )


def _comparable(result: LoadResult) -> tuple[object, ...]:
    entries = [(entry, _sources(entry)) for entry in result.entries]
    return entries, result.problems, result.files, result.fingerprint
