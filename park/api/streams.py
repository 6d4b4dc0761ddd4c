"""The raw log (`GET /v1/events`, in pages) and the server-sent event streams: the live
job table and the raw log, live.

Both streams follow one resume rule: each message's `id:` is a log offset; a client
reconnecting with `Last-Event-ID: N` (or `?after=N`) gets exactly what came after N. When
N is too old for the job feed to resume, the client gets a fresh `snapshot` instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from park.api.access import Rules, Service, Who
from park.errors import InvalidRequest
from park.projections.views import job_matcher
from park.protocol import STREAM_PING_SECONDS
from park.service.engine import ParkService
from park.service.feed import snapshot

MAX_OFFSET = 2**63 - 1  # SQLite's largest integer
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


router = APIRouter()


@router.get("/v1/events")
async def events(
    service: Service,
    access: Rules,
    who: Who,
    after: int = Query(default=0, ge=0, le=MAX_OFFSET),
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> dict[str, Any]:
    """The raw log in pages (an admin's, with tokens on), from `after`."""
    access.require_admin(who, "the raw log")
    records = await service.log.read(after=after, limit=limit)
    return {
        "events": [
            {"offset": r.offset, "event": json.loads(r.event.model_dump_json())} for r in records
        ],
        "last_offset": await service.log.last_offset(),
    }


@router.get("/v1/jobs/stream")
async def job_stream(
    request: Request,
    service: Service,
    who: Who,
    user: str | None = None,
    tag: list[str] = Query(default=[], description="key or key=value"),
    after: int | None = Query(default=None, ge=0, le=MAX_OFFSET),
) -> EventSourceResponse:
    """`snapshot` (every active job), then a `change` per job change; `id:` = offset.
    With tokens on it needs a token, and shows public job views only, as to everyone."""
    resume = _resume_offset(request, after)
    visible = job_filter(user, tag)
    return EventSourceResponse(_job_events(service, resume, visible), ping=STREAM_PING_SECONDS)


@router.get("/v1/events/stream")
async def event_stream(
    request: Request,
    service: Service,
    access: Rules,
    who: Who,
    after: int | None = Query(default=None, ge=0, le=MAX_OFFSET),
) -> EventSourceResponse:
    """The raw log from `after` (or `Last-Event-ID`), then live; `id:` = offset."""
    access.require_admin(who, "the raw log")
    resume = _resume_offset(request, after) or 0
    return EventSourceResponse(_log_events(service, resume), ping=STREAM_PING_SECONDS)


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
