"""Waiting for a job is a long poll: `GET /v1/jobs/{id}?wait=S` answers as the job ends
(or after S seconds), so `job.wait()` hears of the end at once rather than at its next
poll. A real `park serve` and a real worker (same machine: one clock)."""

from __future__ import annotations

import time
from typing import Any

import park
from tests.integration.helpers import client, submit_map
from tests.support import ParkServer, wait_for


def test_a_waiting_get_answers_as_the_job_ends_and_not_before(
    park_server: ParkServer, start_worker: Any
) -> None:
    with client(park_server.url, user="ann") as http:
        # No worker yet: the job cannot end, and the answer comes after the wait.
        job_id = submit_map(http, "park.builtins:sleep", [1.0])["id"]
        started = time.monotonic()
        pending = http.get(f"/v1/jobs/{job_id}", params={"wait": 0.5}).json()
        assert pending["status"] == "pending"
        assert time.monotonic() - started >= 0.5
        start_worker(park_server)
        wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "running", 60)
        started = time.monotonic()
        ended = http.get(f"/v1/jobs/{job_id}", params={"wait": 50}, timeout=60).json()
        waited = time.monotonic() - started
    assert ended["status"] == "complete"
    assert waited < 20, waited  # at the end (about a second), far from the 50 s asked


def test_job_wait_returns_as_the_job_ends(park_server: ParkServer, start_worker: Any) -> None:
    start_worker(park_server)
    with park.remote(park_server.url) as service:
        warm = park.submit("map", {"function": "park.builtins:sleep", "inputs": [0.0]})
        assert warm.wait(timeout=60, progress=False) == [0.0]
        # Long enough that a poll backing off would be up to a second late.
        job = park.submit("map", {"function": "park.builtins:sleep", "inputs": [3.0]})
        assert job.wait(timeout=60, progress=False) == [3.0]
        returned = time.time()
        finished_at = service.get_job(job.id)["finished_at"]
    assert returned - finished_at < 0.5, returned - finished_at
