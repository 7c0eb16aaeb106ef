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

__all__ = ["DEFAULT_KEY_PREFIX", "MARKER_FIELD", "MARKER_VALUE", "KeySpace", "wrong_type_message"]


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

    def owns(self, key: str) -> bool:
        """Whether ``key`` is the reconciler's own bookkeeping (never RedBeat's or an entry)."""
        return key.startswith(self.prefix + ":reconciler:")

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


def wrong_type_message(keys: KeySpace, key: str, found: str) -> str:
    """What to say about ``key`` holding the wrong type: removing or renaming it is advice
    only for the reconciler's own bookkeeping. Any other key may be another application's
    data, RedBeat's schedule or beat's lock, none of which the reconciler may tell anyone
    to delete."""
    if keys.owns(key):
        return f"{key} {found}; it is the reconciler's own bookkeeping: remove or rename that key"
    return (
        f"{key} {found}, so neither beat nor the reconciler can use it; it is not the "
        "reconciler's key, so the reconciler leaves it as it is: find out what wrote it"
    )
