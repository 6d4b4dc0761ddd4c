"""The HTTP API (DESIGN.md section 4): jobs, workers, units, the log, health and metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from park.api.auth import Caller, Role, TokenTable, caller_dependency
from park.api.history import day_range, days_json, job_query
from park.api.metrics import ParkCollector
from park.api.notify import notify_router
from park.api.openapi import document
from park.api.pilots import pilot_router
from park.api.schemas import (
    CompleteUnit,
    FailUnit,
    HeartbeatUnits,
    LeaseRequest,
    PatchJob,
    RegisterWorker,
    Reports,
    SetBudget,
    SubmitJob,
    WorkerUnits,
    ledger_json,
)
from park.api.streams import stream_router
from park.api.telemetry import EventMetrics, RequestTimer, process_metrics
from park.api.web import web_router
from park.commands import UnitReport
from park.domain import JobStatus
from park.errors import Conflict, Forbidden, InvalidRequest, NotFound, ParkError
from park.kinds import KINDS
from park.projections.state import JobView
from park.projections.views import job_json, with_pilots, worker_json
from park.scheduler.explain import explain, price_table
from park.service.engine import ParkService
from park.service.history import list_jobs as list_history
from park.service.history import usage_by_day

log = logging.getLogger("park.api")
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_OFFSET = 2**63 - 1  # SQLite's largest integer


@dataclass(frozen=True, slots=True)
class ApiSettings:
    tokens: TokenTable | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    sends_mail: bool = False  # an SMTP server is configured (--smtp)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}},
        status_code=status,
        headers=headers,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    if parts and parts[0] in ("query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


class BodyLimit:
    """Refuse bodies over the limit with 413 before anything reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # (raised while FastAPI reads the body, so it must be its HTTPException)
                raise HTTPException(413, f"body: larger than the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "too_large", f"body: larger than the limit of {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


def create_app(
    service: ParkService,
    settings: ApiSettings | None = None,
    *,
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        service.feed.observers.append(event_metrics)  # live events only, not the catch-up
        if on_startup is not None:
            await on_startup()
        try:
            yield
        finally:
            if on_shutdown is not None:
                await on_shutdown()
            await service.stop()

    app = FastAPI(
        title="park",
        version="0.1.0",
        description="A fair-share job service for scientific fitting.",
        lifespan=lifespan,
    )
    registry = CollectorRegistry()
    event_metrics = EventMetrics(registry)
    process_metrics(registry)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestTimer, registry=registry)
    app.include_router(stream_router(service, caller_dependency(settings.tokens)))
    app.include_router(web_router(service, settings.tokens))
    app.include_router(pilot_router(service, caller_dependency(settings.tokens)))
    app.include_router(
        notify_router(service, caller_dependency(settings.tokens), sends_mail=settings.sends_mail)
    )
    registry.register(ParkCollector(service))

    @app.exception_handler(ParkError)
    async def park_error(request: Request, err: ParkError) -> JSONResponse:
        details = {"field": err.field} if err.field else err.details
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
        return error_response(err.status, err.code, err.message, details, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": _field_path(tuple(e["loc"])), "message": e["msg"]} for e in err.errors()
        ]
        first = problems[0] if problems else {"field": "body", "message": "invalid"}
        message = f"{first['field']}: {first['message']}"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more)"
        return error_response(422, "invalid", message, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = "too_large" if err.status_code == 413 else "http_error"
        message = str(err.detail)
        if err.status_code == 400 and not message.startswith("body"):
            # FastAPI could not parse the body (nested too deep, a number too long)
            message = f"body: {message[:1].lower()}{message[1:]}"
        return error_response(err.status_code, code, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        """A bug, not bad input: still the JSON error shape, never a traceback."""
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", f"internal error: {type(err).__name__}")

    caller = caller_dependency(settings.tokens)

    def act_as_worker(worker_id: str, who: Caller) -> None:
        """A worker token may act only for the workers it registered (admins for any)."""
        who.require_worker()
        worker = service.state.workers.get(worker_id)
        if (
            who.authenticated
            and who.role is not Role.ADMIN
            and worker is not None
            and worker.registered_by != who.user
        ):
            raise Forbidden(f"worker {worker_id!r} was registered with another token")

    def visible_job(job_id: str, who: Caller) -> tuple[JobView, bool]:
        job = service.job(job_id)  # in memory or archived
        acting = who.acting_user()
        return job, acting is None or acting == job.user

    def changeable_job(job_id: str, who: Caller) -> JobView:
        """An archived job has finished long ago: nothing about it changes any more."""
        job, _ = visible_job(job_id, who)
        if job.id not in service.state.jobs:
            raise Conflict(f"job {job_id!r} is {job.status.value} and archived; it cannot change")
        return job

    # -- jobs -----------------------------------------------------------------------------

    @app.post("/v1/jobs", status_code=201)
    async def submit_job(
        body: SubmitJob, request: Request, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        tags = dict(body.tags)
        if body.name is not None:
            tags["name"] = body.name
        if who.authenticated:
            user = who.user or "anonymous"
        else:
            host = request.client.host if request.client else "unknown"
            user = who.user or tags.get("user") or host
        tags["user"] = user
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

    @app.get("/v1/jobs")
    async def list_jobs(
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
        who: Caller = Depends(caller),
    ) -> dict[str, Any]:
        """Jobs in memory and archived, newest first; page on with `before=` the answer's
        `next` (null on the last page)."""
        query = job_query(user, tag, status, kind, since, until, before, limit)
        jobs, more = list_history(service.state, service.archive, query)
        acting = who.acting_user()
        return {
            "jobs": [job_json(job, private=acting is None or acting == job.user) for job in jobs],
            "next": more,
            "offset": service.state.offset,
        }

    @app.get("/v1/jobs/{job_id}")
    async def get_job(job_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        job, private = visible_job(job_id, who)
        return with_pilots(job_json(job, private=private), service.state)

    @app.get("/v1/jobs/{job_id}/result")
    async def get_result(job_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        job, private = visible_job(job_id, who)
        if not private:
            raise NotFound(f"job_id: no job {job_id!r} of yours", field="job_id")
        if job.active:
            raise Conflict(f"job {job_id!r} is still {job.status}; no result yet")
        return {
            "id": job.id,
            "status": job.status.value,
            "result": job.result,
            "error": job.error,
        }

    @app.get("/v1/jobs/{job_id}/explain")
    async def explain_job(job_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        job, _ = visible_job(job_id, who)
        return explain(service.state, job.id, service.clock(), job=job)

    @app.post("/v1/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        changeable_job(job_id, who)
        return job_json(await service.cancel(job_id, by=who.acting_user()))

    @app.patch("/v1/jobs/{job_id}")
    async def patch_job(
        job_id: str, body: PatchJob, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        if body.priority is None and body.tags is None:
            raise InvalidRequest("body: give priority and/or tags to change", field="body")
        changeable_job(job_id, who)
        job = await service.change_job(
            job_id, tags=body.tags, priority=body.priority, by=who.acting_user()
        )
        return job_json(job)

    # -- workers and units ----------------------------------------------------------------

    @app.post("/v1/workers", status_code=201)
    async def register_worker(
        body: RegisterWorker, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        who.require_worker()
        owner = body.owner
        if who.authenticated and who.role.value != "admin":
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

    @app.get("/v1/workers")
    async def list_workers(active: bool = True, who: Caller = Depends(caller)) -> dict[str, Any]:
        workers = [worker_json(w) for w in service.state.workers.values() if w.active or not active]
        return {"workers": workers, "offset": service.state.offset}

    @app.delete("/v1/workers/{worker_id}", status_code=204)
    async def remove_worker(worker_id: str, who: Caller = Depends(caller)) -> Response:
        act_as_worker(worker_id, who)
        await service.remove_worker(worker_id)
        return Response(status_code=204)

    @app.post("/v1/workers/{worker_id}/lease")
    async def lease(
        worker_id: str, body: LeaseRequest, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        act_as_worker(worker_id, who)
        leased = await service.lease(worker_id, body.max_units, body.wait, body.max_seconds)
        jobs = {lu.job.id: lu.job for lu in leased}
        return {
            # what all units of a job share, once per job: merge each unit's payload over it
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

    @app.post("/v1/workers/{worker_id}/reports")
    async def report(
        worker_id: str, body: Reports, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        act_as_worker(worker_id, who)
        reports = [
            UnitReport(r.unit_id, r.ok, r.result, r.error, r.cpu_seconds, r.wall_seconds)
            for r in body.reports
        ]
        ignored = await service.report(worker_id, reports)
        return {"accepted": len(reports) - len(ignored), "ignored": ignored}

    @app.post("/v1/workers/{worker_id}/heartbeat")
    async def worker_heartbeat(
        worker_id: str, body: HeartbeatUnits, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        act_as_worker(worker_id, who)
        answer = await service.heartbeat(worker_id, body.unit_ids, extend=body.extend)
        return {"lease_deadline": answer.lease_deadline, "stop": answer.stop}

    @app.post("/v1/units/{unit_id}/complete")
    async def complete_unit(
        unit_id: str, body: CompleteUnit, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        act_as_worker(body.worker_id, who)
        report = UnitReport(unit_id, True, body.result, None, body.cpu_seconds)
        ignored = await service.report(body.worker_id, [report])
        return {"accepted": not ignored}

    @app.post("/v1/units/{unit_id}/fail")
    async def fail_unit(
        unit_id: str, body: FailUnit, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        act_as_worker(body.worker_id, who)
        ignored = await service.report(
            body.worker_id, [UnitReport(unit_id, False, None, body.error)]
        )
        return {"accepted": not ignored}

    @app.post("/v1/units/{unit_id}/heartbeat")
    async def unit_heartbeat(
        unit_id: str, body: WorkerUnits, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        act_as_worker(body.worker_id, who)
        answer = await service.heartbeat(body.worker_id, [unit_id])
        return {"lease_deadline": answer.lease_deadline, "stop": answer.stop}

    # -- the log, the ledger, health ------------------------------------------------------

    @app.get("/v1/events")
    async def events(
        after: int = Query(default=0, ge=0, le=MAX_OFFSET),
        limit: int = Query(default=1000, ge=1, le=10_000),
        who: Caller = Depends(caller),
    ) -> dict[str, Any]:
        if who.authenticated and who.role.value != "admin":
            raise Forbidden("the raw log needs an admin token")
        records = await service.log.read(after=after, limit=limit)
        return {
            "events": [
                {"offset": r.offset, "event": json.loads(r.event.model_dump_json())}
                for r in records
            ],
            "last_offset": await service.log.last_offset(),
        }

    @app.get("/v1/ledger")
    async def ledger(
        first: str | None = Query(default=None, alias="from", description="first day (ISO)"),
        last: str | None = Query(default=None, alias="to", description="last day (ISO)"),
        who: Caller = Depends(caller),
    ) -> dict[str, Any]:
        """Totals per user; with `from`/`to`, also usage per user per day (`days`)."""
        answer = ledger_json(service.state, service.clock())
        if first is not None or last is not None:
            start, end = day_range(first, last, service.clock())
            answer["days"] = days_json(usage_by_day(service.state, service.archive, start, end))
        return answer

    @app.get("/v1/ledger/{user}")
    async def ledger_of(user: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        answer = ledger_json(service.state, service.clock(), user)
        if user not in answer["users"]:
            raise NotFound(f"user: nothing recorded for user {user!r}", field="user")
        return answer

    @app.put("/v1/ledger/{user}/budget")
    async def set_budget(
        user: str, body: SetBudget, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        if who.authenticated and who.role.value != "admin":
            raise Forbidden("setting a budget needs an admin token")
        await service.set_budget(user, body.credits)
        return ledger_json(service.state, service.clock(), user)

    @app.get("/v1/policy")
    async def policy(who: Caller = Depends(caller)) -> dict[str, Any]:
        return {
            "priorities": price_table(service.state),
            "config": service.state.policy.model_dump(mode="json"),
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "offset": service.state.offset}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    document(app)
    return app
