"""``reconciler validate``: check schedule files offline, every problem at once."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from reconciler.load.desired_state import LoadResult, read_schedule_files
from reconciler.render.validation import validation_github, validation_json, validation_text

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from reconciler.cli.commands.requests import Console, ValidateRequest
    from reconciler.core.model import DesiredEntry
    from reconciler.core.problems import Problem

RENDERERS: dict[str, Callable[[LoadResult], str]] = {
    "text": validation_text,
    "json": validation_json,
    "github": validation_github,
}


def validate(request: ValidateRequest, console: Console) -> int:
    configurations = request.configurations
    results = [
        read_schedule_files(
            desired.paths,
            timezone_name=desired.timezone_name,
            entry_checks=desired.entry_checks,
            overlays=desired.overlays,
        )
        for desired in configurations
    ]
    result = combined(results, [desired.target_name for desired in configurations])
    console.echo(RENDERERS[request.output_format](result))
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
