"""``reconciler validate``: check schedule files offline, every problem at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.load.desired_state import read_schedule_files
from reconciler.render.validation import validation_github, validation_json, validation_text

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from reconciler.load.desired_state import EntryCheck, LoadResult

RENDERERS: dict[str, Callable[[LoadResult], str]] = {
    "text": validation_text,
    "json": validation_json,
    "github": validation_github,
}


def validate(
    paths: Sequence[Path],
    *,
    output_format: str,
    timezone_name: str,
    echo: Callable[[str], None],
    entry_checks: EntryCheck | None = None,
) -> int:
    result = read_schedule_files(paths, timezone_name=timezone_name, entry_checks=entry_checks)
    echo(RENDERERS[output_format](result))
    return 0 if result.valid else 1
