"""Either refused, or accepted and answered: a request that is refused in part records
nothing of it (a real server)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.helpers import client, get_job
from tests.support import ParkServer, free_port


def test_a_patch_refused_in_part_changes_nothing(tmp_path: Path) -> None:
    server = ParkServer(data_dir=tmp_path / "park-data", port=free_port()).start()
    try:
        http = client(server.url, "ann")
        spec = {"function": "park.builtins:sleep", "inputs": [0]}
        job = http.post("/v1/jobs", json={"kind": "map", "spec": spec}).json()["id"]
        assert http.post(f"/v1/jobs/{job}/cancel").status_code == 200
        before = http.get("/healthz").json()["offset"]
        # tags may change on a finished job, its priority may not: all or nothing
        patched = http.patch(f"/v1/jobs/{job}", json={"tags": {"run": "2"}, "priority": "high"})
        assert patched.status_code == 409, patched.text
        assert "run" not in get_job(http, job)["tags"]
        assert http.get("/healthz").json()["offset"] == before
    finally:
        server.stop()
