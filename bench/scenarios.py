"""The measured scenarios. Each takes the run's context and returns its figures.

A scenario whose product code is not there raises :class:`NotMeasured` with the
reason; the report then says "not measured: <why>" instead of a number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from bench import seed
from bench.servers import cpu_seconds, measured_wrk, start_spies, stop_spies

if TYPE_CHECKING:
    from flask import Flask

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
        result = ctx.wrk(server, "paths.lua", {"BENCH_PATHS": paths})
        result["rss_mb"] = server.worker_rss_mb()
    result.update(shape, rows=ctx.seeded.rows)
    return result


def lean_page(ctx: Context) -> dict[str, Any]:
    """The lean reference page (bench/lean.py) on the same data and load as the portal's."""
    from bench.servers import Server

    paths, sample = _page_paths(ctx)
    with Server(
        "bench.lean:create_app()", ctx.portal_env, ctx.plan.gunicorn, "/healthz", ctx.log_path
    ) as server:
        shape = _page_shape(server.url + sample)
        result = ctx.wrk(server, "paths.lua", {"BENCH_PATHS": paths})
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
            server,
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
    """An agent's search by customer email (indexed equality), signed in, over every merchant."""
    if not _has_route(ctx, "/support"):
        raise NotMeasured("no /support console in the app yet (portal/support/)")
    import secrets
    from urllib.parse import quote

    with ctx.app.app_context():
        from portal.extensions import db
        from portal.support.auth import create_staff
        from portal.support.models import StaffSession

        user, _ = create_staff(
            f"bench-{secrets.token_hex(4)}@bench.test", "support", [], secrets.token_urlsafe(16)
        )
        session_id = secrets.token_urlsafe(32)
        db.session.add(StaffSession(id=session_id, user_id=user.id))
        db.session.commit()
        db.session.remove()
    customers = min(seed.CUSTOMERS, ctx.seeded.rows)
    picks = random.sample(range(customers), min(500, customers))
    path = ctx.work / "search_paths.txt"
    path.write_text(
        "".join(f"/support/search?q={quote(f'customer{i}@example.com')}\n" for i in picks)
    )
    cookie = f"portal_support_dev={session_id}"
    with ctx.portal() as server:
        request = urllib.request.Request(
            f"{server.url}/support/search?q=customer{picks[0]}%40example.com",
            headers={"Cookie": cookie},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = resp.read().decode()
        if "/support/requests/pr_" not in body:
            raise NotMeasured("the search page found nothing for a seeded email")
        env = {"BENCH_PATHS": str(path), "BENCH_COOKIE": cookie}
        # Issue 18's two figures: latency at 8 connections (agents at their desks), and
        # throughput at the pages' 32 (compared with the statement page's).
        result = ctx.wrk(server, "paths.lua", env)
        result["at_8"] = ctx.wrk(server, "paths.lua", env, connections=8)
    result["rows"] = ctx.seeded.rows
    return result


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
    if not _has_route(ctx, "/webhooks/"):
        raise NotMeasured("no /webhooks/stripe endpoint in the app yet (portal/webhooks/)")
    prefix = f"wh{int(time.time()) % 100000}"
    # Enough unique events that wrk never wraps around (which would add duplicates).
    count = 150 if ctx.plan.smoke else 8_000
    payments = seed.seed_stripe_payments(ctx.app, count, prefix)
    requests_file = ctx.work / "webhooks.txt"
    lines = _webhook_file(requests_file, payments, prefix)
    with ctx.portal(stripe_env(ctx)) as server:
        t0 = time.monotonic()
        result = measured_wrk(
            server,
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
        # per fulfilled event: the duplicates' cost is part of what a fulfilment costs
        cpu_ms_per_req=1000 * result["worker_cpu_s"] / fulfilled if fulfilled else None,
        fulfilled=fulfilled,
        double_fulfilments=doubles,
        events_prepared=lines,
        wall_s=round(wall, 1),
        wrapped=result["requests"] > lines,
        note=f"{result['requests']} posts, {fulfilled} payments fulfilled",
    )
    return result


def _callbacks_ready(ctx: Context) -> None:
    try:
        from portal.jobs.queue import HANDLERS
        from portal.ledger import callbacks  # noqa: F401
    except ImportError as exc:
        raise NotMeasured(f"no callback delivery code yet ({exc})") from None
    if "deliver_callback" not in HANDLERS:
        raise NotMeasured("no deliver_callback job handler registered")


def _endpoints(ctx: Context, url: str) -> None:
    """Every bench merchant gets one callback endpoint pointing at the local receiver."""
    from portal.extensions import db
    from portal.ledger.callbacks import add_endpoint
    from portal.ledger.models import CallbackEndpoint

    with ctx.app.app_context():
        db.session.execute(
            text("UPDATE callback_endpoints SET enabled = false WHERE url <> :u"), {"u": url}
        )
        have = set(
            db.session.scalars(
                db.select(CallbackEndpoint.merchant_id).where(
                    CallbackEndpoint.url == url, CallbackEndpoint.enabled.is_(True)
                )
            ).all()
        )
        merchants = db.session.scalars(text("SELECT id FROM merchants")).all()
        for merchant_id in merchants:
            if merchant_id not in have:
                add_endpoint(merchant_id, url)
        db.session.commit()
        db.session.remove()


class Workers:
    """``count`` worker processes (``flask --app portal worker``), stopped with SIGTERM."""

    def __init__(self, ctx: Context, count: int, threads: int | None = None) -> None:
        self.ctx, self.count, self.threads = ctx, count, threads
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Workers:
        from bench.run import ensure_schema
        from bench.servers import ROOT

        ensure_schema(self.ctx.seeded.url, once=self.ctx.plan.smoke)
        env = {**os.environ, **self.ctx.portal_env, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "flask", "--app", "portal", "worker"]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        log = open(self.ctx.log_path, "ab")
        self.log = log
        for _ in range(self.count):
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log))
        self.spies: list[subprocess.Popen[bytes]] = []
        if self.ctx.plan.profile:  # job workers are profiled like gunicorn's (--profile)
            time.sleep(1)  # past the interpreter's start, into the worker loop
            pids = [p.pid for p in self.procs]
            self.spies = start_spies(pids, self.ctx.profile_dir())
        return self

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def __exit__(self, *exc: object) -> None:
        stop_spies(self.spies)
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.log.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def callback_latency(ctx: Context) -> dict[str, Any]:
    """Fulfil payments one at a time; time from commit to the receiver getting the callback."""
    _callbacks_ready(ctx)
    from bench.receiver import Receiver
    from portal.extensions import db
    from portal.payments.services import fulfil_payment

    count = 5 if ctx.plan.smoke else 200
    prefix = f"cl{int(time.time()) % 100000}"
    payments = seed.seed_stripe_payments(ctx.app, count, prefix)
    latencies: list[float] = []
    missing = 0
    with Receiver() as receiver:
        _endpoints(ctx, receiver.url)
        with Workers(ctx, 1) as workers:
            time.sleep(1.5)  # let the worker start and go idle
            if not workers.alive():
                raise RuntimeError("the worker process exited at start (see the log)")
            for payment in payments:
                with ctx.app.app_context():
                    fulfil_payment(payment["id"])
                    db.session.commit()
                    committed = time.time()
                    event_id = db.session.execute(
                        text(
                            "SELECT id FROM events WHERE payment_id = :p "
                            "AND type = 'payment.succeeded'"
                        ),
                        {"p": payment["id"]},
                    ).scalar_one()
                    db.session.remove()
                deadline = time.monotonic() + 10
                while event_id not in receiver.arrivals and time.monotonic() < deadline:
                    time.sleep(0.002)
                if event_id in receiver.arrivals:
                    latencies.append(receiver.arrivals[event_id] - committed)
                else:
                    missing += 1
                time.sleep(0.02)
    if not latencies:
        raise RuntimeError(f"no callback arrived within 10 s ({missing} missing)")
    return {
        "count": len(latencies),
        "missing": missing,
        "p50_s": _percentile(latencies, 0.5),
        "p99_s": _percentile(latencies, 0.99),
        "max_s": max(latencies),
        "note": f"{len(latencies)} payments, {missing} callbacks missing after 10 s",
    }


def _drain_jobs(ctx: Context) -> None:
    """Mark every queued or running job of the bench database done (between scenarios)."""
    with ctx.app.app_context():
        from portal.extensions import db

        db.session.execute(
            text(
                "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL "
                "WHERE status IN ('queued', 'running')"
            )
        )
        db.session.commit()
        db.session.remove()


_SUCCEEDED_PER_MERCHANT = text(
    "SELECT DISTINCT ON (merchant_id) request_id, id FROM payments "
    "WHERE status = 'succeeded' ORDER BY merchant_id, id"
)


def queue_refund_callbacks(app: Flask, count: int) -> tuple[float, int]:
    """Record ``count`` events (real ones, through record_event) for succeeded payments of
    every merchant, so each endpoint gets its share of callbacks; fulfils a few payments
    first when there is none. Returns (the seconds the recording took, the merchants)."""
    from portal.extensions import db
    from portal.ledger.services import record_event
    from portal.payment_requests.models import PaymentRequest
    from portal.payments.models import Payment

    with app.app_context():
        pairs = db.session.execute(_SUCCEEDED_PER_MERCHANT).all()
        if not pairs:
            db.session.remove()
            from portal.payments.services import fulfil_payment

            for payment in seed.seed_stripe_payments(app, 20, "cbt"):
                fulfil_payment(payment["id"])
                db.session.commit()
            pairs = db.session.execute(_SUCCEEDED_PER_MERCHANT).all()
        objects = [
            (db.session.get(PaymentRequest, r), db.session.get(Payment, p)) for r, p in pairs
        ]
        t0 = time.monotonic()
        for i in range(count):
            pr, payment = objects[i % len(objects)]
            # The database allows one payment.succeeded per payment: a type it does not
            # count, with the same request-and-payment body, for as many as are wanted.
            record_event("payment.refunded", pr, payment)
            if i % 200 == 199:
                db.session.commit()
        db.session.commit()
        queue_s = time.monotonic() - t0
        db.session.remove()  # as in a worker: no request or payment held by the session
    return queue_s, len(pairs)


def callback_throughput(ctx: Context) -> dict[str, Any]:
    """Queue N callbacks (real events through record_event), then 2 workers deliver them all."""
    _callbacks_ready(ctx)
    from bench.receiver import Receiver

    count = 200 if ctx.plan.smoke else 10_000
    _drain_jobs(ctx)  # only these callbacks in the queue (no leftovers of earlier scenarios)
    with Receiver() as receiver:
        _endpoints(ctx, receiver.url)
        queue_s, merchants = queue_refund_callbacks(ctx.app, count)
        before = len(receiver.arrivals)
        with Workers(ctx, 2) as workers:
            pids = [proc.pid for proc in workers.procs]
            started, cpu0 = time.time(), cpu_seconds(pids)
            done = receiver.wait_for(before + count, timeout=30 if ctx.plan.smoke else 120)
            finished, worker_cpu = time.time(), cpu_seconds(pids) - cpu0
            alive = workers.alive()
        arrivals = sorted(receiver.arrivals.values())[before:]
    _drain_jobs(ctx)
    delivered = len(arrivals)
    if delivered < 2:
        raise RuntimeError(f"only {delivered} callbacks delivered (workers alive: {alive})")
    span = arrivals[-1] - arrivals[0]
    return {
        "queued": count,
        "delivered": delivered,
        "all_delivered": done,
        "rate": (delivered - 1) / span if span > 0 else 0.0,
        "rate_from_start": delivered / (finished - started),
        "endpoints": merchants,
        "queue_s": round(queue_s, 1),
        "cpu_ms_per_req": worker_cpu * 1000 / delivered,
        "note": (
            f"{delivered}/{count} delivered to {merchants} endpoints; "
            f"rate from first to last arrival"
        ),
    }


BACKLOG_MERCHANTS = 50


def _backlog_templates(ctx: Context, url: str) -> list[str]:
    """50 merchants of the backlog's own, each with an endpoint at the receiver (the path
    names the merchant) and one event through ``record_event``: its backlog's template."""
    from portal.extensions import db
    from portal.jobs.models import Job
    from portal.ledger.callbacks import add_endpoint
    from portal.ledger.services import record_event
    from portal.merchants.services import create_merchant
    from portal.payment_requests.services import create_payment_request

    tag = f"b{int(time.time()) % 100000}"
    with ctx.app.app_context():
        db.session.execute(text("UPDATE callback_endpoints SET enabled = false"))
        events = []
        for n in range(BACKLOG_MERCHANTS):
            merchant = create_merchant(f"Backlog Shop {tag} {n}", "EUR", locale="nl")
            add_endpoint(merchant.id, f"{url}/m{n}")
            request = create_payment_request(merchant, seed.statement_body(3, f"BACKLOG-{n}"))
            events.append(record_event("payment_request.voided", request).id)
        db.session.flush()
        db.session.query(Job).filter(Job.status == "queued").update({"status": "done"})
        db.session.commit()
        db.session.remove()
    return events


def _claim_times(ctx: Context, claims: int, batch: int = 8) -> dict[str, Any]:
    """``claims`` claims of ``batch`` jobs in this process, timed (its commit included).
    Each claimed job is then marked done, as a worker would after delivering it, so the
    next claim meets the queues as they would be; ``claims`` times ``batch`` jobs leave the
    backlog this way (they are not delivered)."""
    from portal.extensions import db
    from portal.jobs.worker import claim_jobs  # the same call before and after issue 21

    durations = []
    claimed = 0
    with ctx.app.app_context():
        for _ in range(claims):
            t0 = time.perf_counter()
            jobs = claim_jobs("bench:claim-probe", batch)
            durations.append(time.perf_counter() - t0)
            claimed += len(jobs)
            db.session.execute(
                text(
                    "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, "
                    "finished_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"
                ),
                {"ids": [job.id for job in jobs]},
            )
            db.session.commit()
        table = dict(
            db.session.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all()
        )
        db.session.remove()
    return {
        "median_ms": _percentile(durations, 0.5) * 1000,
        "p95_ms": _percentile(durations, 0.95) * 1000,
        "jobs_per_claim": claimed / claims,
        "consumed": claimed,
        "table": table,
    }


def _fairness(receiver: Any, since: int) -> dict[str, Any]:
    """Arrival order per merchant: where each merchant's first callback came, and how far
    every merchant had got when the first one had all of its callbacks."""
    order = sorted(list(receiver.arrivals.items())[since:], key=lambda item: item[1])
    merchants = [receiver.paths[webhook_id].rsplit("/m", 1)[-1] for webhook_id, _ in order]
    totals: dict[str, int] = {}
    for merchant in merchants:
        totals[merchant] = totals.get(merchant, 0) + 1
    first: dict[str, int] = {}
    done: dict[str, int] = {}
    least_done = 0.0
    for position, merchant in enumerate(merchants):
        first.setdefault(merchant, position)
        done[merchant] = done.get(merchant, 0) + 1
        if done[merchant] == totals[merchant]:
            least_done = min(done.get(m, 0) / totals[m] for m in totals)
            break
    return {
        "merchants": len(totals),  # that got at least one callback
        "last_first_arrival": max(first.values()) if first else None,
        "least_done_when_first_finished": least_done,
    }


def callback_backlog(ctx: Context) -> dict[str, Any]:
    """A growing backlog of callbacks across 50 merchants, merchant 0's the oldest: claim
    time at each size (finished jobs in the table too), then 2 workers drain it all."""
    _callbacks_ready(ctx)
    from bench.receiver import Receiver

    sizes = ctx.plan.backlog_sizes
    _drain_jobs(ctx)
    with ctx.app.app_context():
        from portal.extensions import db

        db.session.execute(
            text(
                "INSERT INTO jobs (kind, payload, status, run_at, attempts, max_attempts, "
                "created_at, finished_at) SELECT 'deliver_callback', CAST('{}' AS json), 'done', "
                "now(), 1, 1000, now(), now() FROM generate_series(1, :n)"
            ),
            {"n": ctx.plan.backlog_done},
        )
        db.session.commit()
        db.session.remove()
    result: dict[str, Any] = {"claims": {}}
    with Receiver() as receiver:
        templates = _backlog_templates(ctx, receiver.url)
        tag = f"bl{int(time.time()) % 100000}"
        start = time.time() - 3600
        each = consumed = 0
        for size in sizes:
            seed.seed_callback_backlog(
                ctx.app, templates, each + 1, size // BACKLOG_MERCHANTS, tag, start
            )
            each = size // BACKLOG_MERCHANTS
            claims = result["claims"][str(size)] = _claim_times(ctx, 5 if ctx.plan.smoke else 50)
            consumed += claims["consumed"]
            print(f"[bench] backlog {size:,}: claim median {claims['median_ms']:.1f} ms, "
                  f"p95 {claims['p95_ms']:.1f} ms", flush=True)  # fmt: skip
        total = each * BACKLOG_MERCHANTS - consumed
        before = len(receiver.arrivals)
        with Workers(ctx, 2) as workers:
            started = time.time()
            all_done = receiver.wait_for(before + total, timeout=ctx.plan.drain_seconds)
            alive = workers.alive()
            worker_cpu = cpu_seconds([proc.pid for proc in workers.procs])
        finished = time.time()
        arrivals = sorted(receiver.arrivals.values())[before:]
        fairness = _fairness(receiver, before)
    _drain_jobs(ctx)
    delivered = len(arrivals)
    if delivered < 2:
        raise RuntimeError(f"only {delivered} callbacks delivered (workers alive: {alive})")
    span = arrivals[-1] - arrivals[0]
    first = result["claims"][str(sizes[0])]["median_ms"]
    last = result["claims"][str(sizes[-1])]["median_ms"]
    result.update(
        queued=total,
        delivered=delivered,
        all_delivered=all_done,
        rate=(delivered - 1) / span if span > 0 else 0.0,
        rate_from_start=delivered / (finished - started),
        claim_growth=last / first if first else None,
        worker_cpu_ms_per_delivery=worker_cpu * 1000 / delivered,
        cpu_ms_per_req=worker_cpu * 1000 / delivered,
        fairness=fairness,
        note=(
            f"{delivered}/{total} delivered; claim median "
            + ", ".join(f"{int(s):,}: {c['median_ms']:.1f} ms" for s, c in result["claims"].items())
            + f"; {fairness['merchants']} merchants served, the last one's first callback "
            f"at #{fairness['last_first_arrival']}; "
            f"{worker_cpu * 1000 / delivered:.1f} ms of worker CPU per delivery"
        ),
    )
    return result
