"""`/v1/jobs`: submit, list, show, result, explain, cancel, change."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from park.api.access import Rules, Service, Who
from park.api.auth import Caller
from park.api.history import job_query
from park.api.schemas import PatchJob, SubmitJob
from park.api.streams import MAX_OFFSET
from park.domain import JobStatus
from park.errors import Conflict, InvalidRequest
from park.projections.views import job_json, with_pilots
from park.protocol import MAX_JOB_WAIT
from park.scheduler.explain import explain
from park.service.history import list_jobs as list_history

router = APIRouter()


def submitter(who: Caller, tags: dict[str, str], request: Request) -> str:
    """The user a new job is recorded for: the token's user; without tokens the
    `X-Park-User` header, else a `user` tag, else the client's address."""
    if who.authenticated:
        return who.user or "anonymous"
    host = request.client.host if request.client else "unknown"
    return who.user or tags.get("user") or host


@router.post("/v1/jobs", status_code=201)
async def submit_job(
    body: SubmitJob, request: Request, service: Service, who: Who
) -> dict[str, Any]:
    tags = dict(body.tags)
    if body.name is not None:
        tags["name"] = body.name
    user = tags["user"] = submitter(who, tags, request)
    job = await service.submit(
        user=user,
        kind=body.kind,
        spec=body.spec,
        priority=body.priority,
        tags=tags,
        notify=body.notify,
        resources=body.resources,
        max_attempts=body.max_attempts,
        max_unit_seconds=body.max_unit_seconds,
    )
    return job_json(job)


@router.get("/v1/jobs")
async def list_jobs(
    service: Service,
    access: Rules,
    who: Who,
    status: list[JobStatus] = Query(default=[]),
    user: str | None = None,
    tag: list[str] = Query(default=[], description="key or key=value"),
    kind: list[str] = Query(default=[]),
    since: str | None = Query(default=None, description="submitted at/after: epoch s, ISO"),
    until: str | None = Query(default=None, description="submitted before: epoch s, ISO"),
    before: int | None = Query(
        default=None, ge=0, le=MAX_OFFSET, description="cursor: the `next` of the last page"
    ),
    limit: int = Query(default=1000, ge=1, le=100_000),
) -> dict[str, Any]:
    """Jobs in memory and archived, newest first; page on with `before=` the answer's
    `next` (null on the last page)."""
    query = job_query(user, tag, status, kind, since, until, before, limit)
    jobs, more = list_history(service.state, service.archive, query)
    return {
        "jobs": [job_json(job, private=access.sees_private(job, who)) for job in jobs],
        "next": more,
        "offset": service.state.offset,
    }


@router.get("/v1/jobs/{job_id}")
async def get_job(
    job_id: str,
    service: Service,
    access: Rules,
    who: Who,
    wait: float = Query(
        default=0.0,
        ge=0.0,
        le=MAX_JOB_WAIT,
        description="seconds to wait for the job to end before answering (a long poll)",
    ),
) -> dict[str, Any]:
    job, private = access.job(job_id, who)
    if wait > 0 and job.active:
        await service.wait_for_end(job_id, wait)
        job, private = access.job(job_id, who)
    return with_pilots(job_json(job, private=private), service.state)


@router.get("/v1/jobs/{job_id}/result")
async def get_result(job_id: str, access: Rules, who: Who) -> dict[str, Any]:
    job = access.own_job(job_id, who)
    if job.active:
        raise Conflict(f"job {job_id!r} is still {job.status}; no result yet")
    return {"id": job.id, "status": job.status.value, "result": job.result, "error": job.error}


@router.get("/v1/jobs/{job_id}/explain")
async def explain_job(job_id: str, service: Service, access: Rules, who: Who) -> dict[str, Any]:
    job, _ = access.job(job_id, who)
    return explain(service.state, job.id, service.clock(), job=job)


@router.post("/v1/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, service: Service, access: Rules, who: Who) -> dict[str, Any]:
    await access.changeable_job(job_id, who)
    return job_json(await service.cancel(job_id, by=who.acting_user()))


@router.patch("/v1/jobs/{job_id}")
async def patch_job(
    job_id: str, body: PatchJob, service: Service, access: Rules, who: Who
) -> dict[str, Any]:
    if body.priority is None and body.tags is None:
        raise InvalidRequest("body: give priority and/or tags to change", field="body")
    await access.changeable_job(job_id, who)
    job = await service.change_job(
        job_id, tags=body.tags, priority=body.priority, by=who.acting_user()
    )
    return job_json(job)
