"""Bench data on PostgreSQL, made fast with server-side SQL.

A few rows are made through the real services (merchants, keys, one 20-line
statement and one 3-line statement used as templates); everything else is
copied from those templates with ``INSERT … SELECT … generate_series`` so that
a million payment requests take well under a minute. Columns are copied
generically from the template row (whatever columns the models have today),
overriding only those that make rows distinct: id, merchant, reference,
customer, status, dates.

Row numbers ``1..measured`` are the statements whose pages are measured (20
lines each); the rest are filler statements with 3 lines, spread over
``MERCHANTS`` merchants and a year of creation dates, 70 % of them paid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url

from portal.extensions import db
from portal.merchants.services import create_api_key, create_merchant
from portal.payment_requests.services import create_payment_request

MERCHANTS = 20
# Distinct customers: each has about rows / CUSTOMERS requests (5 at a million rows).
CUSTOMERS = 200_000
DESCRIPTIONS = [
    "Bread and pastries",
    "Coffee beans 1 kg",
    "Lunch menu",
    "Wine, Côtes du Rhône 2022",
    "Birthday cake (pre-order)",
    "Newspapers, monthly",
    "Croissants x6",
    "Catering, staff meeting",
    "Cheese platter",
    "Delivery fee",
]


def sa_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def database_url(admin_url: str, name: str) -> str:
    return make_url(sa_url(admin_url)).set(database=name).render_as_string(hide_password=False)


def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create ``name``; returns its URL."""
    admin = create_engine(sa_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(sa_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def statement_body(lines: int, reference: str = "TEMPLATE") -> dict:
    """A realistic statement with ``lines`` activity lines (also the API create body)."""
    start = date(2026, 10, 1)
    items = [
        {
            "date": (start + timedelta(days=i % 30)).isoformat(),
            "description": DESCRIPTIONS[i % len(DESCRIPTIONS)],
            "amount": 250 + (i * 1375) % 9000,
            "reference": f"T-{40000 + i}",
        }
        for i in range(lines)
    ]
    balance = sum(item["amount"] for item in items)
    return {
        "kind": "statement",
        "currency": "EUR",
        "amount": balance,
        "reference": reference,
        "description": "Your account, October 2026",
        "customer": {
            "name": "Jan Peeters",
            "email": "jan.peeters@example.com",
            "locale": "nl",
            "reference": "C-1",
        },
        "due_date": (date.today() + timedelta(days=20)).isoformat(),
        "statement": {
            "period_start": "2026-10-01",
            "period_end": "2026-10-31",
            "balance": balance,
            "lines": items,
        },
    }


@dataclass
class Seeded:
    url: str
    merchant_ids: list[str]
    api_key: str
    measured_ids: list[str]
    small_template: str = ""
    rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _columns(engine: Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = :t AND table_schema = 'public' ORDER BY ordinal_position"
                ),
                {"t": table},
            ).scalars()
        )


SERIES = "generate_series(CAST(:first AS bigint), CAST(:last AS bigint))"


def _request_id_sql() -> str:
    # 'pr_' + 22 characters, distinct per row number g.
    return "'pr_b' || lpad(to_hex(g), 7, '0') || substr(md5(g::text), 1, 14)"


def measured_id(g: int) -> str:
    import hashlib

    return f"pr_b{g:07x}{hashlib.md5(str(g).encode()).hexdigest()[:14]}"


def _copy_requests(engine: Engine, template_id: str, first: int, last: int, paid: bool) -> None:
    """Copy the template request into rows first..last (inclusive)."""
    overrides = {
        "id": _request_id_sql(),
        "merchant_id": "(CAST(:merchants AS text[]))[1 + g % CAST(:count AS int)]",
        "reference": "'STMT-' || g",
        "customer_email": f"'customer' || (g % {CUSTOMERS}) || '@example.com'",
        "customer_name": f"'Customer ' || (g % {CUSTOMERS})",
        "customer_reference": f"'C-' || (g % {CUSTOMERS})",
        "created_at": "t.created_at - g * interval '30 seconds'",
        "updated_at": "t.created_at - g * interval '30 seconds'",
    }
    if paid:
        overrides["status"] = "CASE WHEN g % 10 < 7 THEN 'paid' ELSE t.status END"
        overrides["amount_paid"] = "CASE WHEN g % 10 < 7 THEN t.amount ELSE t.amount_paid END"
        overrides["paid_at"] = (
            "CASE WHEN g % 10 < 7 THEN t.created_at - g * interval '30 seconds' "
            "+ interval '2 days' ELSE t.paid_at END"
        )
    cols = _columns(engine, "payment_requests")
    exprs = [overrides.get(c, f"t.{c}") for c in cols]
    quoted = ", ".join(f'"{c}"' for c in cols)
    with engine.begin() as conn:
        merchants = list(
            conn.execute(text("SELECT id FROM merchants ORDER BY created_at, id")).scalars()
        )
        conn.execute(
            text(
                f"INSERT INTO payment_requests ({quoted}) "
                f"SELECT {', '.join(exprs)} FROM payment_requests t, "
                f"{SERIES} AS g WHERE t.id = :template"
            ),
            {
                "merchants": merchants,
                "count": len(merchants),
                "first": first,
                "last": last,
                "template": template_id,
            },
        )
        line_cols = [c for c in _columns(engine, "statement_lines") if c not in {"id"}]
        line_exprs = ["pr.id" if c == "request_id" else f"l.{c}" for c in line_cols]
        conn.execute(
            text(
                f"INSERT INTO statement_lines ({', '.join(line_cols)}) "
                f"SELECT {', '.join(line_exprs)} FROM statement_lines l, "
                f"(SELECT {_request_id_sql()} AS id FROM {SERIES} AS g) pr "
                "WHERE l.request_id = :template"
            ),
            {"first": first, "last": last, "template": template_id},
        )


def seed_base(app: Flask, measured: int, total: int) -> Seeded:
    """Schema, merchants, templates, the measured statements and filler up to ``total``."""
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with app.app_context():
        db.create_all()
        merchants = [
            create_merchant(f"Bench Shop {i}", "EUR", ceiling="100000.00", locale="nl")
            for i in range(MERCHANTS)
        ]
        db.session.commit()
        first = merchants[0]
        api_key = create_api_key(first, label="bench")
        big = create_payment_request(first, statement_body(20))
        small = create_payment_request(first, statement_body(3, "TEMPLATE-3"))
        db.session.commit()
        big_id, small_id = big.id, small.id
        merchant_ids = [m.id for m in merchants]
        engine = db.engine
        timings["schema_and_templates_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        _copy_requests(engine, big_id, 1, measured, paid=False)
        timings["measured_s"] = time.monotonic() - t1
        seeded = Seeded(
            url=str(engine.url.render_as_string(hide_password=False)),
            merchant_ids=merchant_ids,
            api_key=api_key,
            measured_ids=[measured_id(g) for g in range(1, measured + 1)],
            small_template=small_id,
            rows=measured + 2,
            timings=timings,
        )
        grow(app, seeded, total)
        db.session.remove()
    return seeded


def grow(app: Flask, seeded: Seeded, total: int, chunk: int = 250_000) -> float:
    """Add filler statements until the table holds ``total`` requests; returns seconds."""
    t0 = time.monotonic()
    with app.app_context():
        engine = db.engine
        first = len(seeded.measured_ids) + 1
        start = max(first, seeded.rows - 1)
        last = total - 2
        g = start
        while g <= last:
            end = min(g + chunk - 1, last)
            _copy_requests(engine, seeded.small_template, g, end, paid=True)
            g = end + 1
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE payment_requests"))
            conn.execute(text("VACUUM ANALYZE statement_lines"))
            # Flush the seed's dirty pages now, not during the measured runs (the checkpoint
            # the seed set off writes them out paced over minutes).
            conn.execute(text("CHECKPOINT"))
            seeded.rows = conn.execute(text("SELECT count(*) FROM payment_requests")).scalar_one()
        db.session.remove()
    elapsed = time.monotonic() - t0
    seeded.timings[f"grow_to_{total}_s"] = elapsed
    return elapsed


def seed_stripe_payments(app: Flask, count: int, prefix: str) -> list[dict]:
    """``count`` open requests get a Stripe payment attempt in ``processing``.

    One attempt is written through the ORM as a template, the others are copies
    (generic columns, as for requests). Returns what a webhook needs per attempt.
    """
    from portal.payments.models import Payment

    with app.app_context():
        engine = db.engine
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, merchant_id, amount, currency FROM payment_requests r "
                    "WHERE status = 'open' AND reference LIKE 'STMT-%' AND NOT EXISTS ("
                    "SELECT 1 FROM payments p WHERE p.request_id = r.id "  # one open attempt
                    "AND p.status IN ('pending', 'processing')) ORDER BY id DESC LIMIT :n"
                ),
                {"n": count + 1},
            ).all()
        head, rest = rows[0], rows[1:]
        template = Payment(
            request_id=head.id,
            merchant_id=head.merchant_id,
            amount=head.amount,
            currency=head.currency,
            status="processing",
            provider="stripe",
            provider_payment_id=f"pi_{prefix}_template",
            receipt_email="customer@example.com",
            locale="nl",
            provider_data={},
        )
        db.session.add(template)
        db.session.commit()
        template_id = template.id
        overrides = {
            "id": "'pay_' || :prefix || '_' || r.n",
            "request_id": "r.id",
            "merchant_id": "r.merchant_id",
            "amount": "r.amount",
            "currency": "r.currency",
            "provider_payment_id": "'pi_' || :prefix || '_' || r.n",
        }
        cols = _columns(engine, "payments")
        exprs = [overrides.get(c, f"t.{c}") for c in cols]
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO payments ({', '.join(cols)}) SELECT {', '.join(exprs)} "
                    "FROM payments t, (SELECT id, merchant_id, amount, currency, "
                    "row_number() OVER (ORDER BY id) AS n FROM payment_requests "
                    "WHERE id = ANY(CAST(:ids AS text[]))) r WHERE t.id = :template"
                ),
                {"prefix": prefix, "ids": [r.id for r in rest], "template": template_id},
            )
            out = conn.execute(
                text(
                    "SELECT id, request_id, amount, currency, provider_payment_id FROM payments "
                    "WHERE provider_payment_id LIKE :like ORDER BY id"
                ),
                {"like": f"pi\\_{prefix}\\_%"},
            ).all()
        db.session.remove()
    return [dict(r._mapping) for r in out if not r.provider_payment_id.endswith("_template")]


def _copy(
    conn: Connection,
    table: str,
    cols: list[str],
    overrides: dict[str, str],
    source: str,
    **params: object,
) -> None:
    """``INSERT INTO table`` a copy of each row that ``source`` joins to, column by column
    as the template row has it except ``overrides`` (SQL expressions over ``t``, ``tpl``
    and ``g``)."""
    names = [c for c in cols if c != "id" or "id" in overrides]
    exprs = [overrides.get(c, f"t.{c}") for c in names]
    conn.execute(
        text(f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(exprs)} {source}"),
        params,
    )


def seed_callback_backlog(
    app: Flask, templates: list[str], first: int, last: int, tag: str, start: float
) -> None:
    """Copies ``first..last`` of each template event (one per merchant), each with its
    delivery and its ``deliver_callback`` job, as ``record_event`` writes them.

    Merchant ``n``'s jobs became due ``n`` minutes after ``start`` (epoch seconds):
    merchant 0 has the oldest backlog, so a worker serving the oldest first would make
    the last merchant wait for everyone else's.
    """
    with app.app_context():
        engine = db.engine
        cols = {t: _columns(engine, t) for t in ("events", "callback_deliveries", "jobs")}
        series = "generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g"
        event_id = "'evt_' || :tag || '_' || tpl.n || '_' || g"
        delivery_id = "'del_' || :tag || '_' || tpl.n || '_' || g"
        params = {"first": first, "last": last, "tag": tag}
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TEMP TABLE backlog_templates ON COMMIT DROP AS "
                    "SELECT n - 1 AS n, e.id AS event_id, d.id AS delivery_id "
                    "FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS x(id, n) "
                    "JOIN events e ON e.id = x.id JOIN callback_deliveries d ON d.event_id = e.id"
                ),
                {"ids": templates},
            )
            _copy(
                conn, "events", cols["events"],
                {"id": event_id, "seq": "t.seq + g", "created_at": "now()"},
                f"FROM events t JOIN backlog_templates tpl ON t.id = tpl.event_id, {series}",
                **params,
            )  # fmt: skip
            _copy(
                conn, "callback_deliveries", cols["callback_deliveries"],
                {"id": delivery_id, "event_id": event_id, "created_at": "now()"},
                "FROM callback_deliveries t JOIN backlog_templates tpl "
                f"ON t.id = tpl.delivery_id, {series}",
                **params,
            )  # fmt: skip
            _copy(
                conn, "jobs", cols["jobs"],
                {
                    "payload": f"json_build_object('delivery_id', {delivery_id})",
                    "status": "'queued'",
                    "run_at": "to_timestamp(:start) AT TIME ZONE 'UTC' "
                    "+ tpl.n * interval '1 minute' + g * interval '1 millisecond'",
                    "created_at": "now()",
                },
                "FROM jobs t JOIN backlog_templates tpl "
                f"ON t.payload ->> 'delivery_id' = tpl.delivery_id, {series}",
                start=start, **params,
            )  # fmt: skip
            # Events recorded later for these merchants must not take a copied sequence number.
            conn.execute(
                text(
                    "UPDATE merchants m SET event_seq = greatest(m.event_seq, e.seq + :last) "
                    "FROM backlog_templates tpl JOIN events e ON e.id = tpl.event_id "
                    "WHERE m.id = e.merchant_id"
                ),
                params,
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))
        db.session.remove()
