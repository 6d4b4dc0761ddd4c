"""The client edge: one Python API for the local service and remote servers."""

from park.client.api import default_service, fit, job, jobs, local_service, remote, submit
from park.client.errors import BadRequest, JobCancelled, JobFailed, ServiceUnavailable
from park.client.http import DEFAULT_SERVER, ParkHttp
from park.client.job import Job
from park.client.local import LocalService
from park.client.service import RemoteService
from park.client.table import JobTable, TableChange

__all__ = [
    "DEFAULT_SERVER",
    "BadRequest",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobTable",
    "LocalService",
    "ParkHttp",
    "RemoteService",
    "ServiceUnavailable",
    "TableChange",
    "default_service",
    "fit",
    "job",
    "jobs",
    "local_service",
    "remote",
    "submit",
]
