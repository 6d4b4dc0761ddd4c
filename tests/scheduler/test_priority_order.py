"""The simple policy: priority first, then age; worker policies restrict who serves what."""

from __future__ import annotations

from park.domain import Priority, WorkerPolicy
from park.events.schema import Event, JobSubmitted, PlannedUnit, UnitsPlanned, WorkerJoined
from park.projections.state import ParkState
from park.scheduler import Grant, WorkRequest, grant


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


def state_of(*events: Event) -> ParkState:
    state = ParkState()
    for i, e in enumerate(events, start=1):
        state.apply(i, e)
    return state


WORKERS: list[Event] = [
    WorkerJoined(at=0.0, worker_id="any", name="any", cpus=1),
    WorkerJoined(at=0.0, worker_id="bob-only", name="desk", cpus=1, owner="bob",
                 policy=WorkerPolicy.OWN_ONLY),
    WorkerJoined(at=0.0, worker_id="bob-first", name="desk2", cpus=1, owner="bob",
                 policy=WorkerPolicy.OWN_FIRST),
    WorkerJoined(at=0.0, worker_id="pilot", name="pilot", cpus=1, policy=WorkerPolicy.JOB,
                 job_id="old"),
]  # fmt: skip


def test_higher_priority_first_then_older_first() -> None:
    state = state_of(
        *WORKERS,
        *job("old", "ann", Priority.FREE, 1.0, 2),
        *job("urgent", "ann", Priority.URGENT, 3.0, 1),
        *job("normal", "bob", Priority.NORMAL, 2.0, 1),
    )
    grants = grant(state, WorkRequest("any", 4))
    assert grants == [
        Grant("urgent/0", "urgent"),
        Grant("normal/0", "normal"),
        Grant("old/0", "old"),
        Grant("old/1", "old"),
    ]


def test_own_only_worker_never_gets_another_users_unit() -> None:
    state = state_of(*WORKERS, *job("ann-job", "ann", Priority.URGENT, 1.0, 3))
    assert grant(state, WorkRequest("bob-only", 5)) == []
    state = state_of(
        *WORKERS,
        *job("ann-job", "ann", Priority.URGENT, 1.0, 3),
        *job("bob-job", "bob", Priority.FREE, 2.0, 1),
    )
    assert grant(state, WorkRequest("bob-only", 5)) == [Grant("bob-job/0", "bob-job")]


def test_own_first_worker_prefers_its_owner_then_serves_others() -> None:
    state = state_of(
        *WORKERS,
        *job("ann-job", "ann", Priority.URGENT, 1.0, 1),
        *job("bob-job", "bob", Priority.FREE, 2.0, 1),
    )
    assert grant(state, WorkRequest("bob-first", 2)) == [
        Grant("bob-job/0", "bob-job"),
        Grant("ann-job/0", "ann-job"),
    ]


def test_a_dedicated_worker_serves_only_its_job() -> None:
    state = state_of(
        *WORKERS,
        *job("new", "ann", Priority.URGENT, 5.0, 2),
        *job("old", "bob", Priority.FREE, 1.0, 1),
    )
    assert grant(state, WorkRequest("pilot", 3)) == [Grant("old/0", "old")]


def test_an_unknown_worker_gets_nothing() -> None:
    state = state_of(*job("j", "ann", Priority.FREE, 1.0, 1))
    assert grant(state, WorkRequest("ghost", 1)) == []
