"""Drift alerts: webhook payloads, de-duplication in watch mode, delivery with retries.

An alert goes out when the set of findings (kind + entry) changes, as a reminder at an
interval while it persists, and as "resolved" when it clears; nothing is re-sent while it
is unchanged and the reminder is not due. Delivery failures are reported and retried with
backoff, and never stop the watcher: an undelivered alert is simply tried again next check.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.core.drift_findings import Severity

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    from reconciler.core.drift_findings import DriftReport

WEBHOOK_TIMEOUT_SECONDS = 10.0
WEBHOOK_ATTEMPTS = 3
_SLACK_LIMIT = 3000


@dataclass
class AlertState:
    """What was last delivered, so the next check knows whether to speak."""

    keys: frozenset[tuple[str, str]] = frozenset()
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Alert:
    status: str  # "firing", "reminder" or "resolved"
    report: DriftReport
    keys: frozenset[tuple[str, str]] = field(default_factory=frozenset)


def next_alert(
    report: DriftReport, state: AlertState, now: datetime, remind_every: timedelta | None
) -> Alert | None:
    keys = frozenset(finding.key for finding in report.alerting)
    if keys != state.keys:
        return Alert("firing" if keys else "resolved", report, keys)
    if keys and remind_every and state.sent_at and now - state.sent_at >= remind_every:
        return Alert("reminder", report, keys)
    return None


def payload(alert: Alert) -> dict[str, Any]:
    report = alert.report
    findings = [finding.as_dict() for finding in report.findings]
    return {
        "text": slack_text(alert),
        "status": alert.status,
        "summary": report.summary(),
        "target": report.target,
        "key_prefix": report.key_prefix,
        "checked_at": report.checked_at.isoformat(timespec="seconds"),
        "findings": findings,
        "tool": f"redbeat-reconciler {__version__}",
    }


def slack_text(alert: Alert) -> str:
    """A Slack-compatible summary (the ``text`` field of an incoming webhook)."""
    report = alert.report
    icon = {"firing": ":rotating_light:", "reminder": ":bell:", "resolved": ":white_check_mark:"}
    head = f"{icon[alert.status]} RedBeat drift {alert.status}: {report.summary()}"
    lines = [head]
    for finding in report.alerting:
        marker = "*error*" if finding.severity is Severity.ERROR else "warning"
        subject = f"`{finding.name}` " if finding.name else ""
        lines.append(f"• {marker} {finding.kind.value}: {subject}{finding.explanation}")
    text = "\n".join(lines)
    if len(text) > _SLACK_LIMIT:
        text = text[: _SLACK_LIMIT - 40].rsplit("\n", 1)[0] + "\n… (more in the JSON findings)"
    return text


def deliver(
    url: str,
    body: dict[str, Any],
    *,
    attempts: int = WEBHOOK_ATTEMPTS,
    sleep: Callable[[float], object] = time.sleep,
    report_failure: Callable[[str], None],
) -> bool:
    """POST ``body`` as JSON; True once a 2xx answer came back."""
    data = json.dumps(body).encode()
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
                if 200 <= response.status < 300:
                    return True
                reason = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            reason = str(getattr(exc, "reason", exc))
        except (http.client.HTTPException, ValueError) as exc:
            # A peer answering something that is not HTTP, or a URL urllib cannot use.
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        report_failure(f"webhook delivery failed (attempt {attempt} of {attempts}): {reason}")
        if attempt < attempts:
            sleep(min(2.0 ** (attempt - 1), 30.0))
    return False
