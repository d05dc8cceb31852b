"""App variants for before/after experiments: the portal with one setting changed.

Used by ``python -m bench.experiment``; each variant is a gunicorn app spec such as
``bench.variants:no_pre_ping()``. They change configuration only, never code.
"""

from __future__ import annotations

from flask import Flask

from portal import create_app


def no_pre_ping() -> Flask:
    """No ``pool_pre_ping``: saves the extra round trip at every connection checkout."""
    return create_app({"SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 300}})


def no_limiter() -> Flask:
    return create_app({"RATELIMIT_ENABLED": False})


def no_pre_ping_no_limiter() -> Flask:
    return create_app(
        {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 300}, "RATELIMIT_ENABLED": False}
    )


def insert_pages_of_10() -> Flask:
    """Statement lines inserted 10 rows per INSERT: each statement stays short enough for
    psycopg to cache its parsed form (it re-parses longer queries at every execution)."""
    return create_app(
        {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "insertmanyvalues_page_size": 10}}
    )


def worker_with_slot_wait() -> None:
    """``python -c 'from bench.variants import worker_with_slot_wait as w; w()'``.

    The job worker with one change to ``Worker.run`` (portal/jobs/worker.py): when every
    thread is busy it waits for the first job to finish instead of sleeping ``poll``
    (0.2 s), which caps a worker at ``threads / poll`` = 20 jobs/s. Used only to measure
    the proposed fix; the product's worker is what ``callback_throughput`` measures.
    """
    import concurrent.futures
    import time
    from concurrent.futures import ThreadPoolExecutor

    from portal.extensions import db
    from portal.jobs import worker as w

    def run(self: w.Worker, *, exit_when_idle: bool = False) -> None:
        in_flight: set = set()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="job") as pool:
            while not self.stopping.is_set():
                in_flight = {f for f in in_flight if not f.done()}
                free = self.threads - len(in_flight)
                if free == 0:
                    concurrent.futures.wait(
                        in_flight, timeout=self.poll, return_when=concurrent.futures.FIRST_COMPLETED
                    )
                    continue
                ids: list[int] = []
                with self.app.app_context():
                    try:
                        if time.monotonic() - self._last_periodic > w.PERIODIC_EVERY:
                            self._last_periodic = time.monotonic()
                            w.run_periodic()
                        ids = w.claim(self.name, free)
                    except Exception:
                        w.log.exception("claiming jobs failed; retrying")
                        time.sleep(1)
                    finally:
                        db.session.remove()
                for job_id in ids:
                    in_flight.add(pool.submit(self._run_one, job_id))
                if not ids:
                    if exit_when_idle and not in_flight:
                        break
                    self.stopping.wait(self.poll)

    w.Worker.run = run  # type: ignore[method-assign]
    from portal import create_app

    app = create_app()
    with app.app_context():
        worker = w.Worker(app)
        worker.install_signal_handlers()
        worker.run()
