"""CPU per API create in-process, and where it goes (``cProfile`` on CPU time).

    .venv/bin/python -m bench.experiment 'portal:create_app()'   # seeds portal_bench_exp once
    .venv/bin/python -m bench.api_profile                        # 300 creates: ms CPU/create
    .venv/bin/python -m bench.api_profile --profile --sort tottime

As ``bench.page_profile`` for the page: the Flask test client posts the bench's 20-line
statement (a unique reference and ``Idempotency-Key`` each) to ``/api/v1/payment-requests``
of the experiment database, without gunicorn, wrk or the network.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import time

from bench import seed
from bench.run import BENCH_SECRET, DEFAULT_ADMIN_URL
from bench.seed import sa_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"])
    parser.add_argument("--db", default=f"{DEFAULT_ADMIN_URL.rsplit('/', 1)[0]}/portal_bench_exp")
    args = parser.parse_args(argv)
    os.environ.update(
        PORTAL_ENV="development",
        PORTAL_DATABASE_URL=sa_url(args.db),
        PORTAL_SECRET_KEYS=BENCH_SECRET,
        PORTAL_BASE_URL="http://127.0.0.1",
        PORTAL_API_RATE_LIMIT="1000000 per second",
        PORTAL_EMBEDDED_WORKER="0",
    )
    from portal import create_app
    from portal.extensions import db
    from portal.merchants.models import Merchant
    from portal.merchants.services import create_api_key

    app = create_app()
    logging.getLogger("portal.access").disabled = True  # as in gunicorn: no terminal to write
    with app.app_context():
        merchant = db.session.scalars(db.select(Merchant).limit(1)).first()
        if merchant is None:
            parser.error("no merchant: run bench.experiment once to seed the database")
        key = create_api_key(merchant, label="api-profile")
        db.session.commit()
        db.session.remove()
    template = json.dumps(seed.statement_body(20, reference="__REF__"))
    run = f"PROF{os.getpid()}-{int(time.time())}"
    client = app.test_client()

    def create(n: int) -> None:
        ref = f"{run}-{n}"
        response = client.post(
            "/api/v1/payment-requests",
            data=template.replace("__REF__", ref),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                     "Idempotency-Key": ref},
        )  # fmt: skip
        assert response.status_code == 201, response.get_data(as_text=True)

    for n in range(20):  # warm up
        create(-n - 1)
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    for n in range(args.creates):
        create(n)
    if profiler:
        profiler.disable()
    print(f"{(time.process_time() - started) / args.creates * 1000:.2f} ms CPU per create")
    if profiler:
        stats = pstats.Stats(profiler)
        print(f"{stats.total_calls // args.creates} Python calls per create")  # type: ignore[attr-defined]
        stats.sort_stats(args.sort).print_stats(60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
