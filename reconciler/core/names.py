"""Which entry names are safe to store under RedBeat's key prefix."""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 200
# RedBeat's own keys are prefix + ':schedule', ':statics' and ':lock', and the reconciler
# keeps its bookkeeping under prefix + ':reconciler:'. No entry name may start with ':',
# so no entry key can ever collide with any of them.
RESERVED_NAME_START = ":"
# Cc: control characters (newline, tab, ESC...); Cf: invisible format characters such as
# bidi overrides and zero-width joiners, which make two names look identical; Zl/Zp: line
# and paragraph separators; Cs: lone surrogates, which cannot be encoded.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Entries Celery beat installs itself on every start (celery.beat.Scheduler.
# install_default_entries): 'celery.backend_cleanup', daily at 04:00, when results expire and
# the result backend cannot expire them by itself. RedBeat stores it like any other entry
# (not in :statics), and beat rewrites its definition on every start: it is beat's, never
# one to export or adopt.
BEAT_BUILTIN_NAMES = frozenset({"celery.backend_cleanup"})
BEAT_BUILTIN = "Celery beat's own built-in entry (beat rewrites it on every start)"


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be an entry name, or None when it can."""
    if not isinstance(name, str):
        return f'schedule name {name!r} is not a string; quote it ("{name}")'
    if not name:
        return "schedule name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"schedule name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
    for position, char in enumerate(name, start=1):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return (
                f"schedule name {name!r} contains the invisible or control character "
                f"U+{ord(char):04X} at position {position}"
            )
    if name != name.strip():
        return f"schedule name {name!r} starts or ends with white space"
    if name.startswith(RESERVED_NAME_START):
        return (
            f"schedule name {name!r} starts with ':', reserved for RedBeat's own keys "
            "(:schedule, :statics, :lock) and the reconciler's bookkeeping (:reconciler:...)"
        )
    return None
