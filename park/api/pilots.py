"""Routes for batch pilots: list them, record one submitted elsewhere (`park pilot
submit` runs `sbatch`/`qsub` where the user is), and record what the batch system says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from park.api.auth import Caller
from park.errors import InvalidRequest, NotFound
from park.events.schema import Event
from park.projections.pilots import PILOT_STATES, pilot_json
from park.projections.state import ParkState
from park.scheduler.pilots import PilotSpecError, pilot_events, pilot_request, pilot_state_events
from park.service.engine import ParkService, new_id


class RecordPilot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: str = Field(min_length=1, max_length=200)
    request: dict[str, Any]
    job: str | None = None
    id: str | None = Field(default=None, pattern=r"^[\w.-]{1,64}$")
    reason: str = Field(default="", max_length=2000)


class PilotState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str
    reason: str = Field(default="", max_length=2000)
    queue: str | None = Field(default=None, max_length=200)


def pilot_router(service: ParkService, caller: Callable[..., Any]) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/pilots")
    async def list_pilots(live: bool = False, who: Caller = Depends(caller)) -> dict[str, Any]:
        pilots = [pilot_json(p) for p in service.state.pilots.values() if p.live or not live]
        return {"pilots": pilots, "offset": service.state.offset}

    @router.get("/v1/pilots/{pilot_id}")
    async def get_pilot(pilot_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        pilot = service.state.pilots.get(pilot_id)
        if pilot is None:
            raise NotFound(f"pilot_id: no pilot {pilot_id!r}", field="pilot_id")
        return pilot_json(pilot)

    @router.post("/v1/pilots", status_code=201)
    async def record_pilot(body: RecordPilot, who: Caller = Depends(caller)) -> dict[str, Any]:
        try:
            request = pilot_request(body.request, "request")
        except PilotSpecError as err:
            raise InvalidRequest(str(err), field=err.field) from err
        pilot_id = body.id or new_id()

        def decide(state: ParkState, now: float) -> list[Event]:
            return pilot_events(
                state,
                pilot_id=pilot_id,
                request=request,
                batch_id=body.batch_id,
                now=now,
                job_id=body.job,
                user=who.acting_user(),
                reason=body.reason or "submitted with park pilot submit",
            )

        await service.execute(decide)
        return pilot_json(service.state.pilots[pilot_id])

    @router.post("/v1/pilots/{pilot_id}/state")
    async def pilot_state(
        pilot_id: str, body: PilotState, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        if body.state not in PILOT_STATES:
            known = ", ".join(sorted(PILOT_STATES))
            raise InvalidRequest(f"state: one of {known}", field="state")
        await service.execute(
            lambda state, now: pilot_state_events(
                state, pilot_id, body.state, body.reason, now, body.queue
            )
        )
        return pilot_json(service.state.pilots[pilot_id])

    return router
