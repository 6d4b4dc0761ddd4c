"""The exceptions every park client raises, local or remote alike."""

from __future__ import annotations


class ParkClientError(Exception):
    pass


class BadRequest(ParkClientError):
    """The service refused the request; the message is the server's."""

    def __init__(self, message: str, *, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ServiceUnavailable(ParkClientError):
    pass


class JobFailed(ParkClientError):
    pass


class JobCancelled(ParkClientError):
    pass
