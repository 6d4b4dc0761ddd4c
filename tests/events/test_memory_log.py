from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from park.commands import UnitReport
from park.domain import JobStatus
from park.events.log import EventLog
from park.events.memory import MemoryEventLog
from park.events.schema import JobSubmitted
from park.service.following import FollowingService
from tests.events.log_contract import EventLogContract, submitted

pytestmark = pytest.mark.anyio


class TestMemoryEventLog(EventLogContract):
    @pytest.fixture
    def make_log(self) -> Callable[[], EventLog]:
        return MemoryEventLog


async def test_two_users_of_one_log_read_their_own_copies() -> None:
    """Two services sharing the log fold what either appended, and folding one's copy of
    an event (jobs keep their spec) cannot change what the other reads."""
    log = MemoryEventLog()
    first, second = await asyncio.gather(log.append([submitted("a")]), log.append([submitted("b")]))
    assert sorted([*first, *second]) == [1, 2]
    (mine,) = await log.read(after=0, limit=1)
    assert isinstance(mine.event, JobSubmitted)
    mine.event.spec["inputs"].append("changed by one reader")
    (theirs,) = await log.read(after=0, limit=1)
    assert theirs.event.spec == {"function": "m:f", "inputs": []}


async def test_closing_one_user_leaves_the_events_to_the_other() -> None:
    log = MemoryEventLog()
    await log.append([submitted("a")])
    await log.close()
    assert [r.offset for r in await log.read()] == [1]
    assert await log.append([submitted("b")]) == [2]


class AlwaysLead:
    async def run(self, elected: Callable[[], Awaitable[None]], deposed: object) -> None:
        await elected()
        await asyncio.Event().wait()


async def test_two_services_in_one_process_share_the_log() -> None:
    """An API server and a scheduler leader on one memory log: what one records, the
    other folds; a worker of the API server gets the leader's grants."""
    log = MemoryEventLog()
    leader = FollowingService(log, elector=AlwaysLead())
    api = FollowingService(log)
    await leader.start()
    await api.start()
    try:
        job = await api.submit(
            user="ann", kind="map", spec={"function": "park.builtins:sleep", "inputs": [1, 2]}
        )
        worker = await api.register_worker(name="w", cpus=1)
        leased = await api.lease(worker, 5, wait=5.0)
        assert sorted(lu.unit.id for lu in leased) == [f"{job.id}/0", f"{job.id}/1"]
        await api.report(worker, [UnitReport(lu.unit.id, True, [1]) for lu in leased])
        async with asyncio.timeout(10):
            while leader.state.offset < api.state.offset or api.state.jobs[job.id].active:
                await asyncio.sleep(0.01)
        assert leader.state.jobs[job.id].status is JobStatus.COMPLETE
        assert leader.state == api.state
    finally:
        await api.stop()
        await leader.stop()
