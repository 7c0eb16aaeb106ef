"""Every command shown in README.md and docs/*.md runs, and prints what the page shows.

The convention is in tests/support/doc_examples.py and docs/development.md. Each page runs
top to bottom in its own workspace, a copy of the repository's schedules/, against a real
redis-server (emptied first): files from ``file=PATH`` blocks are written when reached, and
each console block runs in one bash process, as a reader would type it, with the installed
``reconciler`` (and redis-cli) on the PATH and REDBEAT_REDIS_URL pointing at that server.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.doc_examples import (
    REPO_ROOT,
    Block,
    Command,
    blocks,
    matches,
    normalise,
    pages_with_examples,
    shown,
)
from tests.support.redis_server import RedisServer, find_redis_server

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

BLOCK_TIMEOUT_SECONDS = 300.0
# What the reader's shell is assumed not to carry: these would change what the examples do.
_DROPPED_PREFIXES = ("REDBEAT_", "RECONCILER_", "GITHUB_", "GITLAB_", "CI_")
_DROPPED = frozenset({"CI", "NO_COLOR", "COLUMNS", "LINES", "PYTHONWARNINGS"})


@pytest.fixture(scope="module")
def docs_redis() -> Iterator[RedisServer]:
    """The Redis the pages' examples use. Persistence is on, as in production: with it off,
    every drift example would also report that a restart loses every schedule."""
    with RedisServer(config={"appendonly": "yes"}) as server:
        yield server


def _tools(folder: Path) -> Path:
    """A bin folder with ``reconciler`` and ``python`` (this interpreter) and redis-cli."""
    folder.mkdir()
    for name, command in (("reconciler", "-m reconciler "), ("python", "")):
        shim = folder / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {command}"$@"\n', encoding="utf-8")
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    cli = Path(find_redis_server()).with_name("redis-cli")
    if cli.exists():
        (folder / "redis-cli").symlink_to(cli)
    return folder


def _environment(tools: Path, redis_url: str | None, home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_DROPPED_PREFIXES) and key not in _DROPPED
    }
    env.update(
        PATH=f"{tools}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        USER="alice",  # the actor 'history' shows
        TZ="UTC",
        COLUMNS="80",  # --help wraps at the terminal's width
        PYTHONUNBUFFERED="1",  # stdout and stderr interleave as on a terminal
    )
    if redis_url is not None:
        env["REDBEAT_REDIS_URL"] = redis_url
    return env


def _run_console(block: Block, cwd: Path, env: dict[str, str]) -> list[tuple[str, int]]:
    """Run the block's commands in one bash process; each command's output and status."""
    commands = block.commands()
    marker = f"@@doc-test-{uuid.uuid4().hex}@@"
    script = ["exec 2>&1"]
    for command in commands:
        script.append(command.text)
        # Print the status, then give it back as $? to the next command ('echo $?').
        script.append(f'__status=$?; printf "\\n{marker} %s\\n" "$__status"; (exit "$__status")')
    completed = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=BLOCK_TIMEOUT_SECONDS,
        check=False,
    )
    parts = re.split(f"\n{re.escape(marker)} (\\d+)\n", completed.stdout)
    outputs = [(parts[i], int(parts[i + 1])) for i in range(0, len(parts) - 1, 2)]
    assert len(outputs) == len(commands), (
        f"the block at line {block.line} stopped early (bash exit {completed.returncode}):\n"
        + completed.stdout
    )
    return outputs


def _failure(page: Path, command: Command, output: str, status: int) -> str:
    actual = normalise(output)
    expected = normalise("\n".join(command.expected))
    diff = "\n".join(difflib.unified_diff(expected, actual, "shown", "printed", lineterm="", n=2))
    return (
        f"{shown(page)}:{command.line}: the output of\n  $ {command.text}\n"
        f"differs from the page (exit status {status}).\n{diff}\n"
        "--- printed, in full ---\n" + "\n".join(actual)
    )


# Only the pages that show commands: a page without one has nothing to run here, and
# tests/unit/test_docs_reference.py checks that no page showing a command is left out.
@pytest.mark.parametrize("page", pages_with_examples(), ids=shown)
def test_the_page_examples_print_what_they_show(
    page: Path, docs_redis: RedisServer, tmp_path: Path
) -> None:
    client = docs_redis.client()
    try:
        client.flushall()
    finally:
        client.close()
    workspace = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "schedules", workspace / "schedules")
    tools = _tools(tmp_path / "bin")
    (tmp_path / "home").mkdir()
    ran = 0
    for block in blocks(page):
        if block.file is not None:
            target = workspace / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
            continue
        if block.language != "console":
            continue
        redis_url = None if "embedded" in block.directives else docs_redis.url
        env = _environment(tools, redis_url, tmp_path / "home")
        for command, (output, status) in zip(
            block.commands(), _run_console(block, workspace, env), strict=True
        ):
            expected = normalise("\n".join(command.expected))
            if not matches(expected, normalise(output)):
                pytest.fail(_failure(page, command, output, status), pytrace=False)
            ran += 1
    assert ran > 0, f"{shown(page)} shows no commands"
