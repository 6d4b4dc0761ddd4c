"""`/v1/workers`: the worker protocol (register, lease, report, heartbeat, leave) and the
worker pool."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from park.api.access import Rules, Service, Who
from park.api.auth import Role
from park.api.schemas import HeartbeatUnits, LeaseRequest, RegisterWorker, Reports
from park.errors import Forbidden
from park.kinds import KINDS
from park.projections.views import worker_activity, worker_json
from park.service.engine import LeasedUnit

router = APIRouter()


def lease_json(leased: list[LeasedUnit]) -> dict[str, Any]:
    """The units granted, and once per job what all its units share (a worker merges
    each unit's payload over its job's context)."""
    jobs = {lu.job.id: lu.job for lu in leased}
    return {
        "contexts": {j: KINDS[job.kind].unit_context(job.spec) for j, job in jobs.items()},
        "units": [
            {
                "id": lu.unit.id,
                "job_id": lu.job.id,
                "kind": lu.job.kind,
                "payload": lu.unit.payload,
                "lease_deadline": lu.lease_deadline,
                "attempt": lu.unit.attempts,
                "time_limit": lu.unit.time_limit,
            }
            for lu in leased
        ],
    }


@router.post("/v1/workers", status_code=201)
async def register_worker(body: RegisterWorker, service: Service, who: Who) -> dict[str, Any]:
    who.require_worker()
    owner = body.owner
    if who.authenticated and who.role is not Role.ADMIN:
        if owner is not None and owner != who.user:
            raise Forbidden(f"owner: a worker of {who.user!r} cannot serve {owner!r} as owner")
        owner = owner or who.user
    worker_id = await service.register_worker(
        name=body.name,
        cpus=body.cpus,
        owner=owner,
        policy=body.policy,
        job_id=body.job,
        registered_by=who.user if who.authenticated else None,
        pilot_id=body.pilot,
        until=body.until,
        allowed=body.allowed,
    )
    return {"id": worker_id, "lease_seconds": service.config.lease_seconds}


@router.get("/v1/workers")
async def list_workers(service: Service, who: Who, active: bool = True) -> dict[str, Any]:
    state, now = service.state, service.clock()
    workers = [
        {**worker_json(w), **worker_activity(state, w, now)}
        for w in state.workers.values()
        if w.active or not active
    ]
    return {"workers": workers, "offset": state.offset}


@router.delete("/v1/workers/{worker_id}", status_code=204)
async def remove_worker(worker_id: str, service: Service, access: Rules, who: Who) -> Response:
    access.act_as_worker(worker_id, who)
    await service.remove_worker(worker_id)
    return Response(status_code=204)


@router.post("/v1/workers/{worker_id}/lease")
async def lease(
    worker_id: str, body: LeaseRequest, service: Service, access: Rules, who: Who
) -> dict[str, Any]:
    access.act_as_worker(worker_id, who)
    return lease_json(await service.lease(worker_id, body.max_units, body.wait, body.max_seconds))


@router.post("/v1/workers/{worker_id}/reports")
async def report(
    worker_id: str, body: Reports, service: Service, access: Rules, who: Who
) -> dict[str, Any]:
    access.act_as_worker(worker_id, who)
    ignored = await service.report(worker_id, body.reports)
    return {"accepted": len(body.reports) - len(ignored), "ignored": ignored}


@router.post("/v1/workers/{worker_id}/heartbeat")
async def worker_heartbeat(
    worker_id: str, body: HeartbeatUnits, service: Service, access: Rules, who: Who
) -> dict[str, Any]:
    access.act_as_worker(worker_id, who)
    answer = await service.heartbeat(worker_id, body.unit_ids, extend=body.extend)
    return {"lease_deadline": answer.lease_deadline, "stop": answer.stop}
