"""Default settings, in a module that imports nothing heavy: the command line declares its
options (and prints --help) from these without loading Celery, Redis or the YAML stack."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

# Beat's Celery timezone, in which crontabs are evaluated (Celery's own default).
DEFAULT_TIMEZONE = "UTC"
# The schedule files read when no path is given.
DEFAULT_PATHS = (Path("schedules"),)
# Where the embedded local Redis keeps its data.
DEFAULT_FOLDER = Path(".reconciler")
# Pruning more than this many entries in one apply needs an explicit --max-deletions: a
# renamed folder or a bad merge should not silently take a fleet of schedules with it.
DEFAULT_MAX_DELETIONS = 10
# Seconds to wait for another apply to finish.
DEFAULT_LOCK_TIMEOUT_SECONDS = 30.0
# How long past a due run an entry may be before it counts as overdue.
DEFAULT_OVERDUE_GRACE = timedelta(minutes=5)
DEFAULT_REPLICA_TIMEOUT_SECONDS = 5.0  # how long each batch waits for its replicas
