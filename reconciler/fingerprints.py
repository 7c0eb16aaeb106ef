"""Fingerprints that tell whether a saved plan still describes the world.

The live fingerprint covers what a plan's decisions rest on: each entry's stored definition,
ownership and static status. Runtime fields (meta, score) are left out on purpose: beat
rewrites them after every run, and apply recomputes scores from them at write time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from reconciler.live import LiveState


def live_fingerprint(live: LiveState, key: str = "") -> str:
    """With a ``key`` (a plan's random digest key), an HMAC: definitions may hold values
    from the environment, and a plain hash of known bytes would let anyone holding a plan
    test guesses of a secret without even the effort of finding the key."""
    rows = [
        [name, entry.definition_text, entry.managed, entry.static]
        for name, entry in sorted(live.entries.items())
    ]
    document = {"entries": rows, "managed": sorted(live.managed_names)}
    if not key:
        return _digest(document)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return "hmac-sha256:" + hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def files_fingerprint(
    files: Iterable[Path],
    display_paths: Iterable[str],
    timezone: str,
    overlays: Iterable[tuple[Path, str]] = (),
) -> str:
    """Of the files' names and bytes and the timezone; and of the overlay files, in the
    order they apply, when there are any (so plans made without overlays keep theirs)."""
    rows = [[shown, _file_digest(path)] for path, shown in zip(files, display_paths, strict=True)]
    document: dict[str, object] = {"files": rows, "timezone": timezone}
    overlay_rows = [[shown, _file_digest(path)] for path, shown in overlays]
    if overlay_rows:
        document["overlays"] = overlay_rows
    return _digest(document)


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"  # the loader has reported why; the fingerprint must not crash


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
