"""What Redis holds now for the entries in question: plain values read by the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.core.ownership import is_marker

if TYPE_CHECKING:
    from datetime import datetime


@dataclass(frozen=True, slots=True)
class LiveMeta:
    """RedBeat's run history of an entry; beat rewrites it after every run."""

    last_run_at: datetime | None
    total_run_count: int = 0


@dataclass(frozen=True, slots=True)
class LiveEntry:
    """The raw RedBeat state of one name. Absent parts are None."""

    name: str
    definition_text: str | None = None
    meta_text: str | None = None
    marker: str | None = None
    score: float | None = None  # None: no member in the schedule sorted set
    indexed: bool = False  # in the reconciler's managed-names set
    static: bool = False  # named in beat's :statics set
    ttl_ms: int = -1  # PTTL of the entry key: -1 none, -2 no key

    @property
    def exists(self) -> bool:
        return self.definition_text is not None or self.meta_text is not None

    @property
    def history_only(self) -> bool:
        """Run history (meta) and no definition: what a beat tick racing a delete leaves."""
        return self.definition_text is None and self.meta_text is not None

    @property
    def managed(self) -> bool:
        """Owned by the reconciler: its marker is on the hash itself (see is_marker)."""
        return is_marker(self.marker)

    @property
    def index_only(self) -> bool:
        """A definition under a name the managed index lists, without the marker: someone
        else's entry (re-created by RedBeat's save(), by hand...), never changed or deleted."""
        return self.indexed and self.definition_text is not None and not self.managed


@dataclass(frozen=True)
class LiveState:
    """Live entries by name, for every desired or managed name."""

    entries: dict[str, LiveEntry] = field(default_factory=dict)
    managed_names: frozenset[str] = frozenset()
    static_names: frozenset[str] = frozenset()
    deleted_names: frozenset[str] = frozenset()  # the reconciler's recent deletions
    round_trips: int = 0
    # Members of the managed index no entry can have (':schedule', empty...), with why:
    # skipped, so nothing is read, written or deleted under them.
    odd_index_names: tuple[tuple[str, str], ...] = ()
    # The id of the newest record of the history stream, read before the entries: every
    # batch any reconciler command writes adds one, so while it stays the same, no
    # reconciler command wrote anything (see services.planning.make_plan's ``again``).
    history_mark: str | None = None

    def get(self, name: str) -> LiveEntry:
        return self.entries.get(name) or LiveEntry(
            name, indexed=name in self.managed_names, static=name in self.static_names
        )
