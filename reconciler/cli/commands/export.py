"""``reconciler export``: live RedBeat entries as a schedule file, to move them into Git.

Read-only (SCAN and pipelined reads; never KEYS, never a write). Entries a schedule file
cannot express are listed on stderr with the reason, and the exit code is then 1; the rest
is exported all the same.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.beat.celery_objects import check_timezone
from reconciler.core.errors import UsageError
from reconciler.services.export import ExportSource, export_schedule_file, printable
from reconciler.store.reader import read_live_state
from reconciler.store.scanner import scan_definitions
from reconciler.store.session import open_store

if TYPE_CHECKING:
    from reconciler.cli.commands.requests import Console, ExportRequest

EXIT_LEFT_OUT = 1
FOLDER_FILE_NAME = "exported.yaml"


def export(request: ExportRequest, console: Console) -> int:
    notice = console.notice
    check_timezone(request.timezone_name)
    destination = output_file(request.output)
    with open_store(request.store, notice=notice) as store:
        names = scan_definitions(store.client, store.keys)
        live = read_live_state(store.client, store.keys, names)
        source = ExportSource(store.target, store.keys.prefix, request.unmanaged_only)
    result = export_schedule_file(
        sorted(live.entries.values(), key=lambda entry: entry.name),
        source,
        now=datetime.now(timezone.utc),
        timezone_name=request.timezone_name,
    )
    if destination is None:
        console.echo(result.text)
    else:
        write_file(destination, result.text)
    for skipped in result.skipped:
        notice(f"skipped: {printable(skipped.name)}: {printable(skipped.reason)}")
    for left_out in result.left_out:
        notice(f"not exported: {printable(left_out.name)}: {printable(left_out.reason)}")
    notice(result.summary(source) + (f" Wrote {destination}." if destination else ""))
    return EXIT_LEFT_OUT if result.left_out else 0


def output_file(output: str | None) -> Path | None:
    """The file to write: None for stdout ('-' or no --output), FOLDER/exported.yaml for an
    existing folder or a path written with a trailing slash, else the path itself."""
    if output is None or output == "-":
        return None
    path = Path(output)
    if path.is_dir() or output.endswith(("/", os.sep)):
        return path / FOLDER_FILE_NAME
    return path


def write_file(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all: a temporary file beside it, then a rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.chmod(temporary, _file_mode(path))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _file_mode(path: Path) -> int:
    """The mode the file keeps, or the one a plain new file would get (mkstemp's is 0600)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask
