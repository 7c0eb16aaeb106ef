"""Fingerprints that tell whether a saved plan still describes the world.

The live fingerprint covers what a plan's decisions rest on: each entry's stored definition,
ownership and static status. Runtime fields (meta, score) are left out on purpose: beat
rewrites them after every run, and apply recomputes scores from them at write time.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from reconciler.live import LiveState


def live_fingerprint(live: LiveState) -> str:
    rows = [
        [name, entry.definition_text, entry.managed, entry.static]
        for name, entry in sorted(live.entries.items())
    ]
    return _digest({"entries": rows, "managed": sorted(live.managed_names)})


def files_fingerprint(files: Iterable[Path], display_paths: Iterable[str], timezone: str) -> str:
    rows = [[shown, _file_digest(path)] for path, shown in zip(files, display_paths, strict=True)]
    return _digest({"files": rows, "timezone": timezone})


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"  # the loader has reported why; the fingerprint must not crash


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
