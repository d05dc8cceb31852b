"""The documented example receiver verifies a real callback from the portal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from examples.ledger_receiver import create_app as receiver_app
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackAttempt
from portal.payment_requests.models import PaymentRequest
from portal.payments.services import fulfil_payment, start_payment
from tests.conftest import make_app
from tests.factories import make_merchant, make_request
from tests.servers import free_port, serve_wsgi, wait_until

ROOT = Path(__file__).resolve().parents[3]


def test_example_receiver_applies_a_settlement_once(app):
    m = make_merchant()
    probe = add_endpoint(m.id, "http://127.0.0.1:9/unused")
    secret = probe.secret
    db.session.delete(probe)
    db.session.commit()
    ledger = receiver_app(secret)
    with serve_wsgi(ledger) as base:
        endpoint = add_endpoint(m.id, f"{base}/callbacks")
        endpoint.secret = secret
        db.session.commit()
        payment = start_payment(make_request(m), None)
        fulfil_payment(payment.id)
        db.session.commit()
        run_due_jobs()
        applied = ledger.config["APPLIED"]
        assert sorted(e["type"] for e in applied.values()) == [
            "payment.succeeded",
            "payment_request.paid",
        ]
        # a tampered secret is refused by the receiver, and recorded as a failed attempt
        endpoint.secret = "whsec_" + "A" * 43 + "="
        db.session.commit()
        from portal.ledger.callbacks import redeliver_event

        redeliver_event(m.id, next(iter(applied)))
        db.session.commit()
        run_due_jobs()
        from portal.ledger.models import CallbackAttempt

        last = db.session.query(CallbackAttempt).order_by(CallbackAttempt.id.desc()).first()
        assert last.status_code == 400


def _documented_commands() -> list[str]:
    """The shell lines of docs/callbacks.md's "With make run" example, comments left out."""
    text = (ROOT / "docs" / "callbacks.md").read_text(encoding="utf-8")
    block = text.split("## Example receiver", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_make_run_example_of_docs_callbacks_works_as_written(tmp_path):
    """The three commands, as written but for a free port instead of 8765 and this test's
    interpreter for .venv/bin: the endpoint is added, the receiver starts with the printed
    secret, and paying the demo statement makes it print the settlement."""
    commands = _documented_commands()
    assert [c.split()[0] for c in commands] == ["export", ".venv/bin/flask", ".venv/bin/python"]
    port = str(free_port())
    venv_bin = str(Path(sys.executable).parent) + "/"
    commands = [c.replace("8765", port).replace(".venv/bin/", venv_bin) for c in commands]
    db_url = f"sqlite:///{tmp_path / 'portal.db'}"
    app = make_app(db_url, env="development", mail_url=f"file://{tmp_path / 'mail'}")
    with app.app_context():
        db.create_all()  # what `make run`'s `flask db upgrade` did
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")},
        "PORTAL_DATABASE_URL": db_url,
        "PORTAL_MAIL_URL": f"file://{tmp_path / 'mail'}",
        "PORTAL_SMS_LOG": str(tmp_path / "sms.log"),
    }
    added = subprocess.run(
        ["bash", "-euc", "\n".join(commands[:2])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    assert commands[2].replace(venv_bin, ".venv/bin/") in added.stdout  # it prints line 3
    receiver = subprocess.Popen(
        ["bash", "-euc", f"exec {commands[2]}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        with receiver.stdout:
            lines.extend(receiver.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: _listening(int(port)) or receiver.poll() is not None)
        assert receiver.poll() is None, "".join(lines)
        with app.app_context():
            demo = db.session.scalars(
                select(PaymentRequest).where(PaymentRequest.reference == "DEMO-STATEMENT")
            ).one()
            fulfil_payment(start_payment(demo, None).id)
            db.session.commit()
            run_due_jobs()
            attempts = db.session.scalars(select(CallbackAttempt.status_code)).all()
            assert attempts and set(attempts) == {200}, attempts
            db.engine.dispose()
        assert wait_until(lambda: any("settled 12840 EUR for statement DEMO-STATEMENT" in line
                                  for line in lines)), "".join(lines)  # fmt: skip
    finally:
        receiver.terminate()
        receiver.wait(30)
        reader.join(30)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_receiver_takes_its_port_and_secret_from_arguments(monkeypatch):
    from examples.ledger_receiver import parse_args

    args = parse_args(["--port", "9123", "--secret", "whsec_abc"])
    assert (args.port, args.secret, args.host) == (9123, "whsec_abc", "127.0.0.1")
    monkeypatch.setenv("LEDGER_SECRET", "whsec_from_env")
    import importlib

    import examples.ledger_receiver as module

    importlib.reload(module)  # the default is read when the parser is built
    assert module.parse_args([]).secret == "whsec_from_env"
    monkeypatch.delenv("LEDGER_SECRET")
    with pytest.raises(SystemExit):
        module.parse_args([])
