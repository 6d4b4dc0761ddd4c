"""Pilots on a real Slurm: park's private pilot and adaptive pool beside dask-jobqueue's
SLURMCluster, on the same single-node Slurm (`.ci/slurm-up`), in one run.

1. Submit to first unit. park: `park serve --workers 0`; the clock runs from the POST of
   a one-unit job with `resources: {"pilot": {...}}` (what `park submit --pilot` sends)
   to the moment its unit starts running on the pilot's worker (the unit returns its own
   start time). In between: the server's `sbatch`, Slurm starting the job, `srun` of
   `park worker`, its registration, the lease, a child process. dask-jobqueue:
   `SLURMCluster(cores=1, processes=1)`; the clock runs from `cluster.scale(1)` plus
   `client.submit` to the task's own start time. Each repeated `--repeat` times, fresh.

2. Following a burst. A burst of `--burst` units of `--unit-seconds` each (sleep), with
   an adaptive pool of at most `--max-nodes` one-cpu pilots that release after
   `--idle` s without work. park: `park serve --pilots slurm:max-nodes=N,idle=I,
   target=T,max-pending=2`; dask: `cluster.adapt(minimum=0, maximum=N,
   target_duration=T, wait_count=...)` so an idle worker goes after about I s. Sampled
   every 0.25 s: pool workers connected, units done. Reported: first worker joined, peak
   workers and when, burst done, and when the pool was empty again (all times from the
   burst's submission).

Needs root-started Slurm (`.ci/slurm-up`) and the bench extra (`pip install -e
'.[bench]'`, for dask-jobqueue). All on 127.0.0.1; every wait is bounded.

    python benchmarks/pilots.py                       # ~3 min
    python benchmarks/pilots.py --repeat 1 --burst 20 # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, stop_process, wait_until

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def started(_: object = None) -> float:
    """A unit (and a dask task) that says when it started running."""
    return time.time()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def squeue_count(name_prefix: str) -> int:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%j %T"], capture_output=True, text=True, timeout=10
    ).stdout
    return sum(
        1
        for line in out.splitlines()
        if line.startswith(name_prefix) and line.split()[-1] in ("PENDING", "RUNNING")
    )


def wait_queue_empty(prefix: str, timeout: float = 120.0) -> None:
    wait_until(lambda: squeue_count(prefix) == 0, timeout, f"{prefix} jobs gone", poll=0.2)


# -- park ---------------------------------------------------------------------------------


class ParkServe:
    def __init__(self, workdir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PARK_ALLOWED_FUNCTIONS": "pilots:*",
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        }
        cmd = [sys.executable, "-m", "park", "serve", "--port", str(self.port), "--workers", "0",
               "--data-dir", str(workdir / "data"), *extra]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.http = httpx.Client(base_url=self.url, timeout=30.0)
        wait_until(lambda: self.http.get("/healthz").status_code == 200, 60, "park serve")

    def submit(self, function: str, inputs: list[Any], resources: Any = None) -> str:
        body: dict[str, Any] = {"kind": "map", "spec": {"function": function, "inputs": inputs}}
        if resources is not None:
            body["resources"] = resources
        answer = self.http.post("/v1/jobs", json=body)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return self.http.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.http.close()
        stop_process(self.proc)  # type: ignore[arg-type]


def park_first_unit(workdir: Path) -> float:
    server = ParkServe(workdir)
    try:
        pilot = {"pilot": {"nodes": 1, "cpus_per_node": 1, "walltime": "00:05:00"}}
        t0 = time.time()
        job_id = server.submit("pilots:started", [0], pilot)
        wait_until(lambda: server.job(job_id)["status"] == "complete", 120, "park first unit")
        result = server.http.get(f"/v1/jobs/{job_id}/result").json()["result"]
        # (the server cancels the pilot once its job is done; let it, before stopping)
        wait_until(lambda: all(p["state"] != "running" for p in server.job(job_id)["pilots"]),
                   60, "park pilot cancelled")  # fmt: skip
        return float(result[0]) - t0
    finally:
        server.stop()
        wait_queue_empty("park-pilot")


@dataclass
class Trace:
    """Samples of (seconds since the burst, pool workers, units done, batch jobs queued or
    running)."""

    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    total: int = 0

    def first(self, test: Callable[[int, int, int], bool]) -> float | None:
        return next((t for t, w, d, j in self.samples if test(w, d, j)), None)

    def summary(self) -> dict[str, float | None]:
        peak = max((w for _, w, _, _ in self.samples), default=0)
        done_at = self.first(lambda w, d, j: d >= self.total)
        empty = None
        if done_at is not None:
            empty = next((t for t, _, _, j in self.samples if t > done_at and j == 0), None)
        return {
            "first worker s": self.first(lambda w, d, j: w > 0),
            "peak workers": float(peak),
            "peak at s": self.first(lambda w, d, j: w >= peak) if peak else None,
            "peak batch jobs": float(max((j for *_, j in self.samples), default=0)),
            "burst done s": done_at,
            "queue empty s": empty,
        }


def park_burst(workdir: Path, args: argparse.Namespace) -> Trace:
    pool = (f"slurm:max-nodes={args.max_nodes},max-pending=2,idle={args.idle:g},"
            f"target={args.target:g},unit-seconds={args.unit_seconds:g},"
            "walltime=00:10:00")  # fmt: skip
    server = ParkServe(workdir, "--pilots", pool)
    trace = Trace(total=args.burst)
    try:
        t0 = time.time()
        job_id = server.submit("pilots:nap", [args.unit_seconds] * args.burst)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            workers = server.http.get("/v1/workers").json()["workers"]
            done = server.job(job_id)["progress"]["done"]
            now = time.time() - t0
            jobs = squeue_count("park-pilot")
            trace.samples.append((now, sum(1 for w in workers if w["pilot"]), done, jobs))
            if done >= args.burst and jobs == 0:
                break
            time.sleep(0.25)
        return trace
    finally:
        server.stop()
        wait_queue_empty("park-pilot")


def _here() -> Any:
    """This file as the module `pilots` (not `__main__`), so dask's workers, which have
    this directory on their path, can unpickle its functions."""
    import pilots

    return pilots


# -- dask-jobqueue ------------------------------------------------------------------------


def dask_cluster(workdir: Path) -> Any:
    from dask_jobqueue import SLURMCluster

    return SLURMCluster(
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:10:00",
        job_name="dask-worker",
        scheduler_options={"host": "127.0.0.1", "dashboard_address": None},
        worker_extra_args=["--host", "127.0.0.1"],
        local_directory=str(workdir),
        log_directory=str(workdir / "logs"),
        python=sys.executable,
        job_script_prologue=[f"export PYTHONPATH={HERE}:{ROOT}"],
    )


def dask_first_unit(workdir: Path) -> float:
    from dask.distributed import Client

    cluster = dask_cluster(workdir)
    try:
        with Client(cluster) as client:
            t0 = time.time()
            cluster.scale(1)
            future = client.submit(_here().started, 0, pure=False)
            return float(future.result(timeout=120)) - t0
    finally:
        cluster.close()
        wait_queue_empty("dask-worker")


def dask_burst(workdir: Path, args: argparse.Namespace) -> Trace:
    from dask.distributed import Client

    cluster = dask_cluster(workdir)
    trace = Trace(total=args.burst)
    try:
        # wait_count intervals of 1 s idle before a worker is retired: about `idle` s.
        cluster.adapt(minimum=0, maximum=args.max_nodes, interval="1s",
                      target_duration=f"{args.target:g}s",
                      wait_count=max(1, round(args.idle)))  # fmt: skip
        with Client(cluster) as client:
            t0 = time.time()
            futures = client.map(_here().nap, [args.unit_seconds] * args.burst, pure=False)
            results: list[float] = []
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                workers = len(client.scheduler_info()["workers"])
                done = len(results) + sum(1 for f in futures if f.done())
                if futures and all(f.done() for f in futures):
                    # Take the results and let go of the futures: a dask worker holding
                    # a result the client still refers to is never retired.
                    results.extend(client.gather(futures))
                    futures = []
                jobs = squeue_count("dask-worker")
                trace.samples.append((time.time() - t0, workers, done, jobs))
                if done >= args.burst and jobs == 0:
                    break
                time.sleep(0.25)
        return trace
    finally:
        cluster.close()
        wait_queue_empty("dask-worker")


# -- the run ------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="first-unit runs per system")
    parser.add_argument("--burst", type=int, default=40, help="units in the burst")
    parser.add_argument("--unit-seconds", type=float, default=1.0)
    parser.add_argument("--max-nodes", type=int, default=4)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before release")
    parser.add_argument("--target", type=float, default=5.0, help="seconds to finish the queue")
    parser.add_argument("--timeout", type=float, default=240.0, help="per burst, seconds")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-first", action="store_true", help="only the burst")
    args = parser.parse_args(argv)

    systems = ["park"] + ([] if args.skip_dask else ["dask-jobqueue"])
    first: dict[str, list[float]] = {s: [] for s in systems}
    bursts: dict[str, Trace] = {}
    with tempfile.TemporaryDirectory(prefix="park-pilots-bench-") as tmp:
        for i in range(0 if args.skip_first else args.repeat):
            for system in systems:
                workdir = Path(tmp) / f"{system}-first-{i}"
                workdir.mkdir()
                run = park_first_unit if system == "park" else dask_first_unit
                first[system].append(run(workdir))
                print(f"  {system} submit -> first unit: {first[system][-1]:.2f} s", flush=True)
        for system in systems:
            workdir = Path(tmp) / f"{system}-burst"
            workdir.mkdir()
            bursts[system] = (park_burst if system == "park" else dask_burst)(workdir, args)
            print(f"  {system} burst: {bursts[system].summary()}", flush=True)

    print(f"\nSubmit -> first unit running on a fresh pilot ({args.repeat} runs):\n")
    print("| system | best s | median s | worst s |\n|---|---:|---:|---:|")
    for system, times in first.items():
        if not times:
            continue
        print(f"| {system} | {min(times):.2f} | {statistics.median(times):.2f} | "
              f"{max(times):.2f} |")  # fmt: skip
    print(f"\nA burst of {args.burst} x {args.unit_seconds:g} s units, at most "
          f"{args.max_nodes} one-cpu pilots, idle {args.idle:g} s, target {args.target:g} s "
          "(seconds from the burst's submission; queue empty: its batch jobs gone from "
          "squeue):\n")  # fmt: skip
    keys = list(next(iter(bursts.values())).summary())
    print("| system | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for system, trace in bursts.items():
        row = trace.summary()
        print(f"| {system} | " + " | ".join(fmt(row[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
