"""Record a real event log for the replay fixture: `park serve` and `park worker` as
subprocesses on 127.0.0.1, driven over HTTP through a history with map and fit jobs, a
cancel, a worker killed with -9 while it holds leases (its leases lapse and are re-granted),
budget changes (one spends a paid user's budget), and priority and tag changes.

    python tests/data/logs/record_main_log.py tests/data/logs/main-2026-11-27

writes NAME.sqlite3 (the log, checkpointed into one file) and NAME.expected.json (what the
server showed at the end: jobs, ledger, workers, grants), which tests/test_recorded_log.py
replays. Timings vary from run to run; the recorded file is the fixture, not this script's
output on another day.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

LEASE_SECONDS = 3.0
FINAL = ("complete", "failed", "cancelled")
SLEEP = "park.builtins:sleep"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout}s")


class Recording:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def start_server(self) -> None:
        log = (self.work / "serve.log").open("ab")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "park", "serve", "--port", str(self.port),
             "--data-dir", str(self.work / "park-data"), "--workers", "0",
             "--lease-seconds", str(LEASE_SECONDS)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

        def healthy() -> bool:
            assert self.server is not None and self.server.poll() is None, "park serve died"
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("park serve answers", healthy, 120.0)

    def start_worker(self, name: str, cpus: int) -> None:
        log = (self.work / f"worker-{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "park", "worker", "--server", self.url,
             "--cpus", str(cpus), "--name", name],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(f"worker {name} registers", lambda: self.worker(name), 120.0)

    def worker(self, name: str) -> dict[str, Any] | None:
        workers = self.http.get("/v1/workers").json()["workers"]
        return next((w for w in workers if w["name"] == name), None)

    def kill_worker(self, name: str) -> None:
        proc = self.workers.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_worker(self, name: str) -> None:
        proc = self.workers.pop(name)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    def submit(self, user: str, kind: str, spec: dict[str, Any], **extra: Any) -> str:
        response = self.http.post(
            "/v1/jobs", json={"kind": kind, "spec": spec, **extra}, headers={"X-Park-User": user}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return self.http.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]

    def set_budget(self, user: str, credits: float | None) -> None:
        response = self.http.put(f"/v1/ledger/{user}/budget", json={"credits": credits})
        assert response.status_code == 200, response.text

    def stop(self) -> None:
        for name in list(self.workers):
            self.stop_worker(name)
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(timeout=30)
        self.http.close()


def line_fit() -> dict[str, Any]:
    xs = [float(i) for i in range(12)]
    return {
        "model": {"builtin": "line"},
        "data": {"x": xs, "y": [2.0 * x + 1.0 + 0.1 * (-1) ** i for i, x in enumerate(xs)]},
        "parameters": {"a": 0.0, "b": 1.0},
        "method": "multistart",
        "options": {"starts": 6, "seed": 3},
    }


def exp_fit() -> dict[str, Any]:
    xs = [0.5 * i for i in range(16)]
    return {
        "model": "a*exp(-k*x) + c",
        "data": {"x": xs, "y": [3.0 * 2.718281828 ** (-0.7 * x) + 0.5 for x in xs]},
        "parameters": {"a": {"value": 1, "min": 0, "max": 10},
                       "k": {"value": 0.1, "min": 0, "max": 5}, "c": 0.0},
        "method": "de",
        "options": {"seed": 5, "popsize": 12, "generations": 6},
    }  # fmt: skip


def history(rec: Recording) -> None:
    """The story the log tells (each step waits for what it needs, bounded in time)."""
    h = rec.http
    # A worker that will die holding leases.
    rec.start_worker("doomed", 2)
    lost = rec.submit("dee", "map", {"function": SLEEP, "inputs": [30, 30, 0.1, 0.1]})
    wait_for("doomed holds leases", lambda: (rec.worker("doomed") or {}).get("units_leased"))
    rec.kill_worker("doomed")

    # A paid user with a small budget; the budget is raised later.
    rec.set_budget("ann", 0.5)
    paid = rec.submit(
        "ann", "map", {"function": "park.builtins:burn", "inputs": [0.2] * 8}, priority="normal",
        tags={"project": "alpha"},
    )  # fmt: skip
    free = rec.submit("bob", "map", {"function": SLEEP, "inputs": [0.05] * 9, "chunk": 3})
    fit_a = rec.submit("cy", "fit", line_fit(), priority="high")
    fit_b = rec.submit("cy", "fit", exp_fit(), tags={"model": "exp"})
    doomed_later = rec.submit("bob", "map", {"function": SLEEP, "inputs": [20, 20, 20]})
    queued = rec.submit("eve", "map", {"function": SLEEP, "inputs": [0.1, 0.1]}, priority="low")
    # Priority and tags change while the job waits.
    r = h.patch(f"/v1/jobs/{queued}", json={"priority": "urgent", "tags": {"stage": "2"}},
                headers={"X-Park-User": "eve"})  # fmt: skip
    assert r.status_code == 200, r.text
    r = h.patch(f"/v1/jobs/{paid}", json={"tags": {"project": None, "team": "x"}},
                headers={"X-Park-User": "ann"})  # fmt: skip
    assert r.status_code == 200, r.text

    rec.start_worker("steady", 2)
    rec.start_worker("small", 1)
    wait_for("a long unit runs", lambda: rec.job(doomed_later)["status"] == "running")
    r = h.post(f"/v1/jobs/{doomed_later}/cancel", headers={"X-Park-User": "bob"})
    assert r.status_code == 200, r.text
    wait_for("ann's budget is spent", lambda: (_budget_left(h, "ann") or 1.0) <= 0.0, 60.0)
    rec.set_budget("ann", 50.0)
    r = h.patch(f"/v1/jobs/{fit_b}", json={"priority": "normal"}, headers={"X-Park-User": "cy"})
    assert r.status_code == 200, r.text

    # The dead worker's long units are re-granted once their leases lapse; shorten them.
    for job_id in (paid, free, fit_a, fit_b, queued):
        wait_for(f"{job_id} finishes", lambda j=job_id: rec.job(j)["status"] in FINAL, 120.0)
    r = h.post(f"/v1/jobs/{lost}/cancel", headers={"X-Park-User": "dee"})
    assert r.status_code == 200, r.text
    last = rec.submit("dee", "map", {"function": SLEEP, "inputs": [0.1, 0.2, 0.3]})
    wait_for("the last job finishes", lambda: rec.job(last)["status"] in FINAL, 60.0)
    for name in list(rec.workers):
        rec.stop_worker(name)  # they leave (the killed one never does)


def _budget_left(h: httpx.Client, user: str) -> float | None:
    row = h.get(f"/v1/ledger/{user}").json()["users"].get(user)
    return None if row is None else row["budget_left"]


def expected_view(h: httpx.Client) -> dict[str, Any]:
    """What the server shows at the end, less what depends on the reading time."""
    ledger = h.get("/v1/ledger").json()
    for row in ledger["users"].values():
        row.pop("usage")
    events = []
    after = 0
    while batch := h.get("/v1/events", params={"after": after, "limit": 1000}).json()["events"]:
        events.extend(batch)
        after = batch[-1]["offset"]
    grants = [
        [r["offset"], r["event"]["unit_id"], r["event"]["worker_id"]]
        for r in events
        if r["event"]["type"] == "unit.granted"
    ]
    return {
        "offset": h.get("/healthz").json()["offset"],
        "jobs": h.get("/v1/jobs").json()["jobs"],
        "ledger": ledger,
        "workers": h.get("/v1/workers", params={"active": False}).json()["workers"],
        "grants": grants,
    }


def main(out: str) -> None:
    with tempfile.TemporaryDirectory(prefix="park-record-") as tmp:
        rec = Recording(Path(tmp))
        rec.start_server()
        try:
            history(rec)
            view = expected_view(rec.http)
        except BaseException:
            for log in sorted(Path(tmp).glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
            raise
        finally:
            rec.stop()
        # One self-contained file: the WAL folded in, no -wal/-shm beside it.
        target = Path(f"{out}.sqlite3")
        target.unlink(missing_ok=True)
        db = sqlite3.connect(Path(tmp) / "park-data" / "events.sqlite3")
        db.execute("VACUUM INTO ?", (str(target),))
        db.close()
        with sqlite3.connect(target) as copy:
            copy.execute("PRAGMA journal_mode=DELETE")
        Path(f"{out}.expected.json").write_text(json.dumps(view, indent=1, sort_keys=True) + "\n")
    print(f"{target}: {view['offset']} events, {len(view['grants'])} grants")


if __name__ == "__main__":
    main(sys.argv[1])
