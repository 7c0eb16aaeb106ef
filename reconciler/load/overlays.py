"""Overlays: per-target patches over the entries the schedule files declare.

An overlay file holds ``version: 1`` and ``patches``, a mapping of schedule name to a JSON
Merge Patch (RFC 7396) applied to that entry after its file's defaults: mappings merge key
by key, other values replace, null removes a key. A patch naming one of cron, every or
rrule replaces the entry's kind of schedule (a patch of the same kind merges into it), and
``name: null`` removes the entry from the target. Overlays apply in the order given; the
merged entry is then validated like any other, and a problem with a value an overlay wrote
points at the overlay.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.core.problems import Problem, SourceLocation
from reconciler.load.discovery import discover_schedule_files
from reconciler.load.file_format import FORMAT_VERSION, SCHEDULE_KINDS, unknown_keys
from reconciler.load.yaml_source import read_yaml_file

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Sequence
    from pathlib import Path

    from reconciler.load.discovery import ScheduleFile
    from reconciler.load.yaml_source import YamlDocument, YamlPath

OVERLAY_KEYS = ("version", "patches")
_HINTS = {
    "schedules": "an overlay changes entries the schedule files declare: write them under "
    "'patches'",
    "defaults": "an overlay has no defaults: patch each entry under 'patches'",
}


@dataclass(frozen=True)
class Patch:
    """One overlay's change to one entry."""

    name: str
    changes: dict[Any, Any] | None  # None: remove the entry from the target
    document: YamlDocument
    location: SourceLocation  # of the name, in the overlay
    # False when the overlay does not say for certain what the patch holds (a key written
    # twice, say): its entry is then not checked, the overlay's problem says why.
    clear: bool = True

    def written_at(self, path: YamlPath, at_key: bool = False) -> SourceLocation | None:
        """Where this patch wrote the entry's value at ``path``; None if it did not."""
        value: Any = self.changes
        if value is None:
            return None
        for part in path:
            if not isinstance(value, dict):
                break  # the patch replaced this value whole
            if part not in value:
                return None
            value = value[part]
        return self.document.location(("patches", self.name, *path), at_key=at_key)


@dataclass(frozen=True)
class Overlays:
    """Every patch of the overlay files, by schedule name in the order they apply."""

    patches: dict[str, list[Patch]] = field(default_factory=dict)
    files: list[ScheduleFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_overlays(paths: Sequence[Path]) -> Overlays:
    overlays = Overlays()
    for given in paths:
        files, problems = discover_schedule_files([given])
        overlays.problems.extend(problems)
        if not files and not problems:
            overlays.problems.append(
                Problem(
                    SourceLocation(str(given)), "no overlay files (*.yaml, *.yml) found", "no-files"
                )
            )
        for overlay_file in files:
            overlays.files.append(overlay_file)
            document, file_problems = read_yaml_file(overlay_file.path, overlay_file.display_path)
            overlays.problems.extend(file_problems)
            if document is not None:
                for patch in _patches(document, overlays.problems):
                    overlays.patches.setdefault(patch.name, []).append(patch)
    return overlays


def apply_patches(
    entry: dict[Any, Any], patches: Sequence[Patch], problems: list[Problem]
) -> dict[Any, Any] | None:
    """``entry`` with ``patches`` applied in order; None when one removes it."""
    merged: dict[Any, Any] = entry
    removed_by: Patch | None = None
    for patch in patches:
        if removed_by is not None:
            problems.append(
                Problem(
                    patch.location,
                    f"overlay patches '{patch.name}', which {removed_by.location} removed from "
                    "this target",
                    "overlay",
                )
            )
        elif patch.changes is None:
            removed_by = patch
        else:
            replaced = {kind for kind in SCHEDULE_KINDS if patch.changes.get(kind) is not None}
            if replaced:
                # One logical field: the patch's kind of schedule replaces the entry's.
                merged = {
                    key: value
                    for key, value in merged.items()
                    if key not in SCHEDULE_KINDS or key in replaced or key in patch.changes
                }
            merged = _merge(merged, patch.changes, patch, (), problems)
    return None if removed_by is not None else merged


def unknown_patch_problems(overlays: Overlays, declared: Collection[str]) -> Iterator[Problem]:
    """A patch must name an entry some schedule file declares: a typo is not a no-op."""
    names = sorted(declared)
    for name, patches in overlays.patches.items():
        if name in declared:
            continue
        close = difflib.get_close_matches(name, names, n=1)
        suggestion = f"; did you mean '{close[0]}'?" if close else ""
        for patch in patches:
            yield Problem(
                patch.location,
                f"overlay patches '{name}', which no schedule file declares{suggestion}",
                "unknown-patch",
            )


def _merge(target: Any, changes: Any, patch: Patch, path: YamlPath, problems: list[Problem]) -> Any:
    """RFC 7396 merge; removing a key the entry does not have is reported (a typo)."""
    if not isinstance(changes, dict):
        return changes
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in changes.items():
        if (
            not path
            and key == "cron"
            and isinstance(value, dict)
            and isinstance(merged.get(key), str)
        ):
            # Merge-patching a mapping over the string would build a crontab from the patch
            # alone: 'hour: 3' over "0 5 * * *" would fire every minute of 03:00.
            problems.append(
                Problem(
                    patch.document.location(("patches", patch.name, key)),
                    f"overlay patches 'cron' of schedule '{patch.name}' with a mapping, but "
                    f"the schedule file writes it as the string {merged[key]!r}: a mapping "
                    "would replace every field it does not name with '*'. Write the whole cron "
                    "string in the overlay, or the mapping form in the schedule file",
                    "overlay",
                )
            )
        if value is not None:
            merged[key] = _merge(merged.get(key), value, patch, (*path, key), problems)
        elif key in merged:
            del merged[key]
        else:
            close = difflib.get_close_matches(str(key), [str(k) for k in merged], n=1)
            suggestion = f"; did you mean '{close[0]}'?" if close else ""
            label = ".".join(str(part) for part in (*path, key))
            problems.append(
                Problem(
                    patch.document.location(("patches", patch.name, *path, key), at_key=True),
                    f"overlay removes '{label}', which schedule '{patch.name}' does not "
                    f"have{suggestion}",
                    "overlay",
                )
            )
    return merged


def _patches(document: YamlDocument, problems: list[Problem]) -> Iterator[Patch]:
    data = document.data
    if () in document.unclear:
        return  # its reading problem says why
    if not isinstance(data, dict):
        got = "nothing" if data is None else f"a {type(data).__name__}"
        problems.append(
            Problem(
                document.location(()),
                f"overlay holds {got}; expected a mapping with 'version: 1' and 'patches'",
                "not-a-mapping",
            )
        )
        return
    problems.extend(
        unknown_keys(
            document, (), data, OVERLAY_KEYS, "top-level key", hints=_HINTS, place=" in an overlay"
        )
    )
    version = data.get("version")
    if (version != FORMAT_VERSION or isinstance(version, bool)) and not document.in_doubt(
        ("version",)
    ):
        # Reported, and the patches read as version 1 all the same, so that one run shows
        # their problems too.
        problems.append(
            Problem(
                document.location(("version",) if "version" in data else ()),
                f"overlay needs 'version: {FORMAT_VERSION}'"
                + ("" if "version" not in data else f", got {version!r}"),
                "version",
            )
        )
    if document.in_doubt(("patches",)):
        return
    patches = data.get("patches")
    if not isinstance(patches, dict):
        problems.append(
            Problem(
                document.location(("patches",) if "patches" in data else ()),
                "overlay needs 'patches': a mapping of schedule name to the keys to change "
                "(null removes the entry); 'patches: {}' changes nothing",
                "missing" if "patches" not in data else "type",
            )
        )
        return
    for name, changes in patches.items():
        location = document.location(("patches", name), at_key=True)
        if not isinstance(name, str):
            problems.append(Problem(location, f"patch name {name!r} is not a string", "name"))
        elif changes is not None and not isinstance(changes, dict):
            problems.append(
                Problem(
                    document.location(("patches", name)),
                    f"patch for '{name}' must be a mapping of the keys to change, or null to "
                    "remove the entry from this target",
                    "type",
                )
            )
        else:
            clear = not document.in_doubt(("patches", name), within=True)
            yield Patch(name, changes, document, location, clear)
