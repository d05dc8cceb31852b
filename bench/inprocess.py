"""What ``bench.page_profile`` and ``bench.api_profile`` share: the experiment database's
portal app in this process, and CPU per call with an optional ``cProfile`` on CPU time."""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import time
from collections.abc import Callable
from typing import Any

from bench.run import BENCH_SECRET, DEFAULT_ADMIN_URL
from bench.seed import sa_url


def parser(doc: str, count: str, default: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(f"--{count}", type=int, default=default)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"])
    parser.add_argument("--db", default=f"{DEFAULT_ADMIN_URL.rsplit('/', 1)[0]}/portal_bench_exp")
    return parser


def portal_app(db_url: str) -> Any:
    """The portal on ``db_url`` as the bench serves it, rate limits out of reach."""
    os.environ.update(
        PORTAL_ENV="development",
        PORTAL_DATABASE_URL=sa_url(db_url),
        PORTAL_SECRET_KEYS=BENCH_SECRET,
        PORTAL_BASE_URL="http://127.0.0.1",
        PORTAL_LINK_RATE_LIMIT="1000000 per second",
        PORTAL_API_RATE_LIMIT="1000000 per second",
        PORTAL_EMBEDDED_WORKER="0",
    )
    from portal import create_app

    app = create_app()
    logging.getLogger("portal.access").disabled = True  # as in gunicorn: no terminal to write
    return app


def measure(call: Callable[[int], object], times: int, what: str, args: Any) -> None:
    """Print the CPU milliseconds per ``call`` (and, with ``--profile``, the top functions
    and the Python calls per ``call``, a count that does not move with the machine)."""
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    for n in range(times):
        call(n)
    if profiler:
        profiler.disable()
    print(f"{(time.process_time() - started) / times * 1000:.2f} ms CPU per {what}")
    if profiler:
        stats = pstats.Stats(profiler)
        print(f"{stats.total_calls // times} Python calls per {what}")  # type: ignore[attr-defined]
        stats.sort_stats(args.sort).print_stats(60)
