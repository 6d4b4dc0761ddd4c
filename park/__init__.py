"""park: a fair-share job service for scientific fitting, event-sourced on a log."""

from park.client.errors import BadRequest, JobCancelled, JobFailed, ServiceUnavailable
from park.identity import usertag

__all__ = ["BadRequest", "JobCancelled", "JobFailed", "ServiceUnavailable", "usertag"]
