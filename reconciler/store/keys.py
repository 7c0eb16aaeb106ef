"""Where RedBeat and the reconciler keep things in Redis, for one key prefix.

RedBeat's layout (see CONTEXT.md): each entry is a hash at ``prefix + name``; due times live
in the sorted set ``prefix + ':schedule'``; beat's static entries are named in
``prefix + ':statics'``; beat's lock is ``prefix + ':lock'``. The reconciler keeps its own
bookkeeping under ``prefix + ':reconciler:'``, which no entry name can reach (names may not
start with ':'), and which shares the prefix's Redis Cluster hash tag, if any, so one
transaction can cover entries and bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.core.ownership import MARKER_FIELD, MARKER_VALUE

DEFAULT_KEY_PREFIX = "redbeat:"

__all__ = ["DEFAULT_KEY_PREFIX", "MARKER_FIELD", "MARKER_VALUE", "KeySpace"]


@dataclass(frozen=True)
class KeySpace:
    prefix: str = DEFAULT_KEY_PREFIX

    def entry(self, name: str) -> str:
        return self.prefix + name

    def name_of(self, key: str) -> str:
        return key[len(self.prefix) :]

    @property
    def schedule(self) -> str:
        return self.prefix + ":schedule"

    @property
    def statics(self) -> str:
        return self.prefix + ":statics"

    @property
    def beat_lock(self) -> str:
        """Beat's own lock: only ever read (its PTTL tells whether a beat is alive)."""
        return self.prefix + ":lock"

    def custom_beat_lock(self, key: str) -> str:
        """A ``redbeat_lock_key`` setting, prefixed as RedBeat itself does."""
        return key if key.startswith(self.prefix) else self.prefix + key

    @property
    def managed(self) -> str:
        """Set of the names the reconciler owns: listing them needs no SCAN."""
        return self.prefix + ":reconciler:managed"

    @property
    def tombstones(self) -> str:
        """Sorted set of names the reconciler deleted (score: when), to clean up a meta-only
        hash a racing beat tick may re-create afterwards."""
        return self.prefix + ":reconciler:deleted"

    @property
    def apply_lock(self) -> str:
        return self.prefix + ":reconciler:lock"

    @property
    def history(self) -> str:
        return self.prefix + ":reconciler:history"
