"""The client edge: talking to a park service from Python and the command line."""

from park.client.errors import BadRequest, JobCancelled, JobFailed, ServiceUnavailable
from park.client.http import DEFAULT_SERVER, ParkHttp

__all__ = [
    "DEFAULT_SERVER",
    "BadRequest",
    "JobCancelled",
    "JobFailed",
    "ParkHttp",
    "ServiceUnavailable",
]
