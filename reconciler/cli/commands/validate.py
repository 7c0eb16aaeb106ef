"""``reconciler validate``: check schedule files offline, every problem at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from reconciler.beat.celery_objects import DEFAULT_TIMEZONE
from reconciler.load.desired_state import LoadResult, read_schedule_files
from reconciler.render.validation import validation_github, validation_json, validation_text

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from reconciler.core.model import DesiredEntry
    from reconciler.core.problems import Problem
    from reconciler.load.desired_state import EntryCheck

RENDERERS: dict[str, Callable[[LoadResult], str]] = {
    "text": validation_text,
    "json": validation_json,
    "github": validation_github,
}


@dataclass(frozen=True)
class ValidationRun:
    """One configuration to check: files, overlays and timezone, of a target or of none."""

    paths: Sequence[Path]
    timezone_name: str = DEFAULT_TIMEZONE
    entry_checks: EntryCheck | None = None
    overlays: Sequence[Path] = ()
    target: str | None = None


def validate(
    runs: Sequence[ValidationRun], *, output_format: str, echo: Callable[[str], None]
) -> int:
    results = [
        read_schedule_files(
            run.paths,
            timezone_name=run.timezone_name,
            entry_checks=run.entry_checks,
            overlays=run.overlays,
        )
        for run in runs
    ]
    result = combined(results, [run.target for run in runs])
    echo(RENDERERS[output_format](result))
    return 0 if result.valid else 1


def combined(results: Sequence[LoadResult], targets: Sequence[str | None]) -> LoadResult:
    """One report for several configurations (each target's overlays over the same files):
    every problem once, and one not found in all of them says where it was found."""
    if len(results) == 1:
        return replace(results[0], targets=[name for name in targets if name])
    found: dict[Problem, list[str]] = {}
    for result, target in zip(results, targets, strict=True):
        for problem in result.problems:
            found.setdefault(problem, []).append(
                f"target {target}" if target else "without a target"
            )
    problems = [
        problem
        if len(where) == len(results)
        else replace(problem, message=f"{problem.message} ({', '.join(where)})")
        for problem, where in found.items()
    ]
    files = list(dict.fromkeys(path for result in results for path in result.files))
    overlays = list(dict.fromkeys(path for result in results for path in result.overlays))
    order = {path: index for index, path in enumerate([*files, *overlays])}
    problems.sort(
        key=lambda problem: (
            order.get(problem.location.path, -1),
            problem.location.line,
            problem.location.column,
            problem.message,
        )
    )
    entries: dict[str, DesiredEntry] = {}
    for result in results:
        for entry in result.entries:
            entries.setdefault(entry.name, entry)
    return LoadResult(
        list(entries.values()),
        files,
        problems,
        overlays=overlays,
        targets=[name for name in targets if name],
    )
