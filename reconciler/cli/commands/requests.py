"""What a command is asked to do, as values: the CLI builds them, the commands read them.

Every command shares ``Console`` (where text goes); those that read the files share
``Desired`` (which files, for which target, checked how); each adds its own options. One
object per command, instead of the same dozen keyword arguments repeated in every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from reconciler.core.beat_clock import BeatSettings
from reconciler.core.defaults import (
    DEFAULT_OVERDUE_GRACE,
    DEFAULT_PATHS,
    DEFAULT_REPLICA_TIMEOUT_SECONDS,
    DEFAULT_TIMEZONE,
)
from reconciler.store.session import StoreSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from reconciler.core.plan import Plan
    from reconciler.load.desired_state import EntryCheck, LoadResult
    from reconciler.store.session import Store


@dataclass(frozen=True)
class Desired:
    """The desired side: schedule files (with a target's overlays), read in beat's zone."""

    paths: tuple[Path, ...] = DEFAULT_PATHS
    timezone_name: str = DEFAULT_TIMEZONE
    overlays: tuple[Path, ...] = ()
    target_name: str | None = None
    entry_checks: EntryCheck | None = None  # e.g. against the team's Celery app (--app)

    def load(self, console: Console) -> LoadResult:
        """Read, validate and resolve the files; problems time alone brought are notices.
        The values resolved from the environment are revealed to the console's scrubber."""
        from reconciler.api import load_schedules  # the API loads Redis: validate does not

        loaded = load_schedules(
            self.paths,
            timezone_name=self.timezone_name,
            entry_checks=self.entry_checks,
            overlays=self.overlays,
        )
        console.reveal(value for entry in loaded.entries for value in entry.secret_values)
        for warning in loaded.warnings:
            console.notice(f"warning: {warning}")
        return loaded

    def plan(
        self,
        store: Store,
        loaded: LoadResult,
        *,
        prune: bool,
        adopt: bool,
        beat: BeatSettings | None,
        again: Plan | None = None,
        fingerprint: bool = True,
    ) -> Plan:
        """The plan of ``loaded`` against ``store``, labelled with these files and target
        (``again``, ``fingerprint``: see make_plan)."""
        from reconciler.api import make_plan

        return make_plan(
            store,
            loaded,
            prune=prune,
            adopt=adopt,
            timezone_name=self.timezone_name,
            paths=self.paths,
            overlays=self.overlays,
            target_name=self.target_name,
            beat=beat,
            again=again,
            fingerprint=fingerprint,
        )


@dataclass(frozen=True)
class Console:
    """Where a command's output goes: reports on ``echo``, messages on ``notice``."""

    echo: Callable[[str], None]
    notice: Callable[[str], None]
    colour: bool = False
    # Values resolved from the environment: hidden from every message printed after.
    reveal: Callable[[Iterable[str]], None] = lambda _values: None


@dataclass(frozen=True)
class PlanRequest:
    desired: Desired
    store: StoreSettings = field(default_factory=StoreSettings)
    beat: BeatSettings | None = None
    output_format: str = "text"
    out: Path | None = None
    detailed_exitcode: bool = False
    prune: bool = False
    adopt: bool = False


@dataclass(frozen=True)
class ApplyRequest:
    desired: Desired
    store: StoreSettings = field(default_factory=StoreSettings)
    beat: BeatSettings | None = None
    plan_file: Path | None = None  # apply exactly this saved plan
    prune: bool = False
    adopt: bool = False
    max_deletions: int | None = None
    lock_timeout: float = 30.0
    settle_seconds: float = 0.0
    min_replicas: int | None = None  # None: as many as acknowledge when the apply starts
    replica_timeout: float = DEFAULT_REPLICA_TIMEOUT_SECONDS
    actor: str | None = None  # who the history records (see apply.resolve_actor)
    # Only given on an interactive terminal; elsewhere apply never asks.
    confirm: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class DriftRequest:
    desired: Desired = field(default_factory=Desired)
    store: StoreSettings = field(default_factory=StoreSettings)
    beat: BeatSettings = field(default_factory=BeatSettings)
    output_format: str = "text"
    overdue_grace: timedelta = DEFAULT_OVERDUE_GRACE
    fix: bool = False
    actor: str | None = None  # who the history records a fix by (see apply.resolve_actor)
    webhook: str | None = None
    remind_every: timedelta | None = timedelta(hours=1)


@dataclass(frozen=True)
class ValidateRequest:
    # One per configuration checked: each target's overlays over the same files, or none.
    configurations: tuple[Desired, ...] = (Desired(),)
    output_format: str = "text"


@dataclass(frozen=True)
class HistoryRequest:
    store: StoreSettings = field(default_factory=StoreSettings)
    limit: int = 20
    output_format: str = "text"


@dataclass(frozen=True)
class ExportRequest:
    store: StoreSettings = field(default_factory=StoreSettings)
    timezone_name: str = DEFAULT_TIMEZONE
    unmanaged_only: bool = False
    output: str | None = None  # a file, a folder, or None and '-' for stdout
