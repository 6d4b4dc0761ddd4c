"""Bad input gets a 4xx whose message names the field, and appends nothing to the log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from park.api.app import ApiSettings, create_app
from park.events.sqlite import SqliteEventLog
from park.service.engine import ParkService

GOOD_SPEC = {"function": "park.builtins:sleep", "inputs": [0], "chunk": 1}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    service = ParkService(SqliteEventLog.in_data_dir(tmp_path))
    app = create_app(service, ApiSettings(max_body_bytes=64 * 1024))
    with TestClient(app) as client:
        yield client


def offset(client: TestClient) -> int:
    return int(client.get("/healthz").json()["offset"])


CASES: list[tuple[str, dict[str, Any], int, str]] = [
    ("unknown kind", {"kind": "teleport", "spec": {}}, 422, "kind"),
    ("missing kind", {"spec": GOOD_SPEC}, 422, "kind"),
    ("missing spec", {"kind": "map"}, 422, "spec"),
    ("spec not an object", {"kind": "map", "spec": [1, 2]}, 422, "spec"),
    ("missing function", {"kind": "map", "spec": {"inputs": [1]}}, 422, "spec.function"),
    ("bad function name", {"kind": "map", "spec": {**GOOD_SPEC, "function": "os.system"}},
     422, "spec.function"),
    ("inputs not a list", {"kind": "map", "spec": {**GOOD_SPEC, "inputs": 3}}, 422, "spec.inputs"),
    ("chunk zero", {"kind": "map", "spec": {**GOOD_SPEC, "chunk": 0}}, 422, "spec.chunk"),
    ("chunk wrong type", {"kind": "map", "spec": {**GOOD_SPEC, "chunk": "two"}}, 422,
     "spec.chunk"),
    ("unknown spec field", {"kind": "map", "spec": {**GOOD_SPEC, "chunks": 2}}, 422,
     "spec.chunks"),
    ("unknown priority", {"kind": "map", "spec": GOOD_SPEC, "priority": "asap"}, 422, "priority"),
    ("tags wrong type", {"kind": "map", "spec": GOOD_SPEC, "tags": ["a"]}, 422, "tags"),
    ("unknown top-level field", {"kind": "map", "spec": GOOD_SPEC, "colour": "red"}, 422,
     "colour"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_submission_is_refused_naming_the_field(
    client: TestClient, body: dict[str, Any], status: int, field: str
) -> None:
    before = offset(client)
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"].startswith(f"{field}:"), error
    assert offset(client) == before


def test_malformed_json_is_a_422_not_a_500(client: TestClient) -> None:
    before = offset(client)
    response = client.post(
        "/v1/jobs",
        content=b'{"kind": "map", "spec": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "error" in response.json()
    assert offset(client) == before


def test_oversize_body_is_413(client: TestClient) -> None:
    before = offset(client)
    inputs = [0] * 40_000  # about 120 kB of JSON, over the 64 kB limit of this server
    response = client.post(
        "/v1/jobs", json={"kind": "map", "spec": {**GOOD_SPEC, "inputs": inputs}}
    )
    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("body:")
    assert offset(client) == before


def test_unknown_job_is_404_naming_the_id(client: TestClient) -> None:
    for method, path in (
        ("GET", "/v1/jobs/nope"),
        ("GET", "/v1/jobs/nope/result"),
        ("POST", "/v1/jobs/nope/cancel"),
    ):
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert response.json()["error"]["message"].startswith("job_id:")


def test_unknown_worker_is_404(client: TestClient) -> None:
    before = offset(client)
    response = client.post("/v1/workers/ghost/lease", json={"max_units": 1})
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("worker_id:")
    assert offset(client) == before


def test_bad_lease_request_names_the_field(client: TestClient) -> None:
    worker = client.post("/v1/workers", json={"name": "w", "cpus": 1}).json()["id"]
    response = client.post(f"/v1/workers/{worker}/lease", json={"max_units": 0})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("max_units:")


def test_own_only_worker_without_owner_is_refused(client: TestClient) -> None:
    response = client.post("/v1/workers", json={"name": "w", "policy": "own-only"})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("owner:")


def test_result_of_a_running_job_is_a_409(client: TestClient) -> None:
    job = client.post("/v1/jobs", json={"kind": "map", "spec": GOOD_SPEC}).json()
    assert job["status"] == "pending"
    assert set(job) >= {"id", "status", "kind", "priority", "tags", "submitted_at", "progress"}
    assert job["progress"] == {"done": 0, "total": 1, "items_done": 0, "items_total": 1}
    response = client.get(f"/v1/jobs/{job['id']}/result")
    assert response.status_code == 409


def test_cancelling_twice_is_a_409(client: TestClient) -> None:
    job = client.post("/v1/jobs", json={"kind": "map", "spec": GOOD_SPEC}).json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    before = offset(client)
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert offset(client) == before


def test_another_users_job_cannot_be_cancelled(client: TestClient) -> None:
    job = client.post(
        "/v1/jobs", json={"kind": "map", "spec": GOOD_SPEC}, headers={"X-Park-User": "ann"}
    ).json()
    response = client.post(f"/v1/jobs/{job['id']}/cancel", headers={"X-Park-User": "bob"})
    assert response.status_code == 403
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "pending"


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "/v1/jobs" in client.get("/openapi.json").json()["paths"]


def leased_unit(client: TestClient) -> tuple[str, str, str]:
    job = client.post("/v1/jobs", json={"kind": "map", "spec": GOOD_SPEC}).json()["id"]
    worker = client.post("/v1/workers", json={"name": "w"}).json()["id"]
    [unit] = client.post(f"/v1/workers/{worker}/lease", json={"max_units": 1}).json()["units"]
    return job, worker, unit["id"]


def test_a_malformed_result_fails_its_unit_and_never_reaches_the_fold(
    client: TestClient, tmp_path: Path
) -> None:
    job, worker, unit = leased_unit(client)
    for attempt in (1, 2, 3):  # each attempt fails; the third (max_attempts) fails the job
        if attempt > 1:
            assert client.get(f"/v1/jobs/{job}").json()["status"] == "running"
            [again] = client.post(f"/v1/workers/{worker}/lease", json={"max_units": 1}).json()[
                "units"
            ]
            assert (again["id"], again["attempt"]) == (unit, attempt)
        answer = client.post(
            f"/v1/workers/{worker}/reports",
            json={"reports": [{"unit_id": unit, "result": [1, 2, 3]}]},
        )
        assert answer.status_code == 200
    failed = client.get(f"/v1/jobs/{job}").json()
    assert failed["status"] == "failed"
    assert "(attempt 3 of 3)" in failed["error"]
    assert "the result does not fit the unit: expected a list of 1 outputs" in failed["error"]


@pytest.mark.parametrize(
    "report",
    [
        '{"reports": [{"unit_id": "%s", "result": [NaN]}]}',
        '{"reports": [{"unit_id": "%s", "result": [1e999]}]}',
        '{"reports": [{"unit_id": "%s", "result": [0], "cpu_seconds": 1e999}]}',
    ],
)
def test_numbers_json_cannot_carry_are_refused(client: TestClient, report: str) -> None:
    _, worker, unit = leased_unit(client)
    before = offset(client)
    response = client.post(
        f"/v1/workers/{worker}/reports",
        content=(report % unit).encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("reports.0.")
    assert offset(client) == before
    refused = client.post(
        "/v1/jobs",
        content=b'{"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": [NaN]}}',
        headers={"content-type": "application/json"},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["message"].startswith("spec.")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("GET", "/v1/events?after=100000000000000000000", {}, "after"),
        ("GET", "/v1/events/stream", {"headers": {"Last-Event-ID": "9" * 30}}, "Last-Event-ID"),
        ("POST", "/v1/workers", {"json": {"name": "p", "policy": "job", "job": "nope"}}, "job"),
        ("POST", "/v1/jobs", {"json": {"kind": "fit", "spec": {"model": {"builtin": ["line"]}}}},
         "spec"),
        ("POST", "/v1/jobs", {"json": {"kind": "fit", "spec": {"model": "-" * 5000 + "a*x"}}},
         "spec"),
        # JSON types as they are: no `false` for 0 credits, no "4" for 4 CPUs
        ("PUT", "/v1/ledger/ann/budget", {"json": {"credits": False}}, "credits"),
        ("POST", "/v1/workers", {"json": {"name": "p", "cpus": "4"}}, "cpus"),
        ("POST", "/v1/workers", {"json": {"name": "p", "cpus": True}}, "cpus"),
        ("POST", "/v1/jobs", {"json": {"kind": "map", "spec": GOOD_SPEC, "max_attempts": True}},
         "max_attempts"),
        ("GET", "/v1/jobs/j-1?wait=-1", {}, "wait"),
        ("GET", "/v1/jobs/j-1?wait=61", {}, "wait"),
        ("GET", "/v1/jobs/j-1?wait=soon", {}, "wait"),
        ("GET", "/v1/jobs/j-1?wait=nan", {}, "wait"),
    ],
)  # fmt: skip
def test_odd_input_is_a_4xx_naming_the_field(
    client: TestClient, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    response = client.request(method, path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"].startswith(field), response.json()


def test_a_huge_plan_is_refused_at_submission(tmp_path: Path) -> None:
    service = ParkService(SqliteEventLog.in_data_dir(tmp_path / "big"))
    with TestClient(create_app(service)) as client:  # the default body limit
        spec = {"function": "park.builtins:sleep", "inputs": [0] * 100_001, "chunk": 1}
        response = client.post("/v1/jobs", json={"kind": "map", "spec": spec})
        assert response.status_code == 422
        assert "would plan 100,001 units" in response.json()["error"]["message"]
        assert offset(client) == 0
        spec["chunk"] = 2  # the same work in fewer units is fine
        assert client.post("/v1/jobs", json={"kind": "map", "spec": spec}).status_code == 201


def test_an_oversize_body_without_a_length_is_413(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": ['
        for _ in range(20):
            yield b"0," * 5000
        yield b"0]}}"

    before = offset(client)
    response = client.post(
        "/v1/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("body:")
    assert offset(client) == before
