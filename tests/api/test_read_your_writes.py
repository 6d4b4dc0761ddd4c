"""Two API servers on one shared log (the Kafka mode, here on the in-memory log): a job
accepted by one can be changed and cancelled through the other at once, although the
other has not folded it yet (read-your-writes, as the docs promise)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import pytest

from park.api.app import create_app
from park.events.log import EventLog, Recorded
from park.events.memory import MemoryEventLog
from park.events.schema import Event
from park.service.following import FollowingService

pytestmark = pytest.mark.anyio
SPEC = {"function": "park.builtins:sleep", "inputs": [0]}
ANN = {"X-Park-User": "ann"}


class SlowToHear(EventLog):
    """A server's view of the shared log that hears of others' appends only when its
    waits time out: it lags, as a server on a busy broker does."""

    def __init__(self, shared: MemoryEventLog) -> None:
        self.shared = shared

    async def append(self, events: Sequence[Event]) -> list[int]:
        return await self.shared.append(events)

    async def read(self, after: int = 0, limit: int = 10_000) -> list[Recorded]:
        return await self.shared.read(after, limit)

    async def last_offset(self) -> int:
        return await self.shared.last_offset()

    async def wait(self, after: int, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return await self.shared.last_offset() > after

    async def close(self) -> None:
        await self.shared.close()


async def test_a_job_accepted_by_one_server_is_changed_through_another_at_once() -> None:
    shared = MemoryEventLog()
    first, second = FollowingService(shared), FollowingService(SlowToHear(shared))
    await first.start()
    await second.start()
    try:
        one = httpx.AsyncClient(
            transport=httpx.ASGITransport(create_app(first)), base_url="http://a"
        )
        two = httpx.AsyncClient(
            transport=httpx.ASGITransport(create_app(second)), base_url="http://b"
        )
        job = (await one.post("/v1/jobs", json={"kind": "map", "spec": SPEC}, headers=ANN)).json()
        assert job["id"] not in second.state.jobs  # the second server has not folded it

        patched = await two.patch(f"/v1/jobs/{job['id']}", json={"priority": "high"}, headers=ANN)
        assert patched.status_code == 200, patched.text
        assert patched.json()["priority"] == "high"

        other = (await one.post("/v1/jobs", json={"kind": "map", "spec": SPEC}, headers=ANN)).json()
        cancelled = await two.post(f"/v1/jobs/{other['id']}/cancel", headers=ANN)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        # A job no server recorded is still not found.
        missing = await two.patch("/v1/jobs/nope", json={"priority": "high"}, headers=ANN)
        assert missing.status_code == 404
    finally:
        await second.stop()
        await first.stop()
