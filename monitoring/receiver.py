"""The alert webhook receiver: Alertmanager posts each notification here, and every alert in it becomes one JSON
line of ``alerts.jsonl`` (firing or resolved, with its labels and annotations) and one log record.

HTTPS with a certificate of the platform CA, answering only clients that show one of the same CA (Alertmanager).
``GET /-/ready`` answers 200 for the stack's health check.
"""

from __future__ import annotations

import datetime
import json
import logging
import ssl
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from monitoring.exporter import ServerTLS

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # Alertmanager's notifications are small; anything larger is not one


def alert_records(notification: Mapping[str, Any], received_at: datetime.datetime) -> list[dict[str, Any]]:
    """One record per alert of an Alertmanager webhook notification (version 4 of its payload)."""
    if not isinstance(notification.get("alerts"), list):
        raise ValueError("not an Alertmanager notification: no list of alerts")
    return [{"received_at": received_at.isoformat(), "receiver": notification.get("receiver", ""),
             "status": alert.get("status", ""), "alertname": alert.get("labels", {}).get("alertname", ""),
             "labels": alert.get("labels", {}), "annotations": alert.get("annotations", {}),
             "starts_at": alert.get("startsAt", ""), "ends_at": alert.get("endsAt", ""),
             "fingerprint": alert.get("fingerprint", "")}
            for alert in notification["alerts"]]


class AlertLog:
    """Appends records to the JSON-lines file, one writer at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, records: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(lines)
        for r in records:
            log.info("alert %s %s %s", r["status"], r["alertname"],
                     json.dumps({k: v for k, v in r["labels"].items() if k != "alertname"}, sort_keys=True))


def _handler(alerts: AlertLog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._answer(200 if self.path == "/-/ready" else 404)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self._answer(413 if length > MAX_BODY else 400)
                return
            try:
                records = alert_records(json.loads(self.rfile.read(length)),
                                        datetime.datetime.now(datetime.timezone.utc))
            except ValueError as err:  # JSON errors included
                log.warning("refused a notification: %s", err)
                self._answer(400)
                return
            alerts.append(records)
            self._answer(200)

        def _answer(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            log.debug(format, *args)

    return Handler


class _TLSServer(ThreadingHTTPServer):
    """The TLS handshake runs in each connection's own thread, with a timeout, so that a client that connects and
    says nothing holds up no one else."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext):
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        self.RequestHandlerClass(self.context.wrap_socket(request, server_side=True), client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("connection from %s failed: %s", client_address, sys.exc_info()[1])


def server(alerts_file: Path, host: str, port: int, tls: ServerTLS) -> ThreadingHTTPServer:
    """The receiver, bound and ready for ``serve_forever``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tls.client_ca)
    context.load_cert_chain(tls.certificate, tls.key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return _TLSServer((host, port), _handler(AlertLog(alerts_file)), context)
