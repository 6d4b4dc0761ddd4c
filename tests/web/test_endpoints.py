"""The routes behind the web page, over plain HTTP: the page and its files, a job's units
(its owner only), plots of results (409 until the job ends) and of the ledger."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from park.api.app import ApiSettings, create_app
from park.api.auth import TokenTable
from park.events.sqlite import SqliteEventLog
from park.service.engine import ParkService
from tests.support import ParkServer, wait_for
from tests.web.conftest import TOKENS

ANN = {"X-Park-User": "ann"}
BOB = {"X-Park-User": "bob"}
SVG_NS = "{http://www.w3.org/2000/svg}svg"

FIT_SPEC = {
    "model": "b1*(1-exp(-b2*x))",
    "data": {
        "x": [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
        "y": [1.8, 3.3, 4.5, 5.5, 6.3, 7.0, 7.5, 7.9, 8.3, 8.6],
        "dy": [0.1] * 10,
    },
    "parameters": {
        "b1": {"value": 5, "min": 0, "max": 100},
        "b2": {"value": 0.01, "min": 0, "max": 1},
    },
}


def is_svg(body: bytes) -> bool:
    return ET.fromstring(body).tag == SVG_NS


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    service = ParkService(SqliteEventLog.in_data_dir(tmp_path))
    with TestClient(create_app(service)) as client:
        yield client


def submit_map(client: TestClient, inputs: list[Any], user: dict[str, str] = ANN) -> str:
    body = {"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": inputs}}
    response = client.post("/v1/jobs", json=body, headers=user)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def run_units(client: TestClient, outputs: list[Any] | None = None, max_units: int = 100) -> str:
    """Act as a worker: lease units and report them done (with `outputs`, or the inputs)."""
    worker = client.post("/v1/workers", json={"name": "test", "cpus": 4}).json()["id"]
    units = client.post(f"/v1/workers/{worker}/lease", json={"max_units": max_units}).json()
    reports = []
    for unit in units["units"]:
        items = unit["payload"]["items"]
        start = unit["payload"]["start"]
        result = items if outputs is None else outputs[start : start + len(items)]
        reports.append({"unit_id": unit["id"], "result": result, "wall_seconds": 0.01})
    answer = client.post(f"/v1/workers/{worker}/reports", json={"reports": reports})
    assert answer.status_code == 200, answer.text
    return str(worker)


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text
    for name, kind in [("app.js", "javascript"), ("style.css", "text/css")]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/static/..%2Fweb.py").status_code == 404
    assert client.get("/static/../web.py").status_code == 404


def test_units_are_private_to_the_owner(client: TestClient) -> None:
    job_id = submit_map(client, [1, 2, 3])
    mine = client.get(f"/v1/jobs/{job_id}/units", headers=ANN)
    assert mine.status_code == 200
    body = mine.json()
    assert body["total"] == 3 and body["counts"] == {"queued": 3}
    assert [set(u) >= {"id", "status", "attempts", "worker"} for u in body["units"]] == [True] * 3
    assert all(u["status"] == "queued" and u["attempts"] == 0 for u in body["units"])
    theirs = client.get(f"/v1/jobs/{job_id}/units", headers=BOB)
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "not_found"
    assert "of yours" in theirs.json()["error"]["message"]
    assert client.get("/v1/jobs/nope/units", headers=ANN).status_code == 404

    worker = client.post("/v1/workers", json={"name": "w", "cpus": 2}).json()["id"]
    client.post(f"/v1/workers/{worker}/lease", json={"max_units": 2})
    leased = client.get(f"/v1/jobs/{job_id}/units", headers=ANN, params={"limit": 2}).json()
    assert leased["counts"] == {"leased": 2, "queued": 1}
    assert len(leased["units"]) == 2 and leased["total"] == 3
    assert all(u["worker"] == worker and u["attempts"] == 1 for u in leased["units"])


def test_units_need_the_owners_token_when_tokens_are_on(tmp_path: Path) -> None:
    table = tmp_path / "tokens"
    table.write_text(TOKENS)
    service = ParkService(SqliteEventLog.in_data_dir(tmp_path))
    settings = ApiSettings(tokens=TokenTable.load(table))
    with TestClient(create_app(service, settings)) as client:
        ann = {"Authorization": "Bearer ann-secret"}
        bob = {"Authorization": "Bearer bob-secret"}
        body = {"kind": "map", "spec": {"function": "park.builtins:sleep", "inputs": [0]}}
        job_id = client.post("/v1/jobs", json=body, headers=ann).json()["id"]
        assert client.get(f"/v1/jobs/{job_id}/units").status_code == 401
        assert client.get(f"/v1/jobs/{job_id}/units", headers=bob).status_code == 404
        assert client.get(f"/v1/jobs/{job_id}/units", headers=ann).status_code == 200
        assert client.get(f"/v1/jobs/{job_id}/plot.svg", headers=bob).status_code == 404
        assert client.get("/v1/ledger/plot.svg").status_code == 401
        assert client.get("/v1/ledger/plot.svg", headers=bob).status_code == 200


def test_the_pool_shows_each_workers_current_job_and_rate(tmp_path: Path) -> None:
    now = [1000.0]
    service = ParkService(SqliteEventLog.in_data_dir(tmp_path), clock=lambda: now[0])
    with TestClient(create_app(service)) as client:
        first = submit_map(client, [1, 2, 3, 4])
        busy = client.post("/v1/workers", json={"name": "busy", "cpus": 4}).json()["id"]
        idle = client.post("/v1/workers", json={"name": "idle", "cpus": 1}).json()["id"]
        units = client.post(f"/v1/workers/{busy}/lease", json={"max_units": 4}).json()["units"]
        reports = [{"unit_id": u["id"], "result": u["payload"]["items"]} for u in units[:3]]
        assert client.post(f"/v1/workers/{busy}/reports", json={"reports": reports}).is_success
        now[0] += 90.0  # 3 units in a minute and a half
        pool = {w["id"]: w for w in client.get("/v1/workers").json()["workers"]}
        assert pool[busy]["current_jobs"] == [first]  # its fourth unit is still out
        assert pool[busy]["units_per_minute"] == pytest.approx(2.0)
        assert pool[idle]["current_jobs"] == [] and pool[idle]["units_per_minute"] == 0.0


def test_a_plot_is_409_until_the_job_ends_then_svg(client: TestClient) -> None:
    job_id = submit_map(client, [1.0, 2.0, 4.0])
    early = client.get(f"/v1/jobs/{job_id}/plot.svg", headers=ANN)
    assert early.status_code == 409
    assert early.headers["content-type"] == "application/json"
    assert early.json()["error"]["code"] == "conflict"
    assert "running" in early.json()["error"]["message"] or "pending" in early.text
    run_units(client, outputs=[1.0, 4.0, 16.0])
    assert client.get(f"/v1/jobs/{job_id}", headers=ANN).json()["status"] == "complete"
    plot = client.get(f"/v1/jobs/{job_id}/plot.svg", headers=ANN)
    assert plot.status_code == 200
    assert plot.headers["content-type"] == "image/svg+xml"
    assert is_svg(plot.content)
    assert client.get(f"/v1/jobs/{job_id}/plot.svg", headers=ANN).content == plot.content
    assert client.get(f"/v1/jobs/{job_id}/plot.svg", headers=BOB).status_code == 404


def test_no_plot_for_outputs_that_are_not_numbers_nor_for_cancelled_jobs(
    client: TestClient,
) -> None:
    words = submit_map(client, ["a", "b"])
    run_units(client, outputs=["x", "y"])
    answer = client.get(f"/v1/jobs/{words}/plot.svg", headers=ANN)
    assert answer.status_code == 404
    assert "not all numbers" in answer.json()["error"]["message"]
    cancelled = submit_map(client, [1])
    assert client.post(f"/v1/jobs/{cancelled}/cancel", headers=ANN).status_code == 200
    answer = client.get(f"/v1/jobs/{cancelled}/plot.svg", headers=ANN)
    assert answer.status_code == 404
    assert "cancelled" in answer.json()["error"]["message"]


def test_the_ledger_plot_is_svg(client: TestClient) -> None:
    empty = client.get("/v1/ledger/plot.svg")
    assert empty.status_code == 200 and empty.headers["content-type"] == "image/svg+xml"
    assert is_svg(empty.content)
    submit_map(client, [1, 2])
    run_units(client)
    plot = client.get("/v1/ledger/plot.svg")
    assert plot.status_code == 200 and is_svg(plot.content)
    assert b"ann" in plot.content  # text stays text in the SVG


@pytest.mark.parametrize(
    ("method", "options", "history_title"),
    [
        ("de", {"generations": 20, "seed": 1}, "per generation"),
        ("multistart", {"starts": 6, "seed": 1}, "per start"),
    ],
)
def test_fit_plots_through_the_real_server(
    web_server: ParkServer, method: str, options: dict[str, Any], history_title: str
) -> None:
    with httpx.Client(base_url=web_server.url, headers=ANN, timeout=30) as http:
        spec = {**FIT_SPEC, "method": method, "options": options}
        job_id = http.post("/v1/jobs", json={"kind": "fit", "spec": spec}).json()["id"]
        early = http.get(f"/v1/jobs/{job_id}/plot.svg")
        assert early.status_code == 409, early.text
        assert early.json()["error"]["code"] == "conflict"
        wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "complete", 60)
        plot = http.get(f"/v1/jobs/{job_id}/plot.svg")
        assert plot.status_code == 200
        assert plot.headers["content-type"] == "image/svg+xml"
        assert is_svg(plot.content)
        text = plot.content.decode()
        assert "best fit" in text and history_title in text
        assert ">data<" in text or "data</text>" in text
