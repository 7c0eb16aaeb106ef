"""Drift alert delivery with retries, against a real HTTP server on 127.0.0.1 (or a port
nothing listens on)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.services.alerts import AlertState, deliver, next_alert, payload
from tests.unit.test_drift_alerts import HOUR, MISSING, T0, UNMANAGED, report

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass
class Received:
    path: str
    content_type: str | None
    body: bytes


class WebhookServer:
    """A ThreadingHTTPServer on 127.0.0.1 answering POSTs with the queued status codes
    (200 once the queue is empty) and recording what it received."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with server._lock:
                    server.received.append(
                        Received(self.path, self.headers.get("Content-Type"), body)
                    )
                    status = server.statuses.pop(0) if server.statuses else 200
                answer = b"ok" if status < 300 else b"broken"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/hooks/drift"

    def start(self) -> WebhookServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def webhook_server() -> Iterator[type[WebhookServer]]:
    servers: list[WebhookServer] = []

    class Started(WebhookServer):
        def __init__(self, statuses: list[int]) -> None:
            super().__init__(statuses)
            servers.append(self)
            self.start()

    yield Started
    for server in servers:
        server.stop()


@dataclass
class Calls:
    failures: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def alert_body() -> dict[str, Any]:
    alert = next_alert(report(MISSING, UNMANAGED), AlertState(), T0, HOUR)
    assert alert is not None
    return payload(alert)


def test_delivery_posts_the_json_payload(webhook_server: type[WebhookServer]) -> None:
    server = webhook_server([200])
    calls = Calls()
    body = alert_body()

    delivered = deliver(server.url, body, sleep=calls.sleep, report_failure=calls.failures.append)

    assert delivered is True
    assert calls == Calls()
    (received,) = server.received
    assert received.path == "/hooks/drift"
    assert received.content_type == "application/json"
    assert json.loads(received.body) == body


def test_any_2xx_answer_is_a_delivery(webhook_server: type[WebhookServer]) -> None:
    server = webhook_server([204])
    calls = Calls()

    assert deliver(
        server.url, alert_body(), sleep=calls.sleep, report_failure=calls.failures.append
    )
    assert calls == Calls()


def test_a_failing_webhook_is_retried_with_growing_backoff_then_given_up(
    webhook_server: type[WebhookServer],
) -> None:
    server = webhook_server([500, 500, 500])
    calls = Calls()
    body = alert_body()

    delivered = deliver(server.url, body, sleep=calls.sleep, report_failure=calls.failures.append)

    assert delivered is False
    assert len(server.received) == 3
    assert all(json.loads(item.body) == body for item in server.received)
    assert calls.failures == [
        "webhook delivery failed (attempt 1 of 3): HTTP 500",
        "webhook delivery failed (attempt 2 of 3): HTTP 500",
        "webhook delivery failed (attempt 3 of 3): HTTP 500",
    ]
    # No pause after the last attempt.
    assert calls.sleeps == [1.0, 2.0]


def test_a_webhook_that_recovers_gets_the_alert(webhook_server: type[WebhookServer]) -> None:
    server = webhook_server([500, 200])
    calls = Calls()

    delivered = deliver(
        server.url, alert_body(), sleep=calls.sleep, report_failure=calls.failures.append
    )

    assert delivered is True
    assert len(server.received) == 2
    assert calls.failures == ["webhook delivery failed (attempt 1 of 3): HTTP 500"]
    assert calls.sleeps == [1.0]


def test_more_attempts_back_off_longer(webhook_server: type[WebhookServer]) -> None:
    server = webhook_server([503] * 5)
    calls = Calls()

    delivered = deliver(
        server.url,
        alert_body(),
        attempts=5,
        sleep=calls.sleep,
        report_failure=calls.failures.append,
    )

    assert delivered is False
    assert len(server.received) == 5
    assert calls.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert calls.failures[-1] == "webhook delivery failed (attempt 5 of 5): HTTP 503"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_webhook_is_reported_not_raised() -> None:
    calls = Calls()

    delivered = deliver(
        f"http://127.0.0.1:{closed_port()}/hooks/drift",
        alert_body(),
        sleep=calls.sleep,
        report_failure=calls.failures.append,
    )

    assert delivered is False
    assert len(calls.failures) == 3
    for attempt, message in enumerate(calls.failures, start=1):
        assert message.startswith(f"webhook delivery failed (attempt {attempt} of 3): ")
        assert "refused" in message.lower()
    assert calls.sleeps == [1.0, 2.0]
