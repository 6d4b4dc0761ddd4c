"""Start-up: the collector is held off while a snapshot loads and the log replays, then
restored."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from park.events.schema import WorkerJoined
from park.events.sqlite import SqliteEventLog
from park.projections.state import ParkState
from park.service.engine import ParkService
from park.service.snapshots import SnapshotStore

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


class SeesCollectorStore(SnapshotStore):
    """A snapshot store that records whether the collector ran while it loaded."""

    seen: list[bool]

    def load_latest(self, max_offset: int) -> ParkState | None:
        self.seen.append(gc.isenabled())
        return super().load_latest(max_offset)


async def test_start_loads_the_snapshot_with_the_collector_paused(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.sqlite3")
    await log.append([WorkerJoined(at=1.0, worker_id="w", name="w", cpus=1)])
    store = SeesCollectorStore(tmp_path / "snapshots")
    store.seen = []
    first = ParkService(log, snapshots=store)
    await first.start()
    await first.stop()  # writes a snapshot
    assert store.seen == [False]
    assert list((tmp_path / "snapshots").glob("state-*.pickle"))

    store.seen = []
    second = ParkService(SqliteEventLog(tmp_path / "events.sqlite3"), snapshots=store)
    was = gc.isenabled()
    gc.enable()
    try:
        await second.start()
        assert gc.isenabled()
        assert "w" in second.state.workers
    finally:
        await second.stop()
        (gc.enable if was else gc.disable)()
    assert store.seen == [False]
