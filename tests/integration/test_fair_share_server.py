"""Fair share on the real server: three users at free, normal and urgent, two workers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

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
    done = {p: job(park_server, j)["progress"]["done"] for p, j in ids.items()}
    # weights 1 : 4 : 16 - while urgent ran its 150 units, the others got about 1/16 and
    # 4/16 as much (leases in flight blur the counts a little)
    assert done["urgent"] == 150
    assert 0 < done["free"] < done["normal"] < done["urgent"]
    assert done["normal"] <= 150 * 4 / 16 * 2
    explained = httpx.get(f"{park_server.url}/v1/jobs/{ids['free']}/explain").json()
    assert explained["status"] in ("running", "complete")

    for job_id in ids.values():
        wait_for(lambda j=job_id: job(park_server, j)["status"] == "complete", timeout=120)
    ledger = httpx.get(f"{park_server.url}/v1/ledger").json()["users"]
    prices = {"ann": 0.0, "bob": 1.0, "cat": 4.0}
    for user, price in prices.items():
        row = ledger[user]
        assert row["units"] == 150
        assert row["core_seconds"] >= 150 * 0.01
        assert row["charged"] == pytest.approx(row["core_seconds"] * price, rel=1e-9)
        assert row["reserved"] == pytest.approx(0.0, abs=1e-9)
    assert ledger["cat"]["usage"] > ledger["bob"]["usage"] > 0
    assert ledger["ann"]["charged"] == 0.0
