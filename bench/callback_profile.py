"""CPU per callback delivery in-process, and where it goes (``cProfile`` on CPU time).

    .venv/bin/python -m bench.experiment 'portal:create_app()'   # seeds portal_bench_exp once
    .venv/bin/python -m bench.callback_profile                   # 500 deliveries: ms CPU each
    .venv/bin/python -m bench.callback_profile --profile --sort tottime

As ``bench.page_profile`` for the page: every merchant of the experiment database gets one
endpoint at the bench's receiver (``bench.receiver``, in a child process, so its CPU is not
counted), ``payment.refunded`` events are recorded for succeeded payments by
``bench.scenarios.queue_refund_callbacks`` (as the bench's ``callback_throughput``), and
this process delivers them one after another (the claim, the delivery, the commit, as a
worker's thread), without threads. Jobs left
queued in the experiment database are marked done first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

from bench import inprocess

RECEIVER = (
    "import sys, time\n"
    "from bench.receiver import Receiver\n"
    "with Receiver() as r:\n"
    "    print(r.url, flush=True)\n"
    "    sys.stdin.read()\n"
)


def main(argv: list[str] | None = None) -> int:
    parser = inprocess.parser(__doc__, "deliveries", 500)
    args = parser.parse_args(argv)
    os.environ["PORTAL_ALLOW_PRIVATE_CALLBACKS"] = "1"
    app = inprocess.portal_app(args.db)
    from sqlalchemy import text

    from bench.scenarios import _drain_jobs, _endpoints, queue_refund_callbacks
    from portal.extensions import db
    from portal.jobs.claims import claim_jobs
    from portal.jobs.worker import run_job, worker_name

    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        url = receiver.stdout.readline().strip()
        ctx = SimpleNamespace(app=app)
        _drain_jobs(ctx)  # type: ignore[arg-type]
        _endpoints(ctx, url)  # type: ignore[arg-type]
        warm = 20
        queue_refund_callbacks(app, args.deliveries + warm)
        with app.app_context():
            name = worker_name()

            def deliver(n: int) -> None:
                # As a busy worker's claim: expired leases are recovered once a second, not
                # at every claim (portal.jobs.worker.Worker._claim).
                (job,) = claim_jobs(name, 1, recover=False)
                run_job(job)

            for n in range(warm):
                deliver(n)
            inprocess.measure(deliver, args.deliveries, "delivery", args)
            left = db.session.scalar(text("SELECT count(*) FROM jobs WHERE status = 'queued'"))
            if left:
                print(f"{left} jobs still queued (retries: see callback_attempts)")
    finally:
        if receiver.stdin:
            receiver.stdin.close()
        receiver.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
