"""How ``reconciler validate`` reports: text for people, JSON for machines, GitHub annotations."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.load.desired_state import LoadResult

VALIDATION_FORMAT_VERSION = 1


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_line(result: LoadResult) -> str:
    label = "targets" if len(result.targets) > 1 else "target"
    scope = f" ({label} {', '.join(result.targets)})" if result.targets else ""
    if result.valid:
        verb = "is" if len(result.entries) == 1 else "are"
        files = _where(len(result.files), len(result.overlays))
        return f"{_plural(len(result.entries), 'schedule')} in {files} {verb} valid{scope}"
    return _problems_summary(result) + scope


def _problems_summary(result: LoadResult) -> str:
    """Counts only the files and overlays that hold a problem: a problem about the paths
    given (missing, or holding no file) is in no file, and is counted on its own."""
    files, overlays = set(result.files), set(result.overlays)
    paths = [problem.location.path for problem in result.problems]
    in_files = [path for path in paths if path in files or path in overlays]
    count = _plural(len(paths), "problem")
    if not in_files:
        return count
    where = _where(len(files.intersection(in_files)), len(overlays.intersection(in_files)))
    if len(in_files) == len(paths):
        return f"{count} in {where}"
    return f"{count}, {len(in_files)} of them in {where}"


def _where(files: int, overlays: int) -> str:
    if not overlays:
        return _plural(files, "file")
    if not files:
        return _plural(overlays, "overlay")
    return f"{_plural(files, 'file')} and {_plural(overlays, 'overlay')}"


def validation_text(result: LoadResult) -> str:
    return "\n".join([*map(str, result.problems), summary_line(result)]) + "\n"


def validation_json(result: LoadResult) -> str:
    document = {
        "format_version": VALIDATION_FORMAT_VERSION,
        "valid": result.valid,
        "files": result.files,
        "schedule_count": len(result.entries),
        "problems": [
            {**asdict(problem.location), "code": problem.code, "message": problem.message}
            for problem in result.problems
        ],
        "summary": summary_line(result),
    }
    if result.overlays or result.targets:
        document["overlays"] = result.overlays
        document["targets"] = result.targets
    return json.dumps(document, indent=2) + "\n"


def validation_github(result: LoadResult) -> str:
    """GitHub Actions workflow commands: each problem becomes an annotation on its line."""
    lines = [
        f"::error file={_escape_property(problem.location.path)},line={problem.location.line},"
        f"col={problem.location.column},title=reconciler validate::{_escape_data(problem.message)}"
        for problem in result.problems
    ]
    lines.append(summary_line(result))
    return "\n".join(lines) + "\n"


def _escape_data(text: str) -> str:
    # The escaping GitHub's runner applies to workflow command data.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
