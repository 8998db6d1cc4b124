"""Real local receivers for alert tests: an SMTP server (aiosmtpd) and an HTTP webhook receiver.

Both bind 127.0.0.1 on a free port, run in a background thread and keep what they receive in memory. Use them
as context managers or through the ``smtp_server`` and ``webhook_server`` fixtures (import the fixtures into a
test module or ``conftest.py``).
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is truthy or ``timeout`` seconds pass; return its last truthiness."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@dataclass
class ReceivedMail:
    """One message as the SMTP server received it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def body(self) -> str:
        """Every text part of the message, decoded and joined."""
        parts = self.message.walk() if self.message.is_multipart() else [self.message]
        texts = [part.get_content() for part in parts if part.get_content_maintype() == "text"]
        return "\n".join(texts)


class SmtpServer:
    """An aiosmtpd SMTP server on 127.0.0.1 (no TLS, no auth) that keeps every message it receives.

    Example::

        with SmtpServer() as server:
            ...  # send to server.port
            assert server.wait_for_messages(1)
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    @property
    def uri(self) -> str:
        """An Airflow SMTP connection URI for this server (plain SMTP, sender mlops@example.com)."""
        return (
            f"smtp://{HOST}:{self.port}?disable_ssl=true&disable_tls=true&from_email=mlops%40example.com"
            "&timeout=10&retry_limit=0"
        )

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> SmtpServer:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname=HOST, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for_messages(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` messages arrived."""
        return wait_for(lambda: len(self.messages) >= count, timeout)

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class ReceivedRequest:
    """One POST as the webhook receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = field(default=None)

    @property
    def text(self) -> str:
        """The Slack message text of the POST (``json["text"]``), or the raw body."""
        if isinstance(self.json, dict) and "text" in self.json:
            return str(self.json["text"])
        return self.body.decode("utf-8", "replace")


class WebhookServer:
    """An HTTP server on 127.0.0.1 that records POST bodies and answers with a configurable status.

    Set ``status`` (e.g. 500) to simulate a failing webhook; Slack answers ``ok`` on success.
    """

    def __init__(self, port: int | None = None, status: int = 200) -> None:
        self.port = port or free_port()
        self.status = status
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/services/T000/B000/XXXX") -> str:
        """The URL of a (fake) Slack incoming webhook on this server."""
        return f"http://{HOST}:{self.port}{path}"

    def slack_connection(self, path: str = "/services/T000/B000/XXXX") -> str:
        """An ``AIRFLOW_CONN_*`` value (JSON) for a ``slackwebhook`` connection to this server."""
        return json.dumps({"conn_type": "slackwebhook", "password": self.url(path)})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                with receiver._lock:
                    receiver.requests.append(ReceivedRequest(self.path, dict(self.headers), body, parsed))
                reply = b"ok" if receiver.status < 400 else b"internal_error"
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        return Handler

    def start(self) -> WebhookServer:
        self._server = ThreadingHTTPServer((HOST, self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def wait_for_requests(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` POSTs arrived."""
        return wait_for(lambda: len(self.requests) >= count, timeout)

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running SMTP server on 127.0.0.1 collecting messages (``.messages``, ``.uri``)."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    """A running webhook receiver on 127.0.0.1 collecting POSTs (``.requests``, ``.status``)."""
    with WebhookServer() as server:
        yield server
