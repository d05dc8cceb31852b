"""Keyset pagination of a merchant's rows, newest first (the API's list operations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from portal.errors import Invalid
from portal.extensions import db


def newest_first(
    query: Select[Any], model: Any, merchant_id: str, starting_after: str | None, limit: int,
    noun: str,
) -> tuple[list[Any], bool]:  # fmt: skip
    """One page of ``query``'s rows of ``model`` by (created_at, id) descending, after the
    row ``starting_after`` (which must be the merchant's ``noun``); returns (page, has_more)."""
    if starting_after:
        cursor = db.session.get(model, starting_after)
        if cursor is None or cursor.merchant_id != merchant_id:
            raise Invalid(
                "invalid_cursor", f"starting_after is not one of your {noun}.", "starting_after"
            )
        query = query.where(
            (model.created_at < cursor.created_at)
            | ((model.created_at == cursor.created_at) & (model.id < cursor.id))
        )
    rows = db.session.scalars(
        query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    ).all()
    return list(rows[:limit]), len(rows) > limit
