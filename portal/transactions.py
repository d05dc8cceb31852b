"""One transaction rule: services add and flush, a boundary commits.

The boundaries are the HTTP request (here), the job (:mod:`portal.jobs.worker`
commits after each handler), and the CLI command (each command of the ``cli``
modules commits at its end). Nothing else commits; a test keeps it so
(``tests/unit/test_architecture.py``).

The request's transaction is committed once, after the view has answered and
before the answer leaves, whatever its status: code that refuses a change rolls
it back where it refuses (the API's error handler, the pages' error paths, every
exception handler), so what is left pending is what the request decided to keep
(a failed sign-in's counter, a link open). A commit that fails answers like the
error it is: 503 when the database is unreachable, 409 on a constraint, never a
response that claims what was not stored.
"""

from __future__ import annotations

import logging

from flask import Flask, Response
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError

from portal.extensions import db
from portal.web import error_response

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Register the request boundary; call it last in :func:`portal.create_app`, so that it
    runs before the other after-request hooks (they then see the answer that was stored)."""
    app.after_request(commit_request)


def commit_request(response: Response) -> Response:

    try:
        db.session.commit()
    except (OperationalError, InterfaceError) as exc:
        db.session.rollback()
        log.warning("could not commit the request: %s", type(exc).__name__)
        message = "Temporarily unavailable; retry shortly."
        return error_response(503, "service_unavailable", message, "Unavailable",
                              {"Retry-After": "5"})  # fmt: skip
    except IntegrityError as exc:
        db.session.rollback()
        log.warning("the request broke a constraint at commit: %s", type(exc.orig).__name__)
        return error_response(409, "conflict", "This change conflicts with another.", "Conflict")
    except DataError:
        db.session.rollback()
        return error_response(400, "invalid_value", "A value in the request is not valid.",
                              "Bad request")  # fmt: skip
    return response
