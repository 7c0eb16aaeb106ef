"""Drift reports: text for people, JSON for machines, markdown for CI job summaries."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.drift import Severity
from reconciler.render import shown_name

if TYPE_CHECKING:
    from reconciler.drift import DriftFinding, DriftReport

DRIFT_FORMAT_VERSION = 1
_ORDER = (Severity.ERROR, Severity.WARNING, Severity.INFO)


def _sorted(report: DriftReport) -> list[DriftFinding]:
    return sorted(
        report.findings,
        key=lambda f: (_ORDER.index(f.severity), f.kind.value, f.name or ""),
    )


def drift_text(report: DriftReport) -> str:
    lines = []
    for finding in _sorted(report):
        subject = f" {shown_name(finding.name)}" if finding.name else ""
        lines.append(
            f"{finding.severity.value:<7} {finding.kind.value}{subject}: {finding.explanation}"
        )
        lines.extend(f"          {detail}" for detail in finding.details)
        lines.append(f"          -> {finding.action}")
    if lines:
        lines.append("")
    lines.append(report.summary())
    return "\n".join(lines) + "\n"


def drift_dict(report: DriftReport) -> dict[str, object]:
    return {
        "format_version": DRIFT_FORMAT_VERSION,
        "checked_at": report.checked_at.isoformat(timespec="seconds"),
        "target": report.target,
        "key_prefix": report.key_prefix,
        "drift": bool(report.alerting),
        "summary": report.summary(),
        "managed_count": report.managed_count,
        "unmanaged_count": report.unmanaged_count,
        "duration_seconds": round(report.duration_seconds, 4),
        "findings": [finding.as_dict() for finding in _sorted(report)],
    }


def drift_json(report: DriftReport) -> str:
    return json.dumps(drift_dict(report), indent=2) + "\n"


def drift_markdown(report: DriftReport) -> str:
    icon = ":warning:" if report.alerting else ":white_check_mark:"
    lines = [f"### {icon} RedBeat drift (`{report.key_prefix}`)", "", f"**{report.summary()}**"]
    if report.findings:
        lines += ["", "| severity | finding | entry | what to do |", "| --- | --- | --- | --- |"]
        for finding in _sorted(report):
            name = f"`{shown_name(finding.name)}`" if finding.name else ""
            details = "".join(f" `{detail}`" for detail in finding.details)
            what = f"{finding.explanation}.{details} {finding.action}"
            name, what = (cell.replace("|", "\\|") for cell in (name, what))
            lines.append(f"| {finding.severity.value} | {finding.kind.value} | {name} | {what} |")
    return "\n".join(lines) + "\n"
