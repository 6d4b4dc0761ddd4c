"""Years of history on one server: memory, start-up, snapshot and lookups vs. finished jobs.

The log is grown in-process through the service, then measured through the real server:

1. Grow. A real map job is run through `ParkService` (submit, a worker registers, leases
   its unit, reports it; the job completes): its events (job.submitted, units.planned,
   work.requested, unit.granted, unit.completed, job.completed) are the template. Copies
   of exactly those events, with fresh job, unit and times (one job a second, 50 users,
   tags `batch` and `name`), are appended to the service's log in batches of 50,000
   events, and the service's projections fold them as the service folds its own appends
   (`state.apply` with the offsets the log gave, then `store_archived`): jobs age out of
   memory into the archive as they would on a live server. Running each job through lease and report
   instead costs ~2 ms of Python per job on this 2-core machine (~35 min per million).
2. Measure. `park serve --workers 0` on that data directory (its snapshot was written
   when the in-process service stopped): the time from process start to the first
   `/healthz` answer, the snapshot's size, `GET /v1/jobs?user=X&limit=100` and
   `GET /v1/jobs/{id}` of archived jobs (p50/p99 over `--requests` each, one client
   on loopback), and the server's RSS after those requests.

    python benchmarks/history.py                                 # 10k, 100k, 1M
    python benchmarks/history.py --sizes 10000,100000 --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import free_port, stop_process, wait_until
from park.commands import UnitReport
from park.events.schema import Event
from park.events.sqlite import SqliteEventLog
from park.service.archive_store import ArchiveStore
from park.service.engine import ParkService
from park.service.snapshots import SnapshotStore

USERS = [f"user{i:02d}" for i in range(50)]
BATCH_EVENTS = 50_000
T0 = 1_700_000_000.0


def service_in(data: Path) -> ParkService:
    return ParkService(
        SqliteEventLog.in_data_dir(data),
        snapshots=SnapshotStore.in_data_dir(data),
        archive=ArchiveStore.in_data_dir(data),
        clock=lambda: T0,
    )


async def template(data: Path) -> list[Event]:
    """The events one real finished map job leaves on the log."""
    service = service_in(data)
    await service.start()
    try:
        worker = await service.register_worker(name="bench", cpus=1)
        first = (await service.log.last_offset()) + 1
        spec = {"function": "park.builtins:sleep", "inputs": [0.0], "chunk": 1}
        job = await service.submit(user=USERS[0], kind="map", spec=spec, tags={"user": USERS[0]})
        leased = await service.lease(worker, 1)
        report = UnitReport(leased[0].unit.id, True, [0.0], None, 0.01, 0.01)
        await service.report(worker, [report])
        assert service.job(job.id).status.value == "complete"
        records = await service.log.read(after=first - 1, limit=100)
    finally:
        await service.stop()
    return [r.event for r in records if getattr(r.event, "job_id", None) in (job.id, None)]


def copies(pattern: list[Event], start: int, count: int) -> list[Event]:
    """`count` jobs shaped like `pattern`, numbered from `start`, one a second."""
    job_id = next(e.job_id for e in pattern if hasattr(e, "job_id"))  # type: ignore[attr-defined]
    out: list[Event] = []
    for n in range(start, start + count):
        new_id = f"b{n:07d}"
        user = USERS[n % len(USERS)]
        at = T0 + n
        for e in pattern:
            update: dict[str, Any] = {"at": at}
            if getattr(e, "job_id", None) == job_id:
                update["job_id"] = new_id
            if e.type == "job.submitted":
                update.update(user=user, tags={"user": user, "batch": str(n // 1000),
                                               "name": f"run-{n % 100}"})  # fmt: skip
            elif e.type == "units.planned":
                update["units"] = [u.model_copy(update={"unit_id": f"{new_id}/0"}) for u in e.units]  # type: ignore[attr-defined]
            elif hasattr(e, "unit_id"):
                update["unit_id"] = f"{new_id}/0"
            if e.type in ("unit.granted",):
                update["lease_deadline"] = at + 30
            out.append(e.model_copy(update=update))
    return out


async def grow(data: Path, pattern: list[Event], have: int, want: int) -> tuple[int, float]:
    """Append jobs `have`..`want` through the service's log and fold them; snapshot."""
    started = time.perf_counter()
    service = service_in(data)
    await service.start()
    per_batch = max(1, BATCH_EVENTS // len(pattern))
    try:
        n = have
        while n < want:
            count = min(per_batch, want - n)
            events = copies(pattern, n, count)
            offsets = await service.log.append(events)
            # fold what was just appended, as the service folds its own appends (reading
            # it back would only add the decoding): jobs age out into the archive
            for offset, event in zip(offsets, events, strict=True):
                service.state.apply(offset, event)
            service.store_archived()
            n += count
    finally:
        await service.stop()  # writes the snapshot the server will start from
    return want, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used: on a loaded machine, start-up's wall
    time mostly measures waiting for a core."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def import_cpu_seconds() -> float:
    """CPU time of a process that only imports what `park serve` imports, and exits."""
    code = "import park.server, park.cli, os; t = os.times(); print(t.user + t.system)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def measure(data: Path, finished: int, requests: int) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-m", "park", "serve", "--port", str(port), "--data-dir", str(data),
           "--workers", "0"]  # fmt: skip
    log = (data.parent / f"serve-{finished}.log").open("ab")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 300, "serve")
        startup = time.perf_counter() - started
        startup_cpu = cpu_seconds(proc.pid)
        rng = random.Random(finished)
        archive = ArchiveStore.in_data_dir(data)
        archived = archive.count()
        archive.close()
        listing: list[float] = []
        lookup: list[float] = []
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(requests):
                t = time.perf_counter()
                r = http.get("/v1/jobs", params={"user": rng.choice(USERS), "limit": 100})
                listing.append(time.perf_counter() - t)
                assert r.status_code == 200 and len(r.json()["jobs"]) >= min(100, finished // 50)
            oldest_hot = finished - 10_000
            for _ in range(requests):
                n = rng.randrange(0, max(1, oldest_hot))
                t = time.perf_counter()
                r = http.get(f"/v1/jobs/b{n:07d}")
                lookup.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
        rss = rss_kib(proc.pid)
    finally:
        stop_process(proc)
    snapshots = sorted((data / "snapshots").glob("state-*.pickle"))
    return {
        "finished": finished,
        "archived": archived,
        "rss_mib": rss / 1024,
        "startup_s": startup,
        "startup_cpu_s": startup_cpu,
        "imports_cpu_s": import_cpu_seconds(),
        "snapshot_mib": snapshots[-1].stat().st_size / 2**20 if snapshots else 0.0,
        "log_mib": (data / "events.sqlite3").stat().st_size / 2**20,
        "archive_mib": (data / "archive.sqlite3").stat().st_size / 2**20,
        "list": percentiles(listing),
        "lookup": percentiles(lookup) if finished > 10_000 else (float("nan"), float("nan")),
    }


def print_rows(rows: list[dict[str, Any]]) -> None:
    print()
    head = f"{'finished':>9} {'archived':>9} {'RSS MiB':>8} {'start s (CPU, imports)':>23} "
    head += f"{'snap MiB':>9} "
    print(head + f"{'log MiB':>8} {'arch MiB':>9} {'list p50/p99 ms':>16} {'lookup p50/p99':>18}")
    for r in rows:
        print(f"{r['finished']:>9,} {r['archived']:>9,} {r['rss_mib']:>8.0f} "
              f"{r['startup_s']:>6.2f} ({r['startup_cpu_s']:>5.2f}, {r['imports_cpu_s']:>5.2f}) "
              f"{r['snapshot_mib']:>9.1f} {r['log_mib']:>8.0f} "
              f"{r['archive_mib']:>9.0f} {r['list'][0]:>7.1f} /{r['list'][1]:>6.1f} "
              f"{r['lookup'][0]:>8.1f} /{r['lookup'][1]:>6.1f}")  # fmt: skip
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"\nRSS at {last['finished']:,} / RSS at {first['finished']:,}: "
              f"{last['rss_mib'] / first['rss_mib']:.2f}x (goal <= 1.5x); start-up at "
              f"{last['finished']:,}: {last['startup_s']:.2f} s wall, "
              f"{last['startup_cpu_s'] - last['imports_cpu_s']:.2f} s CPU beyond imports "
              f"(goal <= 2 s); p99 at "
              f"{last['finished']:,}: list {last['list'][1]:.1f} ms, lookup "
              f"{last['lookup'][1]:.1f} ms (goal <= 50 ms)")  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    deadline = time.monotonic() + args.max_minutes * 60
    tmp = Path(args.dir or tempfile.mkdtemp(prefix="park-history-"))
    data = tmp / "park-data"
    pattern = await template(data)
    print(f"template: {len(pattern)} events per finished job "
          f"({', '.join(e.type for e in pattern)}); data in {data}", flush=True)  # fmt: skip
    have, rows = args.have, []
    for size in sizes:
        if time.monotonic() > deadline:
            print(f"stopping before {size:,}: --max-minutes reached")
            break
        have, seconds = await grow(data, pattern, have, size)
        print(f"grew to {size:,} finished jobs in {seconds:.0f} s", flush=True)
        rows.append(measure(data, size, args.requests))
        print_rows(rows[-1:])
    print_rows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument("--dir", help="keep the data here (default: a new temporary directory)")
    parser.add_argument(
        "--have", type=int, default=0, help="with --dir of an earlier run: jobs grown already"
    )
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
