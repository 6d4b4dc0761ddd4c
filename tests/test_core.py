"""The service core (park/core.py) driven as dask drives `WorkerState`: commands in, the
exact events, effects and changes out, no log, no event loop."""

from __future__ import annotations

from park import core
from park.domain import JobStatus, UnitReport
from park.events.schema import Event, UnitCompleted
from park.projections.state import ParkState

SPEC = {"function": "park.builtins:sleep", "inputs": [0.0, 0.0], "chunk": 1}


class Log(list[Event]):
    def append_batch(self, events: object) -> range:
        batch = list(events)  # type: ignore[call-overload]
        self.extend(batch)
        return range(len(self) - len(batch) + 1, len(self) + 1)


def test_a_submission_is_decided_folded_and_settled_into_units() -> None:
    state = ParkState()
    submitted = core.step(state, core.SubmitJob(job_id="j", user="ann", kind="map", spec=SPEC), 1.0)
    assert [e.type for e in submitted.events] == ["job.submitted"]
    assert submitted.effects == ()
    changes = core.fold(state, [(1, submitted.events[0])])
    assert changes.jobs == {"j"}
    assert not changes.work_available  # nothing queued yet
    assert core.follow_up(changes) == core.SettleJobs(job_ids=("j",))
    planned = core.step(state, core.SettleJobs(job_ids=("j",)), 1.0).events
    assert [e.type for e in planned] == ["units.planned"]
    changes = core.fold(state, [(2, planned[0])])
    assert changes.work_available  # lease polls wake
    assert changes.offset == 2
    assert core.follow_up(core.fold(state, [(2, planned[0])])) is None  # folded already


def test_execute_runs_the_whole_loop_a_worker_meets() -> None:
    state, log = ParkState(), Log()
    run = lambda command: core.execute(state, command, 5.0, log.append_batch)  # noqa: E731
    run(core.SubmitJob(job_id="j", user="ann", kind="map", spec=SPEC))
    run(core.RegisterWorker(worker_id="w", details={"name": "w", "cpus": 1}))
    grants = run(core.LeaseUnits(worker_id="w", max_units=5, lease_seconds=30.0)).events
    leased = core.leased_units(state, grants)
    assert [(lu.unit.id, lu.job.id, lu.lease_deadline) for lu in leased] == [
        ("j/0", "j", 35.0),
        ("j/1", "j", 35.0),
    ]
    reports = [UnitReport(lu.unit.id, True, [0.0]) for lu in leased]
    reports.append(UnitReport("j/0", True, [1.0]))  # a second report of one unit
    step = run(core.ReportUnits(worker_id="w", reports=reports))
    assert step.effects == (core.ReportsIgnored(("j/0",)),)
    assert state.jobs["j"].status is JobStatus.COMPLETE  # settled within the same loop
    assert [e.type for e in log][-3:] == ["unit.completed", "unit.completed", "job.completed"]
    assert sum(isinstance(e, UnitCompleted) for e in log) == 2


def test_silent_workers_expire_and_the_edge_is_told_to_forget_them() -> None:
    state, log = ParkState(), Log()
    core.execute(
        state,
        core.RegisterWorker(worker_id="w", details={"name": "w", "cpus": 1}),
        0.0,
        log.append_batch,
    )
    expire = core.ExpireLeases(worker_timeout=90.0, seen={"w": 50.0}, since=0.0)
    assert core.step(state, expire, 100.0) == core.Step([])  # seen 50 s ago
    polling = core.ExpireLeases(worker_timeout=90.0, seen={}, polling={"w"}, since=0.0)
    assert core.step(state, polling, 200.0) == core.Step([])  # waiting in a long poll now
    step = core.step(state, expire, 200.0)
    assert [e.type for e in step.events] == ["worker.expired"]
    assert step.effects == (core.WorkersExpired(("w",)),)


def test_the_fold_says_which_events_it_left_out() -> None:
    state, log = ParkState(), Log()
    run = lambda command: core.execute(state, command, 5.0, log.append_batch)  # noqa: E731
    run(core.SubmitJob(job_id="j", user="ann", kind="map", spec=SPEC))
    run(core.RegisterWorker(worker_id="w", details={"name": "w", "cpus": 1}))
    run(core.LeaseUnits(worker_id="w", max_units=1, lease_seconds=30.0))
    wrong = UnitCompleted(
        at=6.0, unit_id="j/0", job_id="j", worker_id="w", result="no list",
        cpu_seconds=0.0, charged=0.0,
    )  # fmt: skip
    changes = core.fold(state, [(len(log) + 1, wrong)])
    assert [(e.offset, e.type) for e in changes.fold_errors] == [(len(log) + 1, "unit.completed")]
    assert changes.jobs == {"j"}  # folded (left out), so the offset moved on
    assert state.offset == len(log) + 1


def test_a_failed_attempt_queued_again_wakes_lease_polls_a_last_one_does_not() -> None:
    state, log = ParkState(), Log()
    changes: list[core.Changes] = []

    def run(command: core.Command) -> core.Step:
        return core.execute(state, command, 5.0, log.append_batch, changes.append)

    one = {**SPEC, "inputs": [0.0]}
    run(core.SubmitJob(job_id="j", user="ann", kind="map", spec=one, max_attempts=2))
    run(core.RegisterWorker(worker_id="w", details={"name": "w", "cpus": 1}))
    lease = core.LeaseUnits(worker_id="w", max_units=1, lease_seconds=30.0)
    failure = [UnitReport("j/0", False, None, "boom")]
    for retried in (True, False):
        assert [e.type for e in run(lease).events] == ["work.requested", "unit.granted"]
        changes.clear()
        run(core.ReportUnits(worker_id="w", reports=failure))
        assert changes[0].work_available is retried
