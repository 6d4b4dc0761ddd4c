"""The published OpenAPI document says what the API really answers: a description on every
route, the real error shape on every route, typed answers that real answers satisfy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from park.api import openapi as doc
from park.api.app import create_app
from park.events.sqlite import SqliteEventLog
from park.service.engine import ParkService


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ParkService(SqliteEventLog.in_data_dir(tmp_path)))) as client:
        yield client


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            yield method, path, op


def test_every_route_is_described_and_has_the_real_error_shape(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in str(schema)
    error = schema["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    count = 0
    for method, path, op in operations(schema):
        count += 1
        assert op.get("description"), (method, path)
        for code in ("404", "422", "503"):
            ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorBody"), (method, path, code)
    assert count >= 30
    for (method, path), (model, _) in doc.ROUTES.items():
        op = schema["paths"][path][method]
        if model is not None:
            ok = op["responses"].get("200") or op["responses"]["201"]
            assert ok["content"]["application/json"]["schema"]["$ref"].endswith(model.__name__)


def test_real_answers_fit_their_models(client: TestClient) -> None:
    spec = {"function": "park.builtins:sleep", "inputs": [0, 0], "chunk": 1}
    job = client.post("/v1/jobs", json={"kind": "map", "spec": spec, "tags": {"name": "nap"}})
    assert job.status_code == 201
    doc.Job.model_validate(job.json())
    job_id = job.json()["id"]
    doc.JobList.model_validate(client.get("/v1/jobs").json())
    doc.Explanation.model_validate(client.get(f"/v1/jobs/{job_id}/explain").json())
    worker = client.post("/v1/workers", json={"name": "w", "cpus": 1}).json()
    doc.WorkerRegistered.model_validate(worker)
    lease = client.post(f"/v1/workers/{worker['id']}/lease", json={"max_units": 2}).json()
    doc.Lease.model_validate(lease)
    reports = [{"unit_id": u["id"], "result": [None]} for u in lease["units"]]
    answer = client.post(f"/v1/workers/{worker['id']}/reports", json={"reports": reports})
    doc.ReportsAnswer.model_validate(answer.json())
    doc.JobResult.model_validate(client.get(f"/v1/jobs/{job_id}/result").json())
    doc.WorkerList.model_validate(client.get("/v1/workers").json())
    doc.EventPage.model_validate(client.get("/v1/events").json())
    doc.Ledger.model_validate(client.get("/v1/ledger").json())
    doc.Policy.model_validate(client.get("/v1/policy").json())
    doc.Health.model_validate(client.get("/healthz").json())
    missing = client.get("/v1/jobs/nope")
    assert missing.status_code == 404
    doc.ErrorBody.model_validate(missing.json())
    invalid = client.post("/v1/jobs", json={"kind": "map"})
    assert invalid.status_code == 422
    body = doc.ErrorBody.model_validate(invalid.json())
    assert body.error.details[0]["field"] == "spec"
