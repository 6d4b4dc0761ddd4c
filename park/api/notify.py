"""Routes for notifications of finished jobs: a user's pending notices, stopping them, and
what became of one job's (the job page and `park show` read it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends

from park.api.auth import Caller
from park.api.schemas import CancelNotifications
from park.errors import NotFound
from park.projections.views import job_notifications, notice_json, waiting_json
from park.service.engine import ParkService


def notify_router(
    service: ParkService, caller: Callable[..., Any], *, sends_mail: bool
) -> APIRouter:
    router = APIRouter(tags=["notifications"])

    @router.get("/v1/notifications")
    async def list_notifications(
        user: str | None = None, all: bool = False, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        """The caller's notifications not yet sent (`all`: sent and cancelled too); without
        tokens, `user` picks whose."""
        book = service.state.notices
        mine = who.acting_user() or user
        items = [
            notice_json(n)
            for n in book.notices.values()
            if (mine is None or n.user == mine) and (all or n.open)
        ]
        for (channel, target), queue in book.waiting.items():
            for job_id in [w.job_id for w in queue if mine is None or w.user == mine]:
                items.append(waiting_json(channel, target, queue[0].user, [job_id]))
        return {"notifications": items, "sends_mail": sends_mail, "offset": service.state.offset}

    @router.post("/v1/notifications/cancel")
    async def cancel_notifications(
        body: CancelNotifications, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        await service.cancel_notifications(who.acting_user(), keys=body.keys, job_ids=body.job_ids)
        return {"cancelled": {"keys": body.keys, "job_ids": body.job_ids}}

    @router.get("/v1/jobs/{job_id}/notifications")
    async def job_notices(job_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        job = service.state.jobs.get(job_id)
        acting = who.acting_user()
        if job is None or (acting is not None and acting != job.user):
            raise NotFound(f"job_id: no job {job_id!r} of yours", field="job_id")
        return job_notifications(service.state, job, sends_mail=sends_mail)

    return router
