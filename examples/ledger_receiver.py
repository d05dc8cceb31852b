"""A minimal merchant ledger receiving the portal's settlement callbacks.

    pip install flask standardwebhooks
    python examples/ledger_receiver.py --port 8765 --secret whsec_…

It listens on 127.0.0.1 (``--host`` to change) and takes the endpoint's signing
secret from ``--secret`` (or the ``LEDGER_SECRET`` environment variable, which
keeps it out of the process list). Register it with the portal (development:
PORTAL_ALLOW_PRIVATE_CALLBACKS=1 allows http and loopback):

    flask --app portal merchant endpoint add mer_… http://127.0.0.1:8765/callbacks

or, for the demo merchant of ``make run``, ``flask --app portal demo --ledger
http://127.0.0.1:8765/callbacks`` (docs/callbacks.md).

It verifies each callback with the standardwebhooks library, ignores a
``webhook-id`` it has already applied (callbacks are delivered at least once),
and answers 2xx only once the event is stored.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

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
                f"lines {pr.get('statement', {}).get('line_references', [])}",
                flush=True,
            )
        applied[event_id] = event
        return {"status": "applied"}, 200

    return app


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="An example ledger for the portal's callbacks.")
    parser.add_argument("--port", type=int, default=8765, help="default: 8765")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument(
        "--secret",
        default=os.environ.get("LEDGER_SECRET"),
        help="the endpoint's whsec_… signing secret (default: $LEDGER_SECRET)",
    )
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("give the endpoint's signing secret: --secret whsec_… (or LEDGER_SECRET)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"ledger receiver on http://{args.host}:{args.port}/callbacks", flush=True)
    create_app(args.secret).run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
