"""``python -m bench.run``: the whole benchmark, or a smoke run of it (``--smoke``).

Sets up PostgreSQL data, serves the portal and a bare Flask baseline with the
same gunicorn configuration, drives both with wrk on loopback, and writes
``bench/results/latest.json`` and ``latest.md``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import scenarios, seed
from bench.servers import BENCH_DIR, GunicornConfig, Server, measured_wrk, run_wrk

BENCH_SECRET = "bench-secret-key-0123456789abcdef0123456789"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/"


@dataclass
class Plan:
    """Sizes and durations; ``smoke()`` is the seconds-long variant the test suite runs."""

    admin_url: str = DEFAULT_ADMIN_URL
    db_name: str = "portal_bench"
    rows_small: int = 10_000
    rows_large: int = 1_000_000
    measured: int = 1_000
    rounds: int = 3
    duration_s: int = 10
    warmup_s: int = 2
    connections: int = 32
    api_connections: int = 16
    gunicorn: GunicornConfig = field(default_factory=GunicornConfig)
    smoke: bool = False
    keep_db: bool = False
    out_dir: Path = BENCH_DIR / "results"
    profile: bool = False
    # Queued callbacks at which the claim is timed; the last size is drained.
    backlog_sizes: tuple[int, ...] = (2_000, 10_000, 100_000)
    backlog_done: int = 100_000  # finished jobs in the table beside the backlog
    drain_seconds: float = 3600.0  # the drain gives up after this (`--drain-seconds`)
    only: tuple[str, ...] = ()  # scenarios to run (`--only`); empty: all of them

    def wants(self, scenario: str) -> bool:
        return not self.only or any(scenario.startswith(name) for name in self.only)

    @classmethod
    def smoke_plan(cls, **overrides: Any) -> Plan:
        plan = cls(
            db_name=f"portal_bench_smoke_{os.getpid()}",
            rows_small=300,
            rows_large=1_000,
            measured=50,
            rounds=1,
            duration_s=1,
            warmup_s=0,
            connections=4,
            api_connections=2,
            smoke=True,
            backlog_sizes=(50, 150, 300),
            backlog_done=300,
            drain_seconds=120.0,
        )
        for key, value in overrides.items():
            setattr(plan, key, value)
        return plan


@dataclass
class Context:
    plan: Plan
    seeded: seed.Seeded
    work: Path
    results: dict[str, Any]
    portal_env: dict[str, str]
    log_path: Path
    app: Any = None

    scenario: str = ""

    def profile_dir(self, scenario: str | None = None) -> Path:
        """Where ``--profile`` keeps a scenario's py-spy samples (the running one's)."""
        return self.work / f"profile-{scenario or self.scenario}"

    def portal(self, env: dict[str, str] | None = None) -> Server:
        ensure_schema(self.seeded.url, once=self.plan.smoke)
        return Server(
            "portal:create_app()",
            env or self.portal_env,
            self.plan.gunicorn,
            ready_path="/healthz",
            log_path=self.log_path,
            profile_dir=self.profile_dir() if self.plan.profile else None,
        )

    def wrk(
        self, server: Server, script: str, env: dict[str, str], connections: int | None = None
    ) -> dict[str, Any]:
        """wrk against ``server`` after the warm-up, with its workers' CPU per request."""
        conns = connections or self.plan.connections
        if self.plan.warmup_s:
            run_wrk(server.url, script, self.plan.warmup_s, conns, env=env)
        return measured_wrk(server, script, self.plan.duration_s, conns, env)


_ENSURED: set[str] = set()


def ensure_schema(url: str, once: bool = False) -> None:
    """Create tables added to the models since seeding (the tree may change during a run).
    ``once``: not again for a database already checked in this process (the smoke run,
    where each check's import of the portal is a real part of the run's minute)."""
    if once and url in _ENSURED:
        return
    _ENSURED.add(url)
    code = (
        "import sys; from portal import create_app; from portal.extensions import db; "
        "app = create_app({'database_url': sys.argv[1]}); ctx = app.app_context(); ctx.push(); "
        "db.create_all()"
    )
    subprocess.run(
        [sys.executable, "-c", code, url], cwd=BENCH_DIR.parent, check=True, timeout=60,
        capture_output=True,
    )  # fmt: skip


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def portal_env(plan: Plan, url: str, base_url: str = "http://127.0.0.1") -> dict[str, str]:
    return {
        "PORTAL_ENV": "development",
        "PORTAL_DATABASE_URL": url,
        "PORTAL_SECRET_KEYS": BENCH_SECRET,
        "PORTAL_BASE_URL": base_url,
        # The limiter stays on (its cost is part of the figure) with limits no run reaches.
        "PORTAL_API_RATE_LIMIT": "1000000 per second",
        "PORTAL_LINK_RATE_LIMIT": "1000000 per second",
        # all events come from one address: 600 a minute answered 1,231 of 1,831 posts of the
        # run of 2026-12-02 with 429
        "PORTAL_WEBHOOK_RATE_LIMIT": "1000000 per second",
        # one address signs in as one agent: the console's per-address budget would answer
        # the search run with 429s (it did in the run of 2026-12-02: 10,508 errors)
        "PORTAL_CONSOLE_RATE_LIMIT": "1000000 per second",
        "PORTAL_ALLOW_PRIVATE_CALLBACKS": "1",
        "PORTAL_EMBEDDED_WORKER": "0",
        "PORTAL_MAIL_URL": f"file://{Path(tempfile.gettempdir()) / 'portal-bench-mail'}",
    }


def baseline(ctx: Context, label: str) -> dict[str, Any]:
    paths = ctx.work / "baseline_paths.txt"
    paths.write_text("/\n")
    with Server("bench.baseline:app", {}, ctx.plan.gunicorn, log_path=ctx.log_path) as server:
        result = ctx.wrk(server, "paths.lua", {"BENCH_PATHS": str(paths)})
        result["rss_mb"] = server.worker_rss_mb()
    log(f"baseline ({label}): {result['rps']:.0f} req/s, p99 {result['p99_ms']:.1f} ms")
    return result


def measure(ctx: Context, name: str, func: Callable[[Context], dict[str, Any]]) -> None:
    """Run one scenario; a failure is recorded as 'not measured' with its reason."""
    t0 = time.monotonic()
    ctx.scenario = name
    try:
        result = func(ctx)
    except scenarios.NotMeasured as exc:
        result = {"measured": False, "why": str(exc)}
    except Exception as exc:
        traceback.print_exc()
        result = {"measured": False, "why": f"the run failed: {type(exc).__name__}: {exc}"}
    result.setdefault("measured", True)
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    spies = sorted(ctx.profile_dir(name).glob("spy-*.txt"))
    if spies:
        from bench.experiment import top_frames

        result["profile"] = [
            {"share_pct": round(share, 1), "function": function}
            for share, function in top_frames(spies, limit=30)
        ]
    ctx.results["scenarios"][name] = result
    log(f"{name}: {summary(result)}")


def summary(result: dict[str, Any]) -> str:
    if not result.get("measured"):
        return f"not measured: {result.get('why')}"
    keys = ("rps", "cpu_ms_per_req", "p50_ms", "p99_ms", "error_count", "rate", "rss_mb_max",
            "p50_s", "p99_s")  # fmt: skip
    return ", ".join(f"{k}={result[k]:.1f}" for k in keys if isinstance(result.get(k), float | int))


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one page scenario: median req/s and latencies (one round disturbed by the
    machine does not decide the figure), all errors, last memory."""
    measured = [r for r in runs if r.get("measured")]
    if not measured:
        return runs[-1]
    out = dict(measured[-1])
    for key in ("rps", "p50_ms", "p99_ms"):
        out[key] = statistics.median(r[key] for r in measured)
    cpu = [r["cpu_ms_per_req"] for r in measured if r.get("cpu_ms_per_req") is not None]
    out["cpu_ms_per_req"] = statistics.median(cpu) if cpu else None
    out["requests"] = sum(r["requests"] for r in measured)
    out["error_count"] = sum(r["error_count"] for r in measured)
    out["rss_mb_max"] = max(max(r.get("rss_mb") or [0.0]) for r in measured)
    out["rounds"] = [
        {
            k: r.get(k)
            for k in ("rps", "cpu_ms_per_req", "p50_ms", "p99_ms", "error_count", "rss_mb")
        }
        for r in measured
    ]
    out["elapsed_s"] = round(sum(r.get("elapsed_s", 0) for r in runs), 1)
    return out


def run(plan: Plan) -> dict[str, Any]:
    started = time.monotonic()
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    log_path = work / "gunicorn.log"
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": plan.smoke,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "commit": _git_commit(),
        },
        "config": {
            "gunicorn": plan.gunicorn.describe(),
            "connections": plan.connections,
            "api_connections": plan.api_connections,
            "duration_s": plan.duration_s,
            "warmup_s": plan.warmup_s,
            "wrk_threads": 2,
            "rows_small": plan.rows_small,
            "rows_large": plan.rows_large,
            "measured_statements": plan.measured,
        },
        "seed": {},
        "scenarios": {},
    }
    small_name = f"{plan.db_name}_small"
    try:
        from portal import create_app

        def make(name: str, rows: int) -> tuple[Context, float]:
            t0 = time.monotonic()
            log(f"database {name}: seeding {rows:,} payment requests")
            url = seed.recreate_database(plan.admin_url, name)
            env = portal_env(plan, url)
            app = create_app(
                {
                    "database_url": url,
                    "secret_keys": [BENCH_SECRET],
                    "base_url": env["PORTAL_BASE_URL"],
                    "allow_private_callbacks": True,  # the callback receiver is on loopback
                    "db_statement_timeout": 0,  # seeding copies 250,000 rows per statement
                }
            )
            seeded = seed.seed_base(app, plan.measured, rows)
            return Context(plan, seeded, work, results, env, log_path, app), time.monotonic() - t0

        small, small_s = make(small_name, plan.rows_small)
        ctx, large_s = make(plan.db_name, plan.rows_large)
        results["seed"] = {
            "rows_small": small.seeded.rows,
            "rows_large": ctx.seeded.rows,
            "seconds_small": round(small_s, 1),
            "seconds_large": round(large_s, 1),
        }
        log(f"seeded in {small_s:.0f} s + {large_s:.0f} s")
        results["baseline_before"] = baseline(ctx, "before")
        # The two page sizes alternate, so that drift on a noisy machine hits both alike.
        # The lean reference page (bench/lean.py) runs in every round beside the portal's.
        rounds: dict[str, list[dict[str, Any]]] = {
            "page_small": [],
            "page_large": [],
            "page_lean": [],
        }
        for i in range(plan.rounds if plan.wants("page") else 0):
            measure(small, f"page_small_{i + 1}", scenarios.statement_page)
            measure(ctx, f"page_large_{i + 1}", scenarios.statement_page)
            measure(ctx, f"page_lean_{i + 1}", scenarios.lean_page)
            for name in rounds:
                rounds[name].append(results["scenarios"].pop(f"{name}_{i + 1}"))
        for name, runs in rounds.items():
            if runs:
                results["scenarios"][name] = combine(runs)
                log(f"{name}: {summary(results['scenarios'][name])}")
        for name, func in (
            ("api_create", scenarios.api_create),
            ("support_search", scenarios.support_search),
            ("webhook_ingest", scenarios.webhook_ingest),
            ("callback_latency", scenarios.callback_latency),
            ("callback_throughput", scenarios.callback_throughput),
            ("callback_backlog", scenarios.callback_backlog),
        ):
            if plan.wants(name):
                measure(ctx, name, func)
        results["baseline_after"] = baseline(ctx, "after")
    finally:
        if not plan.keep_db:
            seed.drop_database(plan.admin_url, plan.db_name)
            seed.drop_database(plan.admin_url, small_name)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    from bench.report import evaluate, markdown

    results["table"] = evaluate(results)
    (plan.out_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (plan.out_dir / "latest.md").write_text(markdown(results))
    log(f"done in {results['elapsed_s']} s: {plan.out_dir / 'latest.md'}")
    return results


def _git_commit() -> str:
    if os.environ.get("BENCH_COMMIT"):  # a snapshot run: its export has no .git
        return os.environ["BENCH_COMMIT"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=BENCH_DIR,
            timeout=5,
            check=False,
        ).stdout.strip()
    except OSError:
        return ""


def run_snapshot(argv: list[str], out: Path | None) -> int:
    """Re-run this command in an export of HEAD, so files being edited cannot skew a run."""
    root = BENCH_DIR.parent
    snap = Path(tempfile.mkdtemp(prefix="portal-bench-src-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD"], cwd=root, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(snap)], input=archive.stdout, check=True)
    pybabel = Path(sys.executable).parent / "pybabel"
    subprocess.run([str(pybabel), "-q", "compile", "-d", "translations"], cwd=snap, check=True)
    rest, skip = [], False
    for arg in argv:
        if skip or arg == "--snapshot":
            skip = False
            continue
        if arg == "--out":
            skip = True
            continue
        if not arg.startswith("--out="):
            rest.append(arg)
    if out is not None:
        rest += ["--out", str(out.resolve())]
    elif "--smoke" not in rest:
        rest += ["--out", str(BENCH_DIR / "results")]
    log(f"measuring commit {_git_commit()} exported to {snap}")
    env = {**os.environ, "PYTHONPATH": str(snap), "BENCH_COMMIT": _git_commit()}
    return subprocess.run(
        [sys.executable, "-m", "bench.run", *rest], cwd=snap, env=env, check=False
    ).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small data, one-second runs")
    parser.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the bench database")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measured run")
    parser.add_argument("--db-name", default=None, help="the bench database (dropped first)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record every portal worker with py-spy (--gil) and keep each scenario's top frames",
    )
    parser.add_argument(
        "--backlog",
        default="",
        help="queued callbacks at which the claim is timed, comma-separated; the last is "
        "drained (default 2000,10000,100000)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=None,
        help="stop draining the backlog after this many seconds (default 3600)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios (e.g. callback_backlog); results go to a temp folder",
    )
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="measure the committed HEAD (git archive to a temp folder), not the working tree",
    )
    args = parser.parse_args(argv)
    if args.snapshot:
        return run_snapshot(argv if argv is not None else sys.argv[1:], args.out)
    plan = Plan.smoke_plan() if args.smoke else Plan()
    plan.admin_url = args.admin_url
    plan.only = tuple(name for name in args.only.split(",") if name)
    if args.backlog:
        plan.backlog_sizes = tuple(int(size) for size in args.backlog.split(","))
    if args.drain_seconds:
        plan.drain_seconds = args.drain_seconds
    if args.out is not None:
        plan.out_dir = args.out
    elif args.smoke or plan.only:
        plan.out_dir = Path(tempfile.mkdtemp(prefix="portal-bench-smoke-"))
    plan.keep_db = args.keep_db
    plan.profile = args.profile
    if args.db_name:
        plan.db_name = args.db_name
    if args.duration:
        plan.duration_s = args.duration
    run(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
