"""The module-level Python API: `park.submit`, `park.job`, `park.jobs`, `park.remote`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from park.client.job import Job
from park.client.local import LocalService
from park.client.service import RemoteService
from park.identity import notify_request, usertag

local_service = LocalService()

_stack: ContextVar[tuple[RemoteService, ...]] = ContextVar("park_services", default=())


def default_service() -> RemoteService:
    """The innermost `park.remote(...)` service, else the local service."""
    stack = _stack.get()
    return stack[-1] if stack else local_service


@contextmanager
def remote(url: str, token: str | None = None) -> Iterator[RemoteService]:
    """Inside this block, park calls go to the server at `url`."""
    service = RemoteService(url, token)
    reset = _stack.set((*_stack.get(), service))
    try:
        yield service
    finally:
        _stack.reset(reset)
        service.close()


def default_tags(service_name: str) -> dict[str, str]:
    """What every job is tagged with, from Python and from the command line alike."""
    return {
        "user": usertag(),
        "service": service_name,
        "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def submit(
    kind: str,
    spec: dict[str, Any],
    priority: str = "free",
    tags: dict[str, str] | None = None,
    notify: str | bool | dict[str, Any] | None = None,
    service: RemoteService | None = None,
    name: str | None = None,
) -> Job:
    """Submit a job; it is tagged with the user, the service and the submit time (the
    same default tags as `park submit`), and `name` (shown in listings and the web page).
    `notify`: an address (a daily digest of finished jobs), True (the address in
    PARKMAIL), or {"email", "when": "digest"|"each"|"never", "webhook"}."""
    service = service or default_service()
    all_tags = {**default_tags(service.name), **(tags or {})}
    body: dict[str, Any] = {"kind": kind, "spec": spec, "priority": priority, "tags": all_tags}
    if name is not None:
        body["name"] = name
    request = notify_request(notify)
    if request is not None:
        body["notify"] = request
    return Job(service.submit(body)["id"], service)


def fit(
    model: str | dict[str, Any],
    data: dict[str, Any],
    parameters: dict[str, Any],
    method: str = "multistart",
    *,
    priority: str = "free",
    tags: dict[str, str] | None = None,
    notify: str | bool | dict[str, Any] | None = None,
    service: RemoteService | None = None,
    **options: Any,
) -> Job:
    """Submit a `fit` job: `model` an expression in x and the parameters (or a builtin)."""
    spec = {
        "model": model,
        "data": data,
        "parameters": parameters,
        "method": method,
        "options": options,
    }
    return submit("fit", spec, priority=priority, tags=tags, notify=notify, service=service)


def job(job_id: str, service: RemoteService | None = None) -> Job:
    """Find a job again by id (raises BadRequest if the service does not know it)."""
    service = service or default_service()
    service.get_job(job_id)
    return Job(job_id, service)


def jobs(
    status: str | list[str] | None = None,
    tags: dict[str, str] | list[str] | None = None,
    service: RemoteService | None = None,
    *,
    user: str | None = None,
    kind: str | None = None,
    since: str | float | None = None,
    until: str | float | None = None,
    limit: int | None = 1000,
) -> list[Job]:
    """Jobs of the service, newest first, filtered by status and tags (`{"name": "scan"}`
    or `["name=scan", "urgent"]`), user, kind and submission time (`since`/`until`: ISO
    dates or epoch seconds); archived jobs too, up to `limit` (None: every one)."""
    service = service or default_service()
    statuses = [status] if isinstance(status, str) else status
    tag_filters = [f"{k}={v}" for k, v in tags.items()] if isinstance(tags, dict) else tags
    filters = {"user": user, "kind": kind, "since": since, "until": until}
    found = service.list_jobs(
        status=statuses,
        tags=tag_filters,
        limit=limit,
        **{k: v for k, v in filters.items() if v is not None},
    )
    return [Job(j["id"], service) for j in found]
