"""Benchmark: the command line at scale, as whole processes, against a real redis-server.

Issue 11's instrument. Starts a throw-away redis-server on loopback, writes N generated entries
(bench_validate's cron/every/rrule mix, 500 per file), then runs each case as a subprocess of
the installed ``reconciler`` entry point, ``--rounds`` times interleaved (round 1 of every
case, then round 2, ...), and reports medians:

  --help; validate of the repository's schedules/; validate of N; plan with all N to create
  (empty Redis); apply of all N (empty Redis); plan with no changes; drift with no drift;
  plan and apply with 1% of the entries changed (every 100th entry gets other args; the files
  are restored after the apply); plan and drift again once each entry has a last run of its
  own (after an apply all share the apply's moment, and so their next runs; beat stamps each
  run with its own);
  the floor (bench/floor_read.py: PyYAML's C parse of the same files with gc paused, then a
  pipelined HGETALL + ZMSCORE of every entry, 500 per round trip);
  RedBeat's own start-up (bench/redbeat_startup.py: ``setup_schedule()`` over a
  ``beat_schedule`` of the same entries), on an empty database and then again on the entries
  that run left (a restart, which is what the ratio column compares with).

Per case: wall seconds, the child's peak RSS (wait4's ru_maxrss), Redis commands and write
commands (INFO commandstats before and after; COMMAND's write flag). Redis is emptied by the
benchmark (FLUSHALL), never by the tool. After the timed rounds, one untimed pass runs the
Redis cases again to count round trips inside each child's redis-py (bench/round_trips/: a
send that follows a read) and, through a proxy that parses the commands (bench/resp_proxy.py),
the entry keys each one wrote. The proxy's own round-trip count from the wire is printed to
stderr only: on a busy machine it overcounts pipelines sent in pieces. Timings are never
asserted; the goals table says PASS or FAIL.

Writes (or updates the section for this N in) bench/RESULTS.md and prints it. PyYAML is
needed for the floor and RedBeat cases: it comes with the test extra (through pre-commit);
otherwise ``.venv/bin/pip install pyyaml``.

    .venv/bin/python bench/bench_cli.py [--n 100000] [--rounds 3] [--note TEXT]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import redis

from reconciler.store.embedded import find_redis_server

sys.path.insert(0, str(Path(__file__).parent))
from bench_plan_apply import start_server
from bench_validate import ENTRIES_PER_FILE, entry_yaml, write_schedules
from resp_proxy import CountingProxy

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EXAMPLES = REPO / "schedules"
REDBEAT_DB = 1  # RedBeat's start-up writes beside, not over, the reconciler's entries
CHANGED_EVERY = 100  # 1% changed
MIB = 1024  # ru_maxrss is KiB on Linux
X = "\N{MULTIPLICATION SIGN}"
READ_ONLY = ("plan-create", "plan", "plan-1pct", "drift", "plan-ran", "drift-ran")


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    redis: bool = False  # talks to Redis: commands and round trips are counted
    floor_ratio: bool = True  # shown as a multiple of the floor


CASES = [
    Case("help", "`reconciler --help`", floor_ratio=False),
    Case("validate-examples", "`validate` of the repository's schedules/", floor_ratio=False),
    Case("validate", "`validate`"),
    Case("redbeat-empty", "RedBeat's own start-up, empty Redis", redis=True),
    Case("redbeat", "RedBeat's own start-up, entries present (restart)", redis=True),
    Case("plan-create", "`plan`, all to create", redis=True),
    Case("apply-all", "`apply`, all (empty Redis)", redis=True),
    Case("plan", "`plan`, no changes", redis=True),
    Case("drift", "`drift`, no drift", redis=True),
    Case("floor", "floor: PyYAML C parse (gc paused) + pipelined read of all entries", True),
    Case("plan-1pct", "`plan`, 1% changed", redis=True),
    Case("apply-1pct", "`apply`, 1% changed", redis=True),
    # After an apply every entry has the apply's moment as its last run, so entries sharing
    # a schedule share their next run; beat stamps each run with its own moment.
    Case("plan-ran", "`plan`, no changes, each entry with a last run of its own", redis=True),
    Case("drift-ran", "`drift`, no drift, each entry with a last run of its own", redis=True),
]


@dataclass
class Run:
    wall: float
    rss_kib: int
    commands: int = 0
    writes: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Counted:
    round_trips: int  # counted in the client (bench/round_trips/sitecustomize.py)
    wire_round_trips: int  # counted by the proxy: an upper bound
    connections: int
    entry_keys_written: int


class Bench:
    def __init__(self, count: int, root: Path) -> None:
        self.count = count
        self.root = root
        self.schedules = root / "schedules"
        self.schedules.mkdir()
        write_schedules(self.schedules, count)
        self.originals = {path: path.read_text() for path in self.schedules.iterdir()}
        self.server, self.port = start_server(root)
        self.admin = redis.Redis(port=self.port)
        # start_server turns persistence off, which drift reports as a warning. RDB on, with
        # a save point no run reaches, so no snapshot forks during the measurements.
        self.admin.config_set("save", "86400 1")
        self.write_commands = {
            name.lower()
            for name, info in self.admin.command().items()
            if "write" in info.get("flags", ())
        }
        self.env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("REDBEAT_", "RECONCILER_", "GITHUB_")) and name != "CI"
        }
        self.reconciler = str(Path(sys.executable).with_name("reconciler"))
        # pip compiles an installed package's bytecode at install time; an editable install
        # under PYTHONDONTWRITEBYTECODE (set on many CI machines) would instead compile every
        # module of the package on every run, which is not what users wait for.
        compileall.compile_dir(REPO / "reconciler", quiet=1)
        self.proxy: CountingProxy | None = None

    def close(self) -> None:
        if self.proxy:
            self.proxy.stop()
        self.server.terminate()
        self.server.wait()

    # -- Redis state -------------------------------------------------------------------

    def url(self, db: int = 0) -> str:
        port = self.proxy.port if self.proxy else self.port
        return f"redis://127.0.0.1:{port}/{db}"

    def command_calls(self) -> dict[str, int]:
        stats = self.admin.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}

    def change_one_percent(self) -> int:
        changed = 0
        for start in range(0, self.count, ENTRIES_PER_FILE):
            parts = []
            for index in range(start, min(start + ENTRIES_PER_FILE, self.count)):
                text = entry_yaml(index)
                if index % CHANGED_EVERY == 0:
                    text = text.replace(f"args: [{index}, ", f"args: [{index + 10**9}, ", 1)
                    changed += 1
                parts.append(text)
            path = self.schedules / f"part-{start // ENTRIES_PER_FILE:04d}.yaml"
            path.write_text("version: 1\nschedules:\n" + "".join(parts))
        return changed

    def give_own_last_runs(self) -> None:
        """Rewrite each entry's meta as beat leaves it after running it: its own last run
        (the apply's moment, with microseconds of its own, as beat's clock stamps each run)
        and a run count. Within the same second, so no fire time and no score changes."""
        names = [f"redbeat:job-{index:06d}" for index in range(self.count)]
        for start in range(0, len(names), 1000):
            batch = names[start : start + 1000]
            with self.admin.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hget(key, "meta")
                metas = pipe.execute()
            with self.admin.pipeline(transaction=False) as pipe:
                for offset, (key, text) in enumerate(zip(batch, metas, strict=True)):
                    meta = json.loads(text)
                    meta["last_run_at"]["microsecond"] = (start + offset) % 1_000_000
                    meta["total_run_count"] = 1
                    pipe.hset(key, "meta", json.dumps(meta))
                pipe.execute()

    def restore_files(self) -> None:
        for path, text in self.originals.items():
            path.write_text(text)

    # -- one case ----------------------------------------------------------------------

    def argv(self, case: str) -> tuple[list[str], Path, set[int]]:
        """The command line, its working folder and the exit codes that mean it worked."""
        tool, python, folder, url = self.reconciler, sys.executable, str(self.schedules), self.url()
        if case == "help":
            return [tool, "--help"], REPO, {0}
        if case == "validate-examples":
            return [tool, "validate", str(EXAMPLES)], REPO, {0}
        if case == "validate":
            return [tool, "validate", folder], self.root, {0}
        if case in ("redbeat-empty", "redbeat"):
            script = str(BENCH / "redbeat_startup.py")
            return [python, script, folder, self.url(REDBEAT_DB)], self.root, {0}
        if case == "floor":
            return [python, str(BENCH / "floor_read.py"), folder, url], self.root, {0}
        # No beat runs here, so beat's lock is absent by design.
        common = ["--redis-url", url, "--no-beat-lock", folder]
        if case in ("plan-create", "plan", "plan-1pct", "plan-ran"):
            changes = 0 if case in ("plan", "plan-ran") else 2
            return [tool, "plan", "--detailed-exitcode", *common], self.root, {changes}
        if case in ("apply-all", "apply-1pct"):
            return [tool, "apply", "--auto-approve", *common], self.root, {0}
        if case in ("drift", "drift-ran"):
            # Without a grace period the every-30s entries turn overdue (health, not drift)
            # while the benchmark runs, since no beat runs them.
            return [tool, "drift", "--overdue-grace", "1000000000", *common], self.root, {0}
        raise ValueError(case)

    def prepare(self, case: str) -> None:
        if case in ("redbeat-empty", "plan-create", "apply-all"):
            self.admin.flushall()
        elif case == "plan-1pct":
            self.change_one_percent()
        elif case == "plan-ran":
            # The 1% apply left its changes in Redis and the files are restored: apply them
            # back (untimed, past the proxy), then let each entry have run.
            url = f"redis://127.0.0.1:{self.port}/0"
            subprocess.run(
                [self.reconciler, "apply", "--auto-approve", "--redis-url", url,
                 "--no-beat-lock", str(self.schedules)],
                cwd=self.root, env=self.env, stdout=subprocess.DEVNULL, check=True,
            )  # fmt: skip
            self.give_own_last_runs()

    def finish(self, case: str) -> None:
        if case == "apply-1pct":
            self.restore_files()

    def run(self, case: str, extra_env: dict[str, str] | None = None) -> Run:
        self.prepare(case)
        argv, cwd, ok = self.argv(case)
        before = self.command_calls()
        out, err = self.root / "stdout", self.root / "stderr"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            started = time.perf_counter()
            env = {**self.env, **(extra_env or {})}
            child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        after = self.command_calls()
        if code not in ok:
            sys.exit(
                f"{case}: {' '.join(argv)} exited {code} (expected {sorted(ok)})\n"
                f"{out.read_text()[-3000:]}\n{err.read_text()[-3000:]}"
            )
        delta = {name: calls - before.get(name, 0) for name, calls in after.items()}
        delta["info"] = delta.get("info", 0) - 1  # the "before" INFO itself
        result = Run(wall, usage.ru_maxrss)
        result.commands = sum(delta.values())
        result.writes = sum(
            calls for name, calls in delta.items() if name.split("|")[0] in self.write_commands
        )
        if case == "floor":
            result.extra = json.loads(out.read_text())
            if result.extra["found"] != self.count or result.extra["scored"] != self.count:
                sys.exit(f"floor read {result.extra}, expected {self.count} entries")
        self.finish(case)
        return result

    def count_round_trips(self) -> dict[str, Counted]:
        self.proxy = CountingProxy(self.port)
        counted: dict[str, Counted] = {}
        trips_file = self.root / "round-trips.json"
        extra_env = {
            "PYTHONPATH": str(BENCH / "round_trips"),
            "BENCH_ROUND_TRIPS_FILE": str(trips_file),
        }
        try:
            for case in CASES:
                if not case.redis:
                    continue
                self.proxy.reset()
                trips_file.unlink(missing_ok=True)
                self.run(case.key, extra_env)
                with self.proxy.lock:
                    counted[case.key] = Counted(
                        json.loads(trips_file.read_text())["round_trips"],
                        self.proxy.round_trips,
                        self.proxy.connections,
                        len(self.proxy.entry_keys_written),
                    )
        finally:
            self.proxy.stop()
            self.proxy = None
        return counted


# -- the report ----------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1) if found else ""
    server = subprocess.run(
        [find_redis_server(), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()
    version = next((word[2:] for word in server if word.startswith("v=")), "?")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "reconciler"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    from importlib.metadata import version as installed

    return {
        "cores": f"{os.cpu_count()} ({model})" if model else str(os.cpu_count()),
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis-server": version,
        "celery / celery-redbeat": f"{installed('celery')} / {installed('celery-redbeat')}",
        "reconciler commit": commit + (" (reconciler/ modified)" if dirty else ""),
    }


def median(runs: list[Run], attribute: str) -> float:
    return statistics.median(getattr(run, attribute) for run in runs)


def report(
    count: int,
    rounds: int,
    results: dict[str, list[Run]],
    counted: dict[str, Counted],
    facts: dict[str, str],
    note: str,
) -> str:
    wall = {key: median(runs, "wall") for key, runs in results.items()}
    rss = {key: median(runs, "rss_kib") / MIB for key, runs in results.items()}
    floor, redbeat = wall["floor"], wall["redbeat"]
    parse = statistics.median(run.extra["parse"] for run in results["floor"])
    read = statistics.median(run.extra["read"] for run in results["floor"])
    changed = len(range(0, count, CHANGED_EVERY))
    lines = [
        f"## N = {count:,}",
        "",
        f"Produced by `bench/bench_cli.py --n {count} --rounds {rounds}` on "
        f"{facts.pop('date')}; medians of {rounds} interleaved round(s); whole processes.",
        "",
    ]
    lines += [f"- {name}: {value}" for name, value in facts.items()]
    if note:
        lines.append(f"- note: {note}")
    lines += [
        "",
        f"| command | wall s | peak RSS MiB | {X} floor | RedBeat start-up ÷ command "
        "| Redis commands | writes | round trips |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in CASES:
        runs = results[case.key]
        trips = counted.get(case.key)
        label = case.label
        if case.key == "floor":
            label += f" (parse {parse:.2f} s + read {read:.2f} s)"
        elif case.key == "validate-examples":
            label += f" ({sum(1 for _ in EXAMPLES.glob('*.y*ml'))} files)"
        lines.append(
            f"| {label} | {wall[case.key]:.2f} | {rss[case.key]:,.0f} "
            f"| {wall[case.key] / floor:.1f} | {redbeat / wall[case.key]:.2f} "
            f"| {runs[-1].commands:,} | {runs[-1].writes:,} "
            f"| {trips.round_trips if trips else ''} |"
            if case.floor_ratio
            else f"| {label} | {wall[case.key]:.2f} | {rss[case.key]:,.0f} | | | | | |"
        )
    trip_limit = count / 500 + 10

    def row(goal: str, measured: str, passed: bool | None) -> str:
        verdict = "—" if passed is None else ("PASS" if passed else "FAIL")
        return f"| {goal} | {measured} | {verdict} |"

    ratio = {key: wall[key] / floor for key in wall}
    reconciler_rss = {
        key: value for key, value in rss.items() if key not in ("floor", "redbeat", "redbeat-empty")
    }
    peak = max(reconciler_rss.values())
    peak_case = max(reconciler_rss, key=lambda key: reconciler_rss[key])
    apply_trips = counted["apply-all"].round_trips
    batches = -(-count // 500)
    # The speed goals of the no-change plan and drift, right after the apply and once each
    # entry has a last run of its own.
    no_change_rows = [
        row(goal, measured, passed)
        for key, shown in (
            ("plan", "`plan` no changes"),
            ("drift", "`drift` no drift"),
            ("plan-ran", "`plan` no changes, own last runs"),
            ("drift-ran", "`drift` no drift, own last runs"),
        )
        for goal, measured, passed in (
            (f"{shown} ≤ 1.5{X} floor", f"{ratio[key]:.2f}{X}", ratio[key] <= 1.5),
            (
                f"{shown} ≥ 8{X} faster than RedBeat's start-up",
                f"{redbeat / wall[key]:.2f}{X}",
                redbeat / wall[key] >= 8,
            ),
        )
    ]
    lines += [
        "",
        "Round trips and entry keys written were counted in one extra, untimed pass: round "
        "trips inside each child's redis-py (a send that follows a read, connection handshakes "
        "included; bench/round_trips/), entry keys by a proxy that parses the commands "
        "(bench/resp_proxy.py). "
        "Redis commands and writes are from the last timed round (INFO commandstats; writes "
        "are commands Redis flags as writes). "
        f"1% changed = every {CHANGED_EVERY}th entry ({changed:,}) given other args. "
        "Own last runs: after the apply every entry's last run is the apply's moment, so "
        "entries sharing a schedule share one fire-time answer; the last two cases first "
        "give each entry microseconds of its own, as beat's runs do.",
        "",
        "| goal (issue 11) | measured | |",
        "|---|---|---|",
        *no_change_rows,
        row(
            f"`plan` 1% changed ≤ 1.1{X} no-change plan",
            f"{wall['plan-1pct'] / wall['plan']:.2f}{X}",
            wall["plan-1pct"] / wall["plan"] <= 1.1,
        ),
        row(
            f"`apply` 1% changed ≤ 1.3{X} no-change plan",
            f"{wall['apply-1pct'] / wall['plan']:.2f}{X}",
            wall["apply-1pct"] / wall["plan"] <= 1.3,
        ),
        row(
            f"`apply` all ≤ 2{X} `plan` all",
            f"{wall['apply-all'] / wall['plan-create']:.2f}{X}",
            wall["apply-all"] / wall["plan-create"] <= 2,
        ),
        row(
            f"`validate` ≤ 1.5{X} the floor's parse part",
            f"{wall['validate'] / parse:.2f}{X} ({wall['validate']:.2f} s / {parse:.2f} s)",
            wall["validate"] / parse <= 1.5,
        ),
        row(
            "peak RSS ≤ 512 MiB for every command",
            f"{peak:,.0f} MiB (`{peak_case}`)",
            peak <= 512,
        ),
        row(
            "memory grows linearly",
            f"{(rss['plan'] - rss['help']) * MIB / count:.1f} KiB per entry above `--help` "
            "(`plan`); compare the sections for two N",
            None,
        ),
        row("`reconciler --help` ≤ 0.15 s", f"{wall['help']:.2f} s", wall["help"] <= 0.15),
        row(
            "`validate` of the example folder ≤ 0.3 s",
            f"{wall['validate-examples']:.2f} s",
            wall["validate-examples"] <= 0.3,
        ),
    ]
    for key in ("plan-create", "plan", "plan-1pct", "drift", "plan-ran", "drift-ran"):
        trips = counted[key].round_trips
        lines.append(
            row(
                f"round trips ≤ N/500 + 10 = {trip_limit:,.0f}: {key}",
                f"{trips:,}",
                trips <= trip_limit,
            )
        )
    lines += [
        row(
            "round trips of `apply` all: N/500 + 10 plus a fixed number per batch",
            f"{apply_trips:,} ({(apply_trips - 10) / batches:.1f} per 500 entries)",
            None,
        ),
        row(
            f"writes only for changed entries: entry keys written by `apply` 1% = {changed:,}",
            f"{counted['apply-1pct'].entry_keys_written:,} entry keys, "
            f"{results['apply-1pct'][-1].writes:,} write commands",
            counted["apply-1pct"].entry_keys_written == changed,
        ),
        row(
            "`plan` and `drift` write nothing",
            ", ".join(f"{key} {results[key][-1].writes}" for key in READ_ONLY) + " write commands",
            all(results[key][-1].writes == 0 for key in READ_ONLY),
        ),
    ]
    return "\n".join(lines) + "\n"


START = "<!-- bench_cli N={} -->"
END = "<!-- /bench_cli -->"


def write_results(path: Path, count: int, section: str) -> None:
    """Replace this N's section of the results file, keeping the others, smallest N first."""
    sections: dict[int, str] = {}
    old = path.read_text() if path.exists() else ""
    if old:
        for found in re.finditer(
            r"<!-- bench_cli N=(\d+) -->\n(.*?)<!-- /bench_cli -->", old, re.DOTALL
        ):
            sections[int(found.group(1))] = found.group(2)
    sections[count] = section
    # What bounds each goal not met, and what would move it: written by people, after a
    # run, between these markers; kept as it is by every run.
    kept = re.search(r"<!-- analysis -->\n.*?<!-- /analysis -->\n", old, re.DOTALL)
    head = (
        "# Benchmark results: the command line at scale\n\n"
        "Written by `bench/bench_cli.py` (see its docstring and docs/development.md); one "
        "section per N, each from one run. Goals are issue 11's. Timings are of one machine at "
        "one time: compare ratios within a section.\n"
    )
    body = "".join(f"\n{START.format(n)}\n{sections[n]}{END}\n" for n in sorted(sections))
    path.write_text(head + (f"\n{kept[0]}" if kept else "") + body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="entries (default 100000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--note", default="", help="a line about the machine for RESULTS.md")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    options = parser.parse_args()
    if shutil.which("git") is None:
        sys.exit("git is needed for the commit in the results")
    facts = machine_facts()
    facts["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    results: dict[str, list[Run]] = {case.key: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as folder:
        bench = Bench(options.n, Path(folder))
        try:
            for round_number in range(1, options.rounds + 1):
                for case in CASES:
                    run = bench.run(case.key)
                    results[case.key].append(run)
                    print(
                        f"round {round_number} {case.key:<18} {run.wall:8.2f} s "
                        f"{run.rss_kib / MIB:8.0f} MiB {run.commands:>9} commands",
                        file=sys.stderr,
                        flush=True,
                    )
            counted = bench.count_round_trips()
            for key, value in counted.items():
                print(f"counted {key:<18} {value}", file=sys.stderr, flush=True)
        finally:
            bench.close()
    load_after = os.getloadavg()
    facts["load average (1 min) before / after"] = f"{load_before[0]:.2f} / {load_after[0]:.2f}"
    section = report(options.n, options.rounds, results, counted, facts, options.note)
    write_results(options.out, options.n, section)
    print(section)


if __name__ == "__main__":
    main()
