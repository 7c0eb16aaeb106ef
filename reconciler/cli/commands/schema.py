"""``reconciler schema``: the JSON Schema of the schedule file format, for editors."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.load.file_format import json_schema

if TYPE_CHECKING:
    from collections.abc import Callable


def schema(*, echo: Callable[[str], None]) -> int:
    echo(json.dumps(json_schema(), indent=2) + "\n")
    return 0
