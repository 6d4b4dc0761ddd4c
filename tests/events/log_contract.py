"""The contract every `EventLog` adapter must pass. Subclass it and provide `make_log`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from park.events.bounds import MAX_DEPTH, check_json
from park.events.log import EventLog
from park.events.schema import (
    JobCancelled,
    JobCompleted,
    JobSubmitted,
    UnitCompleted,
    WorkerJoined,
)

pytestmark = pytest.mark.anyio


def submitted(job_id: str, at: float = 1.0) -> JobSubmitted:
    return JobSubmitted(
        at=at, job_id=job_id, user="ann", kind="map", spec={"function": "m:f", "inputs": []}
    )


def deepest_accepted() -> object:
    """A value at the edge's limits (park.events.bounds): as deep as a request body may
    nest it, with non-ASCII text, a huge integer, the smallest float."""
    value: object = {"text": "é\u2028\U0001f600" * 100, "n": 10**300, "tiny": 5e-324}
    for _ in range(MAX_DEPTH - 5):  # body > spec > inputs > [ ... ] > the object
        value = [value]
    check_json({"spec": {"inputs": [value]}}, "")
    return value


class EventLogContract:
    """Offsets start at 1, are dense and ordered; a batch is atomic; reads page."""

    @pytest.fixture
    def make_log(self) -> Callable[[], EventLog]:
        raise NotImplementedError

    @pytest.fixture
    async def log(self, make_log: Callable[[], EventLog]) -> AsyncIterator[EventLog]:
        log = make_log()
        yield log
        await log.close()

    async def test_empty_log(self, log: EventLog) -> None:
        assert await log.last_offset() == 0
        assert await log.read(after=0) == []

    async def test_append_assigns_consecutive_offsets(self, log: EventLog) -> None:
        first = await log.append([submitted("a"), submitted("b")])
        second = await log.append([submitted("c")])
        assert first == [1, 2]
        assert second == [3]
        assert await log.last_offset() == 3

    async def test_empty_append_is_a_no_op(self, log: EventLog) -> None:
        assert await log.append([]) == []
        assert await log.last_offset() == 0

    async def test_read_returns_equal_events_in_order(self, log: EventLog) -> None:
        events = [
            submitted("a"),
            WorkerJoined(at=2.0, worker_id="w", name="n", cpus=2),
            UnitCompleted(
                at=3.0,
                unit_id="a/0",
                job_id="a",
                worker_id="w",
                result=[1, "two", {"three": 3.0}, None],
                cpu_seconds=0.5,
                charged=0.25,
            ),
            JobCancelled(at=4.0, job_id="a", by="ann"),
        ]
        await log.append(events)
        records = await log.read(after=0)
        assert [r.offset for r in records] == [1, 2, 3, 4]
        assert [r.event for r in records] == events

    async def test_read_after_and_limit_page_through(self, log: EventLog) -> None:
        await log.append([submitted(f"j{i}") for i in range(25)])
        seen: list[str] = []
        after = 0
        while batch := await log.read(after=after, limit=10):
            assert len(batch) <= 10
            seen.extend(r.event.job_id for r in batch)  # type: ignore[union-attr]
            after = batch[-1].offset
        assert seen == [f"j{i}" for i in range(25)]
        assert await log.read(after=25) == []

    async def test_wait_times_out_without_new_events(self, log: EventLog) -> None:
        await log.append([submitted("a")])
        started = time.monotonic()
        assert await log.wait(after=1, timeout=0.2) is False
        assert time.monotonic() - started >= 0.19

    async def test_wait_returns_at_once_when_behind(self, log: EventLog) -> None:
        await log.append([submitted("a")])
        assert await log.wait(after=0, timeout=5) is True

    async def test_wait_wakes_on_append(self, log: EventLog) -> None:
        async def append_later() -> None:
            await asyncio.sleep(0.05)
            await log.append([submitted("late")])

        task = asyncio.create_task(append_later())
        started = time.monotonic()
        assert await log.wait(after=0, timeout=5) is True
        assert time.monotonic() - started < 2
        await task

    async def test_concurrent_appends_never_share_an_offset(self, log: EventLog) -> None:
        batches = await asyncio.gather(
            *(log.append([submitted(f"{n}-{i}") for i in range(5)]) for n in range(10))
        )
        offsets = [o for batch in batches for o in batch]
        assert sorted(offsets) == list(range(1, 51))
        for batch in batches:  # a batch stays contiguous
            assert batch == list(range(batch[0], batch[0] + 5))

    async def test_what_the_edge_accepts_comes_back(self, log: EventLog) -> None:
        """Every value the API lets through, in the deepest event it can end up in (a
        map job's result holding a unit's result), is read back equal."""
        value = deepest_accepted()
        events = [
            JobSubmitted(at=1.0, job_id="a", user="ann", kind="map",
                         spec={"function": "m:f", "inputs": [value]}, tags={"t": "ü"}),
            UnitCompleted(at=2.0, unit_id="a/0", job_id="a", worker_id="w", result=[value],
                          cpu_seconds=0.1, charged=0.0),
            JobCompleted(at=3.0, job_id="a", result={"outputs": [[value]]}),
        ]  # fmt: skip
        await log.append(events)
        assert [r.event for r in await log.read(after=0)] == events
