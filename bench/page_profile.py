"""CPU per statement page in-process, and where it goes (``cProfile`` on CPU time).

    .venv/bin/python -m bench.experiment 'portal:create_app()'   # seeds portal_bench_exp once
    .venv/bin/python -m bench.page_profile                       # 1,000 pages: ms CPU/page
    .venv/bin/python -m bench.page_profile --profile             # + the top functions

No server and no network: the Flask test client renders ``/p/<token>`` for 50 open
statements of the experiment database, so the figure is the portal's own CPU per page,
without gunicorn, wrk or the machine's noise (stable to a few per cent between runs).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import time

from bench.run import BENCH_SECRET, DEFAULT_ADMIN_URL
from bench.seed import sa_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"])
    parser.add_argument("--db", default=f"{DEFAULT_ADMIN_URL.rsplit('/', 1)[0]}/portal_bench_exp")
    args = parser.parse_args(argv)
    os.environ.update(
        PORTAL_ENV="development",
        PORTAL_DATABASE_URL=sa_url(args.db),
        PORTAL_SECRET_KEYS=BENCH_SECRET,
        PORTAL_BASE_URL="http://127.0.0.1",
        PORTAL_LINK_RATE_LIMIT="1000000 per second",
        PORTAL_EMBEDDED_WORKER="0",
    )
    from sqlalchemy import text

    from portal import create_app
    from portal.extensions import db
    from portal.links import link_token

    app = create_app()
    logging.getLogger("portal.access").disabled = True  # as in gunicorn: no terminal to write
    with app.app_context():
        ids = db.session.scalars(
            text(
                "SELECT id FROM payment_requests WHERE kind = 'statement' AND status = 'open' "
                "ORDER BY created_at LIMIT 50"
            )
        ).all()
        if not ids:
            parser.error("no open statements: run bench.experiment once to seed the database")
        paths = [f"/p/{link_token(i)}" for i in ids]
    client = app.test_client()
    for path in paths:  # warm up: templates compiled, pool filled
        assert client.get(path).status_code == 200
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    for n in range(args.pages):
        client.get(paths[n % len(paths)])
    if profiler:
        profiler.disable()
    print(f"{(time.process_time() - started) / args.pages * 1000:.2f} ms CPU per page")
    if profiler:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
