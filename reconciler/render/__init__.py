"""Renderers: pure functions from results to text; only the CLI prints."""

from __future__ import annotations

import json


def shown_name(name: str) -> str:
    """A name (possibly read from Redis) as one safe line: control characters escaped."""
    return json.dumps(name, ensure_ascii=False)[1:-1]
