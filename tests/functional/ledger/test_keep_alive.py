"""Callbacks to one ledger reuse its connection (no new TCP or TLS handshake each time),
and an answer too long to read does not leave a half-read connection behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackDelivery
from portal.ledger.services import record_event
from tests.factories import make_merchant, make_request


class Ledger(ThreadingHTTPServer):
    """An HTTP/1.1 ledger that keeps connections alive and notes where each POST came from."""

    daemon_threads = True

    def __init__(self, answer_size: int = 2) -> None:
        self.answer_size = answer_size
        self.clients: list[tuple[str, int]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Ledger

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.clients.append(self.client_address)
        body = b"x" * self.server.answer_size
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ledger(request) -> Iterator[Ledger]:
    server = Ledger(getattr(request, "param", 2))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _deliver(ledger: Ledger, count: int) -> None:
    merchant = make_merchant()
    add_endpoint(merchant.id, ledger.url)
    pr = make_request(merchant)
    db.session.commit()
    for _ in range(count):
        record_event("payment_request.voided", pr)
        db.session.commit()
        run_due_jobs()
        db.session.commit()


def test_callbacks_to_one_ledger_share_a_connection(app, ledger):
    _deliver(ledger, 3)
    assert len(ledger.clients) == 3
    assert len(set(ledger.clients)) == 1, ledger.clients
    assert {d.status for d in db.session.query(CallbackDelivery)} == {"succeeded"}


@pytest.mark.parametrize("ledger", [1024 * 1024], indirect=True)
def test_a_long_answer_closes_its_connection_and_the_next_callback_still_goes(app, ledger):
    _deliver(ledger, 2)
    assert len(ledger.clients) == 2
    assert len(set(ledger.clients)) == 2, "a half-read connection was used again"
    assert {d.status for d in db.session.query(CallbackDelivery)} == {"succeeded"}
