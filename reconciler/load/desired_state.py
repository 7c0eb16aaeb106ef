"""The one way schedule files are read: discover, parse, interpret, check across files."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from reconciler.beat.celery_objects import check_timezone
from reconciler.core.defaults import DEFAULT_PATHS, DEFAULT_TIMEZONE
from reconciler.core.errors import InvalidScheduleFiles
from reconciler.core.fingerprints import files_fingerprint
from reconciler.core.problems import Problem, SourceLocation
from reconciler.load.cross_checks import (
    TIME_DEPENDENT_CODES,
    duplicate_name_problems,
    schedule_problems,
)
from reconciler.load.discovery import discover_schedule_files
from reconciler.load.overlays import read_overlays, unknown_patch_problems
from reconciler.load.parallel_reading import read_files

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

    from reconciler.core.model import DesiredEntry

    # Checks the loader cannot make itself, e.g. against the team's Celery app (app_checks.py).
    EntryCheck = Callable[[Sequence[DesiredEntry]], Iterable[Problem]]


@dataclass(frozen=True)
class LoadResult:
    """Everything read from the files: the valid entries and every problem found."""

    entries: list[DesiredEntry] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    fingerprint: str = ""  # of the files' bytes and the timezone; see fingerprints.py
    warnings: list[Problem] = field(default_factory=list)
    overlays: list[str] = field(default_factory=list)  # overlay files applied, as shown
    targets: list[str] = field(default_factory=list)  # the targets checked, for summaries

    @property
    def valid(self) -> bool:
        return not self.problems


# Entries read or checked between two collections of the youngest generation (see below).
YOUNG_COLLECTION_EVERY = 1000


@contextmanager
def _collector_paused() -> Iterator[None]:
    # Loading builds hundreds of thousands of small acyclic objects (values, positions);
    # the cyclic collector only rescans them: pausing it halves the time at 10,000 entries
    # (bench/bench_validate.py). Reference counting still frees everything as usual, but not
    # the few cycles the checks leave (Celery's crontab parsers hold bound methods of
    # themselves, 75 cycles per 10 crontabs): _YoungGarbage frees those as it goes.
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class _YoungGarbage:
    """Collects the youngest generation every ``YOUNG_COLLECTION_EVERY`` entries.

    With the collector paused, cyclic garbage would otherwise stay until the end of the load:
    at 100,000 entries, about 500 MB of it (peak RSS 1.76 GB). A young collection only looks
    at the objects made since the one before (the survivors move to an older generation), so
    the load stays linear and memory stays flat.
    """

    def __init__(self) -> None:
        self._pending = 0

    def add(self, entries: int) -> None:
        self._pending += entries
        if self._pending >= YOUNG_COLLECTION_EVERY:
            self._pending = 0
            gc.collect(0)


@_collector_paused()
def read_schedule_files(
    paths: Sequence[Path] = DEFAULT_PATHS,
    *,
    timezone_name: str = DEFAULT_TIMEZONE,
    now: datetime | None = None,
    entry_checks: EntryCheck | None = None,
    overlays: Sequence[Path] = (),
) -> LoadResult:
    """Read and check every schedule file under ``paths``, collecting all problems.

    ``overlays`` (files or folders) patch the entries, in order (see overlays.py).
    ``entry_checks`` runs on the entries that are otherwise valid; its problems are sorted
    in with the rest.
    """
    check_timezone(timezone_name)
    now = now or datetime.now(timezone.utc)
    files, problems = discover_schedule_files(list(paths))
    patching = read_overlays(overlays)
    problems.extend(patching.problems)
    unreadable = False
    if not files and not problems:
        shown = ", ".join(str(path) for path in paths)
        problems.append(
            Problem(
                SourceLocation(shown),
                "no schedule files (*.yaml, *.yml) found; an empty set of schedules must be "
                "declared explicitly with a file holding 'schedules: {}'",
                "no-files",
            )
        )
    entries: list[DesiredEntry] = []
    stand_ins: list[DesiredEntry] = []  # see FileEntries.stand_ins
    names: list[tuple[str, SourceLocation]] = []
    garbage = _YoungGarbage()
    readings = read_files(files, patching.patches, locate_values=entry_checks is not None)
    for file_problems, found in readings:
        problems.extend(file_problems)
        if found is None:
            unreadable = True
            garbage.add(1)
            continue
        problems.extend(found.problems)
        entries.extend(found.entries)
        stand_ins.extend(found.stand_ins)
        names.extend(found.names)
        unreadable = unreadable or not found.complete
        garbage.add(len(found.names))
    problems.extend(duplicate_name_problems(names))
    if not unreadable:  # else a name a patch is for may be in the file that failed
        problems.extend(unknown_patch_problems(patching, {name for name, _ in names}))
    for entry in [*entries, *stand_ins]:
        problems.extend(schedule_problems(entry, now, timezone_name))
        garbage.add(1)
    if entry_checks is not None:
        problems.extend(entry_checks(entries))
    read = [*files, *patching.files]
    order = {schedule_file.display_path: index for index, schedule_file in enumerate(read)}
    unique = sorted(
        set(problems),
        key=lambda problem: (
            order.get(problem.location.path, -1),
            problem.location.line,
            problem.location.column,
            problem.message,
        ),
    )
    displayed = [schedule_file.display_path for schedule_file in files]
    fingerprint = files_fingerprint(
        [schedule_file.path for schedule_file in files],
        [schedule_file.inner_path for schedule_file in files],
        timezone_name,
        [(overlay.path, overlay.inner_path) for overlay in patching.files],
    )
    shown_overlays = [overlay.display_path for overlay in patching.files]
    return LoadResult(entries, displayed, unique, fingerprint, overlays=shown_overlays)


def load_desired_state(
    paths: Sequence[Path] = DEFAULT_PATHS,
    *,
    timezone_name: str = DEFAULT_TIMEZONE,
    now: datetime | None = None,
    entry_checks: EntryCheck | None = None,
    overlays: Sequence[Path] = (),
) -> LoadResult:
    """The desired entries, or InvalidScheduleFiles naming every problem.

    Problems that only time brought (see checks.TIME_DEPENDENT_CODES) become warnings here:
    deployments go on, and validate keeps reporting them as errors.
    """
    result = read_schedule_files(
        paths, timezone_name=timezone_name, now=now, entry_checks=entry_checks, overlays=overlays
    )
    errors = [p for p in result.problems if p.code not in TIME_DEPENDENT_CODES]
    if errors:
        raise InvalidScheduleFiles(errors)
    return replace(result, problems=[], warnings=list(result.problems))
