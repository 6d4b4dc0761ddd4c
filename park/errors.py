"""Domain errors. The API turns each into its HTTP status and the JSON error shape."""

from __future__ import annotations

from typing import Any


class ParkError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class InvalidRequest(ParkError):
    status = 422
    code = "invalid"


class NotFound(ParkError):
    status = 404
    code = "not_found"


class Conflict(ParkError):
    status = 409
    code = "conflict"


class Forbidden(ParkError):
    status = 403
    code = "forbidden"


class Unauthorized(ParkError):
    status = 401
    code = "unauthorized"


class Unavailable(ParkError):
    """The service cannot answer now (its log is unreachable or its projection lags)."""

    status = 503
    code = "unavailable"
