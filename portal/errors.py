"""Errors the API answers as ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations


class ApiError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        body: dict[str, str | None] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return {"error": body}


class NotFound(ApiError):
    def __init__(self, what: str = "object") -> None:
        super().__init__(404, "not_found", f"No such {what}.")


class Conflict(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(409, code, message)


class Invalid(ApiError):
    """422: valid JSON, invalid value."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(422, code, message, field)
