"""Start-up replay: the collector is held off during the bulk fold and restored after."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from park.events.schema import WorkerJoined
from park.events.sqlite import SqliteEventLog
from park.service.engine import ParkService

pytestmark = pytest.mark.anyio


class SeesCollector(SqliteEventLog):
    """A log that records whether the collector ran while it was read."""

    seen: list[bool]

    async def read(self, after: int = 0, limit: int = 10_000):  # type: ignore[no-untyped-def]
        self.seen.append(gc.isenabled())
        return await super().read(after, limit)


@pytest.mark.parametrize("enabled_before", [True, False])
async def test_catch_up_pauses_and_restores_the_collector(
    tmp_path: Path, enabled_before: bool
) -> None:
    log = SeesCollector(tmp_path / "events.sqlite3")
    log.seen = []
    await log.append([WorkerJoined(at=1.0, worker_id=f"w{i}", name="w", cpus=1) for i in range(3)])
    service = ParkService(log)
    was = gc.isenabled()
    (gc.enable if enabled_before else gc.disable)()
    try:
        await service.catch_up()
        assert gc.isenabled() is enabled_before
    finally:
        (gc.enable if was else gc.disable)()
        await log.close()
    assert log.seen and not any(log.seen)
    assert service.state.offset == 3 and len(service.state.workers) == 3
