"""Fair share on the real server: three users at free, normal and urgent, two workers."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.integration.helpers import all_events, client, events_of
from tests.support import ParkServer, wait_for

pytestmark = pytest.mark.slow

BURN = {"function": "park.builtins:burn", "inputs": [0.01] * 150, "chunk": 1}


def submit(server: ParkServer, user: str, priority: str) -> str:
    response = httpx.post(
        f"{server.url}/v1/jobs",
        json={"kind": "map", "spec": BURN, "priority": priority},
        headers={"X-Park-User": user},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def job(server: ParkServer, job_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/v1/jobs/{job_id}").json())


def test_urgent_gets_most_free_still_progresses_ledger_follows_prices(
    park_server: ParkServer, start_worker: Any
) -> None:
    ids = {
        "free": submit(park_server, "ann", "free"),
        "normal": submit(park_server, "bob", "normal"),
        "urgent": submit(park_server, "cat", "urgent"),
    }
    start_worker(park_server, 1)
    start_worker(park_server, 1)
    wait_for(lambda: job(park_server, ids["urgent"])["status"] == "complete", timeout=120)
    explained = httpx.get(f"{park_server.url}/v1/jobs/{ids['free']}/explain").json()
    assert explained["status"] in ("running", "complete")

    # Weights 1 : 4 : 16. Count the grants made while the urgent job still had units
    # waiting (after that, workers' prefetched batches are no longer a contest).
    with client(park_server.url) as http:
        grants = events_of(all_events(http), "unit.granted")
    last_urgent = max(i for i, g in enumerate(grants) if g["job_id"] == ids["urgent"])
    granted = Counter(g["job_id"] for g in grants[: last_urgent + 1])
    by_priority = {p: granted[j] for p, j in ids.items()}
    assert by_priority["urgent"] == 150
    assert 150 * 4 / 16 * 0.5 <= by_priority["normal"] <= 150 * 4 / 16 * 1.5
    assert 1 <= by_priority["free"] <= 150 / 16 * 2  # the free job still progresses

    for job_id in ids.values():
        wait_for(lambda j=job_id: job(park_server, j)["status"] == "complete", timeout=120)
    ledger = httpx.get(f"{park_server.url}/v1/ledger").json()["users"]
    prices = {"ann": 0.0, "bob": 1.0, "cat": 4.0}
    for user, price in prices.items():
        row = ledger[user]
        assert row["units"] == 150
        assert row["core_seconds"] >= 150 * 0.01
        # Charged by slot time (the wall time units held a CPU), at least the CPU time.
        assert row["slot_seconds"] >= 0.9 * row["core_seconds"]
        assert row["charged"] == pytest.approx(row["slot_seconds"] * price, rel=1e-9)
        assert row["reserved"] == pytest.approx(0.0, abs=1e-9)
    assert ledger["cat"]["usage"] > ledger["bob"]["usage"] > 0
    assert ledger["ann"]["charged"] == 0.0


def test_replay_verifies_every_recorded_grant_and_explains_the_past(
    park_server: ParkServer, start_worker: Any
) -> None:
    ids = [submit(park_server, user, priority) for user, priority in
           (("ann", "free"), ("bob", "normal"), ("cat", "urgent"))]  # fmt: skip
    start_worker(park_server, 1)
    for job_id in ids:
        wait_for(lambda j=job_id: job(park_server, j)["status"] == "complete", timeout=120)
    with client(park_server.url) as http:
        first = events_of(all_events(http), "unit.granted")[0]
    first_grant = first["offset"]
    waiting = next(j for j in ids if j != first["job_id"])  # still pending at that offset
    park_server.stop()
    data = str(park_server.data_dir)
    verified = subprocess.run(
        [sys.executable, "-m", "park", "replay", "--verify", "--data-dir", data],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert " 0 differ" in verified.stdout
    assert "450 grants" in verified.stdout
    past = subprocess.run(
        [sys.executable, "-m", "park", "replay", "--data-dir", data,
         "--to", str(first_grant), "--explain", waiting],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert past.returncode == 0, past.stdout + past.stderr
    assert f"{waiting} pending (log offset {first_grant})" in past.stdout
    assert "all 1 worker(s) that may run it are busy" in past.stdout
