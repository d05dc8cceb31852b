"""The measured scenarios. Each takes the run's context and returns its figures.

A scenario whose product code is not there raises :class:`NotMeasured` with the
reason; the report then says "not measured: <why>" instead of a number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from bench import seed
from bench.servers import run_wrk

if TYPE_CHECKING:
    from bench.run import Context


class NotMeasured(Exception):
    """The scenario cannot run (yet): the message says why."""


def _tokens(ctx: Context, ids: list[str]) -> list[str]:
    from portal.links import link_token

    with ctx.app.app_context():
        return [link_token(i) for i in ids]


def _page_paths(ctx: Context) -> tuple[str, str]:
    tokens = _tokens(ctx, ctx.seeded.measured_ids)
    path = ctx.work / "page_paths.txt"
    path.write_text("".join(f"/p/{t}\n" for t in tokens))
    return str(path), f"/p/{tokens[0]}"


def _page_shape(url: str) -> dict[str, Any]:
    """What one page holds: status, size, and how many of the 20 statement lines it shows."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read().decode()
        status = resp.status
    return {
        "status": status,
        "page_bytes": len(body),
        "lines_shown": sum(1 for i in range(20) if f"T-{40000 + i}" in body),
    }


def statement_page(ctx: Context) -> dict[str, Any]:
    paths, sample = _page_paths(ctx)
    with ctx.portal() as server:
        shape = _page_shape(server.url + sample)
        result = ctx.wrk(server.url, "paths.lua", {"BENCH_PATHS": paths})
        result["rss_mb"] = server.worker_rss_mb()
    result.update(shape, rows=ctx.seeded.rows)
    return result


def api_create(ctx: Context) -> dict[str, Any]:
    body = seed.statement_body(20, reference="__REF__")
    body_path = ctx.work / "api_body.json"
    body_path.write_text(json.dumps(body))
    run_id = f"API{ctx.plan.db_name[-6:]}"
    with ctx.portal() as server:
        result = ctx.wrk(
            server.url,
            "api_create.lua",
            {
                "BENCH_BODY": str(body_path),
                "BENCH_AUTH": f"Bearer {ctx.seeded.api_key}",
                "BENCH_RUN": run_id,
            },
            connections=ctx.plan.api_connections,
        )
        result["rss_mb"] = server.worker_rss_mb()
    with ctx.app.app_context():
        from portal.extensions import db

        created = db.session.execute(
            text("SELECT count(*) FROM payment_requests WHERE reference LIKE :p"),
            {"p": f"{run_id}-%"},
        ).scalar_one()
        db.session.remove()
    result["created_rows"] = created
    return result


def _has_route(ctx: Context, prefix: str) -> bool:
    return any(rule.rule.startswith(prefix) for rule in ctx.app.url_map.iter_rules())


def support_search(ctx: Context) -> dict[str, Any]:
    if not _has_route(ctx, "/support"):
        raise NotMeasured("no /support console in the app yet (portal/support/)")
    raise NotMeasured("the support console exists but the bench scenario is not written yet")


WEBHOOK_SECRET = "whsec_bench_0123456789abcdef0123456789abcdef"  # a test secret, bench only


def stripe_signature(body: str, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value, as Stripe (and the ``stripe`` library) compute it."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def stripe_event(payment: dict[str, Any], n: int, prefix: str, created: int) -> str:
    """A ``payment_intent.succeeded`` event as Stripe sends it (charge expanded, as localstripe)."""
    intent = {
        "id": payment["provider_payment_id"],
        "object": "payment_intent",
        "amount": payment["amount"],
        "amount_received": payment["amount"],
        "currency": payment["currency"].lower(),
        "status": "succeeded",
        "livemode": False,
        "metadata": {"payment_id": payment["id"], "payment_request_id": payment["request_id"]},
        "payment_method_types": ["card"],
        "latest_charge": {
            "id": f"ch_{prefix}_{n}",
            "object": "charge",
            "amount": payment["amount"],
            "currency": payment["currency"].lower(),
            "status": "succeeded",
            "paid": True,
            "payment_method_details": {
                "type": "card",
                "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
            },
        },
    }
    event = {
        "id": f"evt_{prefix}_{n}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "type": "payment_intent.succeeded",
        "data": {"object": intent},
    }
    return json.dumps(event, separators=(",", ":"))


def _webhook_file(path: Path, payments: list[dict[str, Any]], prefix: str) -> int:
    """Signed requests with 10 % duplicates (every 10th line repeats an earlier event)."""
    now = int(time.time())
    rng = random.Random(8)
    sent: list[str] = []
    lines = []
    for n, payment in enumerate(payments):
        body = stripe_event(payment, n, prefix, now)
        sent.append(body)
        lines.append(f"{stripe_signature(body, WEBHOOK_SECRET, now)}\t{body}\n")
        if n % 9 == 8:
            dup = rng.choice(sent)
            lines.append(f"{stripe_signature(dup, WEBHOOK_SECRET, now)}\t{dup}\n")
    path.write_text("".join(lines))
    return len(lines)


def stripe_env(ctx: Context) -> dict[str, str]:
    from bench.servers import free_port

    return {
        **ctx.portal_env,
        "PORTAL_PAYMENT_PROVIDER": "stripe",
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_bench",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # Nothing listens there: a handler that called Stripe would fail, not leave the machine.
        "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",
    }


def webhook_ingest(ctx: Context) -> dict[str, Any]:
    if not _has_route(ctx, "/webhooks/stripe"):
        raise NotMeasured("no /webhooks/stripe endpoint in the app yet (portal/webhooks/)")
    prefix = f"wh{int(time.time()) % 100000}"
    # Enough unique events that wrk never wraps around (which would add duplicates).
    count = 300 if ctx.plan.smoke else 8_000
    payments = seed.seed_stripe_payments(ctx.app, count, prefix)
    requests_file = ctx.work / "webhooks.txt"
    lines = _webhook_file(requests_file, payments, prefix)
    with ctx.portal(stripe_env(ctx)) as server:
        t0 = time.monotonic()
        result = run_wrk(
            server.url,
            "signed_posts.lua",
            ctx.plan.duration_s,
            ctx.plan.api_connections,
            env={
                "BENCH_REQUESTS": str(requests_file),
                "BENCH_PATH": "/webhooks/stripe",
                "BENCH_HEADER": "Stripe-Signature",
            },
        )
        wall = time.monotonic() - t0
    like = f"pay\\_{prefix}\\_%"
    with ctx.app.app_context():
        from portal.extensions import db

        q = db.session.execute
        fulfilled = q(
            text(
                "SELECT count(*) FROM payments p WHERE p.id LIKE :like AND p.status = 'succeeded' "
                "AND EXISTS (SELECT 1 FROM events e WHERE e.payment_id = p.id "
                "AND e.type = 'payment.succeeded')"
            ),
            {"like": like},
        ).scalar_one()
        doubles = q(
            text(
                "SELECT count(*) FROM (SELECT payment_id FROM events WHERE payment_id LIKE :like "
                "AND type = 'payment.succeeded' GROUP BY payment_id HAVING count(*) > 1) d"
            ),
            {"like": like},
        ).scalar_one()
        db.session.remove()
    seconds = result["duration_us"] / 1e6
    result.update(
        rate=fulfilled / seconds if seconds else 0.0,
        fulfilled=fulfilled,
        double_fulfilments=doubles,
        events_prepared=lines,
        wall_s=round(wall, 1),
        wrapped=result["requests"] > lines,
        note=f"{result['requests']} posts, {fulfilled} payments fulfilled",
    )
    return result


def callback_latency(ctx: Context) -> dict[str, Any]:
    raise NotMeasured("no callback endpoints/deliveries in the code yet (portal/ledger, jobs)")


def callback_throughput(ctx: Context) -> dict[str, Any]:
    raise NotMeasured("no callback endpoints/deliveries in the code yet (portal/ledger, jobs)")
