"""The server's CPU per no-op unit: what `ParkService` costs, in-process and over HTTP.

In-process (the default): a real `ParkService` on a SQLite log (and archive) in a
temporary data directory, as `park serve` builds it (and, once started, its garbage
collector set as `park serve` sets it, where the code measured does). One worker
registers, a first job of 8 units runs (as on a server that has run one), then one map
job of `--units` no-op units (`park.builtins:sleep` of 0, one input per unit) is
submitted, and the worker leases batches of `--batch` units and reports each batch until
the job is complete. CPU time (`time.process_time`) is summed per phase and divided by
the units:

- submit: `ParkService.submit`: the spec checked, the units planned, both recorded and
  folded (the job is planned before the call returns);
- lease: every `ParkService.lease` (the scheduler's grants, their events, append, fold);
- report: every `ParkService.report` (the completions, append, fold, the job settled;
  the last one records the job's result).

`--http`: the same steps as HTTP requests to a real `park serve --workers 0` subprocess;
the figures are the CPU of the server process (user + system, from /proc, read around
each request: 10 ms ticks, so use 20,000 units), HTTP parsing, validation, telemetry and
answers included.

Each run is its own Python process. `--source DIR` runs the same measurement on another
checkout (its `park` package first on PYTHONPATH, e.g. `git archive` of main unpacked)
and prints both side by side, alternating the two `--repeat` times; the figures are the
median of the runs (and the best, in brackets).

    python benchmarks/service_cost.py                          # this checkout, 3 runs
    python benchmarks/service_cost.py --source /tmp/park-main  # before / after
    python benchmarks/service_cost.py --http --source /tmp/park-main
    python benchmarks/service_cost.py --instructions --units 5000 --source /tmp/park-main
    python benchmarks/service_cost.py --units 5000 --repeat 1  # a quick run

`--instructions` counts the instructions of the in-process runs under valgrind instead
(`--tool=cachegrind --cache-sim=no`, PYTHONHASHSEED=0): a run of `--units` less a run
of a fifth of them, per unit. On a machine shared with other work the CPU times of two
runs of the same code differ by ±25 %; the instruction counts do not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PHASES = ("submit", "lease", "report")
WARM_UP = 8  # units of a first job, outside the figures


def as_park_serve() -> None:
    """What `park serve` does once its service has started, in the code measured (the
    garbage collector's young threshold; nothing in code from before it did)."""
    try:
        from park.service.collector import collect_less_often
    except ImportError:
        return
    collect_less_often()


async def measure(units: int, batch: int) -> dict[str, Any]:
    """One run in this process: CPU seconds per phase, and what was recorded."""
    from park.events.sqlite import SqliteEventLog
    from park.service.archive_store import ArchiveStore
    from park.service.engine import ParkService

    with tempfile.TemporaryDirectory(prefix="park-service-cost-") as data_dir:
        service = ParkService(
            SqliteEventLog.in_data_dir(data_dir), archive=ArchiveStore.in_data_dir(data_dir)
        )
        await service.start()
        as_park_serve()
        try:
            worker = await service.register_worker(name="bench", cpus=2)
            await run_job(service, worker, WARM_UP, batch)  # as a server that ran one before
            wall0 = time.perf_counter()
            cpu, leases = await run_job(service, worker, units, batch)
            wall = time.perf_counter() - wall0
            events = await service.log.last_offset()
        finally:
            await service.stop()
    return outcome(units, leases, events, wall, cpu)


async def run_job(
    service: Any, worker: str, units: int, batch: int
) -> tuple[dict[str, float], int]:
    """Submit one map job of no-op units, lease and report them all; CPU per phase."""
    from park.domain import UnitReport

    spec = {"function": "park.builtins:sleep", "inputs": [0] * units, "chunk": 1}
    cpu = dict.fromkeys(PHASES, 0.0)
    t0 = time.process_time()
    job = await service.submit(user="bench", kind="map", spec=spec)
    cpu["submit"] = time.process_time() - t0
    leases = 0
    while True:
        t0 = time.process_time()
        leased = await service.lease(worker, batch)
        cpu["lease"] += time.process_time() - t0
        if not leased:
            break
        leases += 1
        reports = [
            UnitReport(u.unit.id, True, [0], cpu_seconds=0.0, wall_seconds=1e-5) for u in leased
        ]
        t0 = time.process_time()
        ignored = await service.report(worker, reports)
        cpu["report"] += time.process_time() - t0
        if ignored:
            raise RuntimeError(f"{len(ignored)} reports ignored")
    status = service.job(job.id).status
    if str(status.value) != "complete":
        raise RuntimeError(f"the job ended {status}, not complete")
    return cpu, leases


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_http(units: int, batch: int) -> dict[str, Any]:
    """One run against a real `park serve --workers 0` (this process's `park`): the same
    steps as HTTP requests, and the CPU the server process used for each kind."""
    import httpx
    from harness import free_port, stop_process, wait_until

    with tempfile.TemporaryDirectory(prefix="park-service-cost-") as data_dir:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "park", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "0", "--data-dir", data_dir, "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=data_dir,  # `-m` puts the working directory first on sys.path: not a checkout
        )  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as http:
                wait_until(lambda: http.get("/healthz").status_code == 200, 60, "park serve up")
                worker = http.post("/v1/workers", json={"name": "bench", "cpus": 2}).json()["id"]
                cpu = dict.fromkeys(PHASES, 0.0)

                def timed(phase: str, path: str, body: dict[str, Any]) -> Any:
                    before = process_cpu(server.pid)
                    answer = http.post(path, json=body)
                    cpu[phase] += process_cpu(server.pid) - before
                    answer.raise_for_status()
                    return answer.json()

                def run(units: int) -> tuple[str, int]:
                    spec = {"function": "park.builtins:sleep", "inputs": [0] * units, "chunk": 1}
                    job = timed("submit", "/v1/jobs", {"kind": "map", "spec": spec})["id"]
                    leases = 0
                    while True:
                        body = {"max_units": batch}
                        leased = timed("lease", f"/v1/workers/{worker}/lease", body)
                        if not leased["units"]:
                            return job, leases
                        leases += 1
                        reports = [
                            {"unit_id": u["id"], "ok": True, "result": [0], "wall_seconds": 1e-5}
                            for u in leased["units"]
                        ]
                        body = {"reports": reports}
                        answer = timed("report", f"/v1/workers/{worker}/reports", body)
                        if answer["ignored"]:
                            raise RuntimeError(f"{len(answer['ignored'])} reports ignored")

                run(WARM_UP)
                cpu = dict.fromkeys(PHASES, 0.0)
                wall0 = time.perf_counter()
                job, leases = run(units)
                wall = time.perf_counter() - wall0
                status = http.get(f"/v1/jobs/{job}").json()["status"]
                if status != "complete":
                    raise RuntimeError(f"the job ended {status}, not complete")
                events = http.get("/v1/events", params={"after": 0, "limit": 1}).json()[
                    "last_offset"
                ]
        finally:
            stop_process(server)
    return outcome(units, leases, events, wall, cpu)


def outcome(
    units: int, leases: int, events: int, wall: float, cpu: dict[str, float]
) -> dict[str, Any]:
    """One run's figures, as the child prints them: CPU seconds per phase, and what ran."""
    return {"units": units, "leases": leases, "events": events, "wall": wall, **cpu}


def run_once(source: Path | None, units: int, batch: int, http: bool = False) -> dict[str, Any]:
    """One run in a fresh Python process, on `source` (a checkout) or on this one."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), *filter(None, [env.get("PYTHONPATH")])])
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--units", str(units), "--batch", str(batch)]
        + (["--http"] if http else []),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"the run on {source or 'this checkout'} failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def instructions(source: Path | None, units: int, batch: int) -> int:
    """Instructions the whole in-process run executes (valgrind's cachegrind, no cache
    simulation): deterministic, unlike CPU time on a shared machine."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), *filter(None, [env.get("PYTHONPATH")])])
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--child", "--units", str(units), "--batch", str(batch)],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"valgrind on {source or 'this checkout'} failed:\n{out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def print_instructions(sources: dict[str, Path | None], units: int, batch: int) -> None:
    """Instructions per unit: a run of `units` less a run of a fifth of them, so that
    start-up and imports cancel out."""
    small = max(1, units // 5)
    print(
        f"ParkService (in-process) instructions per no-op unit: runs of {units:,} and "
        f"{small:,} units, leases of {batch} (valgrind --tool=cachegrind)"
    )
    per: dict[str, float] = {}
    for name, source in sources.items():
        big, little = instructions(source, units, batch), instructions(source, small, batch)
        per[name] = (big - little) / (units - small)
        print(f"{name:>15}  {per[name]:12,.0f}")
    if len(per) == 2:
        print(f"after / before: {per['after'] / per['before']:.2f}")


def per_unit(runs: list[dict[str, Any]], phase: str) -> str:
    values = sorted(
        1e6 * (sum(r[p] for p in PHASES) if phase == "total" else r[phase]) / r["units"]
        for r in runs
    )
    return f"{statistics.median(values):7.1f} ({values[0]:.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256, help="units per lease")
    parser.add_argument("--repeat", type=int, default=3, help="runs per checkout")
    parser.add_argument("--source", type=Path, help="also run this checkout (before)")
    parser.add_argument(
        "--http", action="store_true", help="a real `park serve`, over HTTP: its process's CPU"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="in-process, instructions per unit under valgrind (deterministic; ~1 min a run)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.http:
            print(json.dumps(measure_http(args.units, args.batch)))
        else:
            print(json.dumps(asyncio.run(measure(args.units, args.batch))))
        return 0
    sources: dict[str, Path | None] = {"this checkout": None}
    if args.source is not None:
        sources = {"before": args.source.resolve(), "after": None}
    if args.instructions:
        print_instructions(sources, args.units, args.batch)
        return 0
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    load = os.getloadavg()[0]
    for _ in range(args.repeat):
        for name, source in sources.items():
            runs[name].append(run_once(source, args.units, args.batch, args.http))
    what = "`park serve` process (HTTP)" if args.http else "ParkService (in-process)"
    print(
        f"{what} CPU µs per no-op unit: {args.units:,} units, leases of {args.batch}, "
        f"median of {args.repeat} (best); load {load:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    head = ("code", *PHASES, "total", "events", "wall s")
    print("  ".join(f"{h:>15}" for h in head))
    for name, done in runs.items():
        cells = [
            name,
            *(per_unit(done, p) for p in (*PHASES, "total")),
            str(done[0]["events"]),
            f"{statistics.median(r['wall'] for r in done):.2f}",
        ]
        print("  ".join(f"{c:>15}" for c in cells))
    if args.source is not None:
        before, after = (
            statistics.median(sum(r[p] for p in PHASES) for r in runs[n])
            for n in ("before", "after")
        )
        print(f"after / before (total): {after / before:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
