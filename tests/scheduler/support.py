"""Building scheduler states from events, and running the policy as the service would."""

from __future__ import annotations

from park.commands import grant_events
from park.domain import Priority
from park.events.schema import Event, JobSubmitted, PlannedUnit, UnitsPlanned
from park.projections.state import ParkState
from park.scheduler.policy import WorkRequest, grant


def job(job_id: str, user: str, priority: Priority, at: float, units: int) -> list[Event]:
    return [
        JobSubmitted(
            at=at, job_id=job_id, user=user, kind="map", priority=priority,
            spec={"function": "m:f", "inputs": list(range(units)), "chunk": 1},
        ),
        UnitsPlanned(
            at=at, job_id=job_id,
            units=[PlannedUnit(unit_id=f"{job_id}/{i}", payload={"start": i, "items": [i]})
                   for i in range(units)],
        ),
    ]  # fmt: skip


def fold(*events: Event, state: ParkState | None = None) -> ParkState:
    state = state or ParkState()
    for event in events:
        state.apply(state.offset + 1, event)
    return state


def lease(state: ParkState, worker_id: str, n: int, at: float) -> list[str]:
    """Grant n units one request at a time and fold the grants; return the job ids."""
    granted: list[str] = []
    for _ in range(n):
        grants = grant(state, WorkRequest(worker_id, 1, at))
        if not grants:
            break
        fold(*grant_events(state, worker_id, grants, now=at, lease_seconds=60), state=state)
        granted.append(grants[0].job_id)
    return granted
