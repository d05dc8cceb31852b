"""The web process as deployed: gunicorn with gunicorn.conf.py, JSON logs, metrics from
every worker, and no secret or personal value anywhere in what it logs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from portal.demo import DEMO_API_KEY
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EMAIL = "jeanne.dupont@example.be"
PHONE = "+32470123467"
AGENT = "agent.smith@portal.example"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def served(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "PORTAL_ENV": "development",
        "PORTAL_LOG_FORMAT": "json",
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        "PORTAL_SECRET_KEYS": "gunicorn-test-secret-0123456789abcdefghij",
        "PORTAL_MAIL_URL": "console",
        "PORTAL_SMS_URL": "console",
        "PORTAL_SMS_LOG": str(tmp_path / "sms.log"),  # not the working tree's var/
        "PORTAL_EMBEDDED_WORKER": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    env.pop("PORTAL_REDIS_URL", None)
    (tmp_path / "metrics").mkdir()
    for args in (["db", "upgrade"], ["demo"]):
        subprocess.run(
            [BIN / "flask", "--app", "portal", *args], env=env, cwd=ROOT, check=True,
            capture_output=True, timeout=300,
        )  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BIN / "gunicorn", "-c", "gunicorn.conf.py", "portal:create_app()"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        # Two workers import the app: seconds on an idle machine, much longer on a busy
        # one. The deadline only catches a server that never comes up.
        deadline = time.monotonic() + 180
        while True:
            try:
                requests.get(f"{url}/healthz", timeout=5)
                break
            except requests.RequestException:
                if proc.poll() is not None:
                    pytest.fail(f"gunicorn exited: {log.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail("gunicorn did not start in 180 s")
                time.sleep(0.2)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _journey(url: str) -> str:
    """A customer's and an agent's day, with secrets flowing through every part."""
    headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
    created = requests.post(
        f"{url}/api/v1/payment-requests",
        headers=headers,
        json={
            "kind": "wallet_topup",
            "currency": "EUR",
            "reference": "LOG-1",
            "customer": {"name": "Jeanne Dupont", "email": EMAIL, "phone": PHONE, "locale": "fr"},
            "wallet": {"min_amount": 500, "max_amount": 50000},
            "send": ["email", "sms"],
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    link = created.json()["url"]
    browser = requests.Session()
    page = browser.get(link, timeout=10)
    assert page.status_code == 200
    started = browser.post(
        f"{link}/pay",
        data={"csrf_token": CSRF.search(page.text).group(1), "amount": "20,00"},
        allow_redirects=False,
        timeout=10,
    )
    assert started.status_code == 303, started.text
    checkout = browser.get(f"{url}{started.headers['Location']}", timeout=10)
    paid = browser.post(
        f"{url}{started.headers['Location']}",
        data={"csrf_token": CSRF.search(checkout.text).group(1),
              "card_number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"},
        timeout=10,
    )  # fmt: skip
    assert paid.status_code == 200
    agent = requests.Session()
    login = agent.get(f"{url}/support/login", timeout=10)
    refused = agent.post(
        f"{url}/support/login",
        data={"csrf_token": CSRF.search(login.text).group(1), "email": AGENT, "password": "x"},
        timeout=10,
    )
    assert refused.status_code == 401
    assert requests.get(f"{url}/p/forged-token-{'x' * 30}", timeout=10).status_code == 404
    return link


def test_logs_are_json_with_request_ids_and_no_secrets(served):
    url, log = served
    link = _journey(url)
    signature = link.rsplit(".", 1)[1]
    deadline = time.monotonic() + 30
    loggers = ('"portal.delivery.sms"', '"portal.notifications.mail"')
    while time.monotonic() < deadline and not all(n in log.read_text() for n in loggers):
        time.sleep(0.3)  # the embedded worker sends the SMS and the emails
    text = log.read_text()
    for secret in (DEMO_API_KEY, signature, EMAIL, PHONE, AGENT, "x" * 30):
        assert secret not in text, f"{secret!r} leaked into the logs"

    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "portal.access"]
    assert {e["method"] for e in access} >= {"GET", "POST"}
    assert all(len(e["request_id"]) >= 8 for e in access)
    paths = [e["path"] for e in access]
    assert any(p.startswith("/p/pr_") and p.endswith(".…") for p in paths), paths
    assert any(p == "/p/…" for p in paths), paths
    sms = [e for e in entries if e["logger"] == "portal.delivery.sms"]
    assert sms and "+…67" in sms[0]["message"], sms
    mail = [e for e in entries if e["logger"] == "portal.notifications.mail"]
    assert mail and "j…@example.be" in mail[0]["message"]
    # every line the workers wrote is JSON (gunicorn's master writes a few plain lines)
    workers = [line for line in text.splitlines() if "portal" in line and line.strip()]
    assert all(line.startswith("{") for line in workers), workers[:3]


def test_metrics_add_up_across_workers(served):
    url, _ = served
    for _ in range(20):
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    text = requests.get(f"{url}/metrics", timeout=5).text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith('portal_http_requests_total{method="GET",route="/readyz",status="200"}')
    )
    assert float(line.rsplit(" ", 1)[1]) == 20.0
