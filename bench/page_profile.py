"""CPU per statement page in-process, and where it goes (``cProfile`` on CPU time).

    .venv/bin/python -m bench.experiment 'portal:create_app()'   # seeds portal_bench_exp once
    .venv/bin/python -m bench.page_profile                       # 1,000 pages: ms CPU/page
    .venv/bin/python -m bench.page_profile --profile             # + the top functions

No server and no network: the Flask test client renders ``/p/<token>`` for 50 open
statements of the experiment database, so the figure is the portal's own CPU per page,
without gunicorn, wrk or the machine's noise (stable to a few per cent between runs).
"""

from __future__ import annotations

from bench import inprocess


def main(argv: list[str] | None = None) -> int:
    parser = inprocess.parser(__doc__, "pages", 1000)
    args = parser.parse_args(argv)
    app = inprocess.portal_app(args.db)
    from sqlalchemy import text

    from portal.extensions import db
    from portal.links import link_token

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
    inprocess.measure(lambda n: client.get(paths[n % len(paths)]), args.pages, "page", args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
