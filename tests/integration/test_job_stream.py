"""The live job table: follow the stream through submissions, progress and completion,
drop the connection mid-way, resume with Last-Event-ID, end equal to GET /v1/jobs."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

import park
from park.client.table import JobTable, TableChange
from tests.support import ParkServer

pytestmark = pytest.mark.slow


def submit(server: ParkServer, user: str, inputs: list[float], name: str) -> str:
    response = httpx.post(
        f"{server.url}/v1/jobs",
        json={"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": inputs},
              "tags": {"name": name}},
        headers={"X-Park-User": user},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def active_jobs(server: ParkServer, **params: Any) -> dict[str, dict[str, Any]]:
    listed = httpx.get(
        f"{server.url}/v1/jobs", params={"status": ["pending", "running"], **params}
    ).json()
    return {
        j["id"]: {k: v for k, v in j.items() if k not in ("spec", "error", "notify")}
        for j in listed["jobs"]
    }


def test_stream_survives_drops_and_ends_equal_to_the_listing(
    park_server: ParkServer, start_worker: Any
) -> None:
    remote = park.RemoteService(park_server.url)
    steady, dropped = JobTable(remote), JobTable(remote)
    seen: dict[str, list[TableChange]] = {"steady": [], "dropped": []}
    steady.on_change(seen["steady"].append)
    dropped.on_change(seen["dropped"].append)
    try:
        assert steady.wait_for(lambda t: t.offset is not None, 10)
        assert dropped.wait_for(lambda t: t.offset is not None, 10)
        start_worker(park_server, 1)
        start_worker(park_server, 1)  # one of them will hold the long job
        ids = [submit(park_server, "ann", [0.05] * 6, "first")]
        for round_ in range(4):
            ids.append(submit(park_server, ["ann", "bob"][round_ % 2], [0.05] * 5, f"r{round_}"))
            time.sleep(0.3)
            dropped.drop_connection()  # mid-way, while jobs progress
        long_job = submit(park_server, "bob", [30.0], "long")  # still active at the end

        def settled(table: JobTable) -> bool:
            return set(table.jobs) == {long_job} and table.jobs[long_job]["status"] == "running"

        assert steady.wait_for(settled, 60), (steady.jobs, active_jobs(park_server))
        assert dropped.wait_for(settled, 60), (dropped.jobs, active_jobs(park_server))
        assert dropped.connections >= 3
        for name, changes in seen.items():
            offsets = [c.offset for c in changes]
            assert offsets == sorted(set(offsets)), f"{name}: a change repeated or out of order"
        # The dropped table saw exactly the changes the steady one saw after its snapshot.
        start = seen["dropped"][0].offset
        steady_changes = [(c.offset, c.op, c.job) for c in seen["steady"] if c.offset > start]
        dropped_changes = [(c.offset, c.op, c.job) for c in seen["dropped"][1:]]
        assert [c.op for c in seen["dropped"]].count("snapshot") == 1  # resumed, no re-snapshot
        assert dropped_changes == steady_changes
        ops = {c.op for c in seen["steady"]}
        assert {"snapshot", "upsert", "remove"} <= ops
        listing = active_jobs(park_server)
        assert dropped.jobs == listing == steady.jobs
        assert all(job_id not in dropped.jobs for job_id in ids)
    finally:
        steady.close()
        dropped.close()


def test_filters_by_user_and_tag(park_server: ParkServer) -> None:
    ann = submit(park_server, "ann", [30.0], "scan")
    submit(park_server, "bob", [30.0], "scan")
    submit(park_server, "ann", [30.0], "other")
    with JobTable(park.RemoteService(park_server.url), user="ann", tags={"name": "scan"}) as table:
        assert table.wait_for(lambda t: t.offset is not None, 10)
        assert set(table.jobs) == {ann}
        assert table.jobs == active_jobs(park_server, user="ann", tag="name=scan")


def test_the_raw_log_streams_and_resumes(park_server: ParkServer) -> None:
    submit(park_server, "ann", [30.0], "x")  # job.submitted, units.planned
    submit(park_server, "ann", [30.0], "y")  # two more
    with (
        httpx.Client(base_url=park_server.url, timeout=10) as http,
        http.stream("GET", "/v1/events/stream", headers={"Last-Event-ID": "1"}) as response,
    ):
        assert response.status_code == 200
        ids = []
        for line in response.iter_lines():
            if line.startswith("id:"):
                ids.append(int(line[3:]))
            if len(ids) == 2:
                break
    assert ids == [2, 3]
    bad = httpx.get(f"{park_server.url}/v1/jobs/stream", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("Last-Event-ID:")
