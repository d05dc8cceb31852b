"""Gunicorn settings for the web process (Procfile: ``web``). Each one can be changed
with an environment variable; docs/deploy.md explains the choices."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
# Threads overlap the database and network waits of a request; processes use the cores.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# A slow client cannot hold a thread for long; keep-alive suits a load balancer.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "25"))
keepalive = 5
# A cap on each worker's connections (active and kept alive) spreads them over the
# workers: without it one gthread worker can accept a whole burst of keep-alive
# connections and serve them alone while the others idle. Measured on 2 workers with
# 32 connections: 3 runs in 8 at a third of the throughput, with one worker at 0 CPU;
# with this cap 8 in 8 were even (bench/README.md).
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", str(threads * 5)))
# Recycle workers now and then, so a slow leak never grows without bound.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
# glibc gives each thread that meets a busy heap an arena of its own (up to 8 per core),
# and memory freed in one arena is not reused by another: four threads per worker held
# about 3.5 MB more per worker than two arenas do, at the same CPU per page (measured,
# bench/README.md). Set here, in the master, so every forked worker inherits it;
# MALLOC_ARENA_MAX in the environment, read by glibc itself, wins.
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
_malloc_arenas = int(os.environ.get("WEB_MALLOC_ARENAS", "2"))
if "MALLOC_ARENA_MAX" not in os.environ:
    # Not glibc (musl, macOS): no such library or function, and its own allocator decides.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, _malloc_arenas)
# The portal writes its own access log (JSON in production, tokens masked).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "info")
# Forwarded headers are handled by the app (PORTAL_PROXY_HOPS), not by gunicorn.
forwarded_allow_ips = "127.0.0.1"
# Prometheus counters from every worker process add up in /metrics.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="portal-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server) -> None:
    """A fresh metrics folder per start: old workers' files would be counted again."""
    for name in os.listdir(_metrics_dir):
        path = os.path.join(_metrics_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def worker_exit(server, worker) -> None:
    """A worker leaving (restart, recycle, shutdown) writes the link opens it still holds
    (portal/customer/opens.py); ``atexit`` would too, this is the documented hook."""
    from portal.customer.opens import flush_app

    try:
        flush_app(getattr(worker, "wsgi", None))
    except Exception:  # a failed last flush must not keep the worker from exiting
        server.log.exception("could not write the link opens at exit")


def on_exit(server) -> None:
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
