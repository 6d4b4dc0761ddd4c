"""The SQLite event log and the fold: append rate, replay rate, start-up with snapshots.

(a) append: events/s through `SqliteEventLog.append` in batches, against the floor of a
    raw `sqlite3` batched insert of the same rows (same table and index, the same JSON
    body text already serialised, one transaction per batch, WAL, synchronous=NORMAL).
(b) replay: a log of `--events` realistic events (map jobs planned whole, then lease
    rounds of WorkRequested + UnitGranted, then UnitCompleted, then JobCompleted) read
    back and folded into a fresh `ParkState`, as `ParkService.catch_up` does.
(c) start-up: that history plus `--active-jobs` active jobs with queued units; the time
    of `ParkService.start()` from a snapshot vs. from a full replay without one.

    python benchmarks/log.py                      # 1,000,000 events for (b) and (c)
    python benchmarks/log.py --events 200000      # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from park import core
from park.domain import Priority
from park.events.schema import (
    Event,
    JobCompleted,
    JobSubmitted,
    PlannedUnit,
    UnitCompleted,
    UnitGranted,
    UnitsPlanned,
    WorkerJoined,
    WorkRequested,
    event_to_json,
    job_id_of,
)
from park.events.sqlite import _SCHEMA, SqliteEventLog
from park.projections.state import ParkState
from park.service.engine import ParkService, gc_paused
from park.service.snapshots import SnapshotStore

FUNCTION = "park.builtins:sleep"
T0 = 1_700_000_000.0

DbRow = tuple[str, float, str | None, str]  # type, at, job_id, body: a row of `events`


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    count: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


def print_table(title: str, rows: Sequence[Row], unit: str = "events") -> None:
    print(f"\n{title}")
    width = max(len(r.name) for r in rows)
    header = f"{'':<{width}}  {unit:>10}  {'seconds':>8}  {unit + '/s':>12}  note"
    print(header)
    print("-" * (len(header) + 20))
    for r in rows:
        print(f"{r.name:<{width}}  {r.count:>10}  {r.seconds:>8.3f}  {r.rate:>12,.0f}  {r.note}")


# -- realistic events ---------------------------------------------------------------------


def job_history(
    job_no: int, units: int, workers: Sequence[str], at: float, lease_batch: int = 256
) -> Iterator[Event]:
    """One map job's whole life, as the service writes it: submitted, planned, leased in
    rounds of `lease_batch` (WorkRequested + grants), completed unit by unit, completed."""
    job_id = f"job{job_no:06d}"
    spec = {"function": FUNCTION, "inputs": [0] * units, "chunk": 1}
    yield JobSubmitted(
        at=at, job_id=job_id, user=f"user{job_no % 7}", kind="map", spec=spec,
        priority=Priority.NORMAL, tags={"user": f"user{job_no % 7}", "name": f"scan {job_no}"},
    )  # fmt: skip
    yield UnitsPlanned(
        at=at,
        job_id=job_id,
        units=[
            PlannedUnit(
                unit_id=f"{job_id}/{i}", payload={"function": FUNCTION, "start": i, "items": [0]}
            )
            for i in range(units)
        ],
    )
    vpass = 0.0
    for r, start in enumerate(range(0, units, lease_batch)):
        worker = workers[r % len(workers)]
        t = at + 0.001 * r
        ids = [f"{job_id}/{i}" for i in range(start, min(units, start + lease_batch))]
        yield WorkRequested(at=t, worker_id=worker, max_units=lease_batch)
        for unit_id in ids:
            vstart, vpass = vpass, vpass + 0.25  # the job's virtual time: a stride per grant
            yield UnitGranted(
                at=t, unit_id=unit_id, job_id=job_id, worker_id=worker,
                lease_deadline=t + 30.0, priority=Priority.NORMAL, price=1.0, reserved=1.0,
                vstart=vstart, vpass=vpass,
            )  # fmt: skip
        for unit_id in ids:
            yield UnitCompleted(
                at=t + 0.0005, unit_id=unit_id, job_id=job_id, worker_id=worker,
                result=[0], cpu_seconds=0.0001, charged=0.0001,
            )  # fmt: skip
    yield JobCompleted(at=at + 1.0, job_id=job_id, result=[0] * units)


def history(total: int, units_per_job: int = 50_000, n_workers: int = 4) -> Iterator[Event]:
    """About `total` events: workers joining, then finished map jobs back to back."""
    workers = [f"worker{w}" for w in range(n_workers)]
    for w in workers:
        yield WorkerJoined(at=T0, worker_id=w, name=w, cpus=1)
    emitted = n_workers
    job_no = 0
    while emitted < total:
        # 2 events per unit and 1 per lease round of 256, 3 per job; the last job is cut
        units = max(1, min(units_per_job, (total - emitted - 3) * 256 // 513))
        for event in job_history(job_no, units, workers, T0 + job_no):
            yield event
            emitted += 1
        job_no += 1


def active_jobs(count: int, units_each: int, first_job_no: int) -> Iterator[Event]:
    """Jobs submitted and planned, none of whose units has been granted yet."""
    for n in range(first_job_no, first_job_no + count):
        job_id = f"job{n:06d}"
        spec = {"function": FUNCTION, "inputs": list(range(units_each)), "chunk": 1}
        at = T0 + 10_000 + n * 0.001
        yield JobSubmitted(
            at=at, job_id=job_id, user=f"user{n % 50}", kind="map", spec=spec,
            tags={"user": f"user{n % 50}"},
        )  # fmt: skip
        yield UnitsPlanned(
            at=at,
            job_id=job_id,
            units=[
                PlannedUnit(
                    unit_id=f"{job_id}/{i}",
                    payload={"function": FUNCTION, "start": i, "items": [i]},
                )
                for i in range(units_each)
            ],
        )


def batched(events: Iterator[Event], size: int) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for e in events:
        batch.append(e)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def append_all(log: SqliteEventLog, events: Iterator[Event], batch: int) -> int:
    n = 0
    for chunk in batched(events, batch):
        await log.append(chunk)
        n += len(chunk)
    return n


# -- (a) append ---------------------------------------------------------------------------


def raw_insert(path: Path, rows: list[DbRow], batch: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO events(type, at, job_id, body) VALUES (?,?,?,?)", rows[i : i + batch]
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


async def park_append(path: Path, events: list[Event], batch: int) -> float:
    log = SqliteEventLog(path)
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        await log.append(events[i : i + batch])
    elapsed = time.perf_counter() - started
    await log.close()
    return elapsed


def serialise(events: list[Event]) -> tuple[list[DbRow], float]:
    """The rows `SqliteEventLog.append` writes, and the seconds it took to make them."""
    started = time.perf_counter()
    rows: list[DbRow] = [(e.type, e.at, job_id_of(e), event_to_json(e)) for e in events]
    return rows, time.perf_counter() - started


async def bench_append(tmp: Path, count: int, batch: int, repeat: int) -> list[Row]:
    """Best of `repeat` rounds, each writing a new file with each writer in turn."""
    events = list(history(count, units_per_job=5_000))
    floor = park = to_json = float("inf")
    for r in range(repeat):
        rows, seconds = serialise(events)
        to_json = min(to_json, seconds)
        floor = min(floor, raw_insert(tmp / f"raw-{r}.sqlite3", rows, batch))
        park = min(park, await park_append(tmp / f"park-{r}.sqlite3", events, batch))
    n = len(events)
    return [
        Row("sqlite3 executemany (floor)", n, floor, "the same rows, bodies already JSON"),
        Row("SqliteEventLog.append", n, park, f"{floor / park:.0%} of the floor's rate"),
        Row("  its event_to_json alone", n, to_json, "pydantic model_dump_json"),
    ]


# -- (b) replay ---------------------------------------------------------------------------


async def replay(path: Path, *, via_core: bool = False) -> tuple[ParkState, float, float]:
    """Read and fold the whole log into a fresh state, as `ParkService.catch_up` does;
    return the state and the seconds spent reading (with parsing) and folding.
    `via_core`: fold each page with `park.core.fold` (what catch_up calls: the same
    apply, plus the `Changes` it returns) instead of calling `ParkState.apply`."""
    log = SqliteEventLog(path)  # a fresh connection: nothing cached from the writes
    state = ParkState()
    read_s = fold_s = 0.0
    while True:
        t0 = time.perf_counter()
        records = await log.read(after=state.offset, limit=10_000)
        t1 = time.perf_counter()
        if not records:
            break
        if via_core:
            core.fold(state, [(rec.offset, rec.event) for rec in records])
        else:
            for rec in records:
                state.apply(rec.offset, rec.event)
        fold_s += time.perf_counter() - t1
        read_s += t1 - t0
    await log.close()
    return state, read_s, fold_s


async def bench_replay(path: Path, count: int, batch: int, gc_on: bool) -> tuple[list[Row], int]:
    log = SqliteEventLog(path)
    started = time.perf_counter()
    n = await append_all(log, history(count), batch)
    written = time.perf_counter() - started
    await log.close()

    with gc_paused():
        state, read_s, fold_s = await replay(path)
    if state.offset != n or any(j.active for j in state.jobs.values()):
        raise RuntimeError(f"replay folded {state.offset} of {n} events or left jobs active")
    note = f"map jobs: {len(state.jobs)}, units: {sum(j.units_done for j in state.jobs.values()):,}"
    del state
    gc.collect()
    with gc_paused():
        _, _, core_fold_s = await replay(path, via_core=True)
    gc.collect()
    rows = [
        Row("setup: build + append", n, written, note),
        Row("replay: read + parse", n, read_s, "SqliteEventLog.read, 10,000 a page"),
        Row("replay: fold", n, fold_s, "ParkState.apply"),
        Row("replay: fold via core", n, core_fold_s, "park.core.fold, as catch_up: + Changes"),
        Row("replay: total", n, read_s + fold_s, "GC paused, as ParkService.catch_up"),
    ]
    if gc_on:
        _, read_s, fold_s = await replay(path)
        rows.append(Row("replay: total, GC on", n, read_s + fold_s, "catch_up before gc_paused"))
    return rows, n


# -- (c) start-up -------------------------------------------------------------------------


async def timed_start(path: Path, snapshots: SnapshotStore | None) -> tuple[float, ParkState]:
    service = ParkService(SqliteEventLog(path), snapshots=snapshots)
    started = time.perf_counter()
    await service.start()
    elapsed = time.perf_counter() - started
    state = service.state
    service.snapshots = None  # stop() must not write a snapshot of its own
    await service.stop()
    return elapsed, state


async def bench_startup(path: Path, jobs: int, units_each: int) -> list[Row]:
    log = SqliteEventLog(path)
    await append_all(log, active_jobs(jobs, units_each, first_job_no=900_000), 1000)
    total = await log.last_offset()
    await log.close()

    replay_s, state = await timed_start(path, None)
    active = sum(1 for j in state.jobs.values() if j.active)
    queued = sum(len(j.queue) for j in state.jobs.values())
    if active != jobs or queued != jobs * units_each:
        raise RuntimeError(f"start-up found {active} active jobs, {queued} queued units")

    store = SnapshotStore(path.parent / "snapshots")
    started = time.perf_counter()
    snap_path = store.save(state)
    save_s = time.perf_counter() - started
    size_mb = snap_path.stat().st_size / 1e6
    snap_s, loaded = await timed_start(path, store)
    if loaded.offset != total or len(loaded.jobs) != len(state.jobs):
        raise RuntimeError("start-up from the snapshot did not reproduce the state")
    return [
        Row("full replay, no snapshot", total, replay_s, f"folds all {total:,} events"),
        Row("from a snapshot", total, snap_s, f"loads {size_mb:.1f} MB, folds 0 events"),
        Row("(writing that snapshot)", total, save_s, "SnapshotStore.save, with fsync"),
    ]


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="park-logbench-") as tmp_name:
        tmp = Path(tmp_name)
        print(
            f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"SQLite {sqlite3.sqlite_version}, data in {tmp}",
            flush=True,
        )
        if "append" in args.only:
            rows = await bench_append(tmp, args.append_events, args.batch, args.repeat)
            print_table(f"(a) append, batches of {args.batch}, best of {args.repeat}", rows)
        if "replay" in args.only or "startup" in args.only:
            path = tmp / "history" / "events.sqlite3"
            rows, n = await bench_replay(path, args.events, args.batch, not args.no_gc_on)
            print_table(f"(b) replay of {n:,} events into a fresh ParkState", rows)
            if "startup" in args.only:
                rows = await bench_startup(path, args.active_jobs, args.units_per_job)
                print(
                    f"\n(c) ParkService.start(): {n:,} events of history, then "
                    f"{args.active_jobs:,} active jobs x {args.units_per_job} queued units"
                )
                width = max(len(r.name) for r in rows)
                print(f"{'':<{width}}  {'seconds':>8}  {'speed-up':>8}  note")
                print("-" * (width + 50))
                for r in rows:
                    speed_up = f"{rows[0].seconds / r.seconds:.0f}x" if r is rows[1] else ""
                    print(f"{r.name:<{width}}  {r.seconds:>8.3f}  {speed_up:>8}  {r.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="replay log size")
    parser.add_argument("--append-events", type=int, default=200_000, help="for (a)")
    parser.add_argument("--batch", type=int, default=1000, help="events per append")
    parser.add_argument(
        "--no-gc-on", action="store_true", help="skip the replay with the GC running"
    )
    parser.add_argument("--repeat", type=int, default=3, help="(a): best of this many runs")
    parser.add_argument("--active-jobs", type=int, default=10_000, help="for (c)")
    parser.add_argument("--units-per-job", type=int, default=3, help="queued, for (c)")
    parser.add_argument(
        "--only", nargs="+", choices=["append", "replay", "startup"],
        default=["append", "replay", "startup"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    asyncio.run(run(args))
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
