"""`park compact` moves old events into compressed segment files: the log still reads
dense from offset 1 (for `park events` and audits), `park replay --verify` still finds 0
differences, and a restarted service still starts."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest

from park.api.app import create_app
from park.cli import main
from park.commands import UnitReport
from park.events.sqlite import SqliteEventLog
from park.scheduler.config import PolicyConfig
from park.service.archive_store import ArchiveStore
from park.service.engine import ParkService, ServiceConfig
from park.service.snapshots import SnapshotStore

SLEEP = {"function": "park.builtins:sleep", "inputs": [0, 0, 0], "chunk": 1}


def service_in(data: Path) -> ParkService:
    return ParkService(
        SqliteEventLog.in_data_dir(data),
        snapshots=SnapshotStore.in_data_dir(data),
        archive=ArchiveStore.in_data_dir(data),
        config=ServiceConfig(policy=PolicyConfig(hot_finished_jobs=3)),
    )


async def run_jobs(data: Path, jobs: int) -> list[str]:
    """Jobs run to the end through the service (grants, reports); the log's bodies."""
    service = service_in(data)
    await service.start()
    worker = await service.register_worker(name="w", cpus=2)
    for n in range(jobs):
        await service.submit(user=f"u{n % 3}", kind="map", spec=SLEEP)
        while leased := await service.lease(worker, 2):
            reports = [UnitReport(lu.unit.id, True, [0.0], None, 0.01, 0.01) for lu in leased]
            await service.report(worker, reports)
    await service.stop()
    log = SqliteEventLog.in_data_dir(data)
    records = await log.read(after=0, limit=1_000_000)
    await log.close()
    return [r.event.model_dump_json() for r in records]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return int(exited.value.code or 0), capsys.readouterr().out


def test_compact_then_replay_verify_finds_no_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "park-data"
    before = asyncio.run(run_jobs(data, 40))
    last = len(before)

    code, out = cli(capsys, "compact", "--data-dir", str(data), "--before", str(last + 1))
    assert code == 0, out
    live = sqlite3.connect(data / "events.sqlite3")
    first_live = live.execute("SELECT MIN(offset) FROM events").fetchone()[0]
    live.close()
    assert first_live > last // 2  # most of the log moved (up to the snapshot)
    assert list((data / "segments").glob("events-*.jsonl.gz"))
    assert f"moved {first_live - 1} events" in out

    async def read_back() -> list[str]:
        log = SqliteEventLog.in_data_dir(data)
        records = []
        after = 0
        while batch := await log.read(after=after, limit=7):  # pages across the boundary
            records += batch
            after = batch[-1].offset
        await log.close()
        assert [r.offset for r in records] == list(range(1, last + 1))
        return [r.event.model_dump_json() for r in records]

    assert asyncio.run(read_back()) == before

    code, out = cli(capsys, "replay", "--data-dir", str(data), "--verify")
    assert code == 0, out
    assert f"replayed to offset {last}" in out
    assert ": 0 differ" in out and "re-ran the policy on 0 " not in out

    async def restart_and_audit() -> None:
        service = service_in(data)
        await service.start()
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://park") as http:
            answer = (await http.get("/v1/events", params={"after": 0, "limit": 10})).json()
            assert [r["offset"] for r in answer["events"]] == list(range(1, 11))
            listed = (await http.get("/v1/jobs", params={"limit": 100})).json()["jobs"]
            assert len(listed) == 40 and all(j["status"] == "complete" for j in listed)
        await service.stop()

    asyncio.run(restart_and_audit())


def test_compact_keeps_what_the_snapshot_does_not_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "park-data"
    asyncio.run(run_jobs(data, 3))
    for snapshot in (data / "snapshots").glob("*.pickle"):
        snapshot.unlink()
    code, out = cli(capsys, "compact", "--data-dir", str(data), "--before", "2030-01-01")
    assert code == 0, out
    assert "moved 0 events" in out
    code, out = cli(capsys, "compact", "--data-dir", str(data), "--before", "next tuesday")
    assert code == 2 and "--before" in out
