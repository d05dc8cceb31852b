"""What makes a database lock mean the same on SQLite as on PostgreSQL.

PostgreSQL runs every statement in READ COMMITTED and ``SELECT … FOR UPDATE``
makes a second writer wait for the first. Python's ``sqlite3`` driver, left to
itself, runs SELECTs outside any transaction and drops ``FOR UPDATE``: two
requests may both read "pending" and both fulfil one payment. So on SQLite
the driver's own transaction handling is switched off (SQLAlchemy's
documented pysqlite recipe) and the portal begins transactions itself:

- reads run on their own, each seeing the latest committed data (as READ
  COMMITTED does on PostgreSQL);
- the first write, savepoint or locking SELECT (``with_for_update()``) of a
  transaction starts it with ``BEGIN IMMEDIATE``, which takes the database's
  write lock and waits (the busy timeout) while another writer holds it.

A lock taken by :func:`portal.payments.services.lock_request` therefore
really waits on SQLite too, and a second writer re-reads what the first one
committed. Writers serialize; readers never wait. The journal is in WAL mode,
so readers also never block the writer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select

# Statements that change the database (or open a savepoint, which must sit inside
# a transaction that already holds the write lock).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "SAVEPOINT")


def _is_locking(context: Any) -> bool:
    compiled = getattr(context, "compiled", None)
    statement = getattr(compiled, "statement", None)
    return isinstance(statement, Select) and statement._for_update_arg is not None


def _wants_write_lock(statement: str, context: Any) -> bool:
    head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
    return head in _WRITES or _is_locking(context)


def configure_sqlite(engine: Engine) -> None:
    """Install the SQLite transaction rules above on ``engine`` (a no-op elsewhere)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver emits no BEGIN of its own; we do, below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "before_cursor_execute")
    def _begin_for_writes(
        conn: Any, cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if not cursor.connection.in_transaction and _wants_write_lock(statement, context):
            cursor.execute("BEGIN IMMEDIATE")
