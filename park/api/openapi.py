"""The published OpenAPI document: what each route answers, typed, and the error shape
every route really uses (`{"error": {"code", "message", "details"}}`, never FastAPI's
`HTTPValidationError`), with a description on every route.

Kept beside the routes rather than in them: the document is patched by path and method,
so routes can move between routers without losing their documentation. The models allow
extra fields (a kind or a newer server may add some); what they declare is always there
with that type.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from park.domain import JobStatus


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: invalid, not_found, conflict, ...")
    message: str = Field(description="for people; names the field to fix when there is one")
    details: Any = Field(
        default=None, description="for 422: a list of {field, message}; else the field or null"
    )


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the API."""

    error: ErrorDetail


class Job(Open):
    """A job as its owner sees it; another user's job omits spec, error and notify."""

    id: str
    user: str
    kind: str
    status: JobStatus
    priority: str
    tags: dict[str, str]
    name: str | None = Field(default=None, description="the tag `name`, if given")
    submitted_at: float = Field(description="epoch seconds")
    started_at: float | None
    finished_at: float | None
    progress: dict[str, Any] = Field(description="done and total units, plus the kind's own")
    units_summary: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    error: str | None = None


class JobList(Open):
    jobs: list[Job]
    offset: int = Field(description="the log offset this answer reflects")


class JobResult(Open):
    id: str
    status: JobStatus
    result: Any = Field(description="the kind's result (for a fit: parameters, statistics)")
    error: str | None


class Explanation(Open):
    id: str
    status: JobStatus
    offset: int
    reasons: list[str]
    rank: int | None
    runnable_jobs: int
    weight: float | None
    current_share: float | None
    target_share: float | None
    estimated_start: float | None = Field(description="epoch seconds, while it waits")


class Worker(Open):
    id: str
    name: str
    cpus: int
    owner: str | None
    policy: str
    job: str | None
    joined_at: float
    last_seen: float
    left_at: float | None
    units_leased: int
    units_done: int
    current_jobs: list[str] = Field(description="the jobs of the units it holds now")
    units_per_minute: float = Field(description="units done per minute since it joined")


class WorkerList(Open):
    workers: list[Worker]
    offset: int


class WorkerRegistered(Open):
    id: str
    lease_seconds: float


class LeasedUnit(Open):
    id: str
    job_id: str
    kind: str
    payload: dict[str, Any]
    lease_deadline: float


class Lease(Open):
    contexts: dict[str, dict[str, Any]] = Field(
        description="per job: what all its units share; merge each unit's payload over it"
    )
    units: list[LeasedUnit]


class ReportsAnswer(Open):
    accepted: int
    ignored: list[str] = Field(description="unit ids whose reports were not taken")


class LeaseDeadline(Open):
    lease_deadline: float | None


class LogRecord(Open):
    offset: int
    event: dict[str, Any]


class EventPage(Open):
    events: list[LogRecord]
    last_offset: int


class Ledger(Open):
    users: dict[str, dict[str, Any]]
    offset: int


class Policy(Open):
    priorities: Any
    config: dict[str, Any]


class Health(Open):
    status: str
    offset: int


class Units(Open):
    """A job's units, with their status and worker."""


ROUTES: dict[tuple[str, str], tuple[type[BaseModel] | None, str]] = {
    ("post", "/v1/jobs"): (
        Job,
        "Submit a job: a kind (`map`, `fit`), its spec, a priority and tags. The spec is "
        "checked at once; a mistake is a 422 naming the field.",
    ),
    ("get", "/v1/jobs"): (JobList, "Jobs, newest first, by status, user and tags."),
    ("get", "/v1/jobs/{job_id}"): (Job, "One job: status, progress, tags and (yours) spec."),
    ("patch", "/v1/jobs/{job_id}"): (Job, "Change a job's priority and/or tags."),
    ("get", "/v1/jobs/{job_id}/result"): (
        JobResult,
        "A finished job's result (409 while it still runs).",
    ),
    ("get", "/v1/jobs/{job_id}/explain"): (
        Explanation,
        "Why a job waits (rank, shares, reasons, expected start) or how far it has run.",
    ),
    ("post", "/v1/jobs/{job_id}/cancel"): (Job, "Cancel a job; its leased units are dropped."),
    ("get", "/v1/jobs/{job_id}/units"): (Units, "A job's units and where they ran."),
    ("post", "/v1/workers"): (
        WorkerRegistered,
        "Register a worker (name, cpus, owner, policy); answers its id and lease length.",
    ),
    ("get", "/v1/workers"): (WorkerList, "The worker pool (active ones unless active=false)."),
    ("delete", "/v1/workers/{worker_id}"): (
        None,
        "A worker leaves; its leased units go back to the queue at once.",
    ),
    ("post", "/v1/workers/{worker_id}/lease"): (
        Lease,
        "Lease units for a worker, waiting up to `wait` seconds for work.",
    ),
    ("post", "/v1/workers/{worker_id}/reports"): (
        ReportsAnswer,
        "Report results and failures of leased units, in a batch.",
    ),
    ("post", "/v1/workers/{worker_id}/heartbeat"): (
        LeaseDeadline,
        "Extend the leases of units still running.",
    ),
    ("get", "/v1/events"): (EventPage, "The raw event log, a page after an offset (admin)."),
    ("get", "/v1/ledger"): (Ledger, "Credit and usage per user."),
    ("get", "/v1/ledger/{user}"): (Ledger, "Credit and usage of one user."),
    ("put", "/v1/ledger/{user}/budget"): (Ledger, "Set (or clear) a user's budget (admin)."),
    ("get", "/v1/policy"): (Policy, "The fair-share policy and the price of each priority."),
    ("get", "/healthz"): (Health, "Liveness, and the log offset folded."),
    ("get", "/metrics"): (None, "Prometheus metrics (text exposition format)."),
}

ERRORS = {
    "400": "bad request",
    "401": "no or unknown token (with a token file)",
    "403": "the token may not do this",
    "404": "no such job, worker, unit or user",
    "409": "not in this state (a result of a running job, ...)",
    "413": "body too large",
    "422": "invalid input; `details` lists each field and what is wrong",
    "429": "a per-user limit is reached; see Retry-After",
    "500": "a bug; the message names the error type",
    "503": "the event log cannot take writes now; retry (see Retry-After)",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _add_schemas(components: dict[str, Any], models: list[type[BaseModel]]) -> None:
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components[model.__name__] = schema


def document(app: FastAPI) -> None:
    """Replace `app.openapi` by one that types the answers and the errors of every route."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        models = [m for m, _ in ROUTES.values() if m is not None]
        _add_schemas(components, [ErrorBody, *models])
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        error = {"application/json": {"schema": _ref(ErrorBody)}}
        typed = {m: {"application/json": {"schema": _ref(m)}} for m in models}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                model, text = ROUTES.get((method, path), (None, ""))
                if not operation.get("description"):
                    operation["description"] = text or operation.get("summary", path)
                responses = operation.setdefault("responses", {})
                for code, why in ERRORS.items():
                    responses[code] = {"description": why, "content": error}
                if model is not None:
                    for code in ("200", "201"):
                        if code in responses:
                            responses[code]["content"] = typed[model]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
