"""End-to-end throughput of no-op units: park over HTTP vs. dask.distributed and Ray, in one run.

park: `park serve --workers 0` and N `park worker --cpus 1` processes, all subprocesses on
127.0.0.1; one `map` job of `park.builtins:sleep` over `[0] * units` with `chunk: 1`, so
every input is its own unit (leased, run in a child process, reported, folded). The clock
runs from the POST of the job to the end of the GET that shows it `complete` (each GET
asks `?wait=30`: the server answers as the job ends, as `job.wait()` does).

dask: `LocalCluster(n_workers=N, threads_per_worker=1, processes=True)` bound to
127.0.0.1, no dashboard; `client.map(noop, range(units))` then `client.gather`. The
clock runs from the first `map` call to the end of `gather`.

ray: `ray.init(num_cpus=N)` (a local Ray node on 127.0.0.1, no dashboard);
`ray.get([noop.remote(i) for i in range(units)])`. The clock runs from the first `.remote`
call to the end of `ray.get`. Ray is in the `bench` extra (`pip install -e '.[bench]'`).

Round trip: one single-unit job at a time, submit -> result, repeated `--round-trips`
times on the same warm cluster (park: POST, then GET `?wait=` until complete, then GET
the result; dask: `client.submit(...).result()`; ray: `ray.get(f.remote())`); the median
and p90 are shown.

Start-up (server, workers, cluster) is outside all clocks, and each system first runs a
small warm-up job (4 units per worker), so that park's workers have started their child
processes and dask's workers are connected. Every wait is bounded.

    python benchmarks/throughput.py                 # 20,000 units each
    python benchmarks/throughput.py --units 2000    # a quick run
    python benchmarks/throughput.py --skip-ray      # without the bench extra
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from harness import free_port, stop_process, wait_until

WAIT_SECONDS = 30.0  # each GET of the job waits this long for its end (a long poll)


@dataclass(frozen=True, slots=True)
class Result:
    system: str
    units: int
    seconds: float
    round_trips: tuple[float, ...] = ()

    @property
    def round_trip_median(self) -> float:
        return statistics.median(self.round_trips) if self.round_trips else float("nan")

    @property
    def round_trip_p90(self) -> float:
        if len(self.round_trips) < 2:
            return self.round_trip_median
        return statistics.quantiles(self.round_trips, n=10)[-1]

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds > 0 else float("inf")


@contextlib.contextmanager
def park_cluster(workers: int, data_dir: Path, log_dir: Path) -> Iterator[str]:
    """A `park serve` with `workers` single-cpu `park worker`s; yields the server URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        server_log = (log_dir / "server.log").open("wb")
        logs.append(server_log)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "park", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", "0", "--data-dir", str(data_dir)],
                stdout=server_log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        with httpx.Client(base_url=url, timeout=10.0) as http:
            wait_until(lambda: http.get("/healthz").status_code == 200, 30, "park serve up")
            for i in range(workers):
                worker_log = (log_dir / f"worker-{i}.log").open("wb")
                logs.append(worker_log)
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "park", "worker", "--server", url,
                         "--cpus", "1", "--name", f"bench-{i}"],
                        stdout=worker_log, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
            wait_until(
                lambda: len(http.get("/v1/workers").json()["workers"]) >= workers,
                30,
                f"{workers} park workers registered",
            )
        yield url
    finally:
        for proc in reversed(procs):  # workers first, so they leave while the server is up
            stop_process(proc)
        for f in logs:
            f.close()


def run_park_job(http: httpx.Client, units: int, timeout: float) -> float:
    """Submit one map job of `units` no-op units; the seconds until its result is read."""
    spec = {"function": "park.builtins:sleep", "inputs": [0] * units, "chunk": 1}
    body = {"kind": "map", "spec": spec, "tags": {"user": "bench"}}
    started = time.perf_counter()
    response = http.post("/v1/jobs", json=body)
    response.raise_for_status()
    job_id = response.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        wait = max(0.0, min(WAIT_SECONDS, left))
        job = http.get(f"/v1/jobs/{job_id}", params={"wait": wait}).json()
        if job["status"] not in ("pending", "running"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"park: job {job_id} not complete within {timeout:.0f}s "
                f"({job['progress']['done']}/{units} units done)"
            )
    if job["status"] != "complete":
        raise RuntimeError(f"park: job {job_id} ended {job['status']}: {job.get('error')}")
    result = http.get(f"/v1/jobs/{job_id}/result").json()["result"]
    elapsed = time.perf_counter() - started
    if len(result) != units:
        raise RuntimeError(f"park: {len(result)} results for {units} units")
    return elapsed


def bench_park(
    units: int, workers: int, timeout: float, keep: Path | None, repeat: int, round_trips: int
) -> Result:
    with tempfile.TemporaryDirectory(prefix="park-bench-") as tmp:
        base = keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        with (
            park_cluster(workers, base / "data", base) as url,
            httpx.Client(base_url=url, timeout=60.0) as http,
        ):
            # Warm up as for dask: each worker starts its child process on its first unit.
            warm = run_park_job(http, workers * 4, 60)
            print(f"park: warm-up job of {workers * 4} units {warm:.2f}s", flush=True)
            runs = []
            for _ in range(repeat):
                runs.append(run_park_job(http, units, timeout))
                print(f"park: {units} units {runs[-1]:.2f}s", flush=True)
            trips = tuple(run_park_job(http, 1, 30) for _ in range(round_trips))
    return Result("park", units, min(runs), trips)


def noop(x: int) -> int:
    time.sleep(0)
    return x


def bench_dask(units: int, workers: int, timeout: float, repeat: int, round_trips: int) -> Result:
    from distributed import Client, LocalCluster, wait

    # Loopback only: the scheduler, the nannies, the workers and the scheduler's small HTTP
    # endpoint (health, metrics; there is no dashboard) all listen on 127.0.0.1.
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
            silence_logs=logging.CRITICAL,  # teardown heartbeats race the closing scheduler
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers, timeout=60)
        wait(client.map(noop, range(workers * 4), pure=False), timeout=60)  # warm the workers
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            futures = client.map(noop, range(units), pure=False)
            results = client.gather(futures, errors="raise", direct=False)
            runs.append(time.perf_counter() - started)
            del futures
            if runs[-1] > timeout:
                raise TimeoutError(f"dask: {units} tasks took {runs[-1]:.0f}s (> {timeout:.0f}s)")
            if len(results) != units:
                raise RuntimeError(f"dask: {len(results)} results for {units} tasks")
            print(f"dask: {units} tasks {runs[-1]:.2f}s", flush=True)
        trips = []
        for i in range(round_trips):
            started = time.perf_counter()
            client.submit(noop, i, pure=False).result(timeout=30)
            trips.append(time.perf_counter() - started)
    return Result("dask", units, min(runs), tuple(trips))


def bench_ray(units: int, workers: int, timeout: float, repeat: int, round_trips: int) -> Result:
    import ray

    # A local node on loopback, no dashboard, no usage reporting (no network here).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=workers,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    try:
        remote_noop = ray.remote(num_cpus=1)(noop)
        ray.get([remote_noop.remote(i) for i in range(workers * 4)], timeout=120)  # warm
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            results = ray.get([remote_noop.remote(i) for i in range(units)], timeout=timeout)
            runs.append(time.perf_counter() - started)
            if len(results) != units:
                raise RuntimeError(f"ray: {len(results)} results for {units} tasks")
            print(f"ray: {units} tasks {runs[-1]:.2f}s", flush=True)
        trips = []
        for i in range(round_trips):
            started = time.perf_counter()
            ray.get(remote_noop.remote(i), timeout=30)
            trips.append(time.perf_counter() - started)
    finally:
        ray.shutdown()
    return Result("ray", units, min(runs), tuple(trips))


def print_table(results: list[Result]) -> None:
    park = next((r for r in results if r.system == "park"), None)
    header = (
        f"{'system':<8} {'units':>8} {'seconds':>9} {'units/s':>10} {'park/it':>9}"
        f" {'1-unit p50 ms':>14} {'p90 ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = f"{park.rate / r.rate:.2f}x" if park is not None and r is not park else ""
        print(
            f"{r.system:<8} {r.units:>8} {r.seconds:>9.2f} {r.rate:>10.0f} {ratio:>9}"
            f" {r.round_trip_median * 1000:>14.1f} {r.round_trip_p90 * 1000:>8.1f}"
        )
    goals = {"dask": 4.0, "ray": 5.0}
    for r in results:
        if park is not None and r.system in goals:
            ratio = park.rate / r.rate
            verdict = "meets" if ratio >= goals[r.system] else "misses"
            print(f"park {verdict} the goal of >= {goals[r.system]:.0f}x {r.system} ({ratio:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=20_000, help="no-op units (default 20000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per system, seconds")
    parser.add_argument("--repeat", type=int, default=1, help="runs per system; best is shown")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-park", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument(
        "--round-trips", type=int, default=20, help="single-unit jobs per system (default 20)"
    )
    parser.add_argument("--keep", type=Path, help="keep park's data and logs in this directory")
    args = parser.parse_args(argv)

    print(
        f"{args.units} no-op units, {args.workers} single-thread worker processes, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, best of {args.repeat}\n",
        flush=True,
    )
    results: list[Result] = []
    if not args.skip_park:
        results.append(
            bench_park(
                args.units, args.workers, args.timeout, args.keep, args.repeat, args.round_trips
            )
        )
    if not args.skip_dask:
        results.append(
            bench_dask(args.units, args.workers, args.timeout, args.repeat, args.round_trips)
        )
    if not args.skip_ray:
        results.append(
            bench_ray(args.units, args.workers, args.timeout, args.repeat, args.round_trips)
        )
    print()
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
