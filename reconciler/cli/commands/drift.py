"""``reconciler drift``: detect and explain drift and health problems, alert, optionally heal.

Exit 0: nothing at warning level or above; 2: findings; 1: the check itself failed. Without
--fix nothing is written to Redis, so read-only credentials suffice.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING

from reconciler.core.drift_findings import FIXABLE, DriftFix
from reconciler.core.errors import ReconcilerError
from reconciler.render import shown_name
from reconciler.render.drift_report import drift_json, drift_markdown, drift_text
from reconciler.services.alerts import Alert, AlertState, deliver, next_alert, payload
from reconciler.services.drift_check import check_drift, fix_drift
from reconciler.store.session import open_store

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciler.cli.commands.requests import Console, DriftRequest
    from reconciler.core.drift_findings import DriftReport

EXIT_DRIFT = 2
RENDERERS: dict[str, Callable[[DriftReport], str]] = {
    "text": drift_text,
    "json": drift_json,
    "markdown": drift_markdown,
}


def drift(request: DriftRequest, console: Console) -> int:
    """One check: print the report, call the webhook on drift, exit 0/2 (1 on failure)."""
    report = _check(request, console)
    console.echo(RENDERERS[request.output_format](report))
    if request.webhook and report.alerting:
        alert = Alert("firing", report, frozenset(f.key for f in report.alerting))
        deliver(request.webhook, payload(alert), report_failure=console.notice)
    return EXIT_DRIFT if report.alerting else 0


def watch(
    request: DriftRequest,
    console: Console,
    *,
    interval: float,
    checks: int | None = None,
    metrics_port: int | None = None,
    metrics_address: str = "0.0.0.0",  # an exporter is scraped from outside
    stop: threading.Event | None = None,
) -> int:
    """Check every ``interval`` seconds until stopped (SIGTERM/SIGINT) or ``checks`` ran.

    Alerts are de-duplicated (see alerts.py). A failing check or webhook is reported and
    counted, never fatal. Returns the exit code of the last check.
    """
    # prometheus_client and its HTTP server: for --watch only, not for every one-off check.
    from reconciler.services.metrics import DriftMetrics

    echo, notice = console.echo, console.notice
    stop = stop or _stop_on_signals()
    metrics = DriftMetrics()
    if metrics_port is not None:
        metrics.serve(metrics_port, metrics_address)
        notice(f"Serving Prometheus metrics on {metrics_address}:{metrics_port}/metrics")
    state = AlertState()
    status, done = 0, 0
    while not stop.is_set():
        try:
            report = _check(request, console)
        except ReconcilerError as exc:
            notice(f"{_now()}: drift check failed: {exc}")
            metrics.record_failure()
            status = 1
        else:
            metrics.record(report)
            echo(f"{_now()}: {report.summary()}\n")
            alert = next_alert(report, state, report.checked_at, request.remind_every)
            if alert is not None:
                if alert.status != "reminder":
                    echo(RENDERERS[request.output_format](report))
                delivered = not request.webhook or deliver(
                    request.webhook, payload(alert), report_failure=notice, sleep=stop.wait
                )
                if delivered:
                    state = AlertState(alert.keys, report.checked_at)
            status = EXIT_DRIFT if report.alerting else 0
        done += 1
        if checks is not None and done >= checks:
            return status
        stop.wait(interval)
    return 0  # stopped by a signal: a clean shutdown, not a failed check


def _check(request: DriftRequest, console: Console) -> DriftReport:
    notice = console.notice
    desired = request.desired
    loaded = desired.load(console)
    with open_store(request.store, notice=notice) as store:
        check = partial(
            check_drift,
            store,
            loaded,
            timezone_name=desired.timezone_name,
            overdue_grace=request.overdue_grace,
            beat=request.beat,
        )
        report = check()
        if not request.fix:
            return report
        if not any(finding.kind in FIXABLE for finding in report.findings):
            return replace(report, fix=DriftFix(report.findings))
        outcome = fix_drift(
            store, loaded, report, timezone_name=desired.timezone_name, actor=request.actor
        )
        done = "; ".join(
            f"{action}: {', '.join(shown_name(name) for name in names)}"
            for action, names in sorted(outcome.result.names.items())
            if names
        )
        notice(f"drift --fix: {outcome.result.summary()} ({done or 'nothing to write'})")
        # The report is the check after the fix (what is left), carrying what was fixed.
        return replace(check(), fix=outcome.fix)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    return stop


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
