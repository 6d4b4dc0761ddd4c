"""Domain errors. The API turns each into its HTTP status and the JSON error shape."""

from __future__ import annotations

from typing import Any


class ParkError(Exception):
    status = 400
    code = "bad_request"
    retry_after: int | None = None  # seconds, sent as the Retry-After header

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


class TooLarge(ParkError):
    status = 413
    code = "too_large"


class TooManyRequests(ParkError):
    """A per-user limit (active jobs, queued units) is reached: retry once some finish."""

    status = 429
    code = "too_many"
    retry_after = 30


class Unavailable(ParkError):
    """The service cannot answer now (its log is unreachable or cannot take writes, or its
    projection lags); nothing was recorded, and the same request may succeed later."""

    status = 503
    code = "unavailable"
    retry_after = 5
