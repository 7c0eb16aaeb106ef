"""Fingerprints that tell whether a saved plan still describes the world.

The live fingerprint covers what a plan's decisions rest on: each entry's stored definition,
ownership and static status. Runtime fields (meta, score) are left out on purpose: beat
rewrites them after every run, and apply recomputes scores from them at write time.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from reconciler.core.secrets import Sensitive

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from reconciler.core.live import LiveState


def live_fingerprint(live: LiveState) -> str:
    """Values the reconciler wrote from the environment are masked first: the fingerprint is
    printed and saved, and a hash of otherwise known bytes would let anyone test guesses of
    a secret. A change to such a value is still caught: a saved plan carries slow, keyed
    digests of the definitions it changes, and any other entry would plan differently."""
    rows = [
        [
            name,
            Sensitive.of_live(entry).definition(entry.definition_text),
            entry.managed,
            entry.static,
        ]
        for name, entry in sorted(live.entries.items())
    ]
    return _digest({"entries": rows, "managed": sorted(live.managed_names)})


def files_fingerprint(
    files: Iterable[Path],
    names: Iterable[str],
    timezone: str,
    overlays: Iterable[tuple[Path, str]] = (),
) -> str:
    """Of the files' names and bytes, in the order read, and the timezone; and of the
    overlay files, in the order they apply, when there are any.

    A name is the file's path inside the argument it was found under, never a path that
    depends on the working directory: a saved plan re-reads the arguments it was made with,
    and the same files must give the same fingerprint from any folder.
    """
    rows = [[name, _file_digest(path)] for path, name in zip(files, names, strict=True)]
    document: dict[str, object] = {"files": rows, "timezone": timezone}
    overlay_rows = [[name, _file_digest(path)] for path, name in overlays]
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
