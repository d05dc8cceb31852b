"""The measured scenarios. Each takes the run's context and returns its figures.

A scenario whose product code is not there raises :class:`NotMeasured` with the
reason; the report then says "not measured: <why>" instead of a number.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from bench import seed

if TYPE_CHECKING:
    from bench.run import Context


class NotMeasured(Exception):
    """The scenario cannot run (yet): the message says why."""


def _tokens(ctx: Context, ids: list[str]) -> list[str]:
    from portal.links import link_token

    with ctx.app.app_context():
        return [link_token(i) for i in ids]


def _page_paths(ctx: Context) -> tuple[str, str]:
    tokens = _tokens(ctx, ctx.seeded.measured_ids)
    path = ctx.work / "page_paths.txt"
    path.write_text("".join(f"/p/{t}\n" for t in tokens))
    return str(path), f"/p/{tokens[0]}"


def _page_shape(url: str) -> dict[str, Any]:
    """What one page holds: status, size, and how many of the 20 statement lines it shows."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read().decode()
        status = resp.status
    return {
        "status": status,
        "page_bytes": len(body),
        "lines_shown": sum(1 for i in range(20) if f"T-{40000 + i}" in body),
    }


def statement_page(ctx: Context) -> dict[str, Any]:
    paths, sample = _page_paths(ctx)
    with ctx.portal() as server:
        shape = _page_shape(server.url + sample)
        result = ctx.wrk(server.url, "paths.lua", {"BENCH_PATHS": paths})
        result["rss_mb"] = server.worker_rss_mb()
    result.update(shape, rows=ctx.seeded.rows)
    return result


def api_create(ctx: Context) -> dict[str, Any]:
    body = seed.statement_body(20, reference="__REF__")
    body_path = ctx.work / "api_body.json"
    body_path.write_text(json.dumps(body))
    run_id = f"API{ctx.plan.db_name[-6:]}"
    with ctx.portal() as server:
        result = ctx.wrk(
            server.url,
            "api_create.lua",
            {
                "BENCH_BODY": str(body_path),
                "BENCH_AUTH": f"Bearer {ctx.seeded.api_key}",
                "BENCH_RUN": run_id,
            },
            connections=ctx.plan.api_connections,
        )
        result["rss_mb"] = server.worker_rss_mb()
    with ctx.app.app_context():
        from portal.extensions import db

        created = db.session.execute(
            text("SELECT count(*) FROM payment_requests WHERE reference LIKE :p"),
            {"p": f"{run_id}-%"},
        ).scalar_one()
        db.session.remove()
    result["created_rows"] = created
    return result


def _has_route(ctx: Context, prefix: str) -> bool:
    return any(rule.rule.startswith(prefix) for rule in ctx.app.url_map.iter_rules())


def support_search(ctx: Context) -> dict[str, Any]:
    if not _has_route(ctx, "/support"):
        raise NotMeasured("no /support console in the app yet (portal/support/)")
    raise NotMeasured("the support console exists but the bench scenario is not written yet")


def webhook_ingest(ctx: Context) -> dict[str, Any]:
    if not _has_route(ctx, "/webhooks/stripe"):
        raise NotMeasured("no /webhooks/stripe endpoint in the app yet (portal/webhooks/)")
    raise NotMeasured("the webhook endpoint exists but the bench scenario is not written yet")


def callback_latency(ctx: Context) -> dict[str, Any]:
    raise NotMeasured("no callback endpoints/deliveries in the code yet (portal/ledger, jobs)")


def callback_throughput(ctx: Context) -> dict[str, Any]:
    raise NotMeasured("no callback endpoints/deliveries in the code yet (portal/ledger, jobs)")
