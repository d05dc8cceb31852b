"""A minimal merchant ledger receiving the portal's settlement callbacks.

    pip install flask standardwebhooks
    LEDGER_SECRET=whsec_… python examples/ledger_receiver.py        # listens on 127.0.0.1:8765

Register it (development: PORTAL_ALLOW_PRIVATE_CALLBACKS=1 allows http and loopback):

    flask --app portal merchant endpoint add mer_… http://127.0.0.1:8765/callbacks

It verifies each callback with the standardwebhooks library, ignores a
``webhook-id`` it has already applied (callbacks are delivered at least once),
and answers 2xx only once the event is stored.
"""

from __future__ import annotations

import os

from flask import Flask, abort, request
from standardwebhooks import Webhook, WebhookVerificationError


def create_app(secret: str) -> Flask:
    app = Flask(__name__)
    webhook = Webhook(secret)
    applied: dict[str, dict] = {}  # a real ledger keeps this in its database
    app.config["APPLIED"] = applied

    @app.post("/callbacks")
    def callbacks():
        try:
            event = webhook.verify(request.get_data(), dict(request.headers))
        except WebhookVerificationError:
            abort(400)
        event_id = request.headers["webhook-id"]
        if event_id in applied:
            return {"status": "already applied"}, 200
        if event["type"] == "payment.succeeded":
            pr, payment = event["data"]["payment_request"], event["data"]["payment"]
            print(
                f"settled {payment['amount']} {payment['currency']} for {pr['kind']} "
                f"{pr['reference']} (customer {pr['customer']['reference']}), "
                f"lines {pr.get('statement', {}).get('line_references', [])}"
            )
        applied[event_id] = event
        return {"status": "applied"}, 200

    return app


if __name__ == "__main__":
    create_app(os.environ["LEDGER_SECRET"]).run(host="127.0.0.1", port=8765)
