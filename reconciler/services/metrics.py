"""Prometheus metrics for drift checks, served by the standard client library."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from reconciler.core.drift_findings import Kind, Severity
from reconciler.core.errors import UsageError

if TYPE_CHECKING:
    from reconciler.core.drift_findings import DriftReport


class DriftMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        gauge = partial(Gauge, registry=self.registry)
        self.findings = gauge(
            "redbeat_reconciler_drift_findings",
            "Findings of the last drift check, by kind and severity",
            ["kind", "severity"],
        )
        self.last_check = gauge(
            "redbeat_reconciler_drift_last_check_timestamp_seconds",
            "When the last successful drift check ran (Unix time)",
        )
        self.duration = gauge(
            "redbeat_reconciler_drift_check_duration_seconds",
            "How long the last drift check took",
        )
        self.entries = gauge(
            "redbeat_reconciler_entries",
            "RedBeat entries seen by the last check, managed or not",
            ["state"],
        )
        self.failures = Counter(
            "redbeat_reconciler_drift_check_failures",
            "Drift checks that could not run (Redis unreachable, invalid files...)",
            registry=self.registry,
        )

    def serve(self, port: int, address: str) -> None:
        try:
            start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise UsageError(
                f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}"
            ) from None

    def record(self, report: DriftReport) -> None:
        counts = {(kind, severity): 0 for kind in Kind for severity in Severity}
        for finding in report.findings:
            counts[(finding.kind, finding.severity)] += 1
        for (kind, severity), count in counts.items():
            self.findings.labels(kind=kind.value, severity=severity.value).set(count)
        self.last_check.set(report.checked_at.timestamp())
        self.duration.set(report.duration_seconds)
        self.entries.labels(state="managed").set(report.managed_count)
        self.entries.labels(state="unmanaged").set(report.unmanaged_count)

    def record_failure(self) -> None:
        self.failures.inc()
