"""A scan's memory on the server: the resident set of a real `park serve` running a
20,000-point and a 2,000,000-point scan of a cheap model (a straight line, 5 points) on
one real `park worker`, sampled from /proc while it runs.

The server should hold the units in flight, the latest completed ones and a bounded
surface, not the grid (issue 10), so the two peaks should be close. `--source DIR` runs
park from another checkout (its `park` package first on PYTHONPATH; the processes start in
a temporary directory, since `python -m` puts the working directory before PYTHONPATH),
to compare with the code before a change.

    python benchmarks/scan_memory.py                       # ~2-3 min on 2 loaded cores
    python benchmarks/scan_memory.py --source /some/old/checkout
    python benchmarks/scan_memory.py --points 20000        # one size only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, stop_process, wait_until

X = [0.0, 1.0, 2.0, 3.0, 4.0]


def spec_of(points: int, per_unit: int) -> dict[str, Any]:
    b = 1000 if points >= 1_000_000 else 100
    return {
        "model": "a*x + b",
        "data": {"x": X, "y": [1.0 + 2.0 * x for x in X], "dy": [0.1] * len(X)},
        "parameters": {
            "a": {"value": 1.0, "min": 0.0, "max": 4.0},
            "b": {"value": 0.0, "min": -2.0, "max": 3.0},
        },
        "method": "scan",
        "options": {"points": {"a": points // b, "b": b}, "per_unit": per_unit},
    }


def rss_kib(pid: int) -> tuple[int, int]:
    """(resident now, peak resident) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def run(points: int, per_unit: int, env: dict[str, str], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="park-scan-memory-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        out = open(Path(tmp) / "out.log", "ab")  # noqa: SIM115 (closed below)
        serve = subprocess.Popen(
            [sys.executable, "-m", "park", "serve", "--port", str(port),
             "--data-dir", str(Path(tmp) / "data"), "--workers", "0"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp,
        )  # fmt: skip
        worker = None
        try:
            http = httpx.Client(base_url=url, timeout=60.0)
            wait_until(lambda: http.get("/healthz").status_code == 200, 60, "park serve")
            idle, _ = rss_kib(serve.pid)
            worker = subprocess.Popen(
                [sys.executable, "-m", "park", "worker", "--server", url, "--cpus", "2"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp,
            )  # fmt: skip
            answer = http.post("/v1/jobs", json={"kind": "fit", "spec": spec_of(points, per_unit)})
            answer.raise_for_status()
            job_id = answer.json()["id"]
            started = time.monotonic()
            peak_running = 0
            while True:
                job = http.get(f"/v1/jobs/{job_id}").json()
                peak_running = max(peak_running, rss_kib(serve.pid)[0])
                if job["status"] in ("complete", "failed", "cancelled"):
                    break
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"the {points:,}-point scan did not end in {timeout:.0f} s")
                time.sleep(0.5)
            seconds = time.monotonic() - started
            result = http.get(f"/v1/jobs/{job_id}/result").content
            now, peak = rss_kib(serve.pid)
            return {
                "points": points,
                "units": job["progress"]["total"],
                "status": job["status"],
                "seconds": seconds,
                "idle_mib": idle / 1024,
                "running_mib": peak_running / 1024,
                "peak_mib": peak / 1024,
                "end_mib": now / 1024,
                "result_kib": len(result) / 1024,
                "surface": math.prod(
                    len(a) for a in json.loads(result)["result"]["surface"]["axes"].values()
                ),
            }
        finally:
            if worker is not None:
                stop_process(worker)
            stop_process(serve)
            out.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="*", default=[20_000, 2_000_000])
    parser.add_argument("--per-unit", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--source", type=Path, help="run park from this checkout")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.source is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(args.source.resolve()), *filter(None, [env.get("PYTHONPATH")])]
        )
    rows = [run(p, args.per_unit, env, args.timeout) for p in args.points]
    print(f"server RSS running a scan (per_unit {args.per_unit}; load {os.getloadavg()[0]:.1f})")
    head = ("points", "units", "seconds", "idle MiB", "peak running", "peak MiB", "after MiB",
            "result KiB", "surface")  # fmt: skip
    print("  ".join(f"{h:>12}" for h in head))
    for r in rows:
        cells = [f"{r['points']:,}", str(r["units"]), f"{r['seconds']:.0f}",
                 f"{r['idle_mib']:.0f}", f"{r['running_mib']:.0f}", f"{r['peak_mib']:.0f}",
                 f"{r['end_mib']:.0f}", f"{r['result_kib']:.0f}", f"{r['surface']:,}"]  # fmt: skip
        print("  ".join(f"{c:>12}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
