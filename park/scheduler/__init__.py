"""The scheduler: a pure policy deciding which queued units a worker is granted."""

from park.scheduler.policy import Grant, WorkRequest, grant

__all__ = ["Grant", "WorkRequest", "grant"]
