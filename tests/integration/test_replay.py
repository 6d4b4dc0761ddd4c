"""Replay, in-process: the state the service holds is exactly the fold of its log; a
snapshot plus the tail gives the same; a new service on the same log carries on."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from park.commands import UnitReport
from park.domain import JobStatus, Priority, UnitStatus
from park.events.log import EventLog
from park.events.schema import JobSubmitted, UnitGranted, WorkRequested
from park.events.sqlite import SqliteEventLog
from park.projections.state import ParkState
from park.scheduler.policy import WorkRequest, grant
from park.service.engine import ParkService, ServiceConfig
from park.service.snapshots import SnapshotStore

SLEEP = "park.builtins:sleep"
LEASE = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_service(path: Path, clock: FakeClock, snapshots: SnapshotStore | None = None):
    # The reaper never ticks on its own: expiry happens when the test says so.
    config = ServiceConfig(lease_seconds=LEASE, reap_interval=3600.0)
    return ParkService(SqliteEventLog(path), snapshots=snapshots, config=config, clock=clock)


async def fold_log(log: EventLog, state: ParkState | None = None) -> ParkState:
    state = state if state is not None else ParkState()
    while batch := await log.read(after=state.offset, limit=7):  # small pages on purpose
        for rec in batch:
            state.apply(rec.offset, rec.event)
    return state


def outputs(units: list[Any]) -> list[UnitReport]:
    """Reports a real worker would send: the function applied to each item."""
    return [
        UnitReport(lu.unit.id, True, list(lu.unit.payload["items"]), None, 0.125) for lu in units
    ]


async def lease_all(service: ParkService, worker_id: str) -> list[Any]:
    """Lease until nothing more is granted (whatever batch sizes the policy picks)."""
    leased: list[Any] = []
    for _ in range(100):
        batch = await service.lease(worker_id, 10)
        if not batch:
            return leased
        leased.extend(batch)
    raise AssertionError("the service kept granting units")


async def busy_history(service: ParkService, clock: FakeClock) -> dict[str, str]:
    """Drive a service through a history with every kind of event: jobs at several
    priorities, workers joining and leaving, grants, completions, a failure, expired
    leases, late reports from expired holders, a cancellation, a priority change.

    Jobs are submitted one phase at a time, so which units a lease gets does not depend
    on the scheduling policy's order."""
    w1 = await service.register_worker(name="w1", cpus=2)
    w2 = await service.register_worker(name="w2", cpus=1)

    # A unit fails (with one attempt allowed): its job fails, its other lease is given back.
    failing = await service.submit(
        user="bob", kind="map", spec={"function": SLEEP, "inputs": [9, 8]},
        priority=Priority.HIGH, max_attempts=1,
    )  # fmt: skip
    clock.advance(1)
    first = await lease_all(service, w1)
    assert [lu.job.id for lu in first] == [failing.id] * 2
    failure = UnitReport(first[0].unit.id, False, None, "ValueError: bad input", 0.5)
    assert await service.report(w1, [failure]) == []
    assert service.state.jobs[failing.id].status is JobStatus.FAILED
    assert service.state.workers[w1].units == set()

    # Two workers share a job; one lease is kept alive, the other runs out.
    done = await service.submit(
        user="ann", kind="map", spec={"function": SLEEP, "inputs": [1, 2, 3, 4, 5]},
        priority=Priority.NORMAL,
    )  # fmt: skip
    clock.advance(1)
    (one,) = await service.lease(w1, 1)
    second = await service.lease(w2, 2)
    assert [lu.job.id for lu in [one, *second]] == [done.id] * 3
    clock.advance(2)
    assert await service.report(w1, outputs([one])) == []
    await service.heartbeat(w2, [second[0].unit.id])
    clock.advance(LEASE - 1)
    assert await service.expire_leases() == 1
    stale = second[1].unit.id
    assert service.state.units[stale].status is UnitStatus.QUEUED
    # The expired holder reports anyway: first report wins, the unit is not re-run.
    assert await service.report(w2, outputs(second)) == []
    assert service.state.units[stale].status is UnitStatus.DONE

    # Another job joins, changes priority, and is cancelled with units under lease.
    cancelled = await service.submit(
        user="bob", kind="map", spec={"function": SLEEP, "inputs": list(range(6)), "chunk": 2}
    )
    await service.change_priority(cancelled.id, Priority.LOW, by=None)
    third = await lease_all(service, w1)
    assert sorted(lu.job.id for lu in third) == sorted([done.id] * 2 + [cancelled.id] * 3)
    clock.advance(0.5)
    await service.report(w1, outputs([lu for lu in third if lu.job.id == done.id]))
    assert service.state.jobs[done.id].status is JobStatus.COMPLETE
    await service.cancel(cancelled.id, by="bob")
    # A late report for a cancelled job's unit is ignored; a worker leaves.
    late = [lu for lu in third if lu.job.id == cancelled.id]
    assert await service.report(w1, outputs(late)) == [lu.unit.id for lu in late]
    await service.remove_worker(w2)

    # A job left half done, with a unit still under lease, for a restart to carry on.
    pending = await service.submit(
        user="cy", kind="map", spec={"function": SLEEP, "inputs": [0.5, 0.25, 0.125]},
        priority=Priority.URGENT,
    )  # fmt: skip
    clock.advance(1)
    held = await service.lease(w1, 2)
    assert [lu.job.id for lu in held] == [pending.id] * 2
    await service.report(w1, outputs(held[:1]))
    return {"done": done.id, "cancelled": cancelled.id, "failing": failing.id,
            "pending": pending.id, "w1": w1}  # fmt: skip


@pytest.mark.anyio
async def test_fold_of_the_log_equals_the_live_state(tmp_path: Path) -> None:
    clock = FakeClock()
    service = make_service(tmp_path / "events.sqlite3", clock)
    await service.start()
    try:
        ids = await busy_history(service, clock)
        live = service.state
        assert live.jobs[ids["done"]].result == [1, 2, 3, 4, 5]
        assert live.jobs[ids["cancelled"]].status is JobStatus.CANCELLED
        assert "ValueError: bad input" in (live.jobs[ids["failing"]].error or "")
        assert live.jobs[ids["pending"]].status is JobStatus.RUNNING

        replayed = await fold_log(service.log)
        assert replayed.offset == await service.log.last_offset() == live.offset
        assert replayed == live
        # Not vacuous: the history has something in every table.
        assert replayed.ledger and replayed.workers and replayed.leased
        charged = replayed.ledger[("ann", Priority.NORMAL)]
        assert charged.units == 5 and charged.charged == pytest.approx(5 * 0.125)
        assert charged.reserved == pytest.approx(0.0)
        # Re-delivering the whole log changes nothing (the fold skips folded offsets).
        again = await fold_log(service.log, replayed)
        for rec in await service.log.read(after=0):
            again.apply(rec.offset, rec.event)
        assert again == live
    finally:
        await service.stop()


def request_of(event: WorkRequested) -> WorkRequest:
    """The request a recorded `work.requested` stands for (with its time, where the
    policy takes one: fair share and age depend on it)."""
    timed = "at" in {f.name for f in dataclasses.fields(WorkRequest)}
    extra = {"at": event.at} if timed else {}
    return WorkRequest(worker_id=event.worker_id, max_units=event.max_units, **extra)


@pytest.mark.anyio
async def test_every_recorded_grant_is_what_the_policy_decides_on_replay(tmp_path: Path) -> None:
    clock = FakeClock()
    service = make_service(tmp_path / "events.sqlite3", clock)
    await service.start()
    try:
        await busy_history(service, clock)
        records = await service.log.read(after=0)
    finally:
        await service.stop()
    state = ParkState()
    checked = 0
    for i, rec in enumerate(records):
        state.apply(rec.offset, rec.event)
        if isinstance(rec.event, WorkRequested):
            decided = grant(state, request_of(rec.event))
            recorded = []
            for nxt in records[i + 1 :]:
                if not isinstance(nxt.event, UnitGranted):
                    break
                recorded.append((nxt.event.unit_id, nxt.event.job_id))
            assert [(g.unit_id, g.job_id) for g in decided] == recorded
            checked += 1
    assert checked >= 5


@pytest.mark.anyio
async def test_snapshot_plus_tail_equals_full_replay(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SnapshotStore(tmp_path / "snapshots")
    service = make_service(tmp_path / "events.sqlite3", clock)
    await service.start()
    try:
        w = await service.register_worker(name="w", cpus=1)
        job = await service.submit(
            user="ann", kind="map", spec={"function": SLEEP, "inputs": [1, 2, 3, 4]}
        )
        units = await service.lease(w, 2)
        store.save(service.state)  # mid-job: leases outstanding, kind state half-filled
        at_snapshot = service.state.offset
        await service.report(w, outputs(units[:1]))
        clock.advance(LEASE + 1)
        assert await service.expire_leases() == 1
        await service.report(w, outputs(await service.lease(w, 5)))
        assert service.state.jobs[job.id].status is JobStatus.COMPLETE
        assert service.state.offset > at_snapshot

        loaded = store.load_latest(max_offset=await service.log.last_offset())
        assert loaded is not None and loaded.offset == at_snapshot
        assert loaded != service.state
        resumed = await fold_log(service.log, loaded)
        assert resumed == service.state
        assert resumed == await fold_log(service.log)
        # A snapshot claiming more than the log has is not trusted.
        assert store.load_latest(max_offset=at_snapshot - 1) is None
    finally:
        await service.stop()


@pytest.mark.anyio
async def test_restart_on_the_same_log_resumes_jobs(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "events.sqlite3"
    first = make_service(path, clock, SnapshotStore(tmp_path / "snapshots"))
    await first.start()
    ids = await busy_history(first, clock)
    before = first.state
    # A crash: no stop(), no snapshot. A job whose submission was recorded but whose
    # units were not yet planned when the process died.
    orphan = JobSubmitted(
        at=clock(), job_id="orphan", user="dee", kind="map",
        spec={"function": SLEEP, "inputs": [3, 1, 2], "chunk": 2},
    )  # fmt: skip
    await first.log.append([orphan])
    for task in first._tasks:  # the dead process's background tasks die with it
        task.cancel()
    await asyncio.gather(*first._tasks, return_exceptions=True)

    second = make_service(path, clock, SnapshotStore(tmp_path / "snapshots"))
    await second.start()
    try:
        state = second.state
        # Everything the first service knew is known, and the orphan got its units.
        for job_id, job in before.jobs.items():
            assert state.jobs[job_id].status == job.status
            assert state.jobs[job_id].units_done == job.units_done
        assert state.jobs["orphan"].units_total == 2
        assert state == await fold_log(second.log)

        # The half-done job's lease is still w1's; once it lapses the unit is re-granted.
        pending = state.jobs[ids["pending"]]
        assert pending.status is JobStatus.RUNNING and pending.units_done == 1
        clock.advance(LEASE + 1)
        assert await second.expire_leases() == 1
        w = await second.register_worker(name="after-restart", cpus=4)
        units = await second.lease(w, 10)
        assert sorted(lu.job.id for lu in units) == sorted([ids["pending"]] * 2 + ["orphan"] * 2)
        await second.report(w, outputs(units))
        assert state.jobs[ids["pending"]].status is JobStatus.COMPLETE
        assert state.jobs[ids["pending"]].result == [0.5, 0.25, 0.125]
        assert state.jobs["orphan"].status is JobStatus.COMPLETE
        assert state.jobs["orphan"].result == [3, 1, 2]
        assert state == await fold_log(second.log)
    finally:
        await second.stop()
        await first.log.close()
