"""What plan prints and how commands fail: exit codes, JSON and markdown, invalid files,
an unreachable Redis, passwords, batched reads at scale and the embedded default Redis."""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import redis

from reconciler.api import load_schedules, make_plan
from reconciler.services.apply import apply_plan
from reconciler.store.keys import KeySpace
from reconciler.store.reader import read_live_state
from reconciler.store.session import Store
from tests.integration.plan_apply_support import (
    HISTORY_KEY,
    PREFIX,
    REPO_ROOT,
    SCHEDULE_KEY,
    as_utc,
    assert_unchanged,
    bulk_entries,
    clean_env,
    cli_against,
    cron,
    isolate,
    monitor,
    next_daily,
    redis_processes_using,
    run_cli,
    run_subprocess,
    snapshot,
    write_schedules,
)
from tests.support.redis_server import RedisServer, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.integration.plan_apply_support import CliResult, CliRunner

pytestmark = pytest.mark.integration

GITHUB_COMMENT_LIMIT = 65_536
PASSWORD = "Pa55-w0rd-nobody-may-see"


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], redis_url: str) -> CliRunner:
    return cli_against(capsys, redis_url)


# -- exit codes and output formats ------------------------------------------------------


def test_detailed_exitcode(cli: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    write_schedules(folder, {"nightly": cron("0 3 * * *")})
    assert cli("plan", "schedules", "--detailed-exitcode").code == 2
    assert cli("plan", "schedules").code == 0  # changes alone are no error
    assert cli("apply", "schedules").code == 0
    assert cli("plan", "schedules", "--detailed-exitcode").code == 0
    write_schedules(folder, {})
    pending = cli("plan", "schedules", "--detailed-exitcode")
    assert pending.code == 0  # kept until --prune: nothing would change
    assert cli("plan", "schedules", "--detailed-exitcode", "--prune").code == 2
    write_schedules(folder, {"nightly": cron("0 3 * * * *")})
    invalid = cli("plan", "schedules", "--detailed-exitcode")
    assert invalid.code == 1
    assert "schedules/schedules.yaml:5:" in invalid.err


def test_detailed_exitcode_is_1_when_redis_is_unreachable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli(capsys, "plan", "schedules", "--detailed-exitcode", "--redis-url", url)
    assert result.code == 1


def test_json_plan(
    cli: CliRunner, tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    folder = tmp_path / "schedules"
    write_schedules(
        folder,
        {
            "edit": cron("0 3 * * *", kwargs={"region": "eu"}),
            "same": cron("0 3 * * *"),
            "gone": cron("0 3 * * *"),
        },
    )
    assert cli("apply", "schedules").code == 0
    write_schedules(
        folder,
        {
            "edit": cron("0 4 * * *", kwargs={"region": "us"}),
            "same": cron("0 3 * * *"),
            "new": {"task": "app.tasks.ping", "every": "90s"},
            "off": cron("0 3 * * *", enabled=False),
        },
    )
    redis_client.zrem(SCHEDULE_KEY, PREFIX + "same")
    result = cli("plan", "schedules", "--format", "json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["format_version"] == 2
    assert document["target"] == redis_url
    assert document["key_prefix"] == PREFIX
    created_at = datetime.fromisoformat(document["created_at"])
    changes = {change["name"]: change for change in document["changes"]}
    assert {name: change["action"] for name, change in changes.items()} == {
        "edit": "update",
        "new": "create",
        "off": "create",
        "same": "repair",
    }
    edit_runs = [datetime.fromisoformat(text) for text in changes["edit"]["next_runs"]]
    first = next_daily(4, 0, created_at)
    assert [as_utc(run) for run in edit_runs] == [first + timedelta(days=day) for day in range(3)]
    assert all(run.tzinfo is not None for run in edit_runs)
    new_runs = [as_utc(datetime.fromisoformat(text)) for text in changes["new"]["next_runs"]]
    assert len(new_runs) == 3
    assert [later - earlier for earlier, later in itertools.pairwise(new_runs)] == [
        timedelta(seconds=90)
    ] * 2
    assert changes["off"]["next_runs"] == []
    assert changes["off"]["enabled"] is False
    assert {
        (item["path"], item["old"], item["new"]) for item in changes["edit"]["field_changes"]
    } == {
        ("schedule.hour", "3", "4"),
        ("kwargs.region", "eu", "us"),
    }
    assert changes["same"]["repairs"][0]["kind"] == "unscheduled"
    assert document["pending_prune"] == ["gone"]
    assert document["unchanged"] == []
    summary = document["summary"]
    assert {key: summary[key] for key in ("create", "update", "delete", "repair")} == {
        "create": 2,
        "update": 1,
        "delete": 0,
        "repair": 1,
    }
    assert summary["pending_prune"] == 1
    assert summary["text"].startswith(
        "Plan: 2 to create, 1 to update, 0 to adopt, 0 to delete, 1 to repair"
    )


def test_markdown_plan_small_has_details(cli: CliRunner, tmp_path: Path) -> None:
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *", args=[1])})
    text = cli("plan", "schedules", "--format", "markdown").out
    assert (
        "**Plan: 1 to create, 0 to update, 0 to adopt, 0 to delete, 0 to repair, 0 unchanged.**"
        in text
    )
    assert "| + | `nightly` | create |" in text
    assert "<details><summary><code>nightly</code>: create</summary>" in text
    assert "Truncated" not in text


def test_markdown_plan_of_3000_changes_fits_a_github_comment(
    cli: CliRunner, tmp_path: Path
) -> None:
    total = 3000
    write_schedules(tmp_path / "schedules", bulk_entries(total))
    result = cli("plan", "schedules", "--format", "markdown")
    assert result.code == 0, result.err
    text = result.out
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert f"**Plan: {total} to create" in text
    notice = re.search(
        r"Truncated to fit a GitHub comment: (\d+) (?:of \d+ |more )?changes are not shown", text
    )
    assert notice is not None
    rows = re.findall(r"^\| \+ \| `job-\d{5}` \| create \|", text, flags=re.MULTILINE)
    assert len(rows) + int(notice[1]) == total
    # The comment shows as much of the plan as fits, not an empty table.
    assert len(rows) > 0, (
        f"no change shown at all: {len(text)} of {GITHUB_COMMENT_LIMIT} characters used"
    )


def test_plan_out_to_an_unwritable_path_is_one_line_without_traceback(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer
) -> None:
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    before = snapshot(redis_server)
    result = cli("plan", "schedules", "--out", "no-such-folder/saved.json")
    assert "Traceback" not in result.err, result.err[-300:]
    assert result.code == 1
    assert "no-such-folder/saved.json" in result.err
    assert len(result.err_lines) == 1, result.err
    assert_unchanged(before, snapshot(redis_server))


# -- invalid files --------------------------------------------------------------------


def test_invalid_files_exit_1_pointing_at_lines_with_redis_unchanged(
    cli: CliRunner, tmp_path: Path, redis_server: RedisServer
) -> None:
    folder = tmp_path / "schedules"
    write_schedules(folder, {"nightly": cron("0 3 * * *"), "other": cron("0 4 * * *")})
    assert cli("apply", "schedules").code == 0
    before = snapshot(redis_server)
    (folder / "schedules.yaml").write_text(
        "version: 1\n"
        "schedules:\n"
        "  nightly:\n"
        "    task: app.tasks.job\n"
        '    cron: "61 3 * * *"\n'
        "  other:\n"
        "    task: app.tasks.job\n"
        '    cron: "0 4 * * *"\n'
        "    queeu: reports\n"
    )
    for argv in (
        ("plan", "schedules"),
        ("plan", "schedules", "--detailed-exitcode", "--format", "json"),
        ("apply", "schedules", "--prune"),
    ):
        result = cli(*argv)
        assert result.code == 1, argv
        assert re.search(r"^schedules/schedules\.yaml:5:\d+: .*61", result.err, re.MULTILINE)
        assert re.search(r"^schedules/schedules\.yaml:9:5: .*queeu", result.err, re.MULTILINE)
        assert "2 problems" in result.err
        assert "Traceback" not in result.err
    assert_unchanged(before, snapshot(redis_server))


# -- an unreachable Redis, passwords ---------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [("plan", "schedules"), ("apply", "schedules"), ("history",)],
    ids=["plan", "apply", "history"],
)
def test_unreachable_redis_fails_fast_with_one_line(tmp_path: Path, argv: tuple[str, ...]) -> None:
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    port = free_port()  # nothing listens there
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    result = run_subprocess(*argv, "--redis-url", url, cwd=tmp_path, timeout=30)
    assert result.code == 1, result.err
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith("error: Redis at redis://:***@127.0.0.1:")
    assert str(port) in result.err
    assert "Traceback" not in result.err
    assert PASSWORD not in result.out + result.err
    assert result.out == ""
    assert result.seconds < 5, f"took {result.seconds:.1f} s"


@pytest.fixture
def password_server(
    redis_server_factory: Callable[..., RedisServer],
) -> Iterator[RedisServer]:
    """A server of its own that requires PASSWORD. Set after start and removed before the
    stop: the test bed's start-up probe and SHUTDOWN do not authenticate."""
    server = redis_server_factory()
    client = server.client()
    client.config_set("requirepass", PASSWORD)
    client.close()
    yield server
    client = server.client(password=PASSWORD)
    try:
        client.config_set("requirepass", "")
    finally:
        client.close()


def test_password_never_shown(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    password_server: RedisServer,
) -> None:
    server = password_server
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    masked = f"redis://:***@127.0.0.1:{server.port}/0"
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    shown: list[str] = []

    def run(*argv: str) -> CliResult:
        result = run_cli(capsys, *argv)
        shown.extend([result.out, result.err])
        return result

    as_json = run("plan", "schedules", "--format", "json", "--redis-url", url)
    assert as_json.code == 0, as_json.err
    assert json.loads(as_json.out)["target"] == masked
    assert run("plan", "schedules", "--out", "saved.json", "--redis-url", url).code == 0
    saved = (tmp_path / "saved.json").read_text()
    assert json.loads(saved)["target"] == masked
    shown.append(saved)
    assert run("apply", "--plan", "saved.json", "--redis-url", url).code == 0
    assert run("plan", "schedules", "--format", "markdown", "--redis-url", url).code == 0
    assert run("history", "--format", "json", "--redis-url", url).code == 0
    wrong = run("plan", "schedules", "--redis-url", url.replace(PASSWORD, PASSWORD[::-1]))
    assert wrong.code == 1
    assert PASSWORD[::-1] not in wrong.err
    assert run("plan", "schedules", "--redis-url", url, "--format", "markdown").code == 0
    client = server.client(password=PASSWORD)
    try:
        shown.append(json.dumps(client.xrange(HISTORY_KEY)))
    finally:
        client.close()
    leaks = [text for text in shown if PASSWORD in text]
    assert leaks == []


def test_password_in_url_query_is_never_shown(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    password_server: RedisServer,
) -> None:
    """redis-py (and so RedBeat) accepts the password as a query parameter as well."""
    server = password_server
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    url = f"redis://127.0.0.1:{server.port}/0?password={PASSWORD}"
    result = run_cli(capsys, "plan", "schedules", "--format", "json", "--redis-url", url)
    assert result.code == 0, result.err  # the URL works...
    assert PASSWORD not in json.loads(result.out)["target"]  # ...and its password stays hidden
    wrong = run_cli(capsys, "plan", "schedules", "--redis-url", url.replace("Pa55", "Xa55"))
    assert wrong.code == 1
    assert "Xa55" not in wrong.err


def test_malformed_url_with_password_is_one_line_without_traceback(tmp_path: Path) -> None:
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    url = f"redis://user:{PASSWORD}@127.0.0.1:not-a-port/0"
    result = run_subprocess("plan", "schedules", "--redis-url", url, cwd=tmp_path)
    assert PASSWORD not in result.out + result.err
    assert "Traceback" not in result.err, result.err[-400:]
    assert result.code == 1
    assert len(result.err_lines) == 1, result.err


def test_apply_never_waits_for_input_when_stdin_is_not_a_terminal(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    write_schedules(tmp_path / "schedules", {"nightly": cron("0 3 * * *")})
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "schedules", "--redis-url", redis_url],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.PIPE,  # open, never written to: a prompt would wait forever
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        out, err = process.communicate()
    assert process.returncode == 0, err
    assert "1 created" in out
    assert redis_client.exists(PREFIX + "nightly") == 1


# -- batched reads at scale -----------------------------------------------------------


class CountingConnection(redis.Connection):
    """Counts round trips: every write to the socket (a command or a whole pipeline)."""

    round_trips: ClassVar[int] = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).round_trips += 1
        super().send_packed_command(command, check_health)


def test_reads_are_batched_for_2500_entries(
    capsys: pytest.CaptureFixture[str],
    redis_url: str,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    count = 2500
    folder = tmp_path / "schedules"
    write_schedules(folder, bulk_entries(count))
    started = time.monotonic()
    loaded = load_schedules([folder])
    load_seconds = time.monotonic() - started
    assert len(loaded.entries) == count

    pool = redis.ConnectionPool(
        connection_class=CountingConnection,
        host=redis_server.host,
        port=redis_server.port,
        db=0,
        decode_responses=True,
    )
    store = Store(redis.Redis(connection_pool=pool), KeySpace(PREFIX), "counted")
    try:
        store.client.ping()  # the connection handshake is not part of the plan
        CountingConnection.round_trips = 0
        started = time.monotonic()
        plan = make_plan(store, loaded, paths=[folder])
        plan_seconds = time.monotonic() - started
        plan_trips = CountingConnection.round_trips
        assert plan.count(plan.changes[0].action) == count

        CountingConnection.round_trips = 0
        started = time.monotonic()
        applied = apply_plan(store, plan)
        apply_seconds = time.monotonic() - started
        apply_trips = CountingConnection.round_trips
        assert applied.count(plan.changes[0].action) == count

        CountingConnection.round_trips = 0
        live = read_live_state(store.client, store.keys, [entry.name for entry in loaded.entries])
        live_trips = CountingConnection.round_trips
    finally:
        store.client.close()
        pool.disconnect()

    expected_trips = math.ceil(count / 1000) + 1  # the two sets, then 1,000 names a time
    assert plan_trips == expected_trips
    assert live.round_trips == expected_trips
    assert live_trips == expected_trips
    assert len(live.managed_names) == count
    # Writes go in batches too: nowhere near a round trip per entry.
    assert apply_trips < count / 50

    with monitor(redis_server) as seen:
        result = run_cli(capsys, "plan", "schedules", "--redis-url", redis_url)
    assert result.code == 0
    assert f"No changes. RedBeat matches the schedule files ({count} unchanged)." in result.out
    assert seen.named("keys", "scan") == []
    assert len(seen.named("hmget")) == count
    # The scores of a batch in one command, not one ZSCORE per entry.
    assert len(seen.named("zmscore")) == math.ceil(count / 1000)
    assert seen.named("zscore") == []
    assert seen.writes() == []
    print(
        f"\n[measure] {count} entries: load {load_seconds:.2f} s; plan (API) {plan_seconds:.2f} s "
        f"in {plan_trips} round trips; apply (API) {apply_seconds:.2f} s in {apply_trips} "
        f"round trips ({applied.batches} batches); CLI plan {result.seconds:.2f} s; "
        f"{len(seen.commands)} commands seen by MONITOR"
    )


def test_a_server_without_zmscore_is_read_with_zscore(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Redis before 6.2 has no ZMSCORE; a real server with the command renamed away answers
    # exactly as such a server does ("unknown command").
    count = 1200  # two batches
    write_schedules(tmp_path / "schedules", bulk_entries(count))
    with RedisServer(extra_args=["--rename-command", "ZMSCORE", '""']) as old_server:
        assert "unknown command" in str(_refused(old_server.client(), SCHEDULE_KEY))
        url = old_server.url
        applied = run_cli(
            capsys, "apply", "--auto-approve", "--no-beat-lock", "schedules", "--redis-url", url
        )
        assert applied.code == 0, applied.err
        client = old_server.client()
        client.zrem(SCHEDULE_KEY, f"{PREFIX}job-00007")  # beat would never run it
        with monitor(old_server) as seen:
            again = run_cli(capsys, "plan", "--no-beat-lock", "schedules", "--redis-url", url)
    assert again.code == 0, again.err
    assert "job-00007" in again.out
    assert "1 to repair" in again.out
    assert f"{count - 1} unchanged" in again.out
    assert len(seen.named("zscore")) == count
    assert len(seen.named("zmscore")) == 0  # refused before it ran: MONITOR never shows it


def _refused(client: redis.Redis, key: str) -> redis.ResponseError:
    with pytest.raises(redis.ResponseError) as refused:
        client.zmscore(key, ["x"])
    return refused.value


# -- the embedded default -------------------------------------------------------------


def test_embedded_default_plan_apply_plan(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "schedules", work / "schedules")
    folder = work / ".reconciler"
    env = clean_env()

    first = run_subprocess("plan", cwd=work, env=env)
    assert first.code == 0, first.err
    assert "Plan: 7 to create" in first.out
    applied = run_subprocess("apply", cwd=work, env=env)
    assert applied.code == 0, applied.err
    assert "Apply complete: 7 created" in applied.out
    second = run_subprocess("plan", "--detailed-exitcode", cwd=work, env=env)
    assert second.code == 0, second.out + second.err
    assert "No changes. RedBeat matches the schedule files (7 unchanged)." in second.out
    history = run_subprocess("history", cwd=work, env=env)
    assert history.code == 0
    assert "+7" in history.out

    for result in (first, applied, second, history):
        assert "embedded local Redis" in result.err
        assert ".reconciler" in result.err
    aof = [path for path in folder.rglob("*") if path.is_file() and "aof" in path.name]
    assert aof, sorted(str(path) for path in folder.rglob("*"))
    assert any(b"nightly-sales-report" in path.read_bytes() for path in aof)
    assert redis_processes_using(folder) == []

    in_ci = run_subprocess("plan", cwd=work, env={**env, "CI": "true"})
    assert in_ci.code == 1
    assert len(in_ci.err_lines) == 1, in_ci.err
    assert "CI is set" in in_ci.err
    assert "--redis-url" in in_ci.err
    assert redis_processes_using(folder) == []
