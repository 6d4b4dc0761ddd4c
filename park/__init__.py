"""park: a fair-share job service for scientific fitting, event-sourced on a log.

import park
job = park.submit("map", {"function": "park.builtins:sleep", "inputs": [1, 2]})
print(job.wait())                       # on the local service
with park.remote("http://server:8080"):
    park.jobs(status="running")         # on a remote one
"""

from park.client import (
    BadRequest,
    Job,
    JobCancelled,
    JobFailed,
    JobTable,
    LocalService,
    RemoteService,
    ServiceUnavailable,
    default_service,
    fit,
    job,
    jobs,
    local_service,
    remote,
    submit,
)
from park.identity import usertag

__all__ = [
    "BadRequest",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobTable",
    "LocalService",
    "RemoteService",
    "ServiceUnavailable",
    "default_service",
    "fit",
    "job",
    "jobs",
    "local_service",
    "remote",
    "submit",
    "usertag",
]
