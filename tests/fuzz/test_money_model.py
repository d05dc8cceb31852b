"""The money model, checked by a state machine on SQLite and PostgreSQL.

Customers open tabs and choose amounts, submit twice, pay on the portal's page or in a
stale tab straight at the provider, decline, go through 3-D Secure; the provider's
events arrive late, twice, out of order, or crossed by the return page; merchants and
the provider's dashboard refund; requests are voided and expire; the worker runs. The
provider keeps its own books (tests/fuzz/model_provider.py). After every step:

- the portal never books money the provider did not take, nor refunds it did not make;
  once everything has arrived, the two books are equal, and no money waits anywhere;
- ``amount_paid`` is the sum of the applied payments and never more than the request may
  receive; statuses only move forwards; at most one attempt is open;
- each applied payment has one ``payment.succeeded``, one receipt, one ledger delivery;
  money not applied has none, and is refunded;
- each statement line's allocations add up to what is settled on it, and the lines add
  up to what was paid less what was refunded.

``PORTAL_FUZZ_EXAMPLES`` deepens the run (CI runs a bounded one: 60 examples on each
database).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import func, select

from portal.db_types import utcnow
from portal.errors import ApiError
from portal.extensions import db
from portal.jobs.models import Job
from portal.jobs.worker import run_due_jobs
from portal.ledger.callbacks import add_endpoint
from portal.ledger.models import CallbackDelivery, Event
from portal.payment_requests.models import PaymentRequest
from portal.payment_requests.services import (
    create_payment_request,
    expire_overdue,
    void_request,
)
from portal.payments.models import Allocation, Payment, Refund
from portal.payments.refunds import record_provider_refunds, refund_payment
from portal.payments.services import (
    PaymentRefused,
    apply_provider_payment,
    confirm_payment,
    prepare_payment,
    refresh_payment,
    start_payment,
)
from portal.providers.base import ProviderPayment
from portal.states import OPEN_ATTEMPT, PAYMENT_TRANSITIONS, REQUEST_TRANSITIONS, SETTLED
from tests.factories import deposit_body, make_merchant, statement_body, wallet_body
from tests.fuzz import scaled
from tests.fuzz.model_provider import BOOKS
from tests.servers import HTTPRecorder, json_response

EXAMPLES = scaled(60)
LINES = {
    "balance": 15000,
    "lines": [
        {"date": "2026-10-03", "description": "Bread", "amount": 5000, "reference": "L1"},
        {"date": "2026-10-09", "description": "Credit", "amount": -1000, "reference": "C1"},
        {"description": "Undated", "amount": 11000, "reference": "L2"},
    ],
}
BODIES = {
    "statement": lambda partial, full: statement_body(
        amount=10000, allow_partial=partial, statement=LINES
    ),
    "deposit": lambda partial, full: deposit_body(allow_partial=partial, allow_full_payment=full),
    "wallet": lambda partial, full: wallet_body(),
    "fixed_wallet": lambda partial, full: wallet_body(amount=2000, wallet=None),
}
CARDS = st.sampled_from(["ok", "ok", "decline", "3ds", "sepa"])


def _reachable(table: dict, start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in table[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _count(model: Any, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _sum(column: Any, *where: Any) -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(column), 0)).where(*where)))


class MoneyModel(RuleBasedStateMachine):
    merchant: Any = None

    @initialize(kind=st.sampled_from(list(BODIES)), partial=st.booleans(), full=st.booleans())
    def new_request(self, kind, partial, full):
        body = BODIES[kind](partial, full)
        self.pr_id = create_payment_request(self.merchant.merchant, body).id
        db.session.commit()
        self.attempts: list[str] = []  # in the order they opened (ids are random)
        self.seen_payment: dict[str, str] = {}
        self.seen_request = "open"
        self.forged: set[str] = set()
        self.customer_asks_to_pay(None, full)  # the customer opens the link and starts paying

    # --- the customer ---------------------------------------------------------------

    @rule(amount=st.sampled_from([None, 10, 2500, 3000, 5000, 9980, 10000]), full=st.booleans())
    def customer_asks_to_pay(self, amount, full):
        """The pay form, from any tab, as often as the customer likes."""
        pr = db.session.get(PaymentRequest, self.pr_id)
        try:
            payment = start_payment(pr, amount, full_order=full)
            db.session.commit()
            payment_id = payment.id
            if payment_id not in self.attempts:
                self.attempts.append(payment_id)
            prepare_payment(payment)
            db.session.commit()
        except PaymentRefused:
            db.session.rollback()

    def _attempt(self, data) -> str | None:
        return data.draw(st.sampled_from(self.attempts)) if self.attempts else None

    def _intent(self, payment_id: str):
        intent_id = BOOKS.by_payment.get(payment_id)
        return BOOKS.intents[intent_id] if intent_id else None

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), card=CARDS)
    def customer_pays_on_the_page(self, data, card):
        """The portal's own card page (the sandbox's, Stripe's card flow): under the locks."""
        payment_id = self._attempt(data)
        if payment_id and self._intent(payment_id):
            confirm_payment(payment_id, card, source="page")
            db.session.commit()

    @precondition(lambda self: self.attempts)
    @rule(card=CARDS)
    def customer_pays_at_the_provider(self, card):
        """Stripe.js confirms the current attempt straight with Stripe (no portal lock): the
        portal hears of it by the event, or the return page."""
        intent = self._intent(self.attempts[-1])
        if intent:
            BOOKS.confirm(intent, card)

    @precondition(lambda self: len(self.attempts) > 1)
    @rule(data=st.data(), card=CARDS)
    def a_stale_tab_pays_at_the_provider(self, data, card):
        """An older tab, whose attempt was replaced or failed, confirms at the provider."""
        payment_id = data.draw(st.sampled_from(self.attempts[:-1]))
        intent = self._intent(payment_id)
        if intent:
            BOOKS.confirm(intent, card)

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), card=CARDS)
    def a_confirmation_crosses_the_cancel(self, data, card):
        """The customer confirms in a stale tab just as the portal cancels that attempt: the
        confirmation reaches the provider first (the cancel then finds it paid)."""
        payment_id = self._attempt(data)
        intent = self._intent(payment_id) if payment_id else None
        if intent and intent.status == "requires_payment_method":
            intent.crossing = card

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), approved=st.booleans())
    def customer_answers_3d_secure(self, data, approved):
        payment_id = self._attempt(data)
        intent = self._intent(payment_id) if payment_id else None
        if intent:
            BOOKS.authenticate(intent, approved)

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), paid=st.booleans())
    def the_bank_answers_a_debit(self, data, paid):
        payment_id = self._attempt(data)
        intent = self._intent(payment_id) if payment_id else None
        if intent:
            BOOKS.bank_answers(intent, paid)

    @precondition(lambda self: self.attempts)
    @rule(data=st.data())
    def customer_returns(self, data):
        """The return page asks the provider, at any time, racing its events."""
        payment_id = self._attempt(data)
        payment = db.session.get(Payment, payment_id) if payment_id else None
        if payment is not None and payment.status in OPEN_ATTEMPT and self._intent(payment_id):
            refresh_payment(payment)
            db.session.commit()

    # --- the provider ---------------------------------------------------------------

    def _deliver(self, payment_id: str, state: ProviderPayment) -> None:
        if state.status == "refund_total":
            record_provider_refunds(payment_id, state.amount)
        else:
            apply_provider_payment(payment_id, state, source="webhook")
        db.session.commit()

    @precondition(lambda self: any(pid in self.attempts for pid, _ in BOOKS.events))
    @rule(data=st.data(), again=st.booleans())
    def provider_delivers_an_event(self, data, again):
        """Any pending event, in any order; kept to be delivered a second time, or not."""
        mine = [i for i, (pid, _) in enumerate(BOOKS.events) if pid in self.attempts]
        if not mine:
            return
        index = data.draw(st.sampled_from(mine))
        payment_id, state = BOOKS.events[index] if again else BOOKS.events.pop(index)
        self._deliver(payment_id, state)

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), change=st.sampled_from(["amount", "currency"]))
    def a_report_the_provider_never_made(self, data, change):
        """A success for another amount or currency settles nothing; support is told."""
        payment_id = self._attempt(data)
        if payment_id is None:
            return
        payment = db.session.get(Payment, payment_id)
        was = payment.status
        state = ProviderPayment(
            status="succeeded",
            amount=payment.amount + (1 if change == "amount" else 0),
            currency="USD" if change == "currency" else payment.currency,
        )
        apply_provider_payment(payment_id, state, source="forged")
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(Payment, payment_id).status == was
        self.forged.add(payment_id)

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), amount=st.sampled_from([500, 2000, 100000]))
    def a_refund_in_the_providers_dashboard(self, data, amount):
        payment_id = self._attempt(data)
        intent = self._intent(payment_id) if payment_id else None
        if intent and intent.taken:
            BOOKS.dashboard_refund(intent, amount)

    # --- the merchant, time and the worker ----------------------------------------------

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), part=st.sampled_from([None, 100, 1000]))
    def merchant_refunds(self, data, part):
        payment_id = self._attempt(data)
        if payment_id is None:
            return
        try:
            refund_payment(self.merchant.merchant, payment_id, part)
            db.session.commit()
        except ApiError:
            db.session.rollback()

    @precondition(lambda self: len(self.attempts) > 1)
    @rule()
    def merchant_voids(self):
        try:
            void_request(self.merchant.merchant, self.pr_id)
            db.session.commit()
        except ApiError:
            db.session.rollback()

    @precondition(lambda self: len(self.attempts) > 1)
    @rule()
    def the_link_expires(self):
        pr = db.session.get(PaymentRequest, self.pr_id)
        pr.expires_at = utcnow()
        db.session.commit()
        expire_overdue()
        db.session.commit()

    @rule()
    def the_worker_runs(self):
        run_due_jobs()

    @rule()
    def everything_arrives(self):
        """Every event delivered, every attempt asked about, the worker idle: the books of the
        portal and of the provider are now the same, and no money waits."""
        for intent in filter(None, map(self._intent, self.attempts)):
            BOOKS.bank_answers(intent, True)  # debits take days, but they do end
        for _ in range(10):
            while any(pid in self.attempts for pid, _ in BOOKS.events):
                index = next(i for i, (pid, _) in enumerate(BOOKS.events) if pid in self.attempts)
                self._deliver(*BOOKS.events.pop(index))
            for payment_id in self.attempts:
                payment = db.session.get(Payment, payment_id)
                if payment.status in OPEN_ATTEMPT and self._intent(payment_id):
                    refresh_payment(payment)
                    db.session.commit()
            ran = run_due_jobs()
            if not ran and not any(pid in self.attempts for pid, _ in BOOKS.events):
                break
        db.session.expire_all()
        taken, refunded = self._provider_books()
        payments = [db.session.get(Payment, pid) for pid in self.attempts]
        assert taken == sum(p.amount for p in payments if p.status in SETTLED)
        assert refunded == sum(p.amount_refunded for p in payments)
        for payment in payments:
            intent = self._intent(payment.id)
            if payment.status in ("canceled", "failed") and intent:
                # A closed attempt can take no money any more: canceled at the provider
                # (or it did succeed there, and then its money was applied or given back).
                assert intent.status in ("canceled", "succeeded") or payment.status == "failed"
            if payment.status in SETTLED and not payment.applied:
                assert payment.amount_refunded == payment.amount, "unapplied money is given back"
                assert payment.refund_due is None

    def _provider_books(self) -> tuple[int, int]:
        intents = [self._intent(pid) for pid in self.attempts]
        return sum(i.taken for i in intents if i), sum(i.refunded for i in intents if i)

    # --- after every step ----------------------------------------------------------------

    @invariant()
    def statuses_only_move_forwards(self):
        if not hasattr(self, "pr_id"):
            return
        db.session.expire_all()
        pr = db.session.get(PaymentRequest, self.pr_id)
        assert pr.status in _reachable(REQUEST_TRANSITIONS, self.seen_request)
        self.seen_request = pr.status
        for payment_id in self.attempts:
            payment = db.session.get(Payment, payment_id)
            before = self.seen_payment.get(payment_id, "pending")
            assert payment.status in _reachable(PAYMENT_TRANSITIONS, before), (
                f"payment went from {before} to {payment.status}"
            )
            self.seen_payment[payment_id] = payment.status
        assert _count(Payment, Payment.request_id == self.pr_id,
                      Payment.status.in_(OPEN_ATTEMPT)) <= 1  # fmt: skip

    @invariant()
    def no_money_the_provider_does_not_have(self):
        if not hasattr(self, "pr_id"):
            return
        taken, refunded = self._provider_books()
        settled = _sum(Payment.amount, Payment.request_id == self.pr_id,
                       Payment.status.in_(SETTLED))  # fmt: skip
        booked_refunds = _sum(Payment.amount_refunded, Payment.request_id == self.pr_id)
        assert settled <= taken and booked_refunds <= refunded

    @invariant()
    def applied_once_told_once(self):
        if not hasattr(self, "pr_id"):
            return
        pr = db.session.get(PaymentRequest, self.pr_id)
        applied_total = 0
        for payment_id in self.attempts:
            payment = db.session.get(Payment, payment_id)
            succeeded = db.session.scalars(
                select(Event).where(
                    Event.payment_id == payment_id, Event.type == "payment.succeeded"
                )
            ).all()
            receipts = _count(Job, Job.kind == "send_receipt",
                              Job.payload["payment_id"].as_string() == payment_id)  # fmt: skip
            if payment.applied:
                applied_total += payment.amount
                assert (len(succeeded), receipts) == (1, 1)
                assert _count(CallbackDelivery, CallbackDelivery.event_id == succeeded[0].id) == 1
                assert succeeded[0].data["payment"]["amount"] == payment.amount
            else:
                assert (len(succeeded), receipts) == (0, 0)
            assert not payment.flagged or payment_id in self.forged
        assert pr.amount_paid == applied_total <= pr.payable_cap
        paid = _count(Event, Event.request_id == self.pr_id, Event.type == "payment_request.paid")
        assert paid == (1 if pr.paid_at else 0)

    @invariant()
    def refunds_and_lines_add_up(self):
        if not hasattr(self, "pr_id"):
            return
        pr = db.session.get(PaymentRequest, self.pr_id)
        refunded_applied = 0
        for payment_id in self.attempts:
            payment = db.session.get(Payment, payment_id)
            booked = _sum(Refund.amount, Refund.payment_id == payment_id)
            assert 0 <= payment.amount_refunded == booked <= payment.amount
            assert _count(Refund, Refund.payment_id == payment_id) == _count(
                Event, Event.payment_id == payment_id, Event.type == "payment.refunded"
            )
            if payment.applied:
                refunded_applied += payment.amount_refunded
        assert pr.amount_refunded == refunded_applied
        if pr.kind == "statement":
            for line in pr.statement_lines:
                assert line.amount_settled == _sum(Allocation.amount, Allocation.line_id == line.id)
            on_lines = sum(ln.amount_settled for ln in pr.statement_lines)
            assert on_lines == pr.amount_paid - pr.amount_refunded


def test_the_money_model_holds(app):
    app.config.update(PORTAL_PAYMENT_PROVIDER="model", PORTAL_MAIL_URL="console")
    ledger = HTTPRecorder(lambda req: json_response(200, {"ok": True})).start()
    try:
        merchant = make_merchant()
        add_endpoint(merchant.id, ledger.url)
        db.session.commit()
        MoneyModel.merchant = merchant
        MoneyModel.TestCase.settings = settings(
            max_examples=EXAMPLES,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,  # the same runs every time: a CI failure reproduces
            database=None,  # nothing written to the working tree
            suppress_health_check=list(HealthCheck),
        )
        MoneyModel.TestCase().runTest()
    finally:
        ledger.stop()
