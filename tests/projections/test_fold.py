"""The fold: first fact wins, duplicates are ignored, the ledger follows the leases."""

from __future__ import annotations

from park.domain import JobStatus, Priority, UnitStatus
from park.events.schema import (
    Event,
    JobCancelled,
    JobCompleted,
    JobSubmitted,
    PlannedUnit,
    UnitCompleted,
    UnitGranted,
    UnitLeaseExpired,
    UnitsPlanned,
    WorkerJoined,
)
from park.projections.state import ParkState


def fold(*events: Event, state: ParkState | None = None) -> ParkState:
    state = state or ParkState()
    for event in events:
        state.apply(state.offset + 1, event)
    return state


def job_with_units(n: int = 2, priority: Priority = Priority.NORMAL) -> list[Event]:
    return [
        JobSubmitted(
            at=1.0,
            job_id="j",
            user="ann",
            kind="map",
            spec={"function": "m:f", "inputs": list(range(n)), "chunk": 1},
            priority=priority,
        ),
        UnitsPlanned(
            at=1.0,
            job_id="j",
            units=[
                PlannedUnit(unit_id=f"j/{i}", payload={"function": "m:f", "start": i, "items": [i]})
                for i in range(n)
            ],
        ),
        WorkerJoined(at=1.0, worker_id="w1", name="one", cpus=1),
        WorkerJoined(at=1.0, worker_id="w2", name="two", cpus=1),
    ]


def granted(unit: str, worker: str, at: float = 2.0, price: float = 1.0) -> UnitGranted:
    return UnitGranted(
        at=at, unit_id=unit, job_id="j", worker_id=worker, lease_deadline=at + 30,
        priority=Priority.NORMAL, price=price, reserved=price,
    )  # fmt: skip


def completed(unit: str, worker: str, result: list[int], cpu: float = 0.5) -> UnitCompleted:
    return UnitCompleted(
        at=3.0, unit_id=unit, job_id="j", worker_id=worker, result=result,
        cpu_seconds=cpu, charged=cpu,
    )  # fmt: skip


def test_a_planned_unit_is_queued_and_the_job_runnable() -> None:
    state = fold(*job_with_units(2))
    job = state.jobs["j"]
    assert job.status is JobStatus.PENDING
    assert list(job.queue) == ["j/0", "j/1"]
    assert job.units_total == 2
    assert state.runnable == {"j"}


def test_a_second_grant_of_a_granted_unit_is_ignored() -> None:
    state = fold(*job_with_units(), granted("j/0", "w1"), granted("j/0", "w2"))
    unit = state.units["j/0"]
    assert unit.worker_id == "w1"
    assert unit.attempts == 1
    assert state.ledger[("ann", Priority.NORMAL)].reserved == 1.0
    assert state.jobs["j"].status is JobStatus.RUNNING


def test_a_second_completion_is_ignored_first_wins() -> None:
    state = fold(
        *job_with_units(),
        granted("j/0", "w1"),
        completed("j/0", "w1", [10]),
        completed("j/0", "w1", [99]),
    )
    assert state.jobs["j"].units_done == 1
    assert state.jobs["j"].kind_state.outputs[0] == 10
    entry = state.ledger[("ann", Priority.NORMAL)]
    assert entry.units == 1
    assert entry.charged == 0.5
    assert entry.reserved == 0.0


def test_an_expired_lease_requeues_and_refunds() -> None:
    state = fold(
        *job_with_units(),
        granted("j/0", "w1"),
        granted("j/1", "w1"),
        UnitLeaseExpired(at=40.0, unit_id="j/0", job_id="j", worker_id="w1"),
    )
    assert state.units["j/0"].status is UnitStatus.QUEUED
    assert list(state.jobs["j"].queue) == ["j/0"]
    assert "j/0" not in state.leased
    entry = state.ledger[("ann", Priority.NORMAL)]
    assert (entry.reserved, entry.refunded) == (1.0, 1.0)


def test_the_old_holder_reporting_first_wins_over_the_new_holder() -> None:
    state = fold(
        *job_with_units(),
        granted("j/0", "w1"),
        UnitLeaseExpired(at=40.0, unit_id="j/0", job_id="j", worker_id="w1"),
        granted("j/0", "w2", at=41.0),
        completed("j/0", "w1", [1]),
        completed("j/0", "w2", [2]),
    )
    assert state.jobs["j"].kind_state.outputs[0] == 1
    assert state.units["j/0"].status is UnitStatus.DONE
    assert not state.workers["w2"].units
    entry = state.ledger[("ann", Priority.NORMAL)]
    assert entry.units == 1
    assert entry.reserved == 0.0
    assert entry.refunded == 2.0  # both grants' reservations returned; the charge is settled


def test_an_expiry_from_a_previous_holder_does_not_touch_the_current_lease() -> None:
    state = fold(
        *job_with_units(),
        granted("j/0", "w1"),
        UnitLeaseExpired(at=40.0, unit_id="j/0", job_id="j", worker_id="w1"),
        granted("j/0", "w2", at=41.0),
        UnitLeaseExpired(at=42.0, unit_id="j/0", job_id="j", worker_id="w1"),
    )
    assert state.units["j/0"].status is UnitStatus.LEASED
    assert state.units["j/0"].worker_id == "w2"


def test_cancelling_drops_units_and_refunds_outstanding_leases() -> None:
    state = fold(
        *job_with_units(),
        granted("j/0", "w1"),
        JobCancelled(at=5.0, job_id="j", by="ann"),
        completed("j/0", "w1", [1]),
    )
    job = state.jobs["j"]
    assert job.status is JobStatus.CANCELLED
    assert state.units == {}
    assert state.runnable == set()
    assert state.leased == {}
    entry = state.ledger[("ann", Priority.NORMAL)]
    assert (entry.reserved, entry.refunded, entry.units) == (0.0, 1.0, 0)


def test_nothing_changes_a_finished_job() -> None:
    state = fold(
        *job_with_units(1),
        JobCompleted(at=5.0, job_id="j", result=[0]),
        JobCancelled(at=6.0, job_id="j", by="ann"),
    )
    assert state.jobs["j"].status is JobStatus.COMPLETE
    assert state.jobs["j"].result == [0]


def test_a_redelivered_offset_is_not_folded_twice() -> None:
    state = fold(*job_with_units(), granted("j/0", "w1"), completed("j/0", "w1", [1]))
    offset = state.offset
    state.apply(offset, completed("j/1", "w1", [5]))
    assert state.jobs["j"].units_done == 1
