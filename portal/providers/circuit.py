"""Circuit breakers for the payment providers, shared by every worker through the database.

The worker's reconciliation asks the provider about stuck payments. When the provider
does not answer, each call waits for the SDK's timeouts; a hundred stuck payments would
be a hundred timeouts a minute. A breaker counts consecutive failures per provider:
after :data:`THRESHOLD` of them it opens, and nobody calls until its cool-down is over
(30 s, doubling up to 10 min). Then exactly one caller, over every worker, makes a
probe: an answer closes the circuit, another failure opens it for longer.

The state lives in ``provider_circuits``, so every worker sees one probe's outcome, and
``/readyz`` and ``/metrics`` (served by the web processes) show it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, Text, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_types import UTCDateTime, isoformat, utcnow
from portal.extensions import Model, db, execute_count

log = logging.getLogger(__name__)

THRESHOLD = 3  # consecutive failures that open the circuit
COOL_DOWN = timedelta(seconds=30)
MAX_COOL_DOWN = timedelta(minutes=10)


class ProviderCircuit(Model):
    """A provider's health as the workers last saw it."""

    __tablename__ = "provider_circuits"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While set the circuit is open: no call before then, and then one probe.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def describe(self) -> str:
        """One line for ``/readyz``."""
        if self.retry_at is None:
            return "closed" if not self.failures else f"closed, {self.failures} failure(s) in a row"
        return (
            f"open since {isoformat(self.opened_at)} after {self.failures} failures; "
            f"next probe at {isoformat(self.retry_at)}; last error: {self.last_error}"
        )


def cool_down(failures: int) -> timedelta:
    """How long the circuit stays open after ``failures`` consecutive failures."""
    return min(COOL_DOWN * 2 ** max(failures - THRESHOLD, 0), MAX_COOL_DOWN)


def circuits() -> list[ProviderCircuit]:
    """Every provider that has a circuit (one that failed at least once)."""
    return list(db.session.scalars(select(ProviderCircuit).order_by(ProviderCircuit.provider)))


class CircuitBreaker:
    """One provider's breaker. Each method commits, so the other workers see it at once."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._clean = False  # the last read showed no failure: a success writes nothing
        self._open_until: datetime | None = None  # seen open: no need to ask again before

    def _row(self) -> ProviderCircuit | None:
        return db.session.execute(
            select(ProviderCircuit)
            .where(ProviderCircuit.provider == self.provider)
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()

    def allow(self) -> bool:
        """May a call go out now? While open, no; once the cool-down is over, one caller
        (over every worker) gets a yes and its call is the probe."""
        now = utcnow()
        if self._open_until and now < self._open_until:
            return False
        row = self._row()
        self._clean = row is None or (not row.failures and row.retry_at is None)
        if row is None or row.retry_at is None:
            db.session.commit()
            return True
        if row.retry_at > now:
            self._open_until = row.retry_at
            db.session.commit()
            return False
        # Nobody else probes while this probe may still be waiting for its answer.
        probe = execute_count(
            update(ProviderCircuit)
            .where(ProviderCircuit.provider == self.provider, ProviderCircuit.retry_at <= now)
            .values(retry_at=now + cool_down(row.failures))
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if probe:
            log.info("%s: circuit half open, one probe goes out", self.provider)
        return bool(probe)

    def succeeded(self) -> None:
        if self._clean:
            return
        closed = execute_count(
            update(ProviderCircuit)
            .where(ProviderCircuit.provider == self.provider)
            .values(failures=0, opened_at=None, retry_at=None, last_success_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        self._clean = True
        if closed:
            log.info("%s answers again: circuit closed", self.provider)

    def failed(self, error: str) -> None:
        self._clean = False
        now = utcnow()
        self._ensure_row()
        failures = db.session.execute(
            update(ProviderCircuit)
            .where(ProviderCircuit.provider == self.provider)
            .values(
                failures=ProviderCircuit.failures + 1,
                last_error=error[:500],
                last_failure_at=now,
            )
            .returning(ProviderCircuit.failures)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        if failures >= THRESHOLD:
            retry_at = now + cool_down(failures)
            db.session.execute(
                update(ProviderCircuit)
                .where(ProviderCircuit.provider == self.provider)
                .values(
                    retry_at=retry_at,
                    opened_at=db.func.coalesce(ProviderCircuit.opened_at, now),
                )
                .execution_options(synchronize_session=False)
            )
            log.warning(
                "%s: circuit open after %s consecutive failures, next probe at %s: %s",
                self.provider,
                failures,
                isoformat(retry_at),
                error,
            )
        db.session.commit()

    def _ensure_row(self) -> None:
        dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
        db.session.execute(
            dialect.insert(ProviderCircuit)
            .values(provider=self.provider, failures=0)
            .on_conflict_do_nothing(index_elements=["provider"])
        )


class ProviderGuard:
    """What the reconciliation asks before each provider call and tells after it: a time
    budget for the run, and a circuit breaker per provider.

    The budget is checked before each call; a call in progress is never cut short (it
    ends with the provider's own timeout), which is why the reconciliation has a thread
    of its own (:mod:`portal.jobs.periodic`).
    """

    def __init__(self, budget_seconds: float) -> None:
        self.deadline = time.monotonic() + budget_seconds
        self.breakers: dict[str, CircuitBreaker] = {}
        self.skipped = 0

    def _breaker(self, provider: str) -> CircuitBreaker:
        return self.breakers.setdefault(provider, CircuitBreaker(provider))

    def allow(self, provider: str) -> bool:
        if time.monotonic() >= self.deadline or not self._breaker(provider).allow():
            self.skipped += 1
            return False
        return True

    def succeeded(self, provider: str) -> None:
        self._breaker(provider).succeeded()

    def failed(self, provider: str, error: Exception) -> None:
        # One line: the SDKs' messages run over several.
        self._breaker(provider).failed(" ".join(f"{type(error).__name__}: {error}".split()))
