"""Which finished jobs stay in memory is decided by the fold from the log alone: the last
N finished, and only those finished within the window before the newest event."""

from __future__ import annotations

from park.domain import JobStatus
from park.events.schema import (
    Event,
    JobCancelled,
    JobSubmitted,
    PlannedUnit,
    PolicyConfigured,
    UnitCompleted,
    UnitGranted,
    UnitsPlanned,
    WorkerJoined,
)
from park.projections.archive import DAY, day_of
from park.projections.state import ParkState
from park.projections.views import job_json
from park.scheduler.config import PolicyConfig


def fold(state: ParkState, *events: Event) -> ParkState:
    for event in events:
        state.apply(state.offset + 1, event)
    return state


def policy(jobs: int, seconds: float, at: float = 0.0) -> PolicyConfigured:
    config = PolicyConfig(hot_finished_jobs=jobs, hot_finished_seconds=seconds)
    return PolicyConfigured(at=at, config=config.model_dump(mode="json"))


def planned(n: int) -> list[PlannedUnit]:
    return [
        PlannedUnit(unit_id=f"j/{i}", payload={"function": "m:f", "start": i, "items": [i]})
        for i in range(n)
    ]


def submitted(job_id: str, at: float, user: str = "ann") -> JobSubmitted:
    spec = {"function": "m:f", "inputs": [1, 2, 3], "chunk": 1}
    return JobSubmitted(at=at, job_id=job_id, user=user, kind="map", spec=spec,
                        tags={"user": user, "run": job_id})  # fmt: skip


def test_the_oldest_finished_jobs_leave_memory_beyond_the_count() -> None:
    state = fold(ParkState(), policy(2, 10 * DAY))
    for i in range(5):
        fold(
            state, submitted(f"j{i}", float(i)), JobCancelled(at=float(i), job_id=f"j{i}", by="ann")
        )
    assert list(state.jobs) == ["j3", "j4"]
    jobs, _ = state.outbox.take()
    assert [j.id for j in jobs] == ["j0", "j1", "j2"]
    assert all(j.status is JobStatus.CANCELLED for j in jobs)
    assert state.outbox.archived_jobs == 3
    # each keeps its place in listings: the offset of its submission
    assert [j.seq for j in jobs] == [2, 4, 6]


def test_finished_jobs_leave_memory_after_the_window_even_when_few() -> None:
    state = fold(ParkState(), policy(100, 60.0))
    fold(state, submitted("old", 0.0), JobCancelled(at=1.0, job_id="old", by="ann"))
    fold(state, submitted("active", 30.0))
    assert "old" in state.jobs  # the clock (the newest event) is 30 s on
    fold(state, submitted("later", 61.5))
    assert "old" not in state.jobs and "active" in state.jobs and "later" in state.jobs
    assert [j.id for j in state.outbox.jobs] == ["old"]


def test_active_jobs_never_leave_memory() -> None:
    state = fold(ParkState(), policy(0, 0.0))
    fold(state, submitted("a", 0.0), submitted("b", 5 * DAY))
    assert set(state.jobs) == {"a", "b"}
    fold(state, JobCancelled(at=5 * DAY, job_id="a", by="ann"))
    assert set(state.jobs) == {"b"}


def test_a_finished_job_keeps_a_summary_of_its_units() -> None:
    state = fold(
        ParkState(),
        submitted("j", 1.0),
        UnitsPlanned(at=1.0, job_id="j", units=planned(2)),
        WorkerJoined(at=1.0, worker_id="w1", name="one", cpus=1),
        WorkerJoined(at=1.0, worker_id="w2", name="two", cpus=1),
    )  # fmt: skip
    for i, worker in enumerate(["w1", "w2"]):
        fold(
            state,
            UnitGranted(at=2.0, unit_id=f"j/{i}", job_id="j", worker_id=worker,
                        lease_deadline=40.0, price=0.0, reserved=0.0),
            UnitCompleted(at=3.0, unit_id=f"j/{i}", job_id="j", worker_id=worker,
                          result=[i], cpu_seconds=0.25, charged=0.0),
        )  # fmt: skip
    fold(state, JobCancelled(at=4.0, job_id="j", by="ann"))
    summary = job_json(state.jobs["j"])["units_summary"]
    assert summary == {
        "count": 2, "done": 2, "attempts": 2, "workers": {"w1": 1, "w2": 1}, "cpu_seconds": 0.5
    }  # fmt: skip


def test_usage_per_day_closes_when_the_clock_passes_midnight() -> None:
    state = fold(
        ParkState(),
        submitted("j", 10.0),
        UnitsPlanned(at=10.0, job_id="j", units=planned(3)),
        WorkerJoined(at=10.0, worker_id="w", name="w", cpus=1),
    )  # fmt: skip
    for i, at in enumerate([20.0, 30.0, DAY + 5.0]):
        fold(
            state,
            UnitGranted(at=at, unit_id=f"j/{i}", job_id="j", worker_id="w",
                        lease_deadline=at + 30, price=1.0, reserved=1.0),
            UnitCompleted(at=at, unit_id=f"j/{i}", job_id="j", worker_id="w",
                          result=[i], cpu_seconds=2.0, charged=2.0),
        )  # fmt: skip
    _, days = state.outbox.take()
    assert [(d.day, d.user, d.units, d.charged) for d in days] == [(0, "ann", 2, 4.0)]
    today = state.usage_today["ann"]
    assert (today.day, today.units, today.core_seconds) == (day_of(DAY + 5.0), 1, 2.0)
