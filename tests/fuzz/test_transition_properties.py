"""A state machine of provider events, in any order and repeated, through the real
services on a real database: no status ever moves backwards, nothing is paid twice, and
every amount comes from the database, never from the event that reports it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, select

from portal.errors import ApiError
from portal.extensions import db
from portal.jobs.models import Job
from portal.ledger.models import Event
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import create_payment_request, void_request
from portal.payments.models import Payment, Refund
from portal.payments.refunds import record_provider_refunds, refund_payment
from portal.payments.services import (
    PaymentRefused,
    apply_provider_payment,
    fulfil_payment,
    start_payment,
)
from portal.providers.base import ProviderPayment
from portal.states import PAYMENT_TRANSITIONS, REQUEST_TRANSITIONS, PaymentStatus
from tests.conftest import make_app
from tests.factories import (
    MerchantWithKey,
    deposit_body,
    make_merchant,
    statement_body,
    wallet_body,
)
from tests.fuzz import scaled


def _reachable(table: dict, start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in table[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


PROVIDER_STATUSES = ["succeeded", "failed", "processing", "canceled", "requires_action"]
BODIES = {
    "statement": lambda partial, full: statement_body(amount=10000, allow_partial=partial),
    "deposit": lambda partial, full: deposit_body(allow_partial=partial, allow_full_payment=full),
    "wallet": lambda partial, full: wallet_body(),
}
SETTLED = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)


def _count(model: Any, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture(scope="module")
def state_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, MerchantWithKey]]:
    app = make_app(f"sqlite:///{tmp_path_factory.mktemp('sm') / 'sm.db'}")
    with app.app_context():
        db.create_all()
        yield app, make_merchant()
        db.session.remove()


def test_provider_events_never_move_statuses_backwards_nor_pay_twice(state_app):
    _app, merchant = state_app

    class Payments(RuleBasedStateMachine):
        @initialize(kind=st.sampled_from(list(BODIES)), partial=st.booleans(), full=st.booleans())
        def new_request(self, kind, partial, full):
            body = BODIES[kind](partial, full)
            self.pr_id = create_payment_request(merchant.merchant, body).id
            db.session.commit()
            # payment id -> amount when it was opened, in the order they were opened (ids are
            # random: sorting them would make a replayed run pick other payments)
            self.amounts: dict[str, int] = {}
            self.seen_payment: dict[str, str] = {}
            self.seen_request = "open"

        @rule(amount=st.sampled_from([None, 500, 2500, 3000, 5000, 10000]), full=st.booleans())
        def customer_starts_paying(self, amount, full):
            pr = db.session.get(PaymentRequest, self.pr_id)
            try:
                payment = start_payment(pr, amount, full_order=full)
            except PaymentRefused:
                db.session.rollback()
                return
            self.amounts.setdefault(payment.id, payment.amount)

        @rule(data=st.data(), status=st.sampled_from(PROVIDER_STATUSES),
              tamper=st.sampled_from([None, None, None, "amount", "currency"]))  # fmt: skip
        def provider_reports(self, data, status, tamper):
            if not self.amounts:
                return
            payment_id = data.draw(st.sampled_from(list(self.amounts)))
            payment = db.session.get(Payment, payment_id)
            was = payment.status
            state = ProviderPayment(
                status=status,
                amount=payment.amount + (1 if tamper == "amount" else 0),
                currency="USD" if tamper == "currency" else payment.currency,
                provider_payment_id=f"pi_{payment_id}",
            )
            apply_provider_payment(payment_id, state, source="property")
            if tamper and status == "succeeded":
                db.session.expire_all()
                payment = db.session.get(Payment, payment_id)
                assert payment.status == was, "a success for another amount settled nothing"
                assert payment.flagged or was not in ("pending", "processing")

        @rule(data=st.data())
        def return_page_confirms(self, data):
            """The sandbox and the return page settle through fulfil_payment, at any time."""
            if self.amounts:
                fulfil_payment(data.draw(st.sampled_from(list(self.amounts))))

        @rule(data=st.data(), total=st.sampled_from([0, 1, 1000, "all", "more"]))
        def provider_reports_refunds(self, data, total):
            """A refund made at the provider (its dashboard), reported with its running total,
            maybe before the payment settled, maybe again."""
            if not self.amounts:
                return
            payment_id = data.draw(st.sampled_from(list(self.amounts)))
            amount = self.amounts[payment_id]
            total = {"all": amount, "more": amount * 2}.get(total, total)
            record_provider_refunds(payment_id, total)

        @rule(data=st.data(), part=st.sampled_from([None, 1, 1000]))
        def merchant_refunds(self, data, part):
            if not self.amounts:
                return
            payment_id = data.draw(st.sampled_from(list(self.amounts)))
            try:
                refund_payment(merchant.merchant, payment_id, part)
                db.session.commit()
            except ApiError:
                db.session.rollback()

        @rule()
        def merchant_voids(self):
            try:
                void_request(merchant.merchant, self.pr_id)
                db.session.commit()
            except ApiError:
                db.session.rollback()

        @invariant()
        def statuses_only_move_forwards(self):
            if not hasattr(self, "pr_id"):
                return
            db.session.expire_all()
            pr = db.session.get(PaymentRequest, self.pr_id)
            assert pr.status in _reachable(REQUEST_TRANSITIONS, self.seen_request), (
                f"request went from {self.seen_request} to {pr.status}"
            )
            self.seen_request = pr.status
            for payment_id in self.amounts:
                payment = db.session.get(Payment, payment_id)
                before = self.seen_payment.get(payment_id, "pending")
                assert payment.status in _reachable(PAYMENT_TRANSITIONS, before), (
                    f"payment went from {before} to {payment.status}"
                )
                self.seen_payment[payment_id] = payment.status

        @invariant()
        def settled_once_with_the_databases_amounts(self):
            if not hasattr(self, "pr_id"):
                return
            pr = db.session.get(PaymentRequest, self.pr_id)
            for payment_id, opened_with in self.amounts.items():
                payment = db.session.get(Payment, payment_id)
                assert payment.amount == opened_with, "no report changes what is charged"
                settled = payment.succeeded_at is not None
                assert settled == (payment.status in SETTLED)
                succeeded = db.session.scalars(
                    select(Event).where(
                        Event.payment_id == payment_id, Event.type == "payment.succeeded"
                    )
                ).all()
                receipts = _count(
                    Job,
                    Job.kind == "send_receipt",
                    Job.payload["payment_id"].as_string() == payment_id,
                )
                assert (len(succeeded), receipts) == ((1, 1) if settled else (0, 0))
                for event in succeeded:
                    booked = event.data["payment"]
                    assert (booked["amount"], booked["currency"]) == (opened_with, pr.currency)
            settled_total = db.session.scalar(
                select(func.coalesce(func.sum(Payment.amount), 0)).where(
                    Payment.request_id == self.pr_id, Payment.succeeded_at.is_not(None)
                )
            )
            assert pr.amount_paid == settled_total, "amount_paid is the sum of settled payments"
            # Never more than what could be asked: the amount, the whole order, the top-up's top.
            cap = {"statement": pr.amount, "order_deposit": pr.order_total}.get(
                pr.kind, pr.amount or pr.wallet_max
            )
            assert pr.amount_paid <= cap, f"paid {pr.amount_paid} of {cap}"
            if pr.status == "paid" and pr.kind == "statement":
                assert pr.amount_paid == pr.amount
            paid_events = _count(
                Event, Event.request_id == self.pr_id, Event.type == "payment_request.paid"
            )
            assert paid_events == (1 if pr.paid_at else 0)

        @invariant()
        def refunds_add_up(self):
            if not hasattr(self, "pr_id"):
                return
            pr = db.session.get(PaymentRequest, self.pr_id)
            refunded_total = 0
            for payment_id in self.amounts:
                payment = db.session.get(Payment, payment_id)
                booked = db.session.scalar(
                    select(func.coalesce(func.sum(Refund.amount), 0)).where(
                        Refund.payment_id == payment_id
                    )
                )
                assert 0 <= payment.amount_refunded == booked <= payment.amount
                assert _count(Refund, Refund.payment_id == payment_id) == _count(
                    Event, Event.payment_id == payment_id, Event.type == "payment.refunded"
                )
                if payment.amount_refunded:
                    assert payment.status == (
                        "refunded"
                        if payment.amount_refunded == payment.amount
                        else "partially_refunded"
                    )
                refunded_total += payment.amount_refunded
            assert pr.amount_refunded == refunded_total

    Payments.TestCase.settings = settings(
        max_examples=scaled(150),
        stateful_step_count=20,
        deadline=None,
        derandomize=True,  # the same runs every time: a CI failure reproduces
        database=None,  # nothing written to the working tree
        suppress_health_check=list(HealthCheck),
    )
    Payments.TestCase().runTest()
