"""Waking an idle worker the moment a job is committed.

On PostgreSQL the transaction that enqueues a due job also sends ``NOTIFY portal_jobs``
(once per transaction, delivered by PostgreSQL only if it commits), and every worker keeps
one connection that ``LISTEN``s for it: a callback leaves milliseconds after the payment
commits instead of up to a poll later. On SQLite, or while the listening connection is
down, the worker's poll is the fallback; nothing is lost either way, only later.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "portal_jobs"
_DUE = "portal_jobs_due"  # the session's info key: a due job was added in this transaction


def mark_due(session: Session) -> None:
    """Remember that the session's transaction adds a job due now (see ``enqueue``)."""
    session.info[_DUE] = True


@event.listens_for(Session, "before_commit")
def _notify(session: Session) -> None:
    if not session.info.pop(_DUE, False):
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_DUE, None)


def listen_url(app: Flask) -> str | None:
    """A libpq URL for the listening connection, None where there is nothing to listen to."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Wakeup:
    """Set when there may be work: a job committed (NOTIFY), a job in hand ended, or the
    worker stops. The claim loop waits on it, with its poll as the upper bound."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self._event = threading.Event()
        self.listening = threading.Event()  # the LISTEN is in place (tests, logs)
        self.notifications = 0  # received since the start (one writer: the listener)

    def set(self, *_: Any) -> None:
        self._event.set()

    def wait(self, timeout: float) -> None:
        """Wait until woken or ``timeout`` seconds passed; the next wait needs a new wake."""
        self._event.wait(timeout)
        self._event.clear()

    def start_listening(self, url: str | None) -> threading.Thread | None:
        if url is None:
            return None
        thread = threading.Thread(target=self._listen, args=(url,), name="job-listen", daemon=True)
        thread.start()
        return thread

    def _listen(self, url: str) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    log.info("listening for new jobs (LISTEN %s)", CHANNEL)
                    delay = 1.0
                    self.set()  # anything committed while not listening is claimed now
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.notifications += 1
                            self.set()
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning(
                    "job wake-ups unavailable (%s: %s); polling, listening again in %.0fs",
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                    delay,
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
