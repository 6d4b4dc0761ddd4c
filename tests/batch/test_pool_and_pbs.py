"""The adaptive pool on a real Slurm, and the PBS path through Slurm's Torque-compatible
qsub/qstat/qdel (slurm-wlm-torque)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.batch.conftest import in_queue
from tests.integration.helpers import all_events, events_of, wait_final
from tests.support import ParkServer, free_port, wait_for


def park(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "park", *args], capture_output=True, text=True, timeout=60
    )


def submit_steps(http: httpx.Client, where: Path, n: int, seconds: float) -> dict[str, Any]:
    inputs = [{"dir": str(where), "i": i, "seconds": seconds} for i in range(n)]
    body = {"kind": "map", "spec": {"function": "tests.batch.units:step", "inputs": inputs}}
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def pilots(http: httpx.Client) -> list[dict[str, Any]]:
    return http.get("/v1/pilots").json()["pilots"]  # type: ignore[no-any-return]


@pytest.fixture
def pool_server(tmp_path: Path, pilot_env: None) -> Iterator[ParkServer]:
    pool = "slurm:max-nodes=2,max-pending=1,idle=3,target=2,unit-seconds=1,walltime=120"
    server = ParkServer(
        data_dir=tmp_path / "park-data", port=free_port(), extra_args=["--pilots", pool]
    )
    try:
        server.start(timeout=90)  # a loaded machine starts Python slowly
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_the_pool_grows_while_work_queues_and_shrinks_when_idle(
    pool_server: ParkServer, tmp_path: Path
) -> None:
    http = httpx.Client(base_url=pool_server.url, timeout=10.0)
    assert pilots(http) == []  # nothing queued: no pilot
    job = submit_steps(http, tmp_path, 8, 1.0)
    assert wait_final(http, job["id"], timeout=90)["status"] == "complete"
    # Idle for 3 s with nothing queued: every pilot is let go, and leaves the queue.
    wait_for(lambda: all(p["state"] == "cancelled" for p in pilots(http)), timeout=40)
    for p in pilots(http):
        wait_for(lambda p=p: not in_queue(p["batch_id"]), timeout=30)

    records = all_events(http)
    decided = events_of(records, "pool.decided")
    grows = [d for d in decided if d["action"] == "grow"]
    releases = [d for d in decided if d["action"] == "release"]
    assert len(grows) == 2  # to its maximum of two nodes, and never beyond
    assert "queued core-s exceed what 0 cpu(s) finish in 2 s" in grows[0]["reason"]
    assert sorted(r["pilot_id"] for r in releases) == sorted(g["pilot_id"] for g in grows)
    assert all("idle for" in r["reason"] and "no queued work" in r["reason"] for r in releases)
    joined = {e["worker_id"]: e.get("pilot_id") for e in events_of(records, "worker.joined")}
    doers = {joined[e["worker_id"]] for e in events_of(records, "unit.completed")}
    assert doers <= {g["pilot_id"] for g in grows}
    # Each decision re-made on the state it was made on gives the same answer.
    replayed = park("replay", "--data-dir", str(tmp_path / "park-data"), "--verify")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "0 differ" in replayed.stdout


def test_a_pbs_pilot_through_qsub_runs_a_job_and_qdel_cancels_it(
    pilot_server: ParkServer, tmp_path: Path
) -> None:
    http = httpx.Client(base_url=pilot_server.url, timeout=10.0)
    job = submit_steps(http, tmp_path, 3, 0.1)
    submitted = park("pilot", "submit", "--server", pilot_server.url, "--scheduler", "pbs",
                     "--nodes", "1", "--cpus-per-node", "2", "--walltime", "00:02:00",
                     "--dir", str(tmp_path / "pilots"))  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    pilot_id, scheduler, batch_id = submitted.stdout.split()
    assert scheduler == "pbs"
    assert "#PBS -l walltime=00:02:00" in (tmp_path / "pilots" / f"{pilot_id}.pbs").read_text()
    assert wait_final(http, job["id"], timeout=60)["status"] == "complete"
    records = all_events(http)
    joined = {e["worker_id"]: e for e in events_of(records, "worker.joined")}
    doers = {e["worker_id"] for e in events_of(records, "unit.completed")}
    assert [joined[w].get("pilot_id") for w in doers] == [pilot_id]  # one worker per node

    def qstat_state() -> str:
        out = subprocess.run(["qstat"], capture_output=True, text=True, timeout=10).stdout
        return next((line.split()[4] for line in out.splitlines()
                     if line.split()[:1] == [batch_id]), "")  # fmt: skip

    assert qstat_state() == "R"  # a pilot not bound to a job stays for more work
    cancelled = park("pilot", "cancel", pilot_id, "--server", pilot_server.url)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    wait_for(lambda: qstat_state() in ("C", ""), timeout=30)
    pilot = http.get(f"/v1/pilots/{pilot_id}").json()
    assert (pilot["state"], pilot["reason"]) == ("cancelled", "cancelled with park pilot cancel")
    listed = park("pilot", "list", "--server", pilot_server.url, "--json")
    assert [p["batch_id"] for p in json.loads(listed.stdout)["pilots"]] == [batch_id]
