"""The files fingerprint a saved plan carries depends on the files, never on the working
directory: the same files give the same fingerprint whichever folder reads them, and however
the folder holding them is named on the command line (absolute, or relative to here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reconciler.load.desired_state import read_schedule_files

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .cli_runner import Workspace

    Fingerprint = Callable[..., str]

SCHEDULES = "version: 1\nschedules:\n  nightly: {task: app.tasks.report, cron: '0 3 * * *'}\n"
WEEKLY = SCHEDULES.replace("nightly", "weekly")
OVERLAY = "version: 1\npatches:\n  nightly: {cron: '0 4 * * *'}\n"


@pytest.fixture
def repo(workspace: Workspace) -> Path:
    workspace.write("repo/schedules/team/a.yaml", SCHEDULES)
    workspace.write("repo/schedules/b.yml", WEEKLY)
    workspace.write("repo/overlays/production.yaml", OVERLAY)
    (workspace.root / "elsewhere").mkdir()
    return workspace.root / "repo"


@pytest.fixture
def fingerprint(monkeypatch: pytest.MonkeyPatch) -> Fingerprint:
    """The fingerprint of ``paths`` (and ``overlays``) as read from the folder ``cwd``."""

    def read(cwd: Path, paths: Sequence[str | Path], overlays: Sequence[str | Path] = ()) -> str:
        monkeypatch.chdir(cwd)
        result = read_schedule_files(
            [Path(path) for path in paths], overlays=[Path(path) for path in overlays]
        )
        assert result.problems == [], result.problems
        return result.fingerprint

    return read


def test_an_absolute_folder_gives_one_fingerprint_from_any_folder(
    repo: Path, fingerprint: Fingerprint
) -> None:
    folder = repo / "schedules"
    inside = fingerprint(repo, [folder])
    assert fingerprint(repo.parent / "elsewhere", [folder]) == inside
    assert fingerprint(folder / "team", [folder]) == inside
    assert fingerprint(repo, ["schedules"]) == inside  # the same files, named from here


def test_absolute_files_and_overlays_give_one_fingerprint_from_any_folder(
    repo: Path, fingerprint: Fingerprint
) -> None:
    files = [repo / "schedules" / "team" / "a.yaml", repo / "schedules" / "b.yml"]
    overlays = [repo / "overlays"]
    inside = fingerprint(repo, files, overlays)
    assert fingerprint(repo.parent / "elsewhere", files, overlays) == inside
    assert fingerprint(repo, files) != inside  # the overlay counts


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda repo: (repo / "schedules/b.yml").write_text(WEEKLY.replace("0 3", "0 5")),
            id="bytes",
        ),
        pytest.param(
            lambda repo: (repo / "schedules/b.yml").rename(repo / "schedules/c.yml"),
            id="renamed",
        ),
        pytest.param(
            lambda repo: (repo / "schedules/team/a.yaml").rename(repo / "schedules/a.yaml"),
            id="moved",
        ),
        pytest.param(
            lambda repo: (repo / "overlays/production.yaml").write_text(OVERLAY + "# edit\n"),
            id="overlay-bytes",
        ),
    ],
)
def test_a_changed_file_still_changes_the_fingerprint(
    repo: Path, fingerprint: Fingerprint, change: Callable[[Path], object]
) -> None:
    paths, overlays = [repo / "schedules"], [repo / "overlays"]
    before = fingerprint(repo, paths, overlays)
    change(repo)
    assert fingerprint(repo.parent / "elsewhere", paths, overlays) != before
