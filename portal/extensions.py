"""Flask extensions, created unbound and attached in :func:`portal.create_app`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import click
from flask import Flask
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
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


class _Migrations:
    """``app.extensions["migrate"]`` until a migration needs it: then Flask-Migrate is
    imported and set up in its place. Flask-Migrate brings Alembic, 11 MB of every web
    worker's memory, for commands that only ``flask db`` and the tests run."""

    def __init__(self, app: Flask, directory: str) -> None:
        self._app, self._directory = app, directory

    def __getattr__(self, name: str) -> Any:
        from flask_migrate import Migrate

        # Replaces this placeholder with its own, and app.cli's "db" with its group.
        Migrate(self._app, db, self._directory, compare_type=True, render_as_batch=True)
        return getattr(self._app.extensions["migrate"], name)


class _MigrationsGroup(click.Group):
    """``flask db …``: Flask-Migrate's own group, imported when the command runs."""

    def __init__(self) -> None:
        super().__init__("db", help="Perform database migrations.")

    @staticmethod
    def _group() -> click.Group:
        from flask_migrate.cli import db as group

        return group

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:  # fmt: skip
        return self._group().make_context(info_name, args, parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._group().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._group().get_command(ctx, cmd_name)


def init_migrations(app: Flask, directory: str) -> None:
    app.extensions["migrate"] = _Migrations(app, directory)
    app.cli.add_command(_MigrationsGroup())


def execute_count(statement: Executable) -> int:
    """Run an UPDATE or DELETE in the session; the number of rows it changed."""
    return cast("CursorResult[Any]", db.session.execute(statement)).rowcount


babel = Babel()
csrf = CSRFProtect()
# Storage from PORTAL_REDIS_URL (shared by every web process) or memory in development.
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
