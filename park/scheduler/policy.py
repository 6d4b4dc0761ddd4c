"""Who gets the next units: a pure policy over the projections.

`grant(state, request)` reads no clock and does no I/O; given the same state and request it
returns the same grants, which is what lets `park replay` check every recorded decision.
This order is priority first, then age (oldest submission first); workers' policies
restrict which jobs a worker may serve.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from park.domain import WorkerPolicy
from park.projections.state import JobView, ParkState, WorkerView


@dataclass(frozen=True, slots=True)
class WorkRequest:
    worker_id: str
    max_units: int


@dataclass(frozen=True, slots=True)
class Grant:
    unit_id: str
    job_id: str


def may_serve(worker: WorkerView, job: JobView) -> bool:
    if worker.policy is WorkerPolicy.OWN_ONLY:
        return job.user == worker.owner
    if worker.policy is WorkerPolicy.JOB:
        return job.id == worker.job_id
    return True


def job_order(worker: WorkerView, job: JobView) -> tuple[bool, int, float, str]:
    own_first = worker.policy is WorkerPolicy.OWN_FIRST and job.user != worker.owner
    return (own_first, -job.priority.rank, job.submitted_at, job.id)


def grant(state: ParkState, request: WorkRequest) -> list[Grant]:
    worker = state.workers.get(request.worker_id)
    if worker is None or not worker.active or request.max_units <= 0:
        return []
    jobs = [state.jobs[j] for j in state.runnable]
    eligible = sorted(
        (job for job in jobs if may_serve(worker, job)), key=lambda j: job_order(worker, j)
    )
    grants: list[Grant] = []
    for job in eligible:
        wanted = request.max_units - len(grants)
        grants.extend(Grant(unit_id, job.id) for unit_id in islice(job.queue, wanted))
        if len(grants) >= request.max_units:
            break
    return grants
