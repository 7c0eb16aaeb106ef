"""Finding schedule files: every *.yaml / *.yml under the given paths, in a stable order."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.problems import Problem, SourceLocation

SCHEDULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ScheduleFile:
    path: Path
    display_path: str
    # Its path inside the argument it was found under (a file given itself: its name). Saved
    # plans fingerprint files by it: unlike the displayed path it does not depend on the
    # working directory, so a plan of /abs/schedules applies from anywhere.
    inner_path: str = ""


def discover_schedule_files(paths: list[Path]) -> tuple[list[ScheduleFile], list[Problem]]:
    """Files named on the command line are taken as they are; folders are walked.

    Hidden files and folders (a leading '.') are skipped while walking, so editor backups
    and a .git folder never load. The order is sorted by path within each given argument,
    so every run, on every machine, reads the files in the same order.
    """
    files: list[ScheduleFile] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for given in paths:
        if given.is_file():
            found = [given]
        elif given.is_dir():
            found = sorted(_walk(given), key=lambda path: path.as_posix())
        else:
            problems.append(
                Problem(SourceLocation(str(given)), "no such file or folder", "missing-path")
            )
            continue
        for path in found:
            resolved = path.resolve()
            if resolved not in seen:
                seen.add(resolved)
                inner = path.name if path == given else path.relative_to(given).as_posix()
                # As errors show it: relative to the working directory when inside it.
                cwd = Path.cwd().resolve()
                shown = resolved.relative_to(cwd) if resolved.is_relative_to(cwd) else path
                files.append(ScheduleFile(path, str(shown), inner))
    return files, problems


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        found.extend(
            Path(root, name)
            for name in names
            if name.endswith(SCHEDULE_SUFFIXES) and not name.startswith(".")
        )
    return found
