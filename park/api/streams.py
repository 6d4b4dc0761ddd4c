"""Server-sent event streams: the live job table and the raw log.

Both follow one resume rule: each message's `id:` is a log offset; a client reconnecting
with `Last-Event-ID: N` (or `?after=N`) gets exactly what came after N. When N is too old
for the job feed to resume, the client gets a fresh `snapshot` instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from park.api.auth import Caller, Role
from park.errors import Forbidden, InvalidRequest
from park.projections.views import job_matcher
from park.service.engine import ParkService
from park.service.feed import snapshot

HEARTBEAT_SECONDS = 10.0
MAX_OFFSET = 2**63 - 1
_WAKE_SECONDS = 1.0  # how often an idle stream looks for a server shutdown


def _resume_offset(request: Request, after: int | None) -> int | None:
    header = request.headers.get("last-event-id")
    if header is None or header == "":
        return after
    try:
        value = int(header)
        if value > MAX_OFFSET:
            raise ValueError
    except ValueError:
        raise InvalidRequest(
            "Last-Event-ID: must be a log offset (an integer)", field="Last-Event-ID"
        ) from None
    if value < 0:
        raise InvalidRequest("Last-Event-ID: must not be negative", field="Last-Event-ID")
    return value


def job_filter(user: str | None, tags: list[str]) -> Callable[[dict[str, Any]], bool]:
    matches = job_matcher(user, tags)
    return lambda job: matches(job["user"], job["tags"])


def stream_router(service: ParkService, caller: Callable[..., Caller]) -> APIRouter:
    """With tokens on, the job stream needs a token (and shows public job views only, as
    to everyone); the raw log needs an admin token, as `GET /v1/events` does."""
    router = APIRouter()

    @router.get("/v1/jobs/stream")
    async def job_stream(
        request: Request,
        user: str | None = None,
        tag: list[str] = Query(default=[], description="key or key=value"),
        after: int | None = Query(default=None, ge=0, le=MAX_OFFSET),
        who: Caller = Depends(caller),
    ) -> EventSourceResponse:
        """`snapshot` (every active job), then a `change` per job change; `id:` = offset."""
        resume = _resume_offset(request, after)
        visible = job_filter(user, tag)
        return EventSourceResponse(_job_events(service, resume, visible), ping=HEARTBEAT_SECONDS)

    @router.get("/v1/events/stream")
    async def event_stream(
        request: Request,
        after: int | None = Query(default=None, ge=0, le=MAX_OFFSET),
        who: Caller = Depends(caller),
    ) -> EventSourceResponse:
        """The raw log from `after` (or `Last-Event-ID`), then live; `id:` = offset."""
        if who.authenticated and who.role is not Role.ADMIN:
            raise Forbidden("the raw log needs an admin token")
        resume = _resume_offset(request, after) or 0
        return EventSourceResponse(_log_events(service, resume), ping=HEARTBEAT_SECONDS)

    return router


async def _job_events(
    service: ParkService, resume: int | None, visible: Callable[[dict[str, Any]], bool]
) -> AsyncIterator[ServerSentEvent]:
    feed = service.feed
    # A client ahead of this log (it was reset, or this is another server) starts afresh.
    known = resume is not None and resume <= service.state.offset
    pending = feed.since(resume) if known and resume is not None else None
    after = resume or 0
    while not service.closing:
        if pending is None:  # new client, or one too far behind to resume: start afresh
            snap = snapshot(service.state)
            snap["jobs"] = [job for job in snap["jobs"] if visible(job)]
            after = snap["offset"]
            yield ServerSentEvent(json.dumps(snap), event="snapshot", id=str(after))
            pending = []
        for change in pending:
            after = change.offset
            if visible(change.job):
                yield ServerSentEvent(change.data, event="change", id=str(after))
        await feed.wait(_WAKE_SECONDS)
        pending = feed.since(after)


async def _log_events(service: ParkService, after: int) -> AsyncIterator[ServerSentEvent]:
    while not service.closing:
        records = await service.log.read(after=after, limit=1000)
        for rec in records:
            after = rec.offset
            body = rec.event.model_dump_json()
            yield ServerSentEvent(
                f'{{"offset": {rec.offset}, "event": {body}}}', event="event", id=str(after)
            )
        if not records:
            # woken by every fold, in both modes (on Kafka the log's own reader is the
            # follower's: waiting on it here would compete with it)
            await service.wait_for_change(_WAKE_SECONDS)
