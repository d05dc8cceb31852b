"""Flask extensions, created unbound and attached in :func:`portal.create_app`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import CursorResult, Executable, MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)

# The models' base: Flask-SQLAlchemy's ``db.Model`` at run time (a subclass of ``Base``
# made by the extension), ``Base`` for the type checker, which cannot see ``db.Model``.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate(compare_type=True, render_as_batch=True)


def execute_count(statement: Executable) -> int:
    """Run an UPDATE or DELETE in the session; the number of rows it changed."""
    return cast("CursorResult[Any]", db.session.execute(statement)).rowcount


babel = Babel()
csrf = CSRFProtect()
# Storage from PORTAL_REDIS_URL (shared by every web process) or memory in development.
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
