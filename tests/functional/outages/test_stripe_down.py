"""Stripe not answering while hundreds of payments are stuck: callbacks still flow.

Two worker processes on PostgreSQL, ``PORTAL_PAYMENT_PROVIDER=stripe`` pointed at a
port that accepts connections and never answers (the hard kind of outage: every call
waits for the SDK's timeout), 200 payments stuck in ``processing``, 300 callbacks to a
real receiver. The reconciliation hangs on its first call; every callback is delivered
meanwhile.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from portal.extensions import db
from portal.ledger.callbacks import add_endpoint
from portal.ledger.services import record_event
from tests.factories import make_merchant, make_request, make_stuck_payments
from tests.functional.ledger.test_fair_workers_pg import stop, wait_until
from tests.functional.ledger.test_workers_pg import start_worker
from tests.servers import HTTPRecorder

CALLBACKS = 300
STUCK = 200


class Blackhole:
    """A loopback port that accepts every connection and never says a word."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed
            self.connections.append(connection)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() up
        self.server.close()
        self.thread.join(5)
        for connection in self.connections:
            connection.close()


@contextmanager
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    try:
        yield hole
    finally:
        hole.close()


def test_callbacks_flow_while_stripe_never_answers(pg_app, pg_url, tmp_path):
    receiver = HTTPRecorder(lambda req: (200, {}, b"ok")).start()
    workers = []
    try:
        merchant = make_merchant()
        add_endpoint(merchant.id, receiver.url)
        make_stuck_payments(merchant, STUCK)
        request = make_request(merchant)
        for _ in range(CALLBACKS):
            record_event("payment_request.voided", request)
        db.session.commit()
        with blackhole() as stripe:
            with (tmp_path / "workers.log").open("wb") as log:
                workers = [
                    start_worker(
                        pg_url,
                        exit_when_idle=False,
                        log=log,
                        PORTAL_PAYMENT_PROVIDER="stripe",
                        STRIPE_API_BASE=stripe.url,
                        STRIPE_SECRET_KEY="sk_test_unreachable",
                        STRIPE_WEBHOOK_SECRET="whsec_test_unreachable",
                    )
                    for _ in range(2)
                ]
            assert wait_until(lambda: stripe.connections, 60), "nobody asked Stripe"
            delivered = wait_until(
                lambda: len({r.headers["webhook-id"] for r in receiver.requests}) == CALLBACKS,
                120,
            )
            assert delivered, f"{len(receiver.requests)} of {CALLBACKS} callbacks delivered"
            # Meanwhile the reconciliation waited on Stripe, one call per worker at most
            # (the SDK retries a timed-out call up to twice): not one per stuck payment.
            assert 1 <= len(stripe.connections) <= 2 * 3
            stop(workers)
    finally:
        stop(workers)
        receiver.stop()
