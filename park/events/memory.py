"""An `EventLog` in memory: for tests, benchmarks and the simulator, and to run the
shared-log (Kafka) mode of several services in one process without a broker.

Events are kept as their JSON, as the other adapters store them, so every reader decodes
its own copy: two services sharing one log never share a mutable event body, and an event
that would not survive the real logs does not survive this one either. `close()` leaves
the events in place: a log shared by two services outlives either one stopping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from park.events.log import EventLog, Recorded
from park.events.schema import Event, event_from_json, event_to_json
from park.waiting import wait_event


class MemoryEventLog(EventLog):
    def __init__(self) -> None:
        self._bodies: list[str] = []
        self._appended = asyncio.Event()

    async def append(self, events: Sequence[Event]) -> list[int]:
        if not events:
            return []
        first = len(self._bodies) + 1
        self._bodies.extend(event_to_json(e) for e in events)  # no await: atomic
        self._appended.set()
        self._appended = asyncio.Event()
        return list(range(first, first + len(events)))

    async def read(self, after: int = 0, limit: int = 10_000) -> list[Recorded]:
        start = max(after, 0)
        bodies = self._bodies[start : start + limit]
        return [Recorded(start + i + 1, event_from_json(b)) for i, b in enumerate(bodies)]

    async def last_offset(self) -> int:
        return len(self._bodies)

    async def wait(self, after: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._bodies) <= after:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            appended = self._appended
            await wait_event(appended, remaining)
        return True

    async def close(self) -> None:
        """Nothing to release; the events stay readable by the log's other users."""
