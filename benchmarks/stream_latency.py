"""Fan-out of the live job table: N concurrent SSE subscribers to `GET /v1/jobs/stream`.

For each run it starts `park serve --workers 0` on loopback, connects the subscribers
(each reads the snapshot first), then submits jobs one at a time. The latency of a change
is its arrival at a subscriber minus the job's `submitted_at` (the writer's timestamp on
the `job.submitted` event, taken just before the append; same machine, same clock).
Server CPU is the server process's CPU time over the submission window, as a share of one
core. One subscriber is the floor; 1,000 the load; both run in one go, side by side.

The subscribers are asyncio tasks in this process (httpx); on a 2-core machine they
compete with the server for CPU, so the figures are an upper bound on park's own latency.

    python benchmarks/stream_latency.py                      # 1 and 1,000 subscribers
    python benchmarks/stream_latency.py --subscribers 1 200 --jobs 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import ParkServer, free_port


async def subscriber(
    url: str, http: httpx.AsyncClient, ready: asyncio.Event, arrivals: list[float], jobs: int
) -> None:
    """Read the stream; record the latency of each job's first appearance."""
    seen: set[str] = set()
    async with http.stream("GET", f"{url}/v1/jobs/stream") as response:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                if event == "snapshot":
                    ready.set()
                    continue
                data = json.loads(line[5:])
                job = data["job"]
                if job["id"] not in seen:
                    seen.add(job["id"])
                    arrivals.append(time.time() - job["submitted_at"])
                    if len(seen) == jobs:
                        return


async def run(url: str, subscribers: int, jobs: int, pid: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=subscribers + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(60.0, connect=30.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        readies = [asyncio.Event() for _ in range(subscribers)]
        arrivals: list[float] = []
        tasks = [
            asyncio.create_task(subscriber(url, http, ready, arrivals, jobs)) for ready in readies
        ]
        connect_started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        connected = time.monotonic() - connect_started
        process = psutil.Process(pid)
        cpu_before, wall_before = sum(process.cpu_times()[:2]), time.monotonic()
        spec = {"function": "park.builtins:sleep", "inputs": [0]}
        for _ in range(jobs):
            response = await http.post(f"{url}/v1/jobs", json={"kind": "map", "spec": spec})
            response.raise_for_status()
            await asyncio.sleep(0.1)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        cpu = (sum(process.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before)
    arrivals.sort()
    return {
        "samples": len(arrivals),
        "p50": statistics.median(arrivals) * 1000,
        "p99": arrivals[int(0.99 * (len(arrivals) - 1))] * 1000,
        "max": arrivals[-1] * 1000,
        "cpu": cpu * 100,
        "connect": connected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    rows = []
    for count in args.subscribers:
        with tempfile.TemporaryDirectory() as tmp:
            server = ParkServer(data_dir=Path(tmp) / "data", port=free_port()).start()
            try:
                assert server.proc is not None
                result = asyncio.run(run(server.url, count, args.jobs, server.proc.pid))
                rows.append((count, result))
            finally:
                server.stop()
    header = f"{'subscribers':>11} {'samples':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(f"{header} {'server CPU':>10} {'connect s':>9}")
    for count, r in rows:
        print(
            f"{count:>11} {r['samples']:>8.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f}"
            f" {r['cpu']:>9.0f}% {r['connect']:>9.1f}"
        )


if __name__ == "__main__":
    main()
