"""ACL users against a real redis-server: what each command needs, and what a refusal does.

The users are made from docs/redis.md itself: the two ``ACL SETUSER`` lines of its "ACL users"
example, verbatim, and users allowed exactly the Redis commands its table lists for each
command. MONITOR shows which commands a run sent (it hides CONFIG, an admin command; the
eviction checks drift makes with it are seen in its report instead).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import redis

from reconciler.store.apply_lock import ApplyLock
from reconciler.store.keys import MARKER_FIELD, KeySpace
from tests.integration.plan_apply_support import (
    APPLY_LOCK_KEY,
    BEAT_LOCK_KEY,
    MANAGED_KEY,
    PREFIX,
    SCHEDULE_KEY,
    CliResult,
    assert_unchanged,
    cron,
    definition_of,
    history_records,
    is_managed,
    isolate,
    monitor,
    run_cli,
    snapshot,
    write_schedules,
)
from tests.support.doc_examples import DOCS, blocks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from pathlib import Path

    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

REDIS_PAGE = DOCS / "redis.md"
SECTION = "## ACL users"
READ_ONLY = "reconciler-ro"  # the page's names for its two users
READ_WRITE = "reconciler"
# What every connection sends, which the page names apart from the table (+@connection).
CONNECTION = frozenset({"auth", "hello", "ping", "client", "select", "echo"})

FILES: dict[str, dict[str, Any]] = {
    "nightly": cron("0 3 * * *", args=[1]),
    "hourly": {"task": "app.tasks.job", "every": "1h"},
    "report": cron("30 4 * * 1"),
}


# -- what the page says ------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentedUser:
    """One ``ACL SETUSER`` line of the page's example."""

    name: str
    arguments: tuple[str, ...]  # after the user's name, exactly as the page gives them

    @property
    def password(self) -> str:
        return next(rule[1:] for rule in self.arguments if rule.startswith(">"))

    @property
    def rules(self) -> tuple[str, ...]:
        """The permissions: without ``on`` and the password."""
        return tuple(rule for rule in self.arguments if rule != "on" and not rule.startswith(">"))

    def create(self, server: RedisServer) -> str:
        """The page's line, verbatim, on ``server``; the user's URL."""
        client = server.client()
        try:
            client.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "SETUSER", self.name, *self.arguments
            )
        finally:
            client.close()
        return f"redis://{self.name}:{self.password}@{server.host}:{server.port}/0"


@dataclass(frozen=True)
class TableRow:
    """One row of the page's table: reconciler commands, and the Redis commands they send."""

    commands: tuple[str, ...]  # e.g. ("apply", "apply --prune")
    redis_commands: frozenset[str]  # e.g. {"smembers", "config|get"}, as ACL rules name them


def _section() -> tuple[int, int]:
    """The 1-based line numbers where the ACL section starts and ends."""
    lines = REDIS_PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index(SECTION) + 1
    end = next(
        (
            number
            for number in range(start + 1, len(lines) + 1)
            if lines[number - 1].startswith("## ")
        ),
        len(lines) + 1,
    )
    return start, end


def documented_users() -> dict[str, DocumentedUser]:
    start, end = _section()
    users = {}
    for block in blocks(REDIS_PAGE):
        if block.language != "console" or not start < block.line < end:
            continue
        for command in block.commands():
            words = shlex.split(command.text)
            upper = [word.upper() for word in words]
            if "SETUSER" in upper:
                at = upper.index("SETUSER")
                users[words[at + 1]] = DocumentedUser(words[at + 1], tuple(words[at + 2 :]))
    return users


def documented_user(name: str) -> DocumentedUser:
    users = documented_users()
    assert name in users, f"docs/redis.md's ACL example creates {sorted(users)}, not {name!r}"
    return users[name]


def table_rows() -> list[TableRow]:
    start, end = _section()
    lines = REDIS_PAGE.read_text(encoding="utf-8").splitlines()[start:end]
    rows = []
    for line in lines:
        if not line.startswith("| `"):
            continue
        # A '|' inside a cell is escaped ('+config\|get'): split on the others only.
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        assert len(cells) == 3, f"docs/redis.md: a row of the ACL table has not 3 cells: {line}"
        commands = tuple(re.findall(r"`([a-z][a-z -]*)`", cells[0]))
        listed = re.findall(r"`([A-Z][A-Z ]*)`", cells[2])
        redis_commands = frozenset(word.lower().replace(" ", "|") for word in listed)
        rows.append(TableRow(commands, redis_commands))
    return rows


def table_row(command: str) -> TableRow:
    found = [row for row in table_rows() if command in row.commands]
    assert len(found) == 1, f"docs/redis.md's ACL table has {len(found)} rows for {command!r}"
    return found[0]


# -- the test bed ------------------------------------------------------------------------


@dataclass
class Bed:
    """A redis-server with persistence on (so drift is clean), an admin client, schedule
    files in the working folder, and the CLI run in process."""

    server: RedisServer
    admin: redis.Redis
    folder: Path
    capsys: pytest.CaptureFixture[str]

    def files(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        write_schedules(self.folder / "schedules", entries)

    def run(self, url: str, *argv: str) -> CliResult:
        return run_cli(self.capsys, *argv, "--redis-url", url)

    def as_admin(self, *argv: str) -> CliResult:
        result = self.run(self.server.url, *argv)
        assert result.code in (0, 2), result.out + result.err
        return result

    @property
    def admin_address(self) -> str:
        """The admin client's address, as MONITOR shows it (its pool keeps one connection)."""
        return str(self.admin.client_info()["addr"])

    def hold_beat_lock(self) -> None:
        """Beat's lock as a running beat holds it, so plans read its TTL and the scores."""
        self.admin.set(BEAT_LOCK_KEY, "beat-token", px=300_000)

    def unmanage(self, name: str) -> None:
        """Make ``name`` an entry the reconciler does not own (as before an adoption)."""
        self.admin.hdel(PREFIX + name, MARKER_FIELD)
        self.admin.srem(MANAGED_KEY, name)

    def stray(self, name: str) -> None:
        """An application's own entry, under the prefix but in no schedule file."""
        definition = {**definition_of(self.admin, "nightly"), "name": name}
        self.admin.hset(PREFIX + name, "definition", json.dumps(definition))
        self.admin.zadd(SCHEDULE_KEY, {PREFIX + name: 4102444800})

    def edit_in_redis(self, name: str) -> None:
        """Drift: someone changed a managed entry's definition in Redis."""
        definition = definition_of(self.admin, name)
        definition["args"] = [99]
        self.admin.hset(PREFIX + name, "definition", json.dumps(definition))


@pytest.fixture
def bed(
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Bed]:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("RECONCILER_REVISION", "acl-tests")
    server = redis_server_factory(config={"appendonly": "yes"})
    admin = server.client()
    made = Bed(server, admin, tmp_path, capsys)
    made.files(FILES)
    made.as_admin("apply")
    yield made
    admin.close()


def assert_refused(result: CliResult, refused: str) -> None:
    """Exit 1, one line on stderr naming the refused command, no traceback."""
    assert result.code == 1, result.out + result.err
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("error: "), line
    assert f"no permissions to run the '{refused}' command" in line, line


def sent(commands: Iterable[Any], *, apart_from: str) -> set[str]:
    """The Redis commands MONITOR saw, as ACL rules name them, leaving out the connection's
    own and those of the client at ``apart_from`` (the test's admin)."""
    names = set()
    for command in commands:
        if command.client == apart_from:
            continue
        name = command.name
        if name in {"config", "script", "client"} and len(command.args) > 1:
            name = f"{name}|{command.args[1].lower()}"
        if name.partition("|")[0] not in CONNECTION:
            names.add(name)
    return names


# -- the page's two users ----------------------------------------------------------------


def test_the_read_only_user_reads_and_is_refused_every_write(bed: Bed) -> None:
    reader = documented_user(READ_ONLY).create(bed.server)
    bed.hold_beat_lock()
    bed.files({**FILES, "fresh": cron("15 2 * * *")})  # a change for apply and drift to make
    before = snapshot(bed.server)

    plan = bed.run(reader, "plan")
    assert plan.code == 0, plan.err
    assert "+ fresh  (create)" in plan.out
    drift = bed.run(reader, "drift", "--no-beat-lock")
    assert drift.code == 2, drift.err  # 2: drift found ('fresh' is missing), 1 would be an error
    assert "fresh" in drift.out
    assert "could not read Redis's configuration" not in drift.out  # +config|get suffices
    export = bed.run(reader, "export", "--output", "exported.yaml")
    assert export.code == 0, export.err
    assert set(FILES) <= set(
        re.findall(r"^  (\w+):$", (bed.folder / "exported.yaml").read_text(), re.M)
    )
    history = bed.run(reader, "history")
    assert history.code == 0, history.err
    assert "via apply" in history.out

    applying = bed.run(reader, "apply")
    assert_refused(applying, "set")
    assert applying.err.startswith(f"error: Redis at redis://{READ_ONLY}:***@")
    assert_refused(bed.run(reader, "drift", "--no-beat-lock", "--fix"), "set")
    assert_unchanged(before, snapshot(bed.server))


def test_the_read_write_user_applies_prunes_adopts_and_fixes(bed: Bed) -> None:
    writer = documented_user(READ_WRITE).create(bed.server)
    bed.hold_beat_lock()

    bed.files({**FILES, "fresh": cron("15 2 * * *")})
    applied = bed.run(writer, "apply")
    assert applied.code == 0, applied.err
    assert applied.out.rstrip().endswith(
        "Apply complete: 1 created, 0 updated, 0 adopted, 0 deleted, 0 repaired."
    )
    assert is_managed(bed.admin, "fresh")
    assert not bed.admin.exists(APPLY_LOCK_KEY)

    bed.files(FILES)
    pruned = bed.run(writer, "apply", "--prune")
    assert pruned.code == 0, pruned.err
    assert "1 deleted" in pruned.out
    assert not bed.admin.exists(PREFIX + "fresh")
    assert not bed.admin.exists(APPLY_LOCK_KEY)

    bed.unmanage("report")
    adopted = bed.run(writer, "apply", "--adopt")
    assert adopted.code == 0, adopted.err
    assert "1 adopted" in adopted.out
    assert is_managed(bed.admin, "report")
    assert not bed.admin.exists(APPLY_LOCK_KEY)

    bed.edit_in_redis("nightly")
    fixed = bed.run(writer, "drift", "--no-beat-lock", "--fix")
    assert fixed.code in (0, 2), fixed.err
    assert "Fixed by drift --fix: 0 created, 1 updated" in fixed.out
    assert definition_of(bed.admin, "nightly")["args"] == [1]
    assert not bed.admin.exists(APPLY_LOCK_KEY)
    assert [record["source"] for record in history_records(bed.admin)][-4:] == [
        "apply",
        "apply",
        "apply",
        "drift --fix",
    ]


# -- the table: what each command sends ---------------------------------------------------


def _apply_runs(bed: Bed, url: str) -> list[CliResult]:
    """Every path of apply: create and update (an entry with a TTL), a saved plan, prune,
    adopt."""
    runs = []
    bed.admin.expire(PREFIX + "nightly", 86_400)
    bed.files({**FILES, "nightly": cron("0 5 * * *", args=[1]), "fresh": cron("15 2 * * *")})
    runs.append(bed.run(url, "apply"))
    bed.files({**FILES, "fresh": cron("15 2 * * *")})
    runs.append(bed.run(url, "plan", "--out", "plan.json"))
    runs.append(bed.run(url, "apply", "--plan", "plan.json"))
    bed.files(FILES)
    runs.append(bed.run(url, "apply", "--prune"))
    bed.unmanage("report")
    runs.append(bed.run(url, "apply", "--adopt"))
    return runs


def _break_for_drift_fix(bed: Bed) -> None:
    """Drift of every kind --fix repairs: an edited definition on an entry given a TTL, a
    deleted entry, one out of the index, and a meta-only orphan of a name still indexed."""
    bed.files({**FILES, "leftover": cron("0 1 * * *")})
    bed.as_admin("apply")
    bed.files(FILES)
    bed.edit_in_redis("nightly")
    bed.admin.expire(PREFIX + "nightly", 86_400)
    bed.admin.delete(PREFIX + "report")
    bed.admin.srem(MANAGED_KEY, "hourly")
    bed.admin.hdel(PREFIX + "leftover", "definition", MARKER_FIELD)


@pytest.mark.parametrize("command", ["plan", "history", "export", "drift", "apply", "drift --fix"])
def test_each_command_needs_exactly_the_redis_commands_of_its_row(bed: Bed, command: str) -> None:
    row = table_row(command)
    url = bed.server.acl_user(
        "exact", "~redbeat:*", "+@connection", *(f"+{name}" for name in sorted(row.redis_commands))
    )
    bed.hold_beat_lock()
    bed.stray("legacy")
    if command == "drift --fix":
        _break_for_drift_fix(bed)
    with monitor(bed.server) as seen:
        runs = _apply_runs(bed, url) if command == "apply" else [bed.run(url, *command.split())]
    for result in runs:
        assert result.code in (0, 2), f"{command}: {result.err}"
        assert "could not read Redis's configuration" not in result.out
    if command == "drift --fix":
        assert "Fixed by drift --fix: 1 created, 1 updated, 0 adopted, 0 deleted, 2 repaired" in (
            runs[0].out
        )
    assert not bed.admin.exists(APPLY_LOCK_KEY)
    # MONITOR never shows CONFIG: that drift could use it shows in its report, above. UNWATCH
    # goes only when a transaction is abandoned: the refused write below needs it.
    listed = row.redis_commands - {"config|get", "unwatch"}
    assert sent(seen.commands, apart_from=bed.admin_address) == listed


def _allowed(server: RedisServer, rules: Iterable[str]) -> set[str]:
    """The commands (``name`` or ``name|subcommand``) that ``rules`` allow, read in order as
    Redis reads them, with the categories as this server defines them (ACL CAT)."""
    client = server.client()
    try:
        allowed: set[str] = set()
        for rule in rules:
            if rule[:1] not in {"+", "-"}:
                continue  # keys, channels, 'on', passwords
            if rule[1:2] == "@":
                named = {str(name).lower() for name in client.acl_cat(rule[2:])}
            else:
                named = {rule[1:].lower()}
            if rule[0] == "+":
                allowed |= named
            else:
                allowed -= {name for name in allowed if name.partition("|")[0] in named}
                allowed -= named
    finally:
        client.close()
    return allowed


def test_the_examples_users_may_run_what_the_table_lists(bed: Bed) -> None:
    rows = table_rows()
    covered = {command for row in rows for command in row.commands}
    reading = ["plan", "history", "export", "drift"]
    writing = ["apply", "apply --plan", "apply --prune", "apply --adopt", "drift --fix"]
    assert {"validate", *reading, *writing} <= covered
    assert table_row("validate").redis_commands == frozenset()

    read_only = _allowed(bed.server, documented_user(READ_ONLY).rules)
    read_write = _allowed(bed.server, documented_user(READ_WRITE).rules)

    def covers(allowed: set[str], name: str) -> bool:
        return name in allowed or name.partition("|")[0] in allowed

    for command in reading:
        missing = [
            name for name in table_row(command).redis_commands if not covers(read_only, name)
        ]
        assert missing == [], f"the read-only user may not run {missing}, which {command} sends"
    for command in writing:
        listed = table_row(command).redis_commands - {"config|get"}
        missing = [name for name in listed if not covers(read_write, name)]
        assert missing == [], f"the read-write user may not run {missing}, which {command} sends"
    # As the page says: the read-write user has no CONFIG GET (drift --fix's eviction checks).
    assert not covers(read_write, "config|get")
    assert not covers(read_only, "set")


# -- without scripting ---------------------------------------------------------------------


def _without_scripting() -> tuple[str, ...]:
    """The page's read-write user, less +@scripting."""
    rules = documented_user(READ_WRITE).rules
    assert "+@scripting" in rules
    return tuple(rule for rule in rules if rule != "+@scripting")


def test_apply_without_scripting_renews_and_releases_its_lock_by_transaction(bed: Bed) -> None:
    url = bed.server.acl_user("noscript", *_without_scripting())
    bed.files({**FILES, "fresh": cron("15 2 * * *")})
    with monitor(bed.server) as seen:
        applied = bed.run(url, "apply")
    assert applied.code == 0, applied.err
    assert "1 created" in applied.out
    assert is_managed(bed.admin, "fresh")
    assert not bed.admin.exists(APPLY_LOCK_KEY)
    assert seen.named("evalsha", "eval") == []  # refused: never ran
    on_lock = [command.name for command in seen.commands if APPLY_LOCK_KEY in command.args[1:2]]
    # Taken, renewed (confirmed before the writes) and deleted, each renewal and the delete
    # after a WATCH and a GET that found the lock still this apply's.
    assert on_lock[0] == "set"
    assert on_lock[-3:] == ["watch", "get", "del"]
    renewals = [at for at, name in enumerate(on_lock) if name == "pexpire"]
    assert renewals, on_lock
    assert all(on_lock[at - 2 : at] == ["watch", "get"] for at in renewals), on_lock


def test_without_scripting_a_lock_taken_by_another_apply_is_left_alone(bed: Bed) -> None:
    url = bed.server.acl_user("noscript", *_without_scripting())
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        ours = ApplyLock(client, KeySpace(PREFIX))
        ours.acquire(timeout=1)
        bed.admin.pexpire(APPLY_LOCK_KEY, 5_000)
        assert ours.extend()  # the transaction renews a lock that is ours
        assert bed.admin.pttl(APPLY_LOCK_KEY) > 5_000
        bed.admin.delete(APPLY_LOCK_KEY)  # expired, then taken by another apply:
        other = json.dumps({"token": "f" * 32, "holder": "another apply", "since": "now"})
        bed.admin.set(APPLY_LOCK_KEY, other, px=60_000)

        assert ours.extend() is False
        ours.release()
        assert bed.admin.get(APPLY_LOCK_KEY) == other
        assert 59_000 < bed.admin.pttl(APPLY_LOCK_KEY) <= 60_000
    finally:
        client.close()


def test_release_never_raises_once_redis_is_gone(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        lock = ApplyLock(client, KeySpace(PREFIX))
        lock.acquire(timeout=1)
        server.stop()
        lock.release()  # the connection is refused: the lock's TTL frees it
        assert not lock.held
    finally:
        client.close()


# -- refused mid-apply -----------------------------------------------------------------------


def _user_allowed(bed: Bed, user: str, refused: str) -> str:
    """The URL of a user refused ``refused``: the page's read-write user, the same without
    +@scripting, or one allowed exactly what the table lists for apply."""
    if user == "table":
        rules = [
            "~redbeat:*",
            "+@connection",
            *(f"+{name}" for name in table_row("apply").redis_commands),
        ]
    elif user == "documented":
        rules = list(documented_user(READ_WRITE).rules)
    else:
        rules = list(_without_scripting())
    return bed.server.acl_user("partial", *rules, f"-{refused}")


@pytest.mark.parametrize(
    ("refused", "user"),
    [
        ("xadd", "documented"),
        ("zadd", "documented"),
        ("hset", "without-scripting"),
        ("xadd", "without-scripting"),
        ("xadd", "table"),
        ("del", "table"),
    ],
)
def test_a_write_refused_mid_apply_writes_nothing_and_releases_the_lock(
    bed: Bed, refused: str, user: str
) -> None:
    url = _user_allowed(bed, user, refused)
    # An update, a create and a delete at once: a half-written batch would show.
    bed.files(
        {
            "nightly": cron("0 5 * * *", args=[2]),
            "hourly": FILES["hourly"],
            "fresh": cron("15 2 * * *"),
        }
    )
    before = snapshot(bed.server)
    result = bed.run(url, "apply", "--prune")
    assert not bed.admin.exists(APPLY_LOCK_KEY)  # at once, not when its TTL runs out
    assert_refused(result, refused)
    assert result.err_lines == [  # as docs/redis.md quotes it
        f"error: Redis refused a write: this user has no permissions to run the '{refused}' "
        "command or its subcommand; nothing was written"
    ]
    assert_unchanged(before, snapshot(bed.server))  # no entry, index or history half-written
