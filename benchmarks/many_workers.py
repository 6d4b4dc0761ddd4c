"""How many workers one `park serve` can feed: 100, 300 and 1,000 simulated worker agents.

Each simulated agent is an asyncio task in this one process speaking the real worker
protocol over loopback HTTP, like `park worker` (park/worker/agent.py) with one CPU: it
registers (`POST /v1/workers`), then loops: long-poll `POST /v1/workers/{id}/lease` for a
batch (`max_units`, `max_seconds`, `wait` as the agent sends them), "runs" the batch by
sleeping `--unit-seconds` per unit, and reports it (`POST /v1/workers/{id}/reports`). A
heartbeat task per agent extends the leases of its running units every `--heartbeat`
seconds (the real agent: a third of the lease). Every agent leaves (`DELETE`) at the end.

The server is a real `park serve --workers 0` subprocess on a fresh data directory, fed
by map jobs of no-op units from several users, enough for the whole window. For each pool
size the clock runs for `--seconds` after every agent has registered and leased once;
printed per pool size:

- grants/s: units granted by the server in the window (from the leases' answers),
- lease latency p50/p99: the wall time of lease calls that returned units (a lease that
  waited for work is not counted: that wait is the long poll, not the server's cost),
- heartbeats/s and the heartbeat call latency p99,
- server CPU (user+system seconds per wall second, from /proc) and RSS at the end,
- us/grant: server CPU microseconds per unit granted (each is also reported and folded):
  with the server's one event loop saturated, 1e6 / us/grant is the most it can grant.

    python benchmarks/many_workers.py                      # 100, 300, 1000 agents, 15 s each
    python benchmarks/many_workers.py --workers 1000 --seconds 30
    python benchmarks/many_workers.py --unit-seconds 1 --heartbeat 0.5   # heartbeat-heavy

The agents run in this process on the same 2 cores as the server, so at high rates the
load generator competes with what it measures; its own CPU use is printed beside the
server's so that the bound can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import free_port, stop_process, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")
UNITS_PER_JOB = 100_000  # the server's cap on one plan
USERS = 5


@dataclass
class Tally:
    grants: int = 0
    reports: int = 0
    lease_calls: int = 0
    heartbeats: int = 0
    lease_latency: list[float] = field(default_factory=list)
    heartbeat_latency: list[float] = field(default_factory=list)
    errors: int = 0
    counting: bool = False


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def agent(
    url: str,
    index: int,
    args: argparse.Namespace,
    tally: Tally,
    ready: asyncio.Event,
    stop: asyncio.Event,
    registered: list[int],
) -> None:
    # A client of its own, like a real agent: one pool shared by a thousand agents costs
    # the load generator time quadratic in the connections (httpcore assigns every
    # request by scanning every connection).
    async with httpx.AsyncClient(base_url=url, timeout=120.0) as http:
        answer = await http.post("/v1/workers", json={"name": f"sim-{index}", "cpus": 1})
        answer.raise_for_status()
        worker_id = answer.json()["id"]
        running: set[str] = set()
        lease_body = {"max_units": args.batch, "max_seconds": 0.5, "wait": 1.0}

        async def heartbeat() -> None:
            while not stop.is_set():
                await asyncio.sleep(args.heartbeat)
                if running:
                    started = time.perf_counter()
                    response = await http.post(
                        f"/v1/workers/{worker_id}/heartbeat", json={"unit_ids": sorted(running)}
                    )
                    if tally.counting:
                        tally.heartbeats += 1
                        tally.heartbeat_latency.append(time.perf_counter() - started)
                    if response.status_code >= 400:
                        tally.errors += 1

        beat = asyncio.create_task(heartbeat())
        registered[0] += 1
        try:
            await ready.wait()
            while not stop.is_set():
                started = time.perf_counter()
                response = await http.post(f"/v1/workers/{worker_id}/lease", json=lease_body)
                elapsed = time.perf_counter() - started
                if response.status_code >= 400:
                    tally.errors += 1
                    await asyncio.sleep(0.1)
                    continue
                units = response.json()["units"]
                if not units:
                    continue
                if tally.counting:
                    tally.lease_calls += 1
                    tally.grants += len(units)
                    tally.lease_latency.append(elapsed)
                ids = [u["id"] for u in units]
                running.update(ids)
                await asyncio.sleep(args.unit_seconds * len(units))
                running.difference_update(ids)
                reports = [
                    {"unit_id": i, "ok": True, "result": [0], "cpu_seconds": 0.0,
                     "wall_seconds": max(args.unit_seconds, 0.0005)}
                    for i in ids
                ]  # fmt: skip
                response = await http.post(
                    f"/v1/workers/{worker_id}/reports", json={"reports": reports}
                )
                if response.status_code >= 400:
                    tally.errors += 1
                elif tally.counting:
                    tally.reports += len(ids)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(f"/v1/workers/{worker_id}")


def submit_work(url: str, units: int) -> None:
    with httpx.Client(base_url=url, timeout=120.0) as http:
        for n in range(0, units, UNITS_PER_JOB):
            size = min(UNITS_PER_JOB, units - n)
            spec = {"function": "park.builtins:sleep", "inputs": [0] * size, "chunk": 1}
            body = {
                "kind": "map",
                "spec": spec,
                "tags": {"user": f"user{n // UNITS_PER_JOB % USERS}"},
            }
            http.post("/v1/jobs", json=body).raise_for_status()


async def drive(
    url: str, workers: int, args: argparse.Namespace, server_pid: int
) -> dict[str, float]:
    tally = Tally()
    ready, stop = asyncio.Event(), asyncio.Event()
    registered = [0]
    tasks = [
        asyncio.create_task(agent(url, i, args, tally, ready, stop, registered))
        for i in range(workers)
    ]
    deadline = time.monotonic() + 120
    while registered[0] < workers:
        if time.monotonic() > deadline or any(t.done() for t in tasks):
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()  # type: ignore[misc]
            raise TimeoutError(f"only {registered[0]}/{workers} agents registered")
        await asyncio.sleep(0.05)
    ready.set()
    await asyncio.sleep(args.warmup)
    cpu0, own0, t0 = (
        process_cpu_seconds(server_pid),
        resource.getrusage(resource.RUSAGE_SELF),
        time.perf_counter(),
    )
    tally.counting = True
    await asyncio.sleep(args.seconds)
    tally.counting = False
    wall = time.perf_counter() - t0
    cpu1, own1 = process_cpu_seconds(server_pid), resource.getrusage(resource.RUSAGE_SELF)
    rss = process_rss_mib(server_pid)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
    own = (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)
    return {
        "workers": workers,
        "grants_per_s": tally.grants / wall,
        "reports_per_s": tally.reports / wall,
        "leases_per_s": tally.lease_calls / wall,
        "lease_p50_ms": percentile(tally.lease_latency, 0.5) * 1000,
        "lease_p99_ms": percentile(tally.lease_latency, 0.99) * 1000,
        "heartbeats_per_s": tally.heartbeats / wall,
        "heartbeat_p99_ms": percentile(tally.heartbeat_latency, 0.99) * 1000,
        "server_cpu": (cpu1 - cpu0) / wall,
        # What bounds the rate: the server's CPU per unit granted (and later reported).
        "server_us_per_grant": 1e6 * (cpu1 - cpu0) / max(1, tally.grants),
        "agents_cpu": own / wall,
        "server_rss_mib": rss,
        "errors": tally.errors,
    }


def run_pool(workers: int, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="park-many-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (Path(tmp) / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "park", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "0", "--data-dir", str(Path(tmp) / "data")],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            with httpx.Client(base_url=url, timeout=10.0) as http:
                wait_until(lambda: http.get("/healthz").status_code == 200, 60, "park serve up")
            # A full batch for every agent, and more: with less, the first round of leases
            # empties the queue and the window measures agents waiting for work.
            submit_work(url, workers * args.batch + args.units)
            return asyncio.run(drive(url, workers, args, server.pid))
        finally:
            stop_process(server)
            log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per size")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    parser.add_argument("--unit-seconds", type=float, default=0.0, help="simulated unit run time")
    parser.add_argument("--batch", type=int, default=256, help="max_units per lease")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds between beats")
    parser.add_argument(
        "--units", type=int, default=200_000, help="units queued beyond a batch per agent"
    )
    args = parser.parse_args(argv)
    print(
        f"park serve, agents x batch + {args.units} queued no-op units, simulated agents, "
        f"unit {args.unit_seconds}s, batch <= {args.batch}, heartbeat every {args.heartbeat}s, "
        f"{args.seconds:.0f}s window, {os.cpu_count()} cores\n",
        flush=True,
    )
    rows = []
    for workers in args.workers:
        row = run_pool(workers, args)
        rows.append(row)
        print(f"{workers} agents: {row['grants_per_s']:.0f} grants/s", flush=True)
    header = (
        f"{'agents':>6} {'grants/s':>9} {'leases/s':>9} {'lease p50 ms':>12} {'p99 ms':>8}"
        f" {'beats/s':>8} {'beat p99 ms':>11} {'server CPU':>10} {'agents CPU':>10}"
        f" {'us/grant':>8} {'RSS MiB':>8} {'errors':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['workers']:>6.0f} {r['grants_per_s']:>9.0f} {r['leases_per_s']:>9.0f}"
            f" {r['lease_p50_ms']:>12.1f} {r['lease_p99_ms']:>8.1f} {r['heartbeats_per_s']:>8.1f}"
            f" {r['heartbeat_p99_ms']:>11.1f} {r['server_cpu']:>10.2f} {r['agents_cpu']:>10.2f}"
            f" {r['server_us_per_grant']:>8.0f} {r['server_rss_mib']:>8.0f} {r['errors']:>6.0f}"
        )
    last = rows[-1]
    goal = last["grants_per_s"] >= 10_000 and last["lease_p99_ms"] <= 50
    print(
        f"\nat {last['workers']:.0f} agents: {'meets' if goal else 'misses'} the goal of "
        f">= 10,000 grants/s with lease p99 <= 50 ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
