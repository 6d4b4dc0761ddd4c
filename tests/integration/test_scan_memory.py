"""A large scan through a real `park serve` and a real `park worker`: what the server holds
of it stays bounded by the units in flight, not by the grid (issue 10; benchmarks/
scan_memory.py shows a 2,000,000-point one). Its unit table holds the units in flight and
the latest completed ones, and its result keeps the chi-squared surface at a bounded
resolution, which the plot still draws."""

from __future__ import annotations

import math
import re
from typing import Any

import httpx
import pytest

from park.kinds.fit.scan import HISTORY_CHUNKS, SURFACE_POINTS, WINDOW
from park.projections.state import RECENT_DONE_UNITS
from tests.integration.helpers import FINAL, client, get_job, get_result
from tests.support import ParkServer, wait_for

X = [0.0, 1.0, 2.0, 3.0, 4.0]
SPEC = {
    "model": "a*x + b",
    "data": {"x": X, "y": [1.0 + 2.0 * x for x in X], "dy": [0.1] * len(X)},
    "parameters": {
        "a": {"value": 1.0, "min": 0.0, "max": 4.0},
        "b": {"value": 0.0, "min": -2.0, "max": 3.0},
    },
    "method": "scan",
    "options": {"points": {"a": 500, "b": 400}, "per_unit": 1000},
}


def units_in_memory(http: httpx.Client) -> int:
    text = http.get("/metrics").text
    found = re.search(r"^park_units_in_memory (\S+)$", text, re.MULTILINE)
    assert found, "no park_units_in_memory on /metrics"
    return int(float(found.group(1)))


@pytest.mark.slow
def test_a_large_scan_holds_only_its_units_in_flight(
    park_server: ParkServer, start_worker: Any
) -> None:
    start_worker(park_server, 2)
    with client(park_server.url) as http:
        answer = http.post("/v1/jobs", json={"kind": "fit", "spec": SPEC})
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        most = 0

        def finished() -> dict[str, Any] | None:
            nonlocal most
            most = max(most, units_in_memory(http))
            job = get_job(http, job_id)
            return job if job["status"] in FINAL else None

        job = wait_for(finished, timeout=180, interval=0.2)
        assert job["status"] == "complete", job
        assert job["progress"]["total"] == 201  # 200 of the grid, 1 polish
        assert 0 < most <= WINDOW + RECENT_DONE_UNITS + 1, most  # (+1: the polish)

        result = get_result(http, job_id)["result"]
        surface = result["surface"]
        assert surface["stride"] == {"a": 4, "b": 4}  # 125 x 100 points of 500 x 400
        kept = [len(v) for v in surface["axes"].values()]
        assert kept == [125, 100] and math.prod(kept) <= SURFACE_POINTS
        assert [len(row) for row in surface["chisq"]] == [100] * 125
        assert surface["axes"]["a"][1] == 4 * 4.0 / 499  # every 4th point of the grid
        assert len(result["history"]) <= HISTORY_CHUNKS
        # The best grid point is of the whole grid; the polish reaches the exact line.
        assert result["grid_best"]["chisq"] <= min(min(r) for r in surface["chisq"])
        assert abs(result["parameters"]["a"]["value"] - 2.0) < 1e-6
        assert abs(result["parameters"]["b"]["value"] - 1.0) < 1e-6
        plot = http.get(f"/v1/jobs/{job_id}/plot.svg")
        assert plot.status_code == 200 and "surface over a and b" in plot.text
