"""CPU per API create in-process, and where it goes (``cProfile`` on CPU time).

    .venv/bin/python -m bench.experiment 'portal:create_app()'   # seeds portal_bench_exp once
    .venv/bin/python -m bench.api_profile                        # 300 creates: ms CPU/create
    .venv/bin/python -m bench.api_profile --profile --sort tottime

As ``bench.page_profile`` for the page: the Flask test client posts the bench's 20-line
statement (a unique reference and ``Idempotency-Key`` each) to ``/api/v1/payment-requests``
of the experiment database, without gunicorn, wrk or the network.
"""

from __future__ import annotations

import json
import os
import time

from bench import inprocess, seed


def main(argv: list[str] | None = None) -> int:
    parser = inprocess.parser(__doc__, "creates", 300)
    args = parser.parse_args(argv)
    app = inprocess.portal_app(args.db)
    from portal.extensions import db
    from portal.merchants.models import Merchant
    from portal.merchants.services import create_api_key

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
    inprocess.measure(create, args.creates, "create", args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
