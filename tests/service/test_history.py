"""History through the service: paging over hot and archived jobs, and every job in the
same place after a restart from a snapshot and after a full replay.

The logs are grown in-process: the events finished jobs leave on the log (submitted, then
completed or cancelled), appended in big batches, then folded by a real service."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from park.api.app import create_app
from park.commands import UnitReport
from park.events.schema import Event, JobCompleted, JobSubmitted, PolicyConfigured
from park.events.sqlite import SqliteEventLog
from park.projections.archive import DAY, JobQuery
from park.scheduler.config import PolicyConfig
from park.service.archive_store import ArchiveStore
from park.service.engine import ParkService, ServiceConfig
from park.service.snapshots import SnapshotStore

pytestmark = pytest.mark.anyio
USERS = ("ann", "bob", "cy")
SLEEP = {"function": "park.builtins:sleep", "inputs": [1, 2]}


def config(hot_jobs: int, hot_seconds: float = DAY) -> ServiceConfig:
    policy = PolicyConfig(hot_finished_jobs=hot_jobs, hot_finished_seconds=hot_seconds)
    return ServiceConfig(policy=policy)


async def grow(
    log: SqliteEventLog, n: int, *, start: float, step: float, cfg: ServiceConfig
) -> list[str]:
    """Append `n` finished jobs (ids h0, h1, ...), `step` seconds apart; return their ids."""
    ids = [f"h{i}" for i in range(n)]
    events: list[Event] = [PolicyConfigured(at=start, config=cfg.policy.model_dump(mode="json"))]
    for i, job_id in enumerate(ids):
        at = start + i * step
        user = USERS[i % len(USERS)]
        spec = {"function": "park.builtins:sleep", "inputs": [0], "chunk": 1}
        tags = {"user": user, "batch": str(i // 1000)}
        events.append(
            JobSubmitted(at=at, job_id=job_id, user=user, kind="map", spec=spec, tags=tags)
        )
        events.append(JobCompleted(at=at + step / 2, job_id=job_id, result=[i]))
        if len(events) >= 10_000:
            await log.append(events)
            events = []
    await log.append(events)
    return ids


def service_in(
    data: Path, cfg: ServiceConfig, clock: Callable[[], float] = time.time
) -> ParkService:
    return ParkService(
        SqliteEventLog.in_data_dir(data),
        snapshots=SnapshotStore.in_data_dir(data),
        archive=ArchiveStore.in_data_dir(data),
        config=cfg,
        clock=clock,
    )


@pytest.mark.slow
async def test_paging_returns_each_job_exactly_once_while_new_jobs_finish(tmp_path: Path) -> None:
    cfg = config(hot_jobs=2000)
    log = SqliteEventLog.in_data_dir(tmp_path)
    grown = await grow(log, 25_000, start=1_000_000.0, step=0.01, cfg=cfg)
    await log.close()
    service = service_in(tmp_path, cfg)
    await service.start()
    try:
        assert service.archive.count() == 23_000
        oldest_in_memory = next(iter(service.state.jobs))
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://park") as http:
            seen: list[str] = []
            cursor: int | None = None
            pages = 0
            while pages < 100:
                params: dict[str, object] = {"limit": 1000}
                if cursor is not None:
                    params["before"] = cursor
                answer = (await http.get("/v1/jobs", params=params)).json()
                pages += 1
                seen += [job["id"] for job in answer["jobs"]]
                cursor = answer["next"]
                if cursor is None:
                    break
                # New jobs finish between pages; after the first page they move hundreds
                # of the oldest jobs in memory (below the cursor, not listed yet) out to
                # the archive.
                for _ in range(150 if pages == 1 else 2):
                    response = await http.post("/v1/jobs", json={"kind": "map", "spec": SLEEP})
                    job_id = response.json()["id"]
                    assert (await http.post(f"/v1/jobs/{job_id}/cancel")).status_code == 200
        assert len(seen) == len(set(seen)), "a job was listed twice"
        assert set(grown) <= set(seen), f"{len(set(grown) - set(seen))} jobs were skipped"
        assert pages == 26  # 25,000 jobs and the new ones, 1,000 a page
        # jobs moved to the archive while we paged
        assert oldest_in_memory not in service.state.jobs
        assert service.archive.get(oldest_in_memory) is not None
    finally:
        await service.stop()


def placement(service: ParkService) -> tuple[set[str], set[str]]:
    """Which jobs are in memory, which in the archive."""
    archived = {j.id for j in service.archive.jobs(JobQuery(limit=1_000_000))}
    return set(service.state.jobs), archived


async def test_restart_and_full_replay_put_every_job_in_the_same_place(tmp_path: Path) -> None:
    # 3,000 jobs over 6 days: the window (1 day), not the count (1,000), keeps ~500.
    cfg = config(hot_jobs=1000, hot_seconds=DAY)
    data = tmp_path / "data"
    log = SqliteEventLog.in_data_dir(data)
    ids = await grow(log, 3000, start=1_000_000.0, step=6 * DAY / 3000, cfg=cfg)
    await log.close()

    first = service_in(data, cfg, clock=lambda: 1_000_000.0 + 6 * DAY)
    await first.start()
    running = await first.submit(user="ann", kind="map", spec=SLEEP)
    hot, archived = placement(first)
    offset = first.state.offset
    await first.stop()  # writes a snapshot
    assert running.id in hot and not hot & archived and set(ids) <= hot | archived
    finished_hot = hot - {running.id}
    assert 0 < len(finished_hot) < 1000  # the window, not the count, bounded it

    restarted = service_in(data, cfg)
    await restarted.start()
    assert restarted._snapshot_offset == offset  # from the snapshot, not a replay
    assert placement(restarted) == (hot, archived)
    await restarted.stop()

    shutil.rmtree(data / "snapshots")
    (data / "archive.sqlite3").unlink()
    replayed = service_in(data, cfg)
    await replayed.start()
    assert replayed._snapshot_offset == 0
    assert placement(replayed) == (hot, archived)
    job = replayed.job(ids[0])  # archived, with everything a client sees
    assert (job.status.value, job.result, job.tags["batch"]) == ("complete", [0], "0")
    await replayed.stop()


async def test_usage_per_day_is_served_and_plotted(tmp_path: Path) -> None:
    now = [1_000_000.0]  # 11.57 days after the epoch
    service = service_in(tmp_path, config(hot_jobs=10), clock=lambda: now[0])
    await service.start()
    try:
        worker = await service.register_worker(name="w", cpus=1)
        for day, user in ((0, "ann"), (0, "bob"), (1, "ann"), (2, "ann")):
            now[0] = 1_000_000.0 + day * DAY
            await service.submit(user=user, kind="map", spec=SLEEP)
            while leased := await service.lease(worker, 2):
                reports = [UnitReport(u.unit.id, True, [0.0], None, 1.5, 0.01) for u in leased]
                await service.report(worker, reports)
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://park") as http:
            answer = await http.get("/v1/ledger", params={"from": 1_000_000.0, "to": now[0]})
            days = [
                (d["day"], d["user"], d["units"], d["core_seconds"]) for d in answer.json()["days"]
            ]
            assert days == [
                ("1970-01-12", "ann", 2, 3.0),
                ("1970-01-12", "bob", 2, 3.0),
                ("1970-01-13", "ann", 2, 3.0),
                ("1970-01-14", "ann", 2, 3.0),  # today's, from memory
            ]
            assert service.archive.days(0, 10**6)  # the closed days are in the archive
            one = await http.get("/v1/ledger", params={"from": "1970-01-13", "to": "1970-01-13"})
            assert [d["day"] for d in one.json()["days"]] == ["1970-01-13"]
            plot = await http.get("/v1/ledger/days.svg", params={"from": "1970-01-10"})
            assert plot.status_code == 200 and b"<svg" in plot.content
            bad = await http.get("/v1/ledger", params={"from": "yesterday"})
            assert bad.status_code in (400, 422) and "from" in bad.json()["error"]["message"]
    finally:
        await service.stop()
