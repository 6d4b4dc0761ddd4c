"""Private pilots on a real Slurm: a job that asks for its own pilot runs on that pilot's
workers; the pilot goes when the job ends or is cancelled; a pilot whose wall time is
shorter than the job leaves in time and its units are granted again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.batch.conftest import in_queue
from tests.integration.helpers import all_events, events_of, get_job, wait_final
from tests.support import ParkServer, wait_for


def submit(http: httpx.Client, inputs: list[Any], pilot: dict[str, Any]) -> dict[str, Any]:
    body = {
        "kind": "map",
        "spec": {"function": "tests.batch.units:step", "inputs": inputs, "chunk": 1},
        "resources": {"pilot": pilot},
    }
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def pilots_of(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    return get_job(http, job_id)["pilots"]  # type: ignore[no-any-return]


def test_a_job_runs_on_its_own_pilot_which_is_gone_afterwards(
    pilot_server: ParkServer, tmp_path: Path
) -> None:
    http = httpx.Client(base_url=pilot_server.url, timeout=10.0)
    inputs = [{"dir": str(tmp_path), "i": i, "seconds": 0.1} for i in range(4)]
    job = submit(http, inputs, {"nodes": 1, "cpus_per_node": 2, "walltime": "00:02:00"})
    assert wait_final(http, job["id"], timeout=60)["status"] == "complete"

    pilot = pilots_of(http, job["id"])[0]
    records = all_events(http)
    joined = {e["worker_id"]: e for e in events_of(records, "worker.joined")}
    doers = {e["worker_id"] for e in events_of(records, "unit.completed")}
    assert doers and all(joined[w].get("pilot_id") == pilot["id"] for w in doers)
    assert all(joined[w]["policy"] == "job" and joined[w]["job_id"] == job["id"] for w in doers)
    # The server cancels the pilot once its job is done: gone from squeue, and said so.
    wait_for(lambda: not in_queue(pilot["batch_id"]), timeout=30)
    pilot = wait_for(lambda: [p for p in pilots_of(http, job["id"]) if p["state"] != "running"])[0]
    assert pilot["state"] == "cancelled"
    assert f"its job {job['id']} is complete" in pilot["reason"]
    runs = [int(line.split()[0]) for line in (tmp_path / "done").read_text().splitlines()]
    assert sorted(runs) == [0, 1, 2, 3]


def test_cancelling_the_job_cancels_its_queued_pilot(
    pilot_server: ParkServer, tmp_path: Path
) -> None:
    http = httpx.Client(base_url=pilot_server.url, timeout=10.0)
    inputs = [{"dir": str(tmp_path), "i": 0}]
    # Held in the queue, so it waits there as it would behind other users' jobs.
    job = submit(http, inputs, {"walltime": 60, "queue": "debug", "extra": ["--hold"]})
    pilot = wait_for(lambda: pilots_of(http, job["id"]), timeout=30)[0]
    batch_id = pilot["batch_id"]
    assert in_queue(batch_id)

    def waiting() -> list[str]:
        reasons = http.get(f"/v1/jobs/{job['id']}/explain").json()["reasons"]
        return [r for r in reasons if r.startswith(f"waiting for pilot {batch_id} in queue debug")
                and "JobHeldUser" in r]  # fmt: skip

    try:
        wait_for(waiting, timeout=30)  # with Slurm's own reason, once the server asked it
        shown = subprocess.run(
            [sys.executable, "-m", "park", "show", job["id"], "--server", pilot_server.url],
            capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        assert f"pilot {batch_id} (slurm, queue debug): queued: JobHeldUser" in shown, shown
    finally:
        assert http.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    wait_for(lambda: not in_queue(batch_id), timeout=30)
    pilot = wait_for(lambda: [p for p in pilots_of(http, job["id"]) if p["state"] != "queued"])[0]
    assert pilot["state"] == "cancelled" and "is cancelled" in pilot["reason"]


@pytest.mark.slow
def test_a_pilot_shorter_than_its_job_leaves_in_time_and_its_units_are_granted_again(
    pilot_server: ParkServer, tmp_path: Path
) -> None:
    http = httpx.Client(base_url=pilot_server.url, timeout=10.0)
    (tmp_path / "slow").touch()  # units run until this goes: longer than the first pilot
    inputs = [{"dir": str(tmp_path), "i": i} for i in range(4)]
    walltime = 20  # room for a loaded machine's slow Python start-up
    job = submit(http, inputs, {"cpus_per_node": 2, "walltime": walltime})

    first = wait_for(lambda: pilots_of(http, job["id"]), timeout=30)[0]
    ended = wait_for(
        lambda: [p for p in pilots_of(http, job["id"]) if p["id"] == first["id"] and
                 p["state"] not in ("queued", "running")],
        timeout=40,
    )[0]  # fmt: skip
    assert ended["state"] == "ended", ended  # left on its own: not killed, not failed
    (tmp_path / "slow").unlink()
    assert wait_final(http, job["id"], timeout=60)["status"] == "complete"

    records = all_events(http)
    joined = {e["worker_id"]: e for e in events_of(records, "worker.joined")}
    left = {e["worker_id"]: e for e in events_of(records, "worker.left")}
    first_workers = [w for w, e in joined.items() if e.get("pilot_id") == first["id"]]
    assert first_workers
    for w in first_workers:  # left before the wall time ran out, of its own accord
        assert left[w]["at"] < ended["started_at"] + walltime
    given_back = [e for e in events_of(records, "unit.lease_expired")
                  if e["worker_id"] in first_workers]  # fmt: skip
    assert len(given_back) == 2  # both units it held, at once when it left
    done_by = {e["unit_id"]: e["worker_id"] for e in events_of(records, "unit.completed")}
    for e in given_back:
        assert joined[done_by[e["unit_id"]]].get("pilot_id") not in (None, first["id"])
    assert len(pilots_of(http, job["id"])) >= 2  # a new pilot was submitted for the rest
    # No unit ran to completion twice.
    runs = [int(line.split()[0]) for line in (tmp_path / "done").read_text().splitlines()]
    assert sorted(runs) == [0, 1, 2, 3]
