"""CPU per Stripe fulfilment in-process, and where it goes (``cProfile`` on CPU time).

    .venv/bin/python -m bench.experiment 'portal:create_app()'   # seeds portal_bench_exp once
    .venv/bin/python -m bench.webhook_profile                    # 300 events: ms CPU per post
    .venv/bin/python -m bench.webhook_profile --profile --sort tottime

As ``bench.page_profile`` for the page: open statements of the experiment database get a
Stripe attempt in ``processing`` (``bench.seed.seed_stripe_payments``), and the Flask test
client posts each one's signed ``payment_intent.succeeded`` (the bench's own event, 10 %
duplicates as in ``make bench``) to ``/webhooks/stripe``. Every event pays a statement, so
the database holds about ten runs of 300; drop ``portal_bench_exp`` to seed it again.
"""

from __future__ import annotations

import os
import time

from bench import inprocess, seed
from bench.scenarios import WEBHOOK_SECRET, stripe_event, stripe_signature


def main(argv: list[str] | None = None) -> int:
    parser = inprocess.parser(__doc__, "events", 300)
    args = parser.parse_args(argv)
    os.environ.update(
        PORTAL_PAYMENT_PROVIDER="stripe",
        STRIPE_SECRET_KEY="sk_test_bench",
        STRIPE_PUBLISHABLE_KEY="pk_test_bench",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE="http://127.0.0.1:9",  # a handler that called Stripe would fail
        PORTAL_WEBHOOK_RATE_LIMIT="1000000 per second",
    )
    app = inprocess.portal_app(args.db)
    prefix = f"prof{os.getpid()}"
    warm = 20
    payments = seed.seed_stripe_payments(app, args.events + warm, prefix)
    if len(payments) < args.events + warm:
        parser.error("not enough open statements left: drop portal_bench_exp and seed it again")
    now = int(time.time())
    posts = []
    for n, payment in enumerate(payments):
        body = stripe_event(payment, n, prefix, now)
        posts.append((stripe_signature(body, WEBHOOK_SECRET, now), body))
        if n % 9 == 8:  # a duplicate of the one before, as Stripe's retries
            posts.append(posts[-2])
    client = app.test_client()

    def post(n: int) -> None:
        signature, body = posts[n]
        response = client.post(
            "/webhooks/stripe", data=body, content_type="application/json",
            headers={"Stripe-Signature": signature},
        )  # fmt: skip
        assert response.status_code == 200, response.get_data(as_text=True)

    for n in range(warm):
        post(n)
    inprocess.measure(lambda n: post(warm + n), len(posts) - warm, "post", args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
