"""Link opens counted in the web process and written in batches, off the page's path.

A view of a link page used to cost an UPDATE, a ``SET LOCAL`` and the commit's round
trip, about a tenth of the page's CPU. Now the page adds the open to this process's
tally (a dict under a lock: no I/O), and a daemon thread writes the tally every
``PORTAL_OPEN_COUNT_FLUSH_SECONDS`` (1 s) in one transaction of its own: one UPDATE per
request opened since the last flush, adding the number of opens, keeping the first and
the last open's time. Every open still counts:

- a flush that fails (database down) puts its tally back, to be added to the next one;
- the tally is flushed when the worker exits (gunicorn's ``worker_exit`` hook, which runs
  on a restart, a recycle after ``max_requests`` and a graceful shutdown, and ``atexit``);
- only a process killed outright (``SIGKILL``, out of memory) loses its last second.

The support console, the merchant's console and the API show an open up to a second late.
On SQLite (one writer for the whole file: a second writing thread would only wait for the
request's) and with ``PORTAL_OPEN_COUNT_FLUSH_SECONDS=0`` the open is counted in the page's
own transaction, as before.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from flask.sansio.app import App
from sqlalchemy import Table, bindparam, text, update
from sqlalchemy.exc import SQLAlchemyError

from portal.db_types import utcnow
from portal.extensions import db
from portal.payment_requests.models import PaymentRequest

log = logging.getLogger(__name__)
EXTENSION = "portal.open_counter"


class OpenCounter:
    """This process's opens not yet written: request id -> [opens, first, last]."""

    def __init__(self, app: Flask, interval: float) -> None:
        self.app, self.interval = app, interval
        self._pending: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time (thread, exit hook, tests)
        self._owner = 0  # the process whose thread flushes (gunicorn forks after import)
        self._stop = threading.Event()

    def record(self, request_id: str, now: datetime) -> None:
        with self._lock:
            entry = self._pending.get(request_id)
            if entry is None:
                self._pending[request_id] = [1, now, now]
            else:
                entry[0] += 1
                entry[2] = now
        if self._owner != os.getpid():
            self._start()

    def pending(self) -> int:
        with self._lock:
            return sum(entry[0] for entry in self._pending.values())

    def _start(self) -> None:
        with self._lock:
            if self._owner == os.getpid():
                return
            self._owner = os.getpid()
        threading.Thread(target=self._run, name="open-counter", daemon=True).start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def stop(self) -> None:
        self._stop.set()

    def flush(self) -> int:
        """Write the tally in one transaction; the opens written (0 when it failed)."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                with self.app.app_context():
                    _write(batch)
            except SQLAlchemyError:
                log.warning("could not write %d link opens; kept for the next try", len(batch),
                            exc_info=True)  # fmt: skip
                self._put_back(batch)
                return 0
            return sum(entry[0] for entry in batch.values())

    def _put_back(self, batch: dict[str, list[Any]]) -> None:
        with self._lock:
            for request_id, (count, first, last) in batch.items():
                entry = self._pending.get(request_id)
                if entry is None:
                    self._pending[request_id] = [count, first, last]
                else:
                    entry[0] += count
                    entry[1] = min(entry[1], first)


def _write(batch: dict[str, list[Any]]) -> None:
    """One UPDATE per request (an executemany) and one commit: this thread's boundary."""
    table = PaymentRequest.__table__
    assert isinstance(table, Table)
    statement = (
        update(table)
        .where(table.c.id == bindparam("rid"))
        .values(
            open_count=table.c.open_count + bindparam("opens"),
            last_opened_at=bindparam("last"),
            first_opened_at=db.func.coalesce(table.c.first_opened_at, bindparam("first")),
            updated_at=table.c.updated_at,  # an open is not a change of the request
        )
    )
    rows = [
        {"rid": rid, "opens": count, "first": first, "last": last}
        for rid, (count, first, last) in sorted(batch.items())  # one lock order for all
    ]
    try:
        db.session.execute(statement, rows)
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        raise
    finally:
        db.session.remove()


def init_app(app: App) -> None:
    assert isinstance(app, Flask)
    interval = float(app.config.get("PORTAL_OPEN_COUNT_FLUSH_SECONDS", 1.0))
    sqlite = str(app.config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("sqlite")
    if interval > 0 and not sqlite:
        app.extensions[EXTENSION] = OpenCounter(app, interval)


def counter() -> OpenCounter | None:
    """The app's batching counter, or None where opens are counted in the request."""
    return current_app.extensions.get(EXTENSION)


def flush_app(app: Any) -> int:
    """Write what ``app`` (a Flask app, or anything else: then nothing) has not written."""
    extensions = getattr(app, "extensions", None) or {}
    found = extensions.get(EXTENSION)
    return found.flush() if found is not None else 0


def record_open(request_id: str) -> None:
    """Count a link open for support, no IP kept: in this process's tally, or (SQLite,
    flush interval 0) with one UPDATE in the request's transaction."""
    now = utcnow()
    found = counter()
    if found is not None:
        found.record(request_id, now)
        return
    if db.engine.dialect.name == "postgresql":
        # A visit counter need not wait for the WAL flush; payments and events still do.
        db.session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    table = PaymentRequest.__table__  # Core: no ORM objects to synchronise with a counter
    assert isinstance(table, Table)
    db.session.execute(
        update(table)
        .where(table.c.id == request_id)
        .values(
            open_count=table.c.open_count + 1,
            last_opened_at=now,
            first_opened_at=db.func.coalesce(table.c.first_opened_at, now),
            updated_at=table.c.updated_at,
        )
    )
