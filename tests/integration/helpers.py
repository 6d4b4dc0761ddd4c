"""HTTP helpers for the integration tests: every call goes to a real `park serve` on
127.0.0.1, and every wait is bounded."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import httpx

from tests.support import wait_for

FINAL = ("complete", "failed", "cancelled")


def client(server_url: str, user: str | None = None) -> httpx.Client:
    headers = {"X-Park-User": user} if user else {}
    return httpx.Client(base_url=server_url, headers=headers, timeout=10.0)


def submit_map(
    http: httpx.Client,
    function: str,
    inputs: list[Any],
    *,
    chunk: int = 1,
    priority: str = "free",
) -> dict[str, Any]:
    body = {
        "kind": "map",
        "spec": {"function": function, "inputs": inputs, "chunk": chunk},
        "priority": priority,
    }
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def get_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_final(http: httpx.Client, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll a job until it is complete, failed or cancelled; fail after `timeout`."""

    def finished() -> dict[str, Any] | None:
        job = get_job(http, job_id)
        return job if job["status"] in FINAL else None

    try:
        return wait_for(finished, timeout=timeout, interval=0.1)  # type: ignore[no-any-return]
    except AssertionError:
        job = get_job(http, job_id)
        raise AssertionError(f"job {job_id} not finished within {timeout}s: {job}") from None


def get_result(http: httpx.Client, job_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/jobs/{job_id}/result")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def all_events(http: httpx.Client, page: int = 500, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The whole raw log, read in pages with `after=`; checks offsets are dense and
    increasing (no gaps, no repeats across pages)."""
    records: list[dict[str, Any]] = []
    after = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get("/v1/events", params={"after": after, "limit": page})
        assert response.status_code == 200, response.text
        batch = response.json()["events"]
        if not batch:
            offsets = [r["offset"] for r in records]
            assert offsets == list(range(1, len(offsets) + 1)), "log offsets not dense"
            return records
        assert len(batch) <= page
        records.extend(batch)
        after = batch[-1]["offset"]
    raise AssertionError(f"reading the log did not finish within {timeout}s")


def events_of(records: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    """The events of one type, each with its offset folded in as `offset`."""
    return [{**r["event"], "offset": r["offset"]} for r in records if r["event"]["type"] == type_]


def by_unit(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        grouped[e["unit_id"]].append(e)
    return grouped


def planned_units(records: list[dict[str, Any]], job_id: str | None = None) -> list[str]:
    return [
        u["unit_id"]
        for e in events_of(records, "units.planned")
        if job_id is None or e["job_id"] == job_id
        for u in e["units"]
    ]


def workers(http: httpx.Client, active: bool = True) -> list[dict[str, Any]]:
    response = http.get("/v1/workers", params={"active": active})
    assert response.status_code == 200, response.text
    return response.json()["workers"]  # type: ignore[no-any-return]


def worker_named(http: httpx.Client, name: str) -> dict[str, Any] | None:
    return next((w for w in workers(http) if w["name"] == name), None)
