"""Before/after experiments: the statement page (or API create) under several app variants.

    python -m bench.experiment 'portal:create_app()' 'bench.variants:no_pre_ping()'
    python -m bench.experiment --profile 'portal:create_app()'   # py-spy --gil stacks

Seeds ``portal_bench_exp`` (10,000 requests) once and keeps it; for each app
spec, prints req/s, p50/p99 and the gunicorn workers' CPU time per request
(the figure that decides throughput on 2 cores). ``--profile`` records the
workers with py-spy (only while they hold the GIL, so waits on PostgreSQL are
left out) and prints the functions that take the most CPU, inclusive.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench import scenarios, seed
from bench.run import BENCH_SECRET, DEFAULT_ADMIN_URL, Context, Plan, ensure_schema, portal_env
from bench.servers import GunicornConfig, Server, cpu_seconds, run_wrk


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith("postgres"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


GENERIC = ("threading.py", "concurrent/futures", "<frozen runpy>", "generated _go()", "gunicorn/")


def top_frames(files: list[Path], limit: int = 45) -> list[tuple[float, str]]:
    """Inclusive share of samples per function from py-spy ``--format raw`` files."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            seen = set()
            for frame in stack.split(";"):
                name = frame.split(":")[0] + ")" if "(" in frame else frame
                if name not in seen and not any(g in name for g in GENERIC):
                    seen.add(name)
                    inclusive[name] += n
    return [(100 * n / total, name) for name, n in inclusive.most_common(limit)] if total else []


def ensure_db(plan: Plan) -> seed.Seeded:
    url = seed.database_url(plan.admin_url, plan.db_name)
    engine = create_engine(seed.sa_url(plan.admin_url) + "postgres")
    with engine.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": plan.db_name}
        ).first()
    engine.dispose()
    from portal import create_app

    app = create_app(
        {"database_url": url, "secret_keys": [BENCH_SECRET], "db_statement_timeout": 0}
    )
    if not exists:
        seed.recreate_database(plan.admin_url, plan.db_name)
        seeded = seed.seed_base(app, plan.measured, plan.rows_small)
    else:
        with app.app_context():
            from portal.extensions import db

            key = db.session.execute(text("SELECT 1")).scalar()
            db.session.remove()
        seeded = seed.Seeded(
            url, [], "", [seed.measured_id(g) for g in range(1, plan.measured + 1)]
        )
        assert key == 1
    seeded.app = app  # type: ignore[attr-defined]
    return seeded


def measure(spec: str, ctx: Context, what: str, profile: bool) -> dict[str, Any]:
    if spec.startswith("bench.baseline"):
        (ctx.work / "root.txt").write_text("/\n")
        script, env, conns = "paths.lua", {"BENCH_PATHS": str(ctx.work / "root.txt")}, 32
    elif what == "page":
        paths, _ = scenarios._page_paths(ctx)
        script, env, conns = "paths.lua", {"BENCH_PATHS": paths}, ctx.plan.connections
    else:
        body = ctx.work / "api_body.json"
        body.write_text(json.dumps(seed.statement_body(20, reference="__REF__")))
        from portal.extensions import db

        with ctx.app.app_context():
            from portal.merchants.models import Merchant
            from portal.merchants.services import create_api_key

            merchant = db.session.scalars(db.select(Merchant).limit(1)).one()
            api_key = create_api_key(merchant, label="experiment")
            db.session.commit()
            db.session.remove()
        env = {
            "BENCH_BODY": str(body),
            "BENCH_AUTH": f"Bearer {api_key}",
            "BENCH_RUN": f"EXP{os.getpid()}{abs(hash(spec)) % 10000}",
        }
        script, conns = "api_create.lua", ctx.plan.api_connections
    ensure_schema(ctx.seeded.url)
    with Server(spec, ctx.portal_env, ctx.plan.gunicorn, "/healthz", ctx.log_path) as server:
        run_wrk(server.url, script, 2, conns, env=env)
        workers, pg = server.worker_pids(), postgres_pids()
        spies = []
        if profile:
            spy = shutil.which("py-spy") or str(Path(os.sys.executable).parent / "py-spy")
            for pid in workers:
                out = ctx.work / f"spy-{pid}.txt"
                cmd = [spy, "record", "--gil", "--nonblocking", "-r", "250", "-f", "raw"]
                cmd += ["-d", str(ctx.plan.duration_s), "-p", str(pid), "-o", str(out)]
                spies.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL), out))
        c0, p0 = cpu_seconds(workers), cpu_seconds(pg)
        result = run_wrk(server.url, script, ctx.plan.duration_s, conns, env=env)
        c1, p1 = cpu_seconds(workers), cpu_seconds(pg)
        for proc, _ in spies:
            proc.wait(timeout=60)
        result["rss_mb"] = server.worker_rss_mb()
    result["gunicorn_cpu_ms_per_req"] = 1000 * (c1 - c0) / max(result["requests"], 1)
    result["postgres_cpu_ms_per_req"] = 1000 * (p1 - p0) / max(result["requests"], 1)
    if spies:
        result["profile"] = top_frames([out for _, out in spies if out.exists()])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("specs", nargs="+", help="gunicorn app specs")
    parser.add_argument("--what", choices=["page", "api"], default="page")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL", DEFAULT_ADMIN_URL))
    parser.add_argument(
        "--db-name", default="portal_bench_exp", help="seeded once and kept (one per checkout)"
    )
    args = parser.parse_args(argv)
    plan = Plan(db_name=args.db_name, admin_url=args.admin_url, duration_s=args.duration)
    seeded = ensure_db(plan)
    work = Path(tempfile.mkdtemp(prefix="portal-bench-exp-"))
    env = portal_env(plan, seeded.url)
    ctx = Context(plan, seeded, work, {}, env, work / "gunicorn.log", seeded.app)  # type: ignore[attr-defined]
    ctx.plan.gunicorn = GunicornConfig()
    for spec in args.specs:
        r = measure(spec, ctx, args.what, args.profile)
        print(
            f"{spec}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"errors {r['error_count']}; CPU per request: gunicorn "
            f"{r['gunicorn_cpu_ms_per_req']:.2f} ms, "
            f"postgres {r['postgres_cpu_ms_per_req']:.2f} ms; "
            f"worker RSS {', '.join(f'{mb:.1f}' for mb in r['rss_mb'])} MB"
        )
        for share, name in r.get("profile", []):
            print(f"    {share:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
