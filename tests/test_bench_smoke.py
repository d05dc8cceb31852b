"""The benchmark runs end to end in its smoke mode (small data, one-second loads).

Only that it runs and reports is checked: no figure is asserted, since timings
belong to ``make bench``, never to the test suite. The run takes about a minute on an
idle 2-core machine and three or more beside a busy one; its timeout only stops a hung
run, it is no budget.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("PORTAL_TEST_DATABASE_URL", "")
HUNG = 900  # seconds: a run this long is stuck, not slow


@pytest.fixture
def admin_url() -> str:
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("PORTAL_TEST_DATABASE_URL is not set: the bench smoke run needs PostgreSQL")
        pytest.skip("PORTAL_TEST_DATABASE_URL not set: PostgreSQL tests skipped locally")
    return PG_URL.rsplit("/", 1)[0] + "/"


def test_bench_smoke_run_reports_every_scenario(admin_url: str, tmp_path: Path) -> None:
    assert shutil.which("wrk"), "wrk is missing: apt-get install -y wrk (.ci/run installs it)"
    db_name = f"portal_bench_smoke_{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "bench.run", "--smoke", "--admin-url", admin_url]
    out = subprocess.run(
        [*cmd, "--out", str(tmp_path), "--db-name", db_name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HUNG,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["smoke"] is True
    for name in ("baseline_before", "baseline_after"):
        assert results[name]["requests"] > 0
        assert results[name]["error_count"] == 0
    scenarios = results["scenarios"]
    expected = {
        "page_small",
        "page_large",
        "page_lean",
        "api_create",
        "support_search",
        "webhook_ingest",
        "callback_latency",
        "callback_throughput",
        "callback_backlog",
    }
    assert set(scenarios) == expected
    for name in ("page_small", "page_large", "page_lean"):
        page = scenarios[name]
        assert page["measured"], page
        assert page["status"] == 200
        assert page["requests"] > 0 and page["error_count"] == 0, page
    assert scenarios["page_large"]["rows"] == 1_000
    assert scenarios["page_lean"]["lines_shown"] == scenarios["page_large"]["lines_shown"] == 20
    # Every scenario with a load has the workers' CPU per request beside its rate.
    for name in ("page_small", "page_large", "page_lean", "api_create", "webhook_ingest"):
        assert scenarios[name]["cpu_ms_per_req"] > 0, name
    assert results["baseline_before"]["cpu_ms_per_req"] > 0
    assert scenarios["page_large"]["rss_mb_max"] > 0
    api = scenarios["api_create"]
    assert api["measured"], api
    assert api["error_count"] == 0, api
    assert api["created_rows"] > 0
    # Every webhook post is answered 2xx (duplicates too), none is fulfilled twice.
    hooks = scenarios["webhook_ingest"]
    assert hooks["error_count"] == 0 and hooks["fulfilled"] > 0, hooks
    assert hooks["double_fulfilments"] == 0, hooks
    # The console's search is measured at both loads, signed in and not rate limited.
    search = scenarios["support_search"]
    assert search["measured"], search
    for load in (search, search["at_8"]):
        assert load["requests"] > 0 and load["error_count"] == 0, load
    assert search["at_8"]["connections"] == 8
    # A scenario either has figures or says why it has none: never a made-up number.
    for name, result in scenarios.items():
        assert result["measured"] or result["why"], name

    table = results["table"]
    assert table[0]["scenario"].startswith("baseline")
    for row in table[1:]:
        assert row["value"] is not None or row["note"].startswith("not measured: "), row
    md = (tmp_path / "latest.md").read_text()
    assert "| scenario | figure | value | CPU ms/req | baseline | ratio | target | met |" in md
    # The smoke database is dropped afterwards.
    assert db_name not in _databases(admin_url).split(",")


def _databases(admin_url: str) -> str:
    from sqlalchemy import create_engine, text

    url = "postgresql+psycopg://" + admin_url.split("://", 1)[1] + "postgres"
    engine = create_engine(url)
    with engine.connect() as conn:
        names = conn.execute(text("SELECT string_agg(datname, ',') FROM pg_database")).scalar()
    engine.dispose()
    return names or ""
