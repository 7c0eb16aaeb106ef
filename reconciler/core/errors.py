"""The one exception tree of the reconciler; the CLI catches it once and maps it to exit 1."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reconciler.core.problems import Problem


class ReconcilerError(Exception):
    """An expected failure: reported as one clear line, never as a traceback."""


class InvalidScheduleFiles(ReconcilerError):
    """The schedule files hold problems; nothing may be computed or written from them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the schedule files")


class UsageError(ReconcilerError):
    """The command line asks for something that cannot be done."""


class InvalidConfig(ReconcilerError):
    """The project's configuration (reconciler.toml or [tool.reconciler]) cannot be used;
    each problem is one line naming the file and, where it can be found, the line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        more = len(self.problems) - 1
        super().__init__(self.problems[0] + (f" (and {more} more)" if more else ""))


class StoreUnavailable(ReconcilerError):
    """Redis cannot be reached or refused a command; nothing was written."""


class ConflictingEntries(ReconcilerError):
    """Desired names collide with entries the reconciler does not own."""


class StalePlan(ReconcilerError):
    """Live state or files changed since the plan was made; nothing was written."""


class ApplyLockBusy(ReconcilerError):
    """Another apply holds the lock and did not release it in time."""


class DeletionRefused(ReconcilerError):
    """The deletion guard refused the plan; nothing was written."""


class WrongKeyType(ReconcilerError):
    """A key where RedBeat expects an entry hash (or its sets) holds another type."""


class EmbeddedRedisError(ReconcilerError):
    """The embedded local Redis could not be started or used."""


class PartialApply(ReconcilerError):
    """A later batch of a large apply failed after earlier batches were committed."""


class OutcomeUnknown(ReconcilerError):
    """The connection dropped during a batch's commit and could not be re-made to read back
    whether it committed; the batch's history record, committed with it or not, will say."""


class NotReplicated(ReconcilerError):
    """Every change committed on the primary, but the replicas did not acknowledge them all:
    a failover could still lose some."""
