"""PATCH /v1/jobs/{id}: priority and tags change; the user tag and others' jobs do not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from park.api.app import create_app
from park.events.sqlite import SqliteEventLog
from park.service.engine import ParkService

SPEC = {"function": "park.builtins:sleep", "inputs": [0]}
ANN = {"X-Park-User": "ann"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ParkService(SqliteEventLog.in_data_dir(tmp_path)))) as client:
        yield client


def test_tags_are_set_and_removed_and_found_by_the_listing(client: TestClient) -> None:
    job = client.post(
        "/v1/jobs", json={"kind": "map", "spec": SPEC, "tags": {"name": "a", "x": "1"}}, headers=ANN
    ).json()
    patched = client.patch(
        f"/v1/jobs/{job['id']}", json={"tags": {"name": "b", "x": None}, "priority": "high"},
        headers=ANN,
    )  # fmt: skip
    assert patched.status_code == 200
    assert patched.json()["tags"] == {"user": "ann", "name": "b"}
    assert patched.json()["priority"] == "high"
    listed = client.get("/v1/jobs", params={"tag": "name=b"}).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_the_user_tag_and_other_users_jobs_cannot_be_changed(client: TestClient) -> None:
    job = client.post("/v1/jobs", json={"kind": "map", "spec": SPEC}, headers=ANN).json()
    before = client.get("/healthz").json()["offset"]
    response = client.patch(f"/v1/jobs/{job['id']}", json={"tags": {"user": "bob"}}, headers=ANN)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("tags.user:")
    response = client.patch(
        f"/v1/jobs/{job['id']}", json={"tags": {"name": "mine"}}, headers={"X-Park-User": "bob"}
    )
    assert response.status_code == 403
    empty = client.patch(f"/v1/jobs/{job['id']}", json={}, headers=ANN)
    assert empty.status_code == 422
    assert client.get("/healthz").json()["offset"] == before
