"""With tokens on: the token names the user; workers need a worker token; others' private
data stays private."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from park.api.app import ApiSettings, create_app
from park.api.auth import TokenTable
from park.events.sqlite import SqliteEventLog
from park.service.engine import ParkService

SPEC = {"function": "park.builtins:sleep", "inputs": [0]}
ANN = {"Authorization": "Bearer ann-secret"}
BOB = {"Authorization": "Bearer bob-secret"}
WORKER = {"Authorization": "Bearer worker-secret"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    table = tmp_path / "tokens"
    table.write_text(
        "# token user role\nann-secret ann\nbob-secret bob user\nworker-secret pool worker\n"
    )
    service = ParkService(SqliteEventLog.in_data_dir(tmp_path))
    with TestClient(create_app(service, ApiSettings(tokens=TokenTable.load(table)))) as client:
        yield client


def test_no_token_is_401(client: TestClient) -> None:
    response = client.post("/v1/jobs", json={"kind": "map", "spec": SPEC})
    assert response.status_code == 401
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_the_token_names_the_user_whatever_the_tags_say(client: TestClient) -> None:
    job = client.post(
        "/v1/jobs", json={"kind": "map", "spec": SPEC, "tags": {"user": "bob"}}, headers=ANN
    ).json()
    assert job["user"] == "ann"
    assert job["tags"]["user"] == "ann"


def test_another_user_can_neither_cancel_nor_see_private_data(client: TestClient) -> None:
    job = client.post("/v1/jobs", json={"kind": "map", "spec": SPEC}, headers=ANN).json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=BOB).status_code == 403
    seen_by_bob = client.get(f"/v1/jobs/{job['id']}", headers=BOB).json()
    assert "spec" not in seen_by_bob
    assert seen_by_bob["status"] == "pending"
    assert client.get(f"/v1/jobs/{job['id']}/result", headers=BOB).status_code == 404
    listed = client.get("/v1/jobs", headers=BOB).json()["jobs"]
    assert all("spec" not in j for j in listed)
    assert client.get(f"/v1/jobs/{job['id']}", headers=ANN).json()["spec"]["inputs"] == [0]
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=ANN).status_code == 200


def test_registering_a_worker_needs_a_worker_token(client: TestClient) -> None:
    assert client.post("/v1/workers", json={"name": "w"}, headers=ANN).status_code == 403
    response = client.post("/v1/workers", json={"name": "w"}, headers=WORKER)
    assert response.status_code == 201


def test_serving_beyond_loopback_without_tokens_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "park", "serve", "--host", "0.0.0.0", "--port", "1",
         "--data-dir", str(tmp_path), "--workers", "0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--tokens" in result.stdout + result.stderr


def test_streams_need_a_token_and_the_raw_log_an_admin(client: TestClient) -> None:
    assert client.get("/v1/jobs/stream").status_code == 401
    assert client.get("/v1/events/stream", headers=ANN).status_code == 403
    assert client.get("/v1/events", headers=ANN).status_code == 403


def test_every_data_route_needs_a_token(client: TestClient) -> None:
    for path in ("/v1/jobs", "/v1/workers", "/v1/ledger", "/v1/ledger/ann", "/v1/policy"):
        assert client.get(path).status_code == 401, path
    assert client.get("/healthz").status_code == 200


def test_a_worker_token_acts_only_for_its_own_workers(tmp_path: Path) -> None:
    table = tmp_path / "tokens"
    table.write_text("ann-secret ann\nw1-secret pool1 worker\nw2-secret pool2 worker\n")
    service = ParkService(SqliteEventLog.in_data_dir(tmp_path))
    with TestClient(create_app(service, ApiSettings(tokens=TokenTable.load(table)))) as client:
        w1 = {"Authorization": "Bearer w1-secret"}
        w2 = {"Authorization": "Bearer w2-secret"}
        client.post("/v1/jobs", json={"kind": "map", "spec": SPEC}, headers=ANN)
        mine = client.post("/v1/workers", json={"name": "one"}, headers=w1).json()["id"]
        for method, path, body in (
            ("POST", f"/v1/workers/{mine}/lease", {"max_units": 1}),
            ("POST", f"/v1/workers/{mine}/reports", {"reports": []}),
            ("POST", f"/v1/workers/{mine}/heartbeat", {"unit_ids": []}),
            ("DELETE", f"/v1/workers/{mine}", None),
        ):
            response = client.request(method, path, json=body, headers=w2)
            assert response.status_code == 403, path
        leased = client.post(f"/v1/workers/{mine}/lease", json={"max_units": 1}, headers=w1)
        assert len(leased.json()["units"]) == 1
