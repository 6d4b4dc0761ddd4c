"""Chaos: 10,000 units of 20 jobs (5 users) on 4 workers, once calmly and once while a
random worker is killed (-9) every few seconds, the server is killed (-9) twice, and a
stream of hostile requests runs alongside. Bounded in time.

At the end of each run it checks what must hold whatever happened: every job complete
with every output, each unit counted once (the ledger's units), the ledger equal to the
settled charges (an independent fold of the raw log by examples/billing_consumer.py), and
`park replay --verify` reporting 0 differences. It prints units/s calm vs under chaos, the
re-grants, and the time from each server kill to the next completed unit.

    python benchmarks/chaos.py                    # 20 jobs x 500 units
    python benchmarks/chaos.py --units-per-job 50 # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import free_port, stop_process, wait_until
from examples.billing_consumer import Bill

PYTHON = sys.executable
USERS = [f"user{i}" for i in range(5)]
PRIORITIES = ["free", "low", "normal", "high"]
LEASE_SECONDS = 5.0
WORKER_TIMEOUT = 10.0


@dataclass
class Run:
    name: str
    seconds: float = 0.0
    units: int = 0
    grants: int = 0
    regrants: int = 0
    lost_leases: int = 0
    expired_workers: int = 0
    worker_kills: int = 0
    recoveries: list[float] = field(default_factory=list)
    hostile: Counter[str] = field(default_factory=Counter)
    replay: str = ""

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0


class Cluster:
    """A `park serve` and its workers, all ours, killed and restarted at will."""

    def __init__(self, root: Path, workers: int) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.count = workers
        self.started = 0

    def start_server(self) -> None:
        log = (self.root / "serve.log").open("ab")
        self.server = subprocess.Popen(
            [PYTHON, "-m", "park", "serve", "--port", str(self.port),
             "--data-dir", str(self.root / "data"), "--workers", "0",
             "--lease-seconds", str(LEASE_SECONDS), "--worker-timeout", str(WORKER_TIMEOUT),
             "--max-active-jobs", "1000", "--max-queued-units", "1000000"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(lambda: httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200,
                   120, "park serve")  # fmt: skip

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        self.server.wait(timeout=30)

    def start_worker(self) -> None:
        log = (self.root / f"worker-{self.started}.log").open("ab")
        self.started += 1
        self.workers.append(
            subprocess.Popen(
                [PYTHON, "-m", "park", "worker", "--server", self.url, "--cpus", "1",
                 "--name", f"w{self.started}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip

    def kill_random_worker(self, rng: random.Random) -> None:
        """kill -9 one worker's whole process group (agent and children); start another."""
        victim = self.workers.pop(rng.randrange(len(self.workers)))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        self.start_worker()

    def stop(self) -> None:
        for worker in self.workers:
            stop_process(worker)
        self.workers = []
        if self.server is not None:
            stop_process(self.server, timeout=60)


def submit_jobs(url: str, units_per_job: int) -> dict[str, list[float]]:
    jobs: dict[str, list[float]] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(20):
            inputs = [round(0.001 + 0.000001 * k, 6) for k in range(units_per_job)]
            body = {
                "kind": "map",
                "spec": {"function": "park.builtins:sleep", "inputs": inputs, "chunk": 1},
                "priority": PRIORITIES[i % len(PRIORITIES)],
                "tags": {"user": USERS[i % len(USERS)]},
            }
            answer = http.post("/v1/jobs", json=body)
            answer.raise_for_status()
            jobs[answer.json()["id"]] = inputs
    return jobs


def done_units(url: str) -> int:
    users = httpx.get(f"{url}/v1/ledger", timeout=10).json()["users"]
    return sum(int(u["units"]) for u in users.values())


def hostile_requests(url: str, stop: threading.Event, seen: Counter[str]) -> None:
    """A fuzzing stream: malformed, oversized, hostile and misdirected requests."""
    deep: Any = 0
    for _ in range(400):
        deep = [deep]
    bad_jobs: list[bytes] = [
        json.dumps({"kind": "map", "spec": {"function": "x:y", "inputs": deep}}).encode(),
        b'{"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": ["\\ud800"]}}',
        b'{"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": [NaN]}}',
        b'{"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": [1e999]}}',
        b'{"kind": "nope", "spec": {}}',
        b'{"kind": "map", "spec": {"function": "no colon", "inputs": [1]}}',
        b'{"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": [1]},'
        b' "max_attempts": 0}',
        b'{"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": [1]},'
        b' "max_unit_seconds": 1e300}',
        b'{"kind": "map", "spec": ',
        b"\xff\xfe\x00garbage",
    ]
    others: list[tuple[str, str, Any]] = [
        ("POST", "/v1/workers/nobody/lease", {"max_units": 5}),
        ("POST", "/v1/workers/nobody/heartbeat", {"unit_ids": ["a/1"]}),
        ("POST", "/v1/workers/nobody/reports", {"reports": [{"unit_id": "a/1", "result": 1}]}),
        ("POST", "/v1/workers", {"name": "x" * 500, "cpus": -1}),
        ("POST", "/v1/workers", {"name": "y", "allowed": ["z" * 300]}),
        ("GET", "/v1/events?after=-1&limit=100000000", None),
        ("GET", "/v1/jobs/..%2F..%2Fetc%2Fpasswd", None),
        ("POST", "/v1/jobs/nope/cancel", None),
        ("PATCH", "/v1/jobs/nope", {"priority": "godlike"}),
    ]
    rng = random.Random(7)
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            try:
                if rng.random() < 0.5:
                    what = "POST /v1/jobs"
                    response = http.post(
                        "/v1/jobs",
                        content=rng.choice(bad_jobs),
                        headers={"content-type": "application/json"},
                    )
                else:
                    method, path, body = rng.choice(others)
                    what = f"{method} {path}"
                    response = http.request(method, path, json=body)
                seen[f"{response.status_code // 100}xx"] += 1
                if response.status_code >= 500:
                    seen[f"5xx on {what}"] += 1
            except httpx.TransportError:
                seen["no answer (server down)"] += 1
                time.sleep(0.2)
            stop.wait(0.02)


def check(url: str, jobs: dict[str, list[float]], run: Run, timeout: float) -> None:
    """Every job complete with its outputs; each unit counted once; ledger = settlements."""
    total = sum(len(v) for v in jobs.values())
    with httpx.Client(base_url=url, timeout=60) as http:
        for job_id, inputs in jobs.items():
            job = wait_until(
                lambda j=job_id: (
                    (v := http.get(f"/v1/jobs/{j}").json())["status"] != "running"
                    and v["status"] != "pending"
                    and v
                ),
                timeout,
                f"job {job_id}",
            )
            assert job["status"] == "complete", job
            assert http.get(f"/v1/jobs/{job_id}/result").json()["result"] == inputs
        ledger = http.get("/v1/ledger").json()["users"]
        events: list[dict[str, Any]] = []
        after = 0
        while batch := http.get("/v1/events", params={"after": after, "limit": 10_000}).json()[
            "events"
        ]:
            events.extend(batch)
            after = batch[-1]["offset"]
    assert sum(u["units"] for u in ledger.values()) == total, "a unit counted twice or never"
    assert all(abs(u["reserved"]) < 1e-6 for u in ledger.values())
    bill = Bill()
    for record in events:
        bill.add(record["offset"], record["event"])
    settled = bill.totals()
    for user, row in ledger.items():
        assert abs(settled[user].credits - row["charged"]) < 1e-6, (user, settled[user], row)
        assert settled[user].units == row["units"]
    grants = Counter(r["event"]["unit_id"] for r in events if r["event"]["type"] == "unit.granted")
    run.units = total
    run.grants = sum(grants.values())
    run.regrants = run.grants - len(grants)
    run.lost_leases = sum(1 for r in events if r["event"]["type"] == "unit.lease_expired")
    run.expired_workers = sum(1 for r in events if r["event"]["type"] == "worker.expired")


def replay_verify(data_dir: Path) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "park", "replay", "--verify", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    line = next((ln for ln in done.stdout.splitlines() if "differ" in ln), done.stdout.strip())
    assert " 0 differ" in line, done.stdout + done.stderr
    return line.strip()


def run_once(name: str, units_per_job: int, chaos: bool, budget: float, seed: int) -> Run:
    run = Run(name)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="park-chaos-") as tmp:
        cluster = Cluster(Path(tmp), workers=4)
        stop = threading.Event()
        hostile: threading.Thread | None = None
        try:
            cluster.start_server()
            for _ in range(cluster.count):
                cluster.start_worker()
            wait_until(
                lambda: len(httpx.get(f"{cluster.url}/v1/workers").json()["workers"]) == 4,
                120,
                "four workers",
            )
            jobs = submit_jobs(cluster.url, units_per_job)
            total = sum(len(v) for v in jobs.values())
            started = time.monotonic()
            if chaos:
                hostile = threading.Thread(
                    target=hostile_requests, args=(cluster.url, stop, run.hostile), daemon=True
                )
                hostile.start()
            server_kills = [total // 3, 2 * total // 3] if chaos else []
            next_worker_kill = started + 3.0
            while True:
                if time.monotonic() - started > budget:
                    raise TimeoutError(f"{name}: not done within {budget:.0f} s")
                with contextlib.suppress(httpx.TransportError):
                    done = done_units(cluster.url)
                    if done >= total:
                        break
                    if server_kills and done >= server_kills[0]:
                        server_kills.pop(0)
                        killed_at = time.monotonic()
                        cluster.kill_server()
                        cluster.start_server()
                        wait_until(lambda d=done: done_units(cluster.url) > d, 120, "recovery")
                        run.recoveries.append(time.monotonic() - killed_at)
                if chaos and time.monotonic() >= next_worker_kill:
                    cluster.kill_random_worker(rng)
                    run.worker_kills += 1
                    next_worker_kill = time.monotonic() + rng.uniform(2.0, 4.0)
                time.sleep(0.1)
            run.seconds = time.monotonic() - started
            stop.set()
            if hostile is not None:
                hostile.join(timeout=15)
            check(cluster.url, jobs, run, timeout=120)
        finally:
            stop.set()
            cluster.stop()
        run.replay = replay_verify(Path(tmp) / "data")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units-per-job", type=int, default=500)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per run, at most")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    calm = run_once("calm", args.units_per_job, chaos=False, budget=args.budget, seed=args.seed)
    wild = run_once("chaos", args.units_per_job, chaos=True, budget=args.budget, seed=args.seed)
    print(f"{'':34}{'calm':>12}{'chaos':>12}")
    rows = [
        ("units (20 jobs, 5 users, 4 workers)", calm.units, wild.units),
        ("wall seconds", f"{calm.seconds:.1f}", f"{wild.seconds:.1f}"),
        ("units/s", f"{calm.rate:.0f}", f"{wild.rate:.0f}"),
        ("grants", calm.grants, wild.grants),
        ("re-grants (units granted again)", calm.regrants, wild.regrants),
        ("leases lost (unit.lease_expired)", calm.lost_leases, wild.lost_leases),
        ("workers killed -9", calm.worker_kills, wild.worker_kills),
        ("workers expired (worker.expired)", calm.expired_workers, wild.expired_workers),
        ("server kills -9", 0, len(wild.recoveries)),
    ]
    for label, a, b in rows:
        print(f"{label:34}{a!s:>12}{b!s:>12}")
    recovery = ", ".join(f"{r:.1f}" for r in wild.recoveries)
    print(f"recovery after each server kill (s, kill to next completed unit): {recovery}")
    print(f"hostile requests by answer: {dict(sorted(wild.hostile.items()))}")
    print("checks: every job complete with its outputs; ledger units = units; ledger charged")
    print("  = settled charges (independent fold of the raw log); nothing reserved")
    print(f"replay --verify: calm: {calm.replay}; chaos: {wild.replay}")


if __name__ == "__main__":
    main()
