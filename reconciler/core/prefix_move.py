"""Moving managed entries from one key prefix to another: what to copy, what is done.

Pure: from the entries under the old prefix and under the new one (same names), decide for
each name whether to copy it, whether only the old keys are left to delete (a move that was
cut off, resumed), or whether something else already holds the name under the new prefix.
The entry is copied exactly: definition, meta (last run, run count), ownership marker and
score, so beat under the new prefix neither runs it again at once nor skips a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from reconciler.core.live import LiveEntry


@dataclass(frozen=True)
class MovedEntry:
    """What an entry carries over: every field beat and the reconciler read."""

    name: str
    definition_text: str | None
    meta_text: str | None
    marker: str | None
    score: float | None

    @classmethod
    def of(cls, entry: LiveEntry) -> MovedEntry:
        return cls(entry.name, entry.definition_text, entry.meta_text, entry.marker, entry.score)


@dataclass(frozen=True)
class InTheWay:
    name: str
    reason: str


@dataclass(frozen=True)
class MovePlan:
    old_prefix: str
    new_prefix: str
    copy: tuple[MovedEntry, ...]  # not under the new prefix yet
    finish: tuple[str, ...]  # already copied, identical: only the old keys are left
    in_the_way: tuple[InTheWay, ...]  # the new prefix holds something else under the name

    @property
    def empty(self) -> bool:
        return not (self.copy or self.finish)


def plan_move(
    old_prefix: str,
    new_prefix: str,
    old: Mapping[str, LiveEntry],
    new: Mapping[str, LiveEntry],
) -> MovePlan:
    """``old``: each managed name under the old prefix; ``new``: the same names under the
    new prefix."""
    copy: list[MovedEntry] = []
    finish: list[str] = []
    in_the_way: list[InTheWay] = []
    for name in sorted(old):
        before, after = old[name], new[name]
        if after.static:
            in_the_way.append(InTheWay(name, f"a static entry of beat under {new_prefix!r}"))
        elif not before.exists:
            # Its old hash is gone already: a move cut off while deleting the old keys.
            if after.exists and after.managed:
                finish.append(name)
            else:
                in_the_way.append(InTheWay(name, f"managed under {old_prefix!r}, but in neither"))
        elif not after.exists and after.score is None:
            copy.append(MovedEntry.of(before))
        elif MovedEntry.of(after) == MovedEntry.of(before):
            finish.append(name)
        else:
            in_the_way.append(
                InTheWay(
                    name, f"already under {new_prefix!r}, and not the same as under {old_prefix!r}"
                )
            )
    return MovePlan(old_prefix, new_prefix, tuple(copy), tuple(finish), tuple(in_the_way))
