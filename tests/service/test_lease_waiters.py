"""Idle workers' lease long-polls are woken one at a time, as many as there is work for,
not all of them on every change (a thousand idle workers would each try to lease for one
unit of work). Real service and SQLite log, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from park import commands, core
from park.domain import WorkerPolicy
from park.events.sqlite import SqliteEventLog
from park.service.engine import ParkService
from park.service.waiters import LeaseWaiters

pytestmark = pytest.mark.anyio
SLEEP = "park.builtins:sleep"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ParkService]:
    started = ParkService(SqliteEventLog(tmp_path / "log.sqlite3"))
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def polls(service: ParkService, workers: list[str], wait: float) -> list[asyncio.Task]:  # type: ignore[type-arg]
    tasks = [asyncio.create_task(service.lease(w, 1, wait)) for w in workers]
    for _ in range(100):  # until every poll waits
        if len(service._waiters) == len(workers):
            break
        await asyncio.sleep(0.01)
    assert len(service._waiters) == len(workers)
    return tasks


async def test_one_unit_of_work_wakes_one_of_forty_idle_polls(
    service: ParkService, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = [await service.register_worker(name=f"w{i}", cpus=1) for i in range(40)]
    tasks = await polls(service, workers, wait=30.0)
    tries = []
    lease_units = commands.lease_units
    monkeypatch.setattr(
        core.commands, "lease_units", lambda *a, **k: tries.append(a[1]) or lease_units(*a, **k)
    )
    job = await service.submit(user="ann", kind="map", spec={"function": SLEEP, "inputs": [0, 0]})
    for _ in range(100):  # until two polls are answered (the machine may be busy)
        if sum(t.done() for t in tasks) >= 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    granted = [t.result() for t in tasks if t.done()]
    assert sorted(lu.unit.id for units in granted for lu in units) == [f"{job.id}/0", f"{job.id}/1"]
    # The two longest waiting polls got a unit each; the others were not woken at all.
    assert [w for w, t in zip(workers, tasks, strict=True) if t.done()] == workers[:2]
    assert len(tries) <= 3, tries  # a third poll may look once: nothing left, relay ends
    assert len(service._waiters) == 38
    service.close_polls()  # closing answers every poll at once, empty
    rest = await asyncio.wait_for(asyncio.gather(*[t for t in tasks if not t.done()]), 5.0)
    assert rest == [[]] * 38


async def test_a_poll_woken_for_work_it_may_not_run_hands_the_wake_up_on(
    service: ParkService,
) -> None:
    own_only = await service.register_worker(
        name="zed's desktop", cpus=1, owner="zed", policy=WorkerPolicy.OWN_ONLY
    )
    anyone = await service.register_worker(name="pool", cpus=1)
    desk, pool = await polls(service, [own_only, anyone], wait=30.0)
    job = await service.submit(user="ann", kind="map", spec={"function": SLEEP, "inputs": [0]})
    (unit,) = await asyncio.wait_for(pool, 5.0)  # well before its 30 s poll ends
    assert unit.unit.job_id == job.id
    assert not desk.done()  # zed's desktop still waits, for zed's work
    zeds = await service.submit(user="zed", kind="map", spec={"function": SLEEP, "inputs": [0]})
    (mine,) = await asyncio.wait_for(desk, 5.0)
    assert mine.unit.job_id == zeds.id


async def test_a_relay_wakes_each_poll_once_in_waiting_order_and_never_a_later_one() -> None:
    waiters = LeaseWaiters()
    first, second = (asyncio.create_task(waiters.wait(10.0)) for _ in range(2))
    await asyncio.sleep(0)
    waiters.work_added()
    relay = await asyncio.wait_for(first, 1.0)
    assert relay is not None and not second.done()
    late = asyncio.create_task(waiters.wait(10.0))  # began after the relay: not part of it
    await asyncio.sleep(0)
    assert waiters.wake_next(relay)
    assert await asyncio.wait_for(second, 1.0) == relay
    assert not waiters.wake_next(relay)  # the relay is over; the late poll still waits
    await asyncio.sleep(0.05)
    assert not late.done()
    assert await waiters.wait(0.01) is None  # a wait that runs out says so
    waiters.wake_all()
    assert await asyncio.wait_for(late, 1.0) is not None
