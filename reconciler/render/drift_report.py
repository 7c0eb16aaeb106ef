"""Drift reports: text for people, JSON for machines, markdown for CI job summaries."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.core.drift_findings import FIX_VERBS
from reconciler.render import shown_name

if TYPE_CHECKING:
    from collections.abc import Iterable

    from reconciler.core.drift_findings import DriftFinding, DriftFix, DriftReport, FixedEntry

DRIFT_FORMAT_VERSION = 1


def _sorted(findings: Iterable[DriftFinding]) -> list[DriftFinding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, f.kind.value, f.name or ""))


def _fixed(report: DriftReport) -> DriftFix | None:
    """The fix to give an account of: one that wrote something (else the report says all)."""
    return report.fix if report.fix is not None and report.fix.written else None


def _headline(finding: DriftFinding) -> str:
    subject = f" {shown_name(finding.name)}" if finding.name else ""
    return f"{finding.severity.value:<7} {finding.kind.value}{subject}"


def _how(entry: FixedEntry) -> str:
    why = [repair.value for repair in entry.repairs]
    if entry.rechecked:
        why.append("re-check after the writes: a racing beat tick")
    return f" ({', '.join(why)})" if why else ""


def _fix_text(fix: DriftFix) -> list[str]:
    lines = ["Found before the fix:"]
    lines += [f"  {_headline(finding)}" for finding in _sorted(fix.found)]
    lines.append("Fixed by drift --fix:")
    lines += [
        f"  {FIX_VERBS[entry.action]:<9} {shown_name(entry.name)}{_how(entry)}"
        for entry in fix.written
    ]
    return [*lines, "Left after the fix:"]


def drift_text(report: DriftReport) -> str:
    fix = _fixed(report)
    lines = _fix_text(fix) if fix else []
    if fix and not report.findings:
        lines.append("  nothing")
    for finding in _sorted(report.findings):
        lines.append(f"{_headline(finding)}: {finding.explanation}")
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
        "findings": [finding.as_dict() for finding in _sorted(report.findings)],
        # Only with --fix: what it found before and wrote; "findings" is what is left.
        **({"fix": _fix_dict(report.fix)} if report.fix is not None else {}),
    }


def _fix_dict(fix: DriftFix) -> dict[str, object]:
    return {
        "summary": fix.summary(),
        "counts": {action.value: count for action, count in fix.counts().items()},
        "written": [
            {
                "name": entry.name,
                "action": entry.action.value,
                "repairs": [repair.value for repair in entry.repairs],
                "rechecked": entry.rechecked,
            }
            for entry in fix.written
        ],
        "found": [finding.as_dict() for finding in _sorted(fix.found)],
    }


def drift_json(report: DriftReport) -> str:
    return json.dumps(drift_dict(report), indent=2) + "\n"


def drift_markdown(report: DriftReport) -> str:
    icon = ":warning:" if report.alerting else ":white_check_mark:"
    lines = [f"### {icon} RedBeat drift (`{report.key_prefix}`)", "", f"**{report.summary()}**"]
    fix = _fixed(report)
    if fix:
        lines += _fix_markdown(fix)
        if not report.findings:
            lines += ["", "Nothing."]
    if report.findings:
        lines += ["", "| severity | finding | entry | what to do |", "| --- | --- | --- | --- |"]
        for finding in _sorted(report.findings):
            name = f"`{shown_name(finding.name)}`" if finding.name else ""
            details = "".join(f" `{detail}`" for detail in finding.details)
            what = f"{finding.explanation}.{details} {finding.action}"
            name, what = (cell.replace("|", "\\|") for cell in (name, what))
            lines.append(f"| {finding.severity.value} | {finding.kind.value} | {name} | {what} |")
    return "\n".join(lines) + "\n"


def _fix_markdown(fix: DriftFix) -> list[str]:
    lines = ["", "#### Found before the fix", "", "| severity | finding | entry |"]
    lines.append("| --- | --- | --- |")
    lines += [
        f"| {finding.severity.value} | {finding.kind.value} | {_cell_name(finding.name)} |"
        for finding in _sorted(fix.found)
    ]
    lines += ["", "#### Fixed by drift --fix", "", "| action | entry |", "| --- | --- |"]
    lines += [
        f"| {FIX_VERBS[entry.action]}{_how(entry)} | {_cell_name(entry.name)} |"
        for entry in fix.written
    ]
    return [*lines, "", "#### Left after the fix"]


def _cell_name(name: str | None) -> str:
    return f"`{shown_name(name)}`".replace("|", "\\|") if name else ""
